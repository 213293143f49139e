import Testing
@testable import TraceFormat

@Suite struct RunTrackerTests {
    func ev(_ t: UInt64, cpu: UInt32 = 0, _ k: Event.Kind) -> Event { Event(timestamp: t, cpu: CPU(rawValue: cpu), kind: k) }

    @Test func hugeCPUNumbersDoNotAllocate() {
        var tracker = RunTracker(taskCount: 2)
        _ = tracker.feed(ev(10, cpu: UInt32.max, .switchTask(prev: .idle, prevState: .running, next: TaskIndex(1))))
        let run = tracker.feed(ev(20, cpu: UInt32.max, .switchTask(prev: TaskIndex(1), prevState: .sleeping, next: .idle)))
        #expect(run?.length == 10)
    }

    @Test func outOfOrderTimestampsNeverMakeNegativeRuns() {
        var tracker = RunTracker(taskCount: 2)
        _ = tracker.feed(ev(1_000, .switchTask(prev: .idle, prevState: .running, next: TaskIndex(1))))
        let run = tracker.feed(ev(500, .switchTask(prev: TaskIndex(1), prevState: .sleeping, next: .idle)))
        #expect(run?.length == 0)
        _ = tracker.feed(ev(400, cpu: 1, .runtime(task: TaskIndex(1), nanoseconds: 10_000)))
        let inferred = tracker.feed(ev(300, cpu: 1, .switchTask(prev: TaskIndex(1), prevState: .sleeping, next: .idle)))
        #expect(inferred.map { $0.start <= $0.end } == true)
        var total: UInt64 = 0
        tracker.finish { total += $0.length }
        #expect(total < 1_000_000)
    }
}
