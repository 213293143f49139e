import Foundation
import Testing
@testable import TraceFormat

/// LatencyAnalysis on hand-built event lists, one case per kind of sample.
@Suite struct LatencyAnalysisTests {
    static let cpu0 = CPU(0), cpu1 = CPU(1)
    static func t(_ i: Int) -> TaskIndex { TaskIndex(i) }
    static func sw(_ time: UInt64, _ cpu: CPU, _ prev: Int, _ state: TaskState, _ next: Int) -> Event {
        Event(timestamp: time, cpu: cpu, kind: .switchTask(prev: t(prev), prevState: state, next: t(next)))
    }
    static func wake(_ time: UInt64, _ cpu: CPU, waker: Int?, _ target: Int, to targetCPU: CPU) -> Event {
        Event(timestamp: time, cpu: cpu, kind: .waking(waker: waker.map(t), target: t(target), targetCPU: targetCPU, context: .task))
    }
    static func runtime(_ time: UInt64, _ cpu: CPU, _ task: Int, _ ns: UInt64) -> Event {
        Event(timestamp: time, cpu: cpu, kind: .runtime(task: t(task), nanoseconds: ns))
    }

    @Test func normalWakeupIsMeasuredFromWakingToSwitchIn() {
        let events = [
            Self.wake(1_000, Self.cpu1, waker: 2, 1, to: Self.cpu0),
            Self.sw(1_500, Self.cpu0, 0, .running, 1),
            Self.sw(2_500, Self.cpu0, 1, .sleeping, 0),
        ]
        let a = LatencyAnalysis(events: events, taskCount: 3)
        #expect(a.tasks[1].wakeupLatency == [500])
        #expect(a.tasks[1].inferredWakeupLatency.isEmpty && a.tasks[1].runDelay.isEmpty)
        #expect(a.tasks[1].runtimeNanoseconds == 1_000 && a.tasks[1].switches == 1 && a.tasks[1].inferredSwitchIns == 0)
    }

    @Test func absurdTimestampsOfADamagedTraceDoNotTrap() {
        // Found by the fuzzer: two runs of ~2^64 ns each summed past UInt64.max.
        let huge = UInt64.max - 10
        let events = [
            Self.sw(0, Self.cpu0, 0, .running, 1),
            Self.sw(huge, Self.cpu0, 1, .running, 0),
            Self.sw(1, Self.cpu1, 0, .running, 1),
            Self.sw(huge - 1, Self.cpu1, 1, .sleeping, 0),
        ]
        let a = LatencyAnalysis(events: events, taskCount: 2)
        #expect(a.tasks[1].runtimeNanoseconds == UInt64.max)
    }

    @Test func wakeupOnIdleCPUWithoutSwitchInIsInferredAndKeptApart() {
        // CPU 1 is idle; the kernel logs no idle → task switch there (as on this VM). The
        // task's runtime reports give its start: 10 800 − 300 = 10 500, so 500 ns after the waking.
        let events = [
            Self.sw(9_000, Self.cpu1, 2, .sleeping, 0),
            Self.wake(10_000, Self.cpu0, waker: 1, 2, to: Self.cpu1),
            Self.runtime(10_800, Self.cpu1, 2, 300),
            Self.sw(10_800, Self.cpu1, 2, .sleeping, 0),
        ]
        let a = LatencyAnalysis(events: events, taskCount: 3)
        #expect(a.tasks[2].wakeupLatency.isEmpty)
        #expect(a.tasks[2].inferredWakeupLatency == [500])
        #expect(a.tasks[2].inferredSwitchIns == 2)   // the first run (before 9 000) had no switch-in either
        #expect(a.inferredSwitchIns == 2 && a.inferredWithoutRuntime == 1)
        #expect(a.tasks[2].switches == 2)
    }

    @Test func preemptionRunDelayIsMeasured() {
        let events = [
            Self.wake(19_000, Self.cpu0, waker: nil, 3, to: Self.cpu0),
            Self.sw(20_000, Self.cpu0, 0, .running, 3),
            Self.wake(20_900, Self.cpu0, waker: 3, 4, to: Self.cpu0),
            Self.sw(21_000, Self.cpu0, 3, .running, 4),      // 3 preempted by 4
            Self.sw(21_700, Self.cpu0, 4, .sleeping, 3),     // 3 back after 700 ns
            Self.sw(22_000, Self.cpu0, 3, .sleeping, 0),
        ]
        let a = LatencyAnalysis(events: events, taskCount: 5)
        #expect(a.tasks[3].wakeupLatency == [1_000])
        #expect(a.tasks[3].runDelay == [700])
        #expect(a.tasks[3].switches == 2 && a.tasks[3].runtimeNanoseconds == 1_000 + 300)
        #expect(a.tasks[4].wakeupLatency == [100] && a.tasks[4].runDelay.isEmpty)
    }

