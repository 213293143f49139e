import Foundation
import Testing
import TraceFormat
@testable import Replayer

/// `FidelityReport.compute` on small hand-written traces.
@Suite struct FidelityTests {
    /// a, on CPU 0, wakes b `cycles` times. After the first `sameCPU` wakes b preempts a on
    /// CPU 0; after the others b runs on CPU 1, whose switch-in is not logged (as on this VM's
    /// kernel, which drops idle → task switches on CPU 1): its run is inferred at its switch-out.
    func write(_ path: String, cycles: Int, sameCPU: Int) throws {
        var s = TraceScript()
        let a = s.task("a"), b = s.task("b")
        s.at(0, .switchTask(prev: .idle, prevState: .running, next: a))
        s.at(0, cpu: 1, .switchTask(prev: .idle, prevState: .running, next: b))
        s.at(1, cpu: 1, .switchTask(prev: b, prevState: .sleeping, next: .idle))
        var t: UInt64 = 10
        for i in 0..<cycles {
            s.at(t, .waking(waker: a, target: b, targetCPU: CPU(1), context: .task))
            if i < sameCPU {
                s.at(t + 1, .switchTask(prev: a, prevState: .running, next: b))
                s.at(t + 5, .switchTask(prev: b, prevState: .sleeping, next: a))
            } else {
                s.at(t + 5, cpu: 1, .switchTask(prev: b, prevState: .sleeping, next: .idle))
            }
            t += 100
        }
        s.at(t, .exit(task: a))
        let writer = try TraceWriter(path: path, metadata: TraceMetadata())
        for task in s.tasks.dropFirst() { _ = writer.addTask(task) }
        for e in s.events { try writer.append(e) }
        try writer.finish(metadata: TraceMetadata())
    }

    @Test func sameCPUWakeupSharesCountWhereEachWakeeRan() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fidelity-cpu-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let original = dir.appendingPathComponent("o.rpl").path, replay = dir.appendingPathComponent("r.rpl").path
        try write(original, cycles: 10, sameCPU: 4)
        try write(replay, cycles: 10, sameCPU: 0)
        let map = ReplayMap(threads: ["101": 101, "102": 102], startMonotonicNanoseconds: nil, endMonotonicNanoseconds: nil)
        let report = try FidelityReport.compute(originalPath: original, replayPath: replay, map: map)
        #expect(report.originalEdgeWakeups == 10 && report.replayEdgeWakeups == 10)
        #expect(report.edgeSimilarity == 1)
        #expect(report.originalSameCPUWakeupShare == 0.4)
        #expect(report.replaySameCPUWakeupShare == 0)
        let itself = try FidelityReport.compute(originalPath: original, replayPath: original, map: map)
        #expect(itself.replaySameCPUWakeupShare == 0.4)
        // Per wakee: b was woken ten times by a, a never by a task.
        let b = try #require(report.tasks.first { $0.originalTid == 102 })
        #expect(b.originalSameCPUWakeupShare == 0.4 && b.replaySameCPUWakeupShare == 0)
        #expect(b.originalWakeupLatencyMean != nil && b.replayWakeupLatencyMean != nil)
        let a = try #require(report.tasks.first { $0.originalTid == 101 })
        #expect(a.originalSameCPUWakeupShare == nil && a.originalWakeupLatencyMean == nil)
        // Every wake preempting its waker: b ran 1 µs after each.
        let allSame = dir.appendingPathComponent("s.rpl").path
        try write(allSame, cycles: 10, sameCPU: 10)
        let same = try FidelityReport.compute(originalPath: allSame, replayPath: allSame, map: map)
        let bSame = try #require(same.tasks.first { $0.originalTid == 102 })
        #expect(bSame.originalWakeupLatencyMean == 1_000 && bSame.originalSameCPUWakeupShare == 1)
    }
}
