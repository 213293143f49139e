import Foundation
import Testing
import TraceFormat
@testable import Replayer

/// Builds small traces by hand: tasks 1… are user tasks with tids 101…
struct TraceScript {
    var tasks: [TaskInfo] = [TaskInfo.idle]
    var events: [Event] = []

    mutating func task(_ comm: String, tgid: Int32? = nil, parent: TaskIndex? = nil, kernel: Bool = false) -> TaskIndex {
        let tid = Int32(100 + tasks.count)
        tasks.append(TaskInfo(tid: tid, tgid: tgid ?? tid, comm: comm, parent: parent, isKernelThread: kernel, isRecorded: !kernel))
        return TaskIndex(tasks.count - 1)
    }

    mutating func at(_ us: UInt64, cpu: Int = 0, _ kind: Event.Kind) {
        events.append(Event(timestamp: 1_000_000_000 + us * 1000, cpu: CPU(cpu), kind: kind))
    }

    func plan(_ selection: Set<TaskIndex>? = nil, inferLocks: Bool = true) -> ReplayPlan {
        let s = selection ?? TaskSelection().resolve(tasks)
        return PlanBuilder.build(events: events, tasks: tasks, selection: s, inferLocks: inferLocks)
    }
}

func program(_ plan: ReplayPlan, _ comm: String) -> TaskProgram {
    plan.programs.first { $0.comm == comm }!
}

