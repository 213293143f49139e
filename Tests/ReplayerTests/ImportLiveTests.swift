import Foundation
import Testing
import TraceFormat
@testable import Replayer

/// Runs `argv`, returns stdout (and the exit status).
private func run(_ argv: [String], in directory: String? = nil) throws -> (String, Int32) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = argv
    if let directory { p.currentDirectoryURL = URL(fileURLWithPath: directory) }
    let out = Pipe()
    p.standardOutput = out
    p.standardError = FileHandle.nullDevice
    p.standardInput = FileHandle.nullDevice
    // The test runner's threads block most signals and a child inherits the mask: perf
    // record would never see its workload's SIGCHLD and wait forever. Spawn unblocked.
    var empty = sigset_t()
    var old = sigset_t()
    sigemptyset(&empty)
    pthread_sigmask(SIG_SETMASK, &empty, &old)
    defer { pthread_sigmask(SIG_SETMASK, &old, nil) }
    try p.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (String(decoding: data, as: UTF8.self), p.terminationStatus)
}

private func toolExists(_ tool: String) -> Bool { (try? run(["which", tool]))?.1 == 0 }

/// Root, real perf and trace-cmd recordings of a small workload, imported; event counts per
/// kind must equal what the peer tool itself prints, and the imported trace must plan like a
/// native one (waits and wakes between the two pipe processes).
@Suite(.serialized, .enabled(if: getuid() == 0)) struct ImportLiveTests {
    let workload = ["perf", "bench", "sched", "pipe", "-l", "2000"]

    func checkPlan(_ path: String) throws {
        let reader = try TraceReader(path: path)
        let selection = TaskSelection().resolve(reader.tasks)
        let recorded = reader.tasks.filter(\.isRecorded)
        #expect(recorded.count >= 2, "recorded tree: \(recorded.map(\.comm))")
        let plan = try PlanBuilder.build(reader: reader, selection: selection)
        let waits = plan.programs.reduce(0) { $0 + $1.waitCount }
        let wakes = plan.programs.reduce(0) { $0 + $1.wakeCount }
        // 2000 round trips: each side waits for the other about 2000 times.
        #expect(waits > 2000 && wakes > 2000, "waits \(waits), wakes \(wakes)")
        // And it replays: one run, no wait abandoned.
        let result = try ReplayEngine(plan: plan).run(index: 0, warmup: false).run
        #expect(result.counts.timedOutWaits == 0)
    }

    @Test(.enabled(if: toolExists("perf"))) func perfSchedRecordImportsWithPerfsCounts() throws {
        let dir = NSTemporaryDirectory() + "import-perf-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (_, status) = try run(["perf", "sched", "record", "-o", "\(dir)/perf.data", "--"] + workload)
        try #require(status == 0)
        #expect(try ImportSource.detect("\(dir)/perf.data") == .perf)
        let (text, scriptStatus) = try run(["perf"] + PerfScriptImporter.scriptArguments + ["-i", "\(dir)/perf.data"])
        try #require(scriptStatus == 0)
        var importer = PerfScriptImporter()
        for line in text.split(separator: "\n") { importer.parse(line: line) }
        try importer.write(to: "\(dir)/p.rpl", metadata: TraceMetadata(), recordedTgids: importer.recordedRoots())
        let summary = try TraceSummary(reader: TraceReader(path: "\(dir)/p.rpl"))
        // What perf itself prints (as `perf script | grep -c sched_switch` would).
        let plain = try run(["perf", "script", "-i", "\(dir)/perf.data"]).0
        func count(_ name: String) -> Int { plain.split(separator: "\n").filter { $0.contains("sched:\(name):") }.count }
        #expect(count("sched_switch") > 4000)
        #expect(Int(summary.eventCounts["switch"] ?? 0) == count("sched_switch"))
        #expect(Int(summary.eventCounts["waking"] ?? 0) == count("sched_waking"))
        #expect(Int(summary.eventCounts["runtime"] ?? 0) == count("sched_stat_runtime"))
        #expect(Int(summary.eventCounts["fork"] ?? 0) == count("sched_process_fork"))
        #expect(Int(summary.eventCounts["migrate"] ?? 0) == count("sched_migrate_task"))
        #expect(Int(summary.eventCounts["wakeupNew"] ?? 0) == count("sched_wakeup_new"))
        try checkPlan("\(dir)/p.rpl")
    }

    @Test(.enabled(if: toolExists("trace-cmd"))) func traceCmdRecordImportsWithTraceCmdsCounts() throws {
        let dir = NSTemporaryDirectory() + "import-tc-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // This machine refuses set_ftrace_filter: --no-filter -d, and trace-cmd exits 1 after a complete file.
        var argv = ["trace-cmd", "record", "--no-filter", "-d", "-o", "\(dir)/trace.dat"]
        for e in ["sched_switch", "sched_waking", "sched_wakeup_new", "sched_process_fork", "sched_process_exec",
                  "sched_process_exit", "sched_migrate_task", "sched_stat_runtime"] { argv += ["-e", "sched:\(e)"] }
        _ = try run(argv + ["--"] + workload, in: dir)
        #expect(try ImportSource.detect("\(dir)/trace.dat") == .traceCmd)
        let (text, status) = try run(["trace-cmd"] + TraceCmdImporter.reportArguments + ["-i", "\(dir)/trace.dat"])
        try #require(status == 0)
        var importer = TraceCmdImporter()
        for line in text.split(separator: "\n") { importer.parse(line: line) }
        #expect(!importer.contextsInferred)
        #expect(importer.assembler.problems.isEmpty, "\(importer.assembler.problems)")
        try importer.write(to: "\(dir)/t.rpl", metadata: TraceMetadata())
        let summary = try TraceSummary(reader: TraceReader(path: "\(dir)/t.rpl"))
        let plain = try run(["trace-cmd", "report", "-i", "\(dir)/trace.dat"]).0
        func count(_ name: String) -> Int { plain.split(separator: "\n").filter { $0.contains(" \(name):") }.count }
        #expect(count("sched_switch") > 4000)
        #expect(Int(summary.eventCounts["switch"] ?? 0) == count("sched_switch"))
        #expect(Int(summary.eventCounts["waking"] ?? 0) == count("sched_waking"))
        #expect(Int(summary.eventCounts["runtime"] ?? 0) == count("sched_stat_runtime"))
        #expect(Int(summary.eventCounts["exec"] ?? 0) == count("sched_process_exec"))
        #expect(Int(summary.eventCounts["exit"] ?? 0) == count("sched_process_exit"))
        #expect(Int(summary.eventCounts["fork"] ?? 0) == count("sched_process_fork"))
        #expect(Int(summary.eventCounts["migrate"] ?? 0) == count("sched_migrate_task"))
        try checkPlan("\(dir)/t.rpl")
    }
}
