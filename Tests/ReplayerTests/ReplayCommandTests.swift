import Foundation
import TestSupport
import Testing
import TraceFormat
@testable import Replayer

/// The replay command as a user runs it: the real binary, real signals.
let replayctlBinary = replayctlExecutable()

@Suite(.serialized) struct ReplayCommandTests {
    @Test(.enabled(if: replayctlBinary != nil)) func ctrlCStopsEveryThreadPromptly() throws {
        cpuLatencyDeviceLock.lock()
        defer { cpuLatencyDeviceLock.unlock() }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: replayctlBinary!)
        // ~1 s per run: 20 runs would take 20 s.
        process.arguments = ["replay", "\(samples)/periodic.rpl", "--runs", "20", "--warmup", "0", "--quiet"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        let before = CPULatencyRequestFile.currentLimit()
        try process.run()
        // cyclictest held 0 µs for nearly all of each ~1 s run: so does the replay.
        var readings: [Int32] = []
        for _ in 0..<10 {
            Thread.sleep(forTimeInterval: 0.15)
            if let v = CPULatencyRequestFile.currentLimit() { readings.append(v) }
        }
        let sent = Date()
        kill(process.processIdentifier, SIGINT)
        process.waitUntilExit()
        let took = Date().timeIntervalSince(sent)
        #expect(process.terminationStatus == 130)
        #expect(took < 1.5, "took \(took) s to stop")
        if let before, cpuLatencyDeviceWritable {
            #expect(readings.contains(0), "\(readings)")
            // Released: the limit in force is what it was (unless another process changed it).
            #expect(CPULatencyRequestFile.currentLimit() == before)
        }
    }

    @Test func affinityFromABiggerMachineIsFolded() throws {
        var s = TraceScript()
        let a = s.task("pinned")
        s.tasks[a.intValue].affinity = [ProcessInfo.processInfo.activeProcessorCount + 1]
        s.at(0, .switchTask(prev: .idle, prevState: .running, next: a))
        s.at(100, .exit(task: a))
        // No exit allowance: the 100 µs run is checked to 10 µs, and the allowance, measured
        // while other tests run, can be up to 20 µs.
        var options = ReplayOptions()
        options.threadExitCostNanoseconds = 0
        let engine = try ReplayEngine(plan: s.plan(), options: options)
        #expect(engine.notes.contains { $0.contains("folded") })
        let cpus = ProcessInfo.processInfo.activeProcessorCount
        #expect(engine.affinities[0] == [Int32((cpus + 1) % cpus)] || cpus == 1)
        let run = try engine.run(index: 0, warmup: false).run
        #expect(run.tasks[0].cpuNanoseconds >= 90_000)
    }

    @Test func loadOfTasksNotReplayedIsReported() throws {
        // a runs 0–100 µs, b 100–700 µs on CPU 1 and 800–1000 µs on CPU 0; a 1 ms trace on 2 CPUs.
        var s = TraceScript()
        let a = s.task("a"), b = s.task("b")
        s.at(0, .switchTask(prev: .idle, prevState: .running, next: a))
        s.at(100, cpu: 1, .switchTask(prev: .idle, prevState: .running, next: b))
        s.at(100, .exit(task: a))
        s.at(100, .switchTask(prev: a, prevState: .dead, next: .idle))
        s.at(700, cpu: 1, .switchTask(prev: b, prevState: .sleeping, next: .idle))
        s.at(800, .switchTask(prev: .idle, prevState: .running, next: b))
        s.at(1000, .switchTask(prev: b, prevState: .sleeping, next: .idle))
        let summary = TraceSummary(events: s.events, taskCount: s.tasks.count)
        let load = UnreplayedLoad(summary: summary, selection: [a], cpus: 2)
        #expect(load.tasks == 1 && load.cpuNanoseconds == 800_000)
        #expect(abs(load.share - 0.4) < 1e-9)
        #expect(load.description(all: false)?.hasPrefix("1 task not replayed used 0.001 s of CPU during the recording (40 % of the machine)") == true)
        #expect(load.description(all: true)?.contains("--all") == false)
        // Both replayed: nothing left out, nothing said.
        #expect(UnreplayedLoad(summary: summary, selection: [a, b], cpus: 2).description(all: false) == nil)
    }

    @Test(.enabled(if: replayctlBinary != nil)) func fidelityCheckExitsNonZeroWhenATargetIsMissed() throws {
        // The sample trace against itself, through a map of its replayed tasks: every target
        // met. The same with the two busiest tasks swapped in the map: CPU and sleeps missed.
        let trace = "\(samples)/messaging.rpl"
        let reader = try TraceReader(path: trace)
        let summary = try TraceSummary(reader: reader)
        let selected = TaskSelection().resolve(reader.tasks).sorted { summary.tasks[$0.intValue].cpuNanoseconds > summary.tasks[$1.intValue].cpuNanoseconds }
        let tasks = selected.map { reader.tasks[$0.intValue] }
        let byCPU = tasks
        var identity: [String: Int32] = [:]
        for t in tasks { identity["\(t.tid)"] = t.tid }
        var swapped = identity
        swapped["\(byCPU[0].tid)"] = byCPU[1].tid
        swapped["\(byCPU[1].tid)"] = byCPU[0].tid
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fidelity-check-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        func run(_ map: [String: Int32], _ extra: [String] = []) throws -> (Int32, String) {
            let path = dir.appendingPathComponent("map.json").path
            try JSONEncoder().encode(["threads": map]).write(to: URL(fileURLWithPath: path))
            let r = try runReplayctl(["fidelity", trace, trace, "--map", path, "--check"] + extra)
            return (r.status, r.stdout + r.stderr)
        }
        let (ok, okText) = try run(identity)
        #expect(ok == 0, "\(okText)")
        #expect(okText.contains("all targets met"))
        let (bad, badText) = try run(swapped)
        #expect(bad == 1, "\(badText)")
        #expect(badText.contains("cpuWeightedAbsoluteError") && badText.contains("MISSED"))
        // A loose enough target passes what the default one missed.
        let (loose, looseText) = try run(swapped, ["--max-cpu-error", "1000", "--max-sleep-error", "1000", "--min-edges", "0"])
        #expect(loose == 0, "\(looseText)")
        let (invalid, invalidText) = try run(identity, ["--min-edges", "2"])
        #expect(invalid == 64 && invalidText.contains("--min-edges"))
    }
}