@Suite struct PlanBuilderTests {
    @Test func pingPongBecomesWaitsAndWakes() {
        var s = TraceScript()
        let a = s.task("ping"), b = s.task("pong")
        // a runs 0–100 µs, wakes b, sleeps; b runs 100–150, wakes a, sleeps; a runs 150–200 and exits.
        s.at(0, .switchTask(prev: .idle, prevState: .running, next: a))
        s.at(100, .waking(waker: a, target: b, targetCPU: CPU(0), context: .task))
        s.at(100, .switchTask(prev: a, prevState: .sleeping, next: b))
        s.at(150, .waking(waker: b, target: a, targetCPU: CPU(0), context: .task))
        s.at(150, .switchTask(prev: b, prevState: .sleeping, next: a))
        s.at(200, .exit(task: a))
        s.at(200, .switchTask(prev: a, prevState: .dead, next: .idle))
        let plan = s.plan()
        #expect(plan.programs.count == 2)
        #expect(plan.edges.count == 2)
        let ping = program(plan, "ping"), pong = program(plan, "pong")
        #expect(ping.atoms == [.run(nanoseconds: 100_000), .wake(edge: 0, target: 1, rendezvous: 1), .wait(edge: 1, count: 1, recordedWake: 150_000),
                               .run(nanoseconds: 50_000)])
        // pong was asleep when the trace began: it starts by waiting (an initial block, not counted).
        #expect(pong.atoms == [.wait(edge: 0, count: 1, recordedWake: 100_000), .run(nanoseconds: 50_000), .wake(edge: 1, target: 0, rendezvous: 1)])
        #expect(ping.sleeps == 1)
        #expect(pong.sleeps == 0)
        #expect(ping.recordedCPUNanoseconds == 150_000)
        #expect(plan.recordedMakespan == 200_000)
    }

    @Test func theExitPathAfterSchedProcessExitIsBurnedToo() {
        // A process exits at 200 µs (sched_process_exit) and its exit path runs on until
        // 600 µs (the address space and the files released, its parent woken at 500): that
        // CPU is the task's, and its program burns it, around the wake, before it ends.
        var s = TraceScript()
        let parent = s.task("sh")
        let child = s.task("worker", parent: parent)
        s.at(0, cpu: 1, .switchTask(prev: .idle, prevState: .running, next: parent))
        s.at(10, cpu: 1, .switchTask(prev: parent, prevState: .sleeping, next: .idle))
        s.at(0, .switchTask(prev: .idle, prevState: .running, next: child))
        s.at(200, .exit(task: child))
        s.at(500, .waking(waker: child, target: parent, targetCPU: CPU(1), context: .task))
        s.at(600, .switchTask(prev: child, prevState: .dead, next: .idle))
        s.at(610, cpu: 1, .switchTask(prev: .idle, prevState: .running, next: parent))
        s.at(700, cpu: 1, .exit(task: parent))
        s.at(700, cpu: 1, .switchTask(prev: parent, prevState: .dead, next: .idle))
        let plan = s.plan()
        let worker = program(plan, "worker")
        #expect(worker.atoms == [.run(nanoseconds: 500_000), .wake(edge: 0, target: 0, rendezvous: 1), .run(nanoseconds: 100_000)])
        #expect(worker.recordedCPUNanoseconds == 600_000)
        #expect(plan.recordedMakespan == 700_000)
    }

    @Test func wakesAreNumberedPerWakeeForPooledWaits() {
        // r sleeps three times: woken by w1, then w2, then w1 again; w2 also wakes it once
        // while it is still running (an early wake: counted, but no wait).
        var s = TraceScript()
        let w1 = s.task("w1"), w2 = s.task("w2"), r = s.task("r")
        s.at(0, .switchTask(prev: .idle, prevState: .running, next: r))
        s.at(0, cpu: 1, .switchTask(prev: .idle, prevState: .running, next: w1))
        s.at(10, .switchTask(prev: r, prevState: .sleeping, next: w2))
        s.at(20, cpu: 1, .waking(waker: w1, target: r, targetCPU: CPU(1), context: .task))
        s.at(21, cpu: 1, .switchTask(prev: w1, prevState: .sleeping, next: r))
        s.at(30, cpu: 1, .switchTask(prev: r, prevState: .sleeping, next: .idle))
        s.at(40, .waking(waker: w2, target: r, targetCPU: CPU(1), context: .task))
        s.at(41, cpu: 1, .switchTask(prev: .idle, prevState: .running, next: r))
        s.at(45, .waking(waker: w2, target: r, targetCPU: CPU(1), context: .task))
        s.at(50, cpu: 1, .switchTask(prev: r, prevState: .sleeping, next: .idle))
        s.at(60, .switchTask(prev: w2, prevState: .sleeping, next: w1))
        s.at(70, .waking(waker: w1, target: r, targetCPU: CPU(1), context: .task))
        s.at(71, cpu: 1, .switchTask(prev: .idle, prevState: .running, next: r))
        s.at(80, cpu: 1, .exit(task: r))
        let plan = s.plan()
        let e1 = plan.edges.firstIndex { plan.programs[$0.waker].comm == "w1" }!
        let e2 = plan.edges.firstIndex { plan.programs[$0.waker].comm == "w2" }!
        #expect(plan.edges[e1].poolOrdinals == [1, 4])
        #expect(plan.edges[e1].waitPoolOrdinals == [1, 4])
        #expect(plan.edges[e2].poolOrdinals == [2, 3])
        #expect(plan.edges[e2].waitPoolOrdinals == [2])
        #expect(program(plan, "r").waitCount == 3)
    }

    @Test func preemptionIsNotASleep() {
        var s = TraceScript()
        let a = s.task("worker"), hog = s.task("hog")
        s.at(0, .switchTask(prev: .idle, prevState: .running, next: a))
        s.at(300, .switchTask(prev: a, prevState: .running, next: hog))   // preempted
        s.at(1300, .switchTask(prev: hog, prevState: .running, next: a))
        s.at(1500, .exit(task: a))
        let plan = s.plan([a])
        // 300 + 200 µs of CPU; the 1 ms off-CPU is not burned, and no sleep is made.
        #expect(program(plan, "worker").atoms == [.run(nanoseconds: 500_000)])
        #expect(program(plan, "worker").sleeps == 0)
    }

    @Test func interruptWakeupBecomesTimedSleep() {
        var s = TraceScript()
        let a = s.task("periodic")
        s.at(0, .switchTask(prev: .idle, prevState: .running, next: a))
        s.at(50, .switchTask(prev: a, prevState: .sleeping, next: .idle))
        s.at(2000, .waking(waker: .idle, target: a, targetCPU: CPU(0), context: .hardIRQ))
        s.at(2010, .switchTask(prev: .idle, prevState: .running, next: a))
        s.at(2060, .switchTask(prev: a, prevState: .sleeping, next: .idle))
        let plan = s.plan()
        #expect(program(plan, "periodic").atoms == [.run(nanoseconds: 50_000), .sleepUntil(offset: 2_000_000, unmatched: false),
                                                  .run(nanoseconds: 50_000)])
        #expect(plan.unmatchedWaits == 0)
    }

    @Test func wakeFromUnreplayedTaskIsCountedAndTimed() {
        var s = TraceScript()
        let a = s.task("client"), server = s.task("server")
        s.at(0, .switchTask(prev: .idle, prevState: .running, next: a))
        s.at(10, .switchTask(prev: a, prevState: .sleeping, next: server))
        s.at(40, .waking(waker: server, target: a, targetCPU: CPU(0), context: .task))
        s.at(45, .switchTask(prev: server, prevState: .sleeping, next: a))
        let plan = s.plan([a])
        #expect(plan.unmatchedWaits == 1)
        #expect(program(plan, "client").atoms == [.run(nanoseconds: 10_000), .sleepUntil(offset: 40_000, unmatched: true)])
    }

    @Test func forkExecExitInOrder() {
        var s = TraceScript()
        let parent = s.task("sh")
        let child = s.task("sh", parent: parent)
        s.at(0, .switchTask(prev: .idle, prevState: .running, next: parent))
        s.at(100, .fork(parent: parent, child: child))
        s.at(100, .wakeupNew(target: child, targetCPU: CPU(1)))
        s.at(110, cpu: 1, .switchTask(prev: .idle, prevState: .running, next: child))
        s.at(150, .switchTask(prev: parent, prevState: .sleeping, next: .idle))
        s.at(200, cpu: 1, .exec(task: child, comm: "ls"))
        s.at(400, cpu: 1, .exit(task: child))
        s.at(400, cpu: 1, .waking(waker: child, target: parent, targetCPU: CPU(0), context: .task))
        s.at(401, cpu: 1, .switchTask(prev: child, prevState: .dead, next: .idle))
        s.at(420, .switchTask(prev: .idle, prevState: .running, next: parent))
        s.at(430, .exit(task: parent))
        let plan = s.plan()
        let p = plan.programs[0], c = plan.programs[1]
        #expect(p.atoms == [.run(nanoseconds: 100_000), .spawn(program: 1, edge: 0), .run(nanoseconds: 50_000),
                            .wait(edge: 1, count: 1, recordedWake: 400_000), .run(nanoseconds: 10_000)])
        #expect(c.spawnedBy == 0)
        // Its exit path runs 1 µs after it woke its parent: burned too.
        #expect(c.atoms == [.wait(edge: 0, count: 1, recordedWake: 100_000), .run(nanoseconds: 90_000), .exec(comm: "ls"),
                            .run(nanoseconds: 200_000), .wake(edge: 1, target: 0, rendezvous: 1), .run(nanoseconds: 1_000)])
        #expect(plan.edges[0].isSpawn && !plan.edges[1].isSpawn)
    }

    @Test func missingSwitchInRecoveredFromRuntime() {
        // CPU 1 never logs idle → task: the run's start comes from sched_stat_runtime.
        var s = TraceScript()
        let a = s.task("a"), b = s.task("b")
        s.at(0, .switchTask(prev: .idle, prevState: .running, next: a))
        s.at(10, .waking(waker: a, target: b, targetCPU: CPU(1), context: .task))
        // b starts running on CPU 1 at 30 µs (not logged), runs 70 µs.
        s.at(100, cpu: 1, .runtime(task: b, nanoseconds: 70_000))
        s.at(100, cpu: 1, .switchTask(prev: b, prevState: .sleeping, next: .idle))
        s.at(500, .exit(task: a))
        let plan = s.plan()
        #expect(plan.inferredSwitchIns == 1)
        let pb = program(plan, "b")
        #expect(pb.recordedCPUNanoseconds == 70_000)
        #expect(pb.atoms == [.wait(edge: 0, count: 1, recordedWake: 10_000), .run(nanoseconds: 70_000)])
    }

    @Test func runsAreWhatTheKernelChargedWithTheWakeupCostAtTheirStart() {
        // b, woken onto an idle CPU at 10 µs, switches in at 40 µs and is charged from the
        // wakeup: 30 µs before its switch-in plus its 60 µs on the CPU. It wakes a at 70 µs
        // (a cut 30 µs into the run) and blocks at 100 µs.
        var s = TraceScript()
        let a = s.task("a"), b = s.task("b")
        s.at(0, .switchTask(prev: .idle, prevState: .running, next: a))
        s.at(5, .switchTask(prev: a, prevState: .sleeping, next: .idle))
        s.at(10, .waking(waker: nil, target: b, targetCPU: CPU(1), context: .hardIRQ))
        s.at(40, cpu: 1, .switchTask(prev: .idle, prevState: .running, next: b))
        s.at(70, cpu: 1, .waking(waker: b, target: a, targetCPU: CPU(0), context: .task))
        s.at(100, cpu: 1, .runtime(task: b, nanoseconds: 90_000))
        s.at(100, cpu: 1, .switchTask(prev: b, prevState: .sleeping, next: .idle))
        let pb = program(s.plan(), "b")
        #expect(pb.recordedCPUNanoseconds == 90_000)
        // The 30 µs charged before the switch-in go with the part before the wake.
        #expect(pb.atoms == [.sleepUntil(offset: 10_000, unmatched: false), .run(nanoseconds: 60_000),
                             .wake(edge: 0, target: 0, rendezvous: 1), .run(nanoseconds: 30_000)])
    }

    @Test func missingSwitchInWithoutRuntimeStartsAtWakeup() {
        var s = TraceScript()
        let a = s.task("a"), b = s.task("b")
        s.at(0, .switchTask(prev: .idle, prevState: .running, next: a))
        s.at(10, .waking(waker: a, target: b, targetCPU: CPU(1), context: .task))
        s.at(100, cpu: 1, .switchTask(prev: b, prevState: .sleeping, next: .idle))
        let plan = s.plan()
        // Not the 100 µs since the trace began: from the wakeup at 10 µs.
        #expect(program(plan, "b").recordedCPUNanoseconds == 90_000)
    }

    @Test func earlyWakeIsCountedOnTheEdge() {
        // b is woken while still running (it set S but had not switched out): the wake
        // counts, and b's next real sleep waits for the second wake.
        var s = TraceScript()
        let a = s.task("a"), b = s.task("b")
        s.at(0, .switchTask(prev: .idle, prevState: .running, next: a))
        s.at(0, cpu: 1, .switchTask(prev: .idle, prevState: .running, next: b))
        s.at(10, .waking(waker: a, target: b, targetCPU: CPU(1), context: .task))
        s.at(20, cpu: 1, .switchTask(prev: b, prevState: .sleeping, next: .idle))
        s.at(50, .waking(waker: a, target: b, targetCPU: CPU(1), context: .task))
        s.at(60, cpu: 1, .switchTask(prev: .idle, prevState: .running, next: b))
        let plan = s.plan()
        #expect(program(plan, "b").atoms == [.run(nanoseconds: 20_000), .wait(edge: 0, count: 2, recordedWake: 50_000)])
        #expect(program(plan, "a").wakeCount == 2)
    }

    @Test func wakeLoggedJustBeforeTheSleepEndsIt() {
        // a's sched_waking of b is logged at 10 µs while b, already marked as sleeping, is
        // still on its way into schedule() on CPU 1; b switches out at 12 µs and is back at
        // 30 µs with no other wake: that wake ended b's sleep.
        var s = TraceScript()
        let a = s.task("a"), b = s.task("b")
        s.at(0, .switchTask(prev: .idle, prevState: .running, next: a))
        s.at(0, cpu: 1, .switchTask(prev: .idle, prevState: .running, next: b))
        s.at(10, .waking(waker: a, target: b, targetCPU: CPU(1), context: .task))
        s.at(12, cpu: 1, .switchTask(prev: b, prevState: .sleeping, next: .idle))
        s.at(30, cpu: 1, .switchTask(prev: .idle, prevState: .running, next: b))
        s.at(40, cpu: 1, .exit(task: b))
        s.at(50, .exit(task: a))
        let plan = s.plan()
        #expect(plan.inFlightWakes == 1)
        #expect(program(plan, "a").atoms == [.run(nanoseconds: 10_000), .wake(edge: 0, target: 1, rendezvous: 1), .run(nanoseconds: 40_000)])
        let pb = program(plan, "b")
        #expect(pb.atoms == [.run(nanoseconds: 12_000), .wait(edge: 0, count: 1, recordedWake: 10_000), .run(nanoseconds: 10_000)])
        #expect(pb.sleeps == 1)
        #expect(plan.edges[0].waitPoolOrdinals == [1])
    }

    @Test func wakeOfAPreemptedTaskEndsNoLaterSleep() {
        // b is woken while preempted (runnable): it runs on, then sleeps, and comes back with
        // no wake logged (a lost event): a timed sleep, not a wait on the old wake.
        var s = TraceScript()
        let a = s.task("a"), b = s.task("b")
        s.at(0, .switchTask(prev: .idle, prevState: .running, next: a))
        s.at(0, cpu: 1, .switchTask(prev: .idle, prevState: .running, next: b))
        s.at(5, .waking(waker: a, target: b, targetCPU: CPU(1), context: .task))
        s.at(6, cpu: 1, .switchTask(prev: b, prevState: .running, next: .idle))
        s.at(8, cpu: 1, .switchTask(prev: .idle, prevState: .running, next: b))
        s.at(20, cpu: 1, .switchTask(prev: b, prevState: .sleeping, next: .idle))
        s.at(40, cpu: 1, .switchTask(prev: .idle, prevState: .running, next: b))
        let plan = s.plan()
        #expect(plan.inFlightWakes == 0)
        #expect(program(plan, "a").atoms.contains(.wake(edge: 0, target: 1, rendezvous: 0)))
        #expect(program(plan, "b").atoms.contains(.sleepUntil(offset: 40_000, unmatched: false)))
    }

    @Test func sleepEndedWithNeitherWakeNorSwitchInEndsWhereTheRunStarts() {
        // b sleeps at 20 µs on CPU 1 (which does not log idle → task), comes back at 60 µs
        // with no wake logged and runs 40 µs: it slept once until 60 µs, then slept again.
        var s = TraceScript()
        let a = s.task("a"), b = s.task("b")
        s.at(0, .switchTask(prev: .idle, prevState: .running, next: a))
        s.at(0, cpu: 1, .switchTask(prev: .idle, prevState: .running, next: b))
        s.at(20, cpu: 1, .switchTask(prev: b, prevState: .sleeping, next: .idle))
        s.at(100, cpu: 1, .runtime(task: b, nanoseconds: 40_000))
        s.at(100, cpu: 1, .switchTask(prev: b, prevState: .sleeping, next: .idle))
        s.at(150, .waking(waker: a, target: b, targetCPU: CPU(1), context: .task))
        s.at(500, .exit(task: a))
        let plan = s.plan()
        #expect(plan.resumedWithoutSwitchIn == 1)
        let pb = program(plan, "b")
        #expect(pb.atoms == [.run(nanoseconds: 20_000), .sleepUntil(offset: 60_000, unmatched: false), .run(nanoseconds: 40_000),
                             .wait(edge: 0, count: 1, recordedWake: 150_000)])
        #expect(pb.sleeps == 2)
    }

    @Test func absurdTimestampsOfADamagedTraceDoNotTrap() {
        // Found by the fuzzer (fuzz/run.sh builds plans and rt-app exports too): runs of
        // ~2^64 ns summed past UInt64.max in the plan's total and in the rt-app export.
        var tasks = [TaskInfo.idle]
        for i in 1...2 { tasks.append(TaskInfo(tid: Int32(100 + i), tgid: Int32(100 + i), comm: "t\(i)", isKernelThread: false, isRecorded: true)) }
        let a = TaskIndex(1), b = TaskIndex(2)
        let huge = UInt64.max - 10
        let events = [
            Event(timestamp: 0, cpu: CPU(0), kind: .switchTask(prev: .idle, prevState: .running, next: a)),
            Event(timestamp: 0, cpu: CPU(1), kind: .switchTask(prev: .idle, prevState: .running, next: b)),
            Event(timestamp: huge, cpu: CPU(0), kind: .switchTask(prev: a, prevState: .sleeping, next: .idle)),
            Event(timestamp: huge, cpu: CPU(1), kind: .switchTask(prev: b, prevState: .sleeping, next: .idle)),
            Event(timestamp: 5, cpu: CPU(0), kind: .waking(waker: b, target: a, targetCPU: CPU(0), context: .task)),
            Event(timestamp: huge / 2, cpu: CPU(0), kind: .runtime(task: a, nanoseconds: huge)),
        ]
        let plan = PlanBuilder.build(events: events, tasks: tasks, selection: [a, b])
        #expect(plan.programs.count == 2)
        #expect(plan.totalRecordedCPU == UInt64.max || plan.totalRecordedCPU > UInt64.max / 2)
        let export = RtAppExporter.export(plan: plan, metadata: TraceMetadata())
        #expect(export.taskCount == 2)
    }

    @Test func wakeupPreemptionBecomesAHandOffNotASleep() {
        // perf bench sched pipe on one CPU: b wakes a, a preempts b at once, a blocks, b resumes.
        var s = TraceScript()
        let a = s.task("a"), b = s.task("b")
        s.at(0, .switchTask(prev: .idle, prevState: .running, next: b))
        s.at(10, .switchTask(prev: b, prevState: .sleeping, next: a)) // (b blocks once: a real sleep)
        s.at(20, .waking(waker: a, target: b, targetCPU: CPU(0), context: .task))
        s.at(21, .switchTask(prev: a, prevState: .running, next: b))  // b preempts a
        s.at(30, .waking(waker: b, target: a, targetCPU: CPU(0), context: .task))
        s.at(31, .switchTask(prev: b, prevState: .running, next: a))  // a preempts b
        s.at(40, .switchTask(prev: a, prevState: .sleeping, next: b))  // a blocks: hands the CPU back to b
        s.at(50, .waking(waker: b, target: a, targetCPU: CPU(0), context: .task))
        s.at(51, .switchTask(prev: b, prevState: .sleeping, next: a))
        let plan = s.plan()
        #expect(plan.handoffs == 1)
        let pb = program(plan, "b")
        // b's resumption at 40 µs waits for a's hand-off (the 2nd wake on a → b), yielding: not a sleep.
        #expect(pb.atoms == [.run(nanoseconds: 10_000), .wait(edge: 0, count: 1, recordedWake: 20_000), .run(nanoseconds: 9_000),
                             .wake(edge: 1, target: 1, rendezvous: 0), .run(nanoseconds: 1_000), .handOff(edge: 0, count: 2, recordedWake: 40_000, recordedWait: 9_000),
                             .run(nanoseconds: 10_000), .wake(edge: 1, target: 1, rendezvous: 1), .run(nanoseconds: 1_000)])
        #expect(pb.sleeps == 1)
        // a was runnable (preempted) when b woke it at 30 µs: no wait there; its hand-off wake at 40 µs.
        let pa = program(plan, "a")
        #expect(pa.atoms == [.sleepUntil(offset: 10_000, unmatched: false), .run(nanoseconds: 10_000), .wake(edge: 0, target: 0, rendezvous: 1),
                             .run(nanoseconds: 10_000), .wake(edge: 0, target: 0, rendezvous: 2), .wait(edge: 1, count: 2, recordedWake: 50_000)])
        #expect(pa.sleeps == 1)
    }

    /// Two threads of process 101 (or of two processes): w runs 1 µs on CPU 1 and sleeps;
    /// main wakes it at 20 µs on CPU 0, runs on to 50 µs, blocks and gives w its CPU; w runs
    /// to 191 µs, waking main at 190 µs, and blocks; main runs to 300 µs. `between` adds
    /// events between 20 and 50 µs. `overlap`: w also ran on CPU 1 from 200 to 300 µs while
    /// main did on CPU 0. `oneCPU`: w's first run is not there, every run is on CPU 0.
    func turnTaking(sameProcess: Bool = true, overlap: Bool = false, oneCPU: Bool = false,
                    between: (inout TraceScript, TaskIndex, TaskIndex) -> Void = { _, _, _ in }) -> TraceScript {
        var s = TraceScript()
        let main = s.task("main")
        let w = s.task("w", tgid: sameProcess ? 101 : nil)
        s.at(0, .switchTask(prev: .idle, prevState: .running, next: main))
        if !oneCPU {
            s.at(0, cpu: 1, .switchTask(prev: .idle, prevState: .running, next: w))
            s.at(1, cpu: 1, .switchTask(prev: w, prevState: .sleeping, next: .idle))
        }
        s.at(20, .waking(waker: main, target: w, targetCPU: CPU(0), context: .task))
        between(&s, main, w)
        s.at(50, .switchTask(prev: main, prevState: .sleeping, next: w))
        s.at(190, .waking(waker: w, target: main, targetCPU: CPU(0), context: .task))
        s.at(191, .switchTask(prev: w, prevState: .sleeping, next: main))
        if overlap {
            s.at(200, .waking(waker: main, target: w, targetCPU: CPU(1), context: .task))
            s.at(200, cpu: 1, .switchTask(prev: .idle, prevState: .running, next: w))
            s.at(300, cpu: 1, .exit(task: w))
        }
        s.at(300, .exit(task: main))
        return s
    }

    @Test func threadsThatRanOneAtATimeWakeAtTheWakersBlock() throws {
        // CPython's GIL: w, woken onto main's CPU, could not run before main blocked, and
        // will not run alongside main in the replay either, wherever the kernel puts it.
        let s = turnTaking()
        let plan = s.plan()
        let group = try #require(plan.lockGroups.first)
        #expect(plan.lockGroups.count == 1)
        // Two at once for 1 µs of the 142 µs that w (not the busiest, main) ran.
        #expect(group.tgid == 101 && group.threads == 2 && group.overlapNanoseconds == 1_000 && group.othersRunningNanoseconds == 142_000)
        // And main waited for w's block at 191 µs in turn.
        #expect(group.wakesAtBlock == 2)
        #expect(group.description.contains("main (pid 101): its 2 threads ran one at a time (two at once for 0.7 %"))
        let main = program(plan, "main")
        #expect(main.atoms == [.run(nanoseconds: 50_000), .wake(edge: 0, target: 1, rendezvous: 1),
                               .wait(edge: 1, count: 1, recordedWake: 190_000), .run(nanoseconds: 109_000)])
        #expect(program(plan, "w").atoms == [.run(nanoseconds: 1_000), .wait(edge: 0, count: 1, recordedWake: 20_000),
                                             .run(nanoseconds: 141_000), .wake(edge: 1, target: 0, rendezvous: 1)])
        // --no-lock-inference: where the trace has it.
        let kept = s.plan(inferLocks: false)
        #expect(kept.lockGroups.isEmpty)
        #expect(Array(program(kept, "main").atoms.prefix(3)) == [.run(nanoseconds: 20_000), .wake(edge: 0, target: 1, rendezvous: 1),
                                                                .run(nanoseconds: 30_000)])
    }

    @Test func threadsThatRanSideBySideOrProcessesKeepTheirWakes() {
        // The same wait, but w also ran alongside main for 100 of the 242 µs it ran: the
        // kernel's choice, not a lock, and it stays the kernel's to make.
        // Two processes share no lock the trace could hide; threads on one CPU could not
        // have run at once.
        for s in [turnTaking(overlap: true), turnTaking(sameProcess: false), turnTaking(oneCPU: true)] {
            let plan = s.plan()
            #expect(plan.lockGroups.isEmpty)
            #expect(Array(program(plan, "main").atoms.prefix(3)) == [.run(nanoseconds: 20_000), .wake(edge: 0, target: 1, rendezvous: 1),
                                                                    .run(nanoseconds: 30_000)])
        }
    }

    @Test func aBusyThreadWithAHelperBesideItSharesNoLock() {
        // main runs 1 ms on CPU 0; its helper runs 5 µs of every 100 µs on CPU 1, always
        // beside main: two at once for 5 % of the time either ran, but for all of the time
        // the helper (the thread other than the busiest) ran.
        var s = TraceScript()
        let main = s.task("main"), helper = s.task("helper", tgid: 101)
        s.at(0, .switchTask(prev: .idle, prevState: .running, next: main))
        for i in UInt64(0)..<10 {
            let t = 10 + i * 100
            s.at(t, .waking(waker: main, target: helper, targetCPU: CPU(1), context: .task))
            s.at(t, cpu: 1, .switchTask(prev: .idle, prevState: .running, next: helper))
            s.at(t + 5, cpu: 1, .switchTask(prev: helper, prevState: .sleeping, next: .idle))
        }
        s.at(1000, .exit(task: main))
        #expect(s.plan().lockGroups.isEmpty)
    }

    @Test func aWakeMovesToTheBlockOnlyIfItsWakeeWaitedForItAndOnlyPastRunsAndOtherWakes() throws {
        // w ran on CPU 1 after the wake at 20 µs (it did not wait for main's block), tried,
        // slept again at 25 µs and was woken at 49 µs: only that last wake moves.
        let ranMeanwhile = turnTaking { s, main, w in
            s.at(21, cpu: 1, .switchTask(prev: .idle, prevState: .running, next: w))
            s.at(25, cpu: 1, .switchTask(prev: w, prevState: .sleeping, next: .idle))
            s.at(49, .waking(waker: main, target: w, targetCPU: CPU(0), context: .task))
        }.plan()
        #expect(ranMeanwhile.lockGroups.first?.wakesAtBlock == 2)
        #expect(Array(program(ranMeanwhile, "main").atoms.prefix(4)) == [
            .run(nanoseconds: 20_000), .wake(edge: 0, target: 1, rendezvous: 1), .run(nanoseconds: 30_000),
            .wake(edge: 0, target: 1, rendezvous: 2)])
        // Not past a timed sleep of the waker's (30–40 µs)…
        let slept = turnTaking { s, main, _ in
            s.at(30, .switchTask(prev: main, prevState: .sleeping, next: .idle))
            s.at(40, .waking(waker: .idle, target: main, targetCPU: CPU(0), context: .hardIRQ))
            s.at(40, .switchTask(prev: .idle, prevState: .running, next: main))
        }.plan()
        #expect(Array(program(slept, "main").atoms.prefix(4)) == [
            .run(nanoseconds: 20_000), .wake(edge: 0, target: 1, rendezvous: 1), .run(nanoseconds: 10_000),
            .sleepUntil(offset: 40_000, unmatched: false)])
        // …nor past a second wake to the same wakee (30 µs; it found w awake).
        let twice = turnTaking { s, main, w in
            s.at(30, .waking(waker: main, target: w, targetCPU: CPU(0), context: .task))
        }.plan()
        #expect(Array(program(twice, "main").atoms.prefix(4)) == [
            .run(nanoseconds: 20_000), .wake(edge: 0, target: 1, rendezvous: 1), .run(nanoseconds: 10_000),
            .wake(edge: 0, target: 1, rendezvous: 0)])
    }

    @Test func aMovedWakeLeavesTheIndicesOfInFlightWakesValid() throws {
        // main wakes y at 25 µs while y runs on CPU 1 (an in-flight wake); y blocks at 26 µs
        // and runs again at 60 µs with no wake logged: that wake ended y's block, and main's
        // atom for it becomes a wake y waits for — after main's wake to w moved (at 50 µs).
        var y = TaskIndex(0)
        let plan = turnTaking { s, main, _ in
            y = s.task("y", tgid: 101)
            s.at(24, cpu: 1, .switchTask(prev: .idle, prevState: .running, next: y))
            s.at(25, .waking(waker: main, target: y, targetCPU: CPU(1), context: .task))
            s.at(26, cpu: 1, .switchTask(prev: y, prevState: .sleeping, next: .idle))
            s.at(60, cpu: 1, .switchTask(prev: .idle, prevState: .running, next: y))
            s.at(62, cpu: 1, .exit(task: y))
            s.at(62, cpu: 1, .switchTask(prev: y, prevState: .dead, next: .idle))
        }.plan()
        #expect(plan.inFlightWakes == 1)
        #expect(plan.lockGroups.first?.wakesAtBlock == 2)
        #expect(Array(program(plan, "main").atoms.prefix(4)) == [
            .run(nanoseconds: 25_000), .wake(edge: 1, target: 2, rendezvous: 1), .run(nanoseconds: 25_000),
            .wake(edge: 0, target: 1, rendezvous: 1)])
        #expect(program(plan, "y").atoms.contains(.wait(edge: 1, count: 1, recordedWake: 25_000)))
    }

    @Test func kernelThreadsAreNotSelectedByDefault() {
        var s = TraceScript()
        _ = s.task("kworker/0:1", kernel: true)
        let user = s.task("app")
        #expect(TaskSelection().resolve(s.tasks) == [user])
        #expect(TaskSelection(comms: ["kworker/0:1"]).resolve(s.tasks).isEmpty)
        #expect(TaskSelection(pids: [101]).resolve(s.tasks) == [TaskIndex(1)])
    }

    @Test func treeSelectionFollowsParents() {
        var s = TraceScript()
        let root = s.task("make")
        let cc = s.task("cc", parent: root)
        let ld = s.task("ld", parent: cc)
        _ = s.task("other")
        #expect(TaskSelection(trees: [s.tasks[root.intValue].tid]).resolve(s.tasks) == [root, cc, ld])
    }
}

