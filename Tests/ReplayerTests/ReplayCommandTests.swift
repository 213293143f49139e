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
        let engine = try ReplayEngine(plan: s.plan())
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
}
