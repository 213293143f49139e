import Foundation
import Recorder
import Testing
import TraceFormat
@testable import Replayer

/// Lock inference on a real recording: CPython threads passing work through queues under the
/// GIL (bench/workloads/python-queue.py, smaller), recorded from tracefs.
@Suite(.serialized, .enabled(if: isRootWithTracefs && FileManager.default.isExecutableFile(atPath: "/usr/bin/python3")))
struct LockInferenceLiveTests {
    @Test func pythonThreadsUnderTheGILAreOneLockGroup() throws {
        let workload = URL(fileURLWithPath: samples).deletingLastPathComponent()
            .appendingPathComponent("bench/workloads/python-queue.py").path
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("gil-\(getpid()).rpl").path
        defer { try? FileManager.default.removeItem(atPath: output) }
        let session = try RecordingSession(options: RecordingOptions(
            target: .command(["env", "ITEMS=4000", "python3", workload]), outputPath: output))
        try session.start()
        while session.workloadExitStatus() == nil { usleep(10_000) }
        _ = try session.stop()
        let reader = try TraceReader(path: output)
        let python = reader.tasks.filter { $0.isRecorded && $0.comm.hasPrefix("python") }
        let tgids = Set(python.map(\.tgid))
        let plan = try PlanBuilder.build(reader: reader, selection: TaskSelection().resolve(reader.tasks))
        // Its six threads (main, four workers, the collector) are one group; nothing else is.
        let group = try #require(plan.lockGroups.first, "no lock group among \(python.count) python threads")
        #expect(plan.lockGroups.count == 1)
        #expect(tgids.contains(group.tgid))
        #expect(group.threads == 6)
        #expect(Double(group.overlapNanoseconds) < PlanBuilder.lockOverlapLimit * Double(group.othersRunningNanoseconds))
        // The GIL makes woken threads wait for their waker's block on its CPU: some of those
        // wakes move (1 571–1 660 of ~7 300 with 60 000 items on this VM).
        #expect(group.wakesAtBlock > 0)
        // And without the inference, no group and the same number of wakes and waits.
        let kept = try PlanBuilder.build(reader: reader, selection: TaskSelection().resolve(reader.tasks), inferLocks: false)
        #expect(kept.lockGroups.isEmpty)
        #expect(kept.taskWakes == plan.taskWakes)
        #expect(kept.programs.map(\.waitCount) == plan.programs.map(\.waitCount))
        #expect(kept.totalRecordedCPU == plan.totalRecordedCPU)
    }
}