@Suite struct DamagedTraceReplayTests {
    @Test func aPlanSpanningMonthsIsRefusedWithAClearError() throws {
        // A valid file whose timestamps jump 40 days: the replay would sleep for that long.
        var s = TraceScript()
        let a = s.task("sleeper")
        s.at(0, .switchTask(prev: .idle, prevState: .running, next: a))
        s.at(10, .switchTask(prev: a, prevState: .sleeping, next: .idle))
        s.at(40 * 86_400 * 1_000_000, .waking(waker: nil, target: a, targetCPU: CPU(0), context: .hardIRQ))
        s.at(40 * 86_400 * 1_000_000 + 1, .switchTask(prev: .idle, prevState: .running, next: a))
        s.at(40 * 86_400 * 1_000_000 + 20, .exit(task: a))
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("damaged-\(getpid()).rpl").path
        defer { unlink(path) }
        var m = TraceMetadata()
        m.firstTimestamp = s.events.first!.timestamp
        let writer = try TraceWriter(path: path, metadata: m)
        for t in s.tasks.dropFirst() { _ = writer.addTask(t) }
        for e in s.events { try writer.append(e) }
        try writer.finish(metadata: m)
        do {
            _ = try ReplaySession(tracePath: path, selection: TaskSelection(), options: ReplayOptions(), tool: "test")
            Issue.record("a 40-day plan was accepted")
        } catch let error as ReplayError {
            let text = "\(error)"
            #expect(text.contains(path) && text.contains("40 days") && text.contains("damaged"), "\(text)")
        }
    }
}
