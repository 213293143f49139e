import Foundation
import Testing
import TraceFormat
@testable import Replayer

/// rt-app export: the JSON's structure and totals against the plan, and (root, rt-app
/// installed) Debian's rt-app accepting and running the file under a duration cap.
struct ExportRtAppTests {
    func exported(_ name: String, options: RtAppExporter.Options = RtAppExporter.Options()) throws -> (ReplayPlan, RtAppExporter.Result, [String: Any]) {
        let plan = try samplePlan(name)
        let reader = try TraceReader(path: "\(samples)/\(name)")
        let result = RtAppExporter.export(plan: plan, metadata: reader.metadata, options: options)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(result.json.utf8)) as? [String: Any])
        return (plan, result, json)
    }

    /// Sum over a thread's phases of loop × value of every key starting with `prefix`.
    func total(_ thread: [String: Any], _ prefix: String, value: (Any) -> Int?) -> Int {
        let phases = thread["phases"] as! [String: Any]
        var sum = 0
        for case let phase as [String: Any] in phases.values {
            let loop = phase["loop"] as! Int
            for (key, v) in phase where key.hasPrefix(prefix) { sum += loop * (value(v) ?? 0) }
        }
        return sum
    }

    @Test(arguments: ["messaging.rpl", "periodic.rpl", "pipe-pingpong.rpl"])
    func threadsKeepCPUTimeWakesAndSleeps(_ name: String) throws {
        let (plan, result, json) = try exported(name)
        let tasks = try #require(json["tasks"] as? [String: [String: Any]])
        #expect(tasks.count == plan.programs.count)
        #expect(result.taskCount == plan.programs.count)
        let names = RtAppExporter.threadNames(plan.programs)
        #expect(Set(names).count == names.count && names.allSatisfy { $0.count <= 15 })
        for (p, program) in plan.programs.enumerated() {
            let thread = try #require(tasks[names[p]])
            #expect(thread["loop"] as? Int == 1)
            // CPU time: a merged phase runs its mean, rounded to rt-app's whole µs, so each
            // run atom may gain or lose up to 0.5 µs; never more.
            let runMicros = total(thread, "run") { $0 as? Int }
            let recordedMicros = Int(program.recordedCPUNanoseconds / 1000)
            let runAtoms = program.atoms.filter { if case .run = $0 { true } else { false } }.count
            #expect(Double(abs(runMicros - recordedMicros)) <= 2 + 0.5 * Double(runAtoms), "\(names[p]): \(runMicros) µs vs \(recordedMicros) µs")
            // Every wait a suspend, every wake and spawn a resume, every timed sleep a timer.
            // (a spawned child's first wait is a timer to its fork time instead).
            let spawnWaits = program.atoms.filter { if case let .wait(edge, _, _) = $0 { plan.edges[edge].isSpawn } else { false } }.count
            #expect(total(thread, "suspend") { _ in 1 } == program.waitCount - spawnWaits)
            #expect(total(thread, "resume") { _ in 1 } == program.wakeCount)
            #expect(total(thread, "timer") { _ in 1 } == program.timedSleepCount + spawnWaits)
        }
        #expect(result.phaseCount < plan.programs.reduce(0) { $0 + $1.atoms.count })
    }

    @Test func periodicTimersAreAbsoluteAndCompressed() throws {
        let (plan, _, json) = try exported("periodic.rpl")
        let tasks = try #require(json["tasks"] as? [String: [String: Any]])
        let names = RtAppExporter.threadNames(plan.programs)
        // cyclictest -i 2000: each timer thread's timer periods average 2 ms and loop.
        for (p, program) in plan.programs.enumerated() where program.timedSleepCount > 400 {
            let phases = try #require(tasks[names[p]]?["phases"] as? [String: [String: Any]])
            let timers = phases.values.flatMap { phase in phase.filter { $0.key.hasPrefix("timer") }.map { (phase["loop"] as! Int, $0.value as! [String: Any]) } }
            #expect(timers.allSatisfy { $0.1["mode"] as? String == "absolute" && $0.1["ref"] as? String == names[p] + "-timer" })
            let count = timers.reduce(0) { $0 + $1.0 }
            // The periods of looping phases: a single timer is the thread's start (tens of ms
            // after the trace's on a busy machine) or a late wakeup, not its period.
            let looping = timers.filter { $0.0 > 1 }
            let sum = looping.reduce(0) { $0 + $1.0 * ($1.1["period"] as! Int) }
            let loops = looping.reduce(0) { $0 + $1.0 }
            #expect(loops * 10 > count * 9, "\(names[p]): \(loops) of \(count) timers in looping phases")
            let mean = Double(sum) / Double(max(1, loops))
            #expect(mean > 1900 && mean < 2100, "\(names[p]): mean period \(mean) µs")
            #expect(phases.count * 10 < count, "\(names[p]): \(phases.count) phases for \(count) timers")
        }
    }

    @Test func longProgramsAreCut() throws {
        var options = RtAppExporter.Options()
        options.maxPhasesPerTask = 3
        options.tolerance = 0
        options.absoluteToleranceMicroseconds = 0
        let (_, result, json) = try exported("messaging.rpl", options: options)
        let tasks = try #require(json["tasks"] as? [String: [String: Any]])
        #expect(tasks.values.allSatisfy { ($0["phases"] as! [String: Any]).count <= 3 })
        #expect(result.notes.contains { $0.contains("program cut at 3") })
    }

    @Test(.enabled(if: getuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/bin/rt-app")),
          arguments: ["periodic.rpl", "pipe-pingpong.rpl"])
    func debiansRtAppRunsTheFile(_ name: String) throws {
        var options = RtAppExporter.Options()
        options.durationSeconds = 2
        options.calibration = "20"  // skip rt-app's ~10 s calibration
        let (plan, result, _) = try exported(name, options: options)
        let dir = NSTemporaryDirectory() + "rtapp-\(getpid())-\(name)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Data(result.json.utf8).write(to: URL(fileURLWithPath: "\(dir)/workload.json"))
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/rt-app")
        p.arguments = ["workload.json"]
        p.currentDirectoryURL = URL(fileURLWithPath: dir)
        let output = Pipe()
        p.standardOutput = output
        p.standardError = output
        let start = Date()
        try p.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        let seconds = Date().timeIntervalSince(start)
        #expect(p.terminationStatus == 0, "\(text.suffix(2000))")
        #expect(seconds < 10, "rt-app took \(seconds) s with a 2 s cap")
        #expect(!text.contains("<crit>") && !text.contains("<error>"), "\(text.suffix(2000))")
        // One log per thread, each with at least one executed phase line.
        let logs = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".log") }
        #expect(logs.count == plan.programs.count)
        for log in logs {
            let lines = try String(contentsOfFile: "\(dir)/\(log)", encoding: .utf8).split(separator: "\n").filter { !$0.hasPrefix("#") }
            #expect(!lines.isEmpty, "\(log) has no phase line")
        }
    }
}