    @Test func preemptedTaskResumingOnIdleCPUHasInferredRunDelay() {
        let events = [
            Self.sw(1_000, Self.cpu0, 0, .running, 1),
            Self.sw(2_000, Self.cpu0, 1, .running, 2),           // 1 preempted at 2 000
            Self.Event_migrate(2_100, 1, from: Self.cpu0, to: Self.cpu1),
            Self.runtime(3_000, Self.cpu1, 1, 600),              // ran on idle CPU 1 from 2 400 (not logged)
            Self.sw(3_000, Self.cpu1, 1, .sleeping, 0),
        ]
        let a = LatencyAnalysis(events: events, taskCount: 3)
        #expect(a.tasks[1].runDelay.isEmpty)
        #expect(a.tasks[1].inferredRunDelay == [400])
        #expect(a.tasks[1].migrations == 1)
        #expect(a.tasks[1].runtimeNanoseconds == 1_000 + 600)
    }

    @Test func wakeupOfARunningTaskGivesNoSample() {
        let events = [
            Self.sw(1_000, Self.cpu0, 0, .running, 1),
            Self.wake(1_200, Self.cpu1, waker: 2, 1, to: Self.cpu0),
            Self.sw(2_000, Self.cpu0, 1, .sleeping, 0),
        ]
        let a = LatencyAnalysis(events: events, taskCount: 3)
        #expect(a.tasks[1].wakeupLatency.isEmpty && a.tasks[1].wakeupsWithoutSample == 1)
    }

    @Test func newTaskLatencyCountsFromWakeupNew() {
        let events = [
            Event(timestamp: 100, cpu: Self.cpu0, kind: .fork(parent: Self.t(1), child: Self.t(2))),
            Event(timestamp: 150, cpu: Self.cpu0, kind: .wakeupNew(target: Self.t(2), targetCPU: Self.cpu0)),
            Self.sw(400, Self.cpu0, 1, .sleeping, 2),
        ]
        let a = LatencyAnalysis(events: events, taskCount: 3)
        #expect(a.tasks[2].wakeupLatency == [250])
        #expect(a.tasks[2].switches == 1)   // still running at the end: counted by finish()
    }

    static func Event_migrate(_ time: UInt64, _ task: Int, from: CPU, to: CPU) -> Event {
        Event(timestamp: time, cpu: from, kind: .migrate(task: t(task), from: from, to: to))
    }

    /// A ping-pong written to a real .rpl and read back: task 1 on CPU 0 wakes task 2 on
    /// CPU 1, whose idle → task switches are missing (as on this VM), and back. Every
    /// latency of task 2 must come out inferred, every one of task 1 measured.
    @Test func pingPongThroughAFileKeepsInferredSamplesApart() throws {
        let dir = ProcessInfo.processInfo.environment["REPLAYCTL_WRITE_FIXTURES"] ?? NSTemporaryDirectory()
        let path = (dir as NSString).appendingPathComponent("latency-pingpong.rpl")
        var metadata = TraceMetadata()
        metadata.kernelRelease = "6.18.0-synthetic"
        metadata.cpuCount = 2
        let writer = try TraceWriter(path: path, metadata: metadata)
        let ping = writer.addTask(TaskInfo(tid: 100, tgid: 100, comm: "ping"))
        let pong = writer.addTask(TaskInfo(tid: 101, tgid: 100, comm: "pong"))
        var now: UInt64 = 1_000_000
        var events: [Event] = [Self.sw(now, Self.cpu0, 0, .running, ping.intValue)]
        let rounds = 200
        for k in 0..<rounds {
            let pongLatency = UInt64(3_000 + (k % 7) * 100), pingLatency = UInt64(1_000 + (k % 5) * 50)
            let work: UInt64 = 2_000
            now += work
            events.append(Self.wake(now, Self.cpu0, waker: ping.intValue, pong.intValue, to: Self.cpu1))
            events.append(Self.sw(now + 10, Self.cpu0, ping.intValue, .sleeping, 0))
            // pong runs on CPU 1 from now + pongLatency, no switch-in logged.
            let pongStart = now + pongLatency
            now = pongStart + work
            events.append(Self.wake(now, Self.cpu1, waker: pong.intValue, ping.intValue, to: Self.cpu0))
            // The kernel reports the run's CPU time when the task leaves the CPU.
            events.append(Self.runtime(now + 10, Self.cpu1, pong.intValue, work + 10))
            events.append(Self.sw(now + 10, Self.cpu1, pong.intValue, .sleeping, 0))
            now += pingLatency
            events.append(Self.sw(now, Self.cpu0, 0, .running, ping.intValue))
        }
        for e in events { try writer.append(e) }
        try writer.finish(metadata: metadata)
        let a = try LatencyAnalysis(reader: TraceReader(path: path))
        #expect(a.tasks[ping.intValue].wakeupLatency.count == rounds)
        #expect(a.tasks[ping.intValue].inferredWakeupLatency.isEmpty)
        #expect(a.tasks[pong.intValue].wakeupLatency.isEmpty)
        #expect(a.tasks[pong.intValue].inferredWakeupLatency.count == rounds)
        #expect(a.tasks[pong.intValue].inferredWakeupLatency.sorted().first == 3_000)
        #expect(a.tasks[pong.intValue].inferredWakeupLatency.max() == 3_600)
        #expect(a.tasks[ping.intValue].wakeupLatency.max() == 1_200)
        #expect(a.inferredSwitchIns == rounds && a.inferredWithoutRuntime == 0)
        if ProcessInfo.processInfo.environment["REPLAYCTL_WRITE_FIXTURES"] == nil { try? FileManager.default.removeItem(atPath: path) }
    }
}
