import CReplay
import Foundation
import Stats
import Testing
import TraceFormat
@testable import Replayer

/// Real threads on this machine, checked against what they measured. Bounds are loose enough
/// for a noisy 2-CPU machine and tight enough to catch a broken engine.
@Suite(.serialized) struct ReplayEngineTests {
    func pingPong(roundTrips: Int, runMicroseconds: UInt64) -> ReplayPlan {
        var s = TraceScript()
        let a = s.task("ping"), b = s.task("pong")
        var t: UInt64 = 0
        s.at(t, .switchTask(prev: .idle, prevState: .running, next: a))
        for _ in 0..<roundTrips {
            t += runMicroseconds
            s.at(t, .waking(waker: a, target: b, targetCPU: CPU(1), context: .task))
            s.at(t, .switchTask(prev: a, prevState: .sleeping, next: .idle))
            s.at(t + 5, cpu: 1, .switchTask(prev: .idle, prevState: .running, next: b))
            t += 5 + runMicroseconds
            s.at(t, cpu: 1, .waking(waker: b, target: a, targetCPU: CPU(0), context: .task))
            s.at(t, cpu: 1, .switchTask(prev: b, prevState: .sleeping, next: .idle))
            s.at(t + 5, .switchTask(prev: .idle, prevState: .running, next: a))
            t += 5
        }
        s.at(t + runMicroseconds, .exit(task: a))
        return s.plan()
    }

    /// Programs named `names` (no atoms yet) and edges of one wake each: (waker, wakee, the
    /// wakee's pooled ordinal with that wake).
    func handBuiltPlan(_ names: [String], edges: [(waker: Int, wakee: Int, ordinal: UInt32)]) -> ReplayPlan {
        var plan = ReplayPlan()
        for (i, name) in names.enumerated() {
            plan.programs.append(TaskProgram(task: TaskIndex(i + 1), info: TaskInfo(tid: Int32(200 + i), tgid: Int32(200 + i), comm: name)))
        }
        plan.edges = edges.map {
            WakeEdge(waker: $0.waker, wakee: $0.wakee, isSpawn: false, count: 1, waits: 1, poolOrdinals: [$0.ordinal], waitPoolOrdinals: [$0.ordinal])
        }
        return plan
    }

    /// A thread in which `context` reaches its first wait on `edge` and blocks in it; created
    /// once it has committed to block (its waiting flag is set).
    final class BlockedInItsFirstWait: @unchecked Sendable {
        let context: ThreadContext
        private let lock = NSLock()
        private var value: (outcome: ThreadContext.BlockOutcome, blocked: Bool)?

        init(_ context: ThreadContext, edge: Int, giveUpAfter: UInt64 = 5_000_000_000) {
            self.context = context
            let shared = context.shared, program = context.program
            Thread { [self] in
                let (counter, target) = context.arrive(edge: edge, count: 1, order: .deferred)
                let v = context.block(until: counter, reaches: target, giveUp: creplay_monotonic_ns() + giveUpAfter,
                                      myFutex: shared.futex(program), for: .wake)
                lock.withLock { value = v }
            }.start()
            while creplay_load32(shared.waiting(program)) != ThreadContext.BlockReason.wake.rawValue { sched_yield() }
        }

        /// Whether the block has ended.
        var hasEnded: Bool { lock.withLock { value != nil } }

        /// How the block ended, waiting up to 5 s for it (nil if it has not).
        func result() -> (outcome: ThreadContext.BlockOutcome, blocked: Bool)? {
            let giveUp = creplay_monotonic_ns() + 5_000_000_000
            while lock.withLock({ value == nil }) && creplay_monotonic_ns() < giveUp { usleep(1_000) }
            return lock.withLock { value }
        }
    }

    /// b runs 5 ms (`wakeeSleepsAt` µs) and sleeps; a timer wakes a at 6 ms (`wakeAt`), a
    /// wakes b and runs on for `wakerRunsOnFor` µs before it exits.
    func lateWakee(wakerRunsOnFor: UInt64, wakeeSleepsAt: UInt64 = 5000, wakeAt: UInt64 = 6000) -> ReplayPlan {
        var s = TraceScript()
        let a = s.task("a"), b = s.task("b")
        s.at(0, .switchTask(prev: .idle, prevState: .running, next: a))
        s.at(0, cpu: 1, .switchTask(prev: .idle, prevState: .running, next: b))
        s.at(1, .switchTask(prev: a, prevState: .sleeping, next: .idle))
        s.at(wakeeSleepsAt, cpu: 1, .switchTask(prev: b, prevState: .sleeping, next: .idle))
        s.at(wakeAt, .waking(waker: .idle, target: a, targetCPU: CPU(0), context: .hardIRQ))
        s.at(wakeAt + 1, .switchTask(prev: .idle, prevState: .running, next: a))
        s.at(wakeAt + 2, .waking(waker: a, target: b, targetCPU: CPU(1), context: .task))
        s.at(wakeAt + 10, cpu: 1, .switchTask(prev: .idle, prevState: .running, next: b))
        s.at(wakeAt + 20, cpu: 1, .exit(task: b))
        s.at(wakeAt + 2 + wakerRunsOnFor, .exit(task: a))
        return s.plan()
    }

    @Test func aWakeReachesAWakerYieldingInAHandOff() throws {
        // On one CPU: a wakes b, b preempts a at once, runs 10 µs and blocks, a resumes: 100
        // hand-offs. a never sleeps in the trace, so it yields for b's wake; b's wake must
        // go to a while it yields (it is not asleep, and nothing else will wake it), not be
        // deferred until a gives up and blocks.
        var s = TraceScript()
        let a = s.task("a"), b = s.task("b")
        s.at(0, .switchTask(prev: .idle, prevState: .running, next: a))
        var t: UInt64 = 0
        for _ in 0..<100 {
            t += 100
            s.at(t, .waking(waker: a, target: b, targetCPU: CPU(0), context: .task))
            s.at(t + 1, .switchTask(prev: a, prevState: .running, next: b))
            t += 11
            s.at(t, .switchTask(prev: b, prevState: .sleeping, next: a))
        }
        s.at(t + 100, .exit(task: a))
        let plan = s.plan()
        let handOffs = plan.programs.reduce(0) { $0 + $1.atoms.filter { if case .handOff = $0 { true } else { false } }.count }
        #expect(handOffs >= 99)
        let run = try ReplayEngine(plan: plan).run(index: 0, warmup: false).run
        let yielded = run.counts.handOffsYielded ?? 0, blocked = run.counts.handOffsBlocked ?? 0
        #expect(yielded + blocked == UInt64(handOffs))
        #expect(blocked < UInt64(handOffs) / 2, "\(blocked) of \(handOffs) hand-offs blocked")
        #expect(run.counts.timedOutWaits == 0)
        // Half the wakes are hand-offs: the plan says the recorded placement matters.
        #expect(plan.handOffPlacementHint?.hasPrefix("\(handOffs * 100 / plan.taskWakes) % of the wakes preempted their waker") == true)
        #expect(pingPong(roundTrips: 10, runMicroseconds: 10).handOffPlacementHint == nil, "no hand-offs, no hint")
    }

    @Test func pingPongReproducesCPUTimeAndWakes() throws {
        let plan = pingPong(roundTrips: 200, runMicroseconds: 200)
        let engine = try ReplayEngine(plan: plan)
        let outcome = try engine.run(index: 0, warmup: false)
        let run = outcome.run
        #expect(run.counts.timedOutWaits == 0)
        #expect(run.counts.wakes == 400)
        for task in run.tasks {
            let error = abs(Double(task.cpuNanoseconds) - Double(task.recordedCpuNanoseconds)) / Double(task.recordedCpuNanoseconds)
            #expect(error < 0.03, "\(task.comm): replayed \(task.cpuNanoseconds) ns of CPU for \(task.recordedCpuNanoseconds) recorded")
            #expect(task.replayTid > 0 && task.replayTid != task.originalTid)
        }
        // pong waits 200 times, ping 200 times. When both share a CPU the wakee preempts its
        // waker, whose next wait is then already satisfied; but in every round trip at least
        // one side blocks and yields a sample.
        #expect(run.wakeupLatency.count + run.counts.waitsAlreadySatisfied == 400)
        #expect(run.wakeupLatency.count >= 190)
        #expect(run.wakeupLatency.percentile(50) < 1_000_000)
        // Strictly alternating: the makespan is at least the CPU time of both.
        #expect(run.makespanNanoseconds >= 200 * 2 * 200_000)
        // A broken engine shows here (a wait that times out alone takes 10 s); a loaded machine
        // must not: under the whole suite running in parallel on 2 CPUs this replay took 4.1×
        // the recorded 82 ms (fresh-clone CI, 2026-12-04 19:49 UTC), 3× being the bound then.
        #expect(run.makespanNanoseconds < 10 * run.recordedMakespanNanoseconds)
    }

    @Test func aLateTimedSleepStillSleepsBriefly() throws {
        // The task runs 1 ms, sleeps until an interrupt at 1.1 ms, runs 1 ms, sleeps until
        // 2.2 ms. Replayed at 4× the CPU time both deadlines have passed when it gets there:
        // it still blocks once for each (the trace has two sleeps).
        var s = TraceScript()
        let a = s.task("io")
        s.at(0, .switchTask(prev: .idle, prevState: .running, next: a))
        s.at(1000, .switchTask(prev: a, prevState: .sleeping, next: .idle))
        s.at(1100, .waking(waker: .idle, target: a, targetCPU: CPU(0), context: .hardIRQ))
        s.at(1100, .switchTask(prev: .idle, prevState: .running, next: a))
        s.at(2100, .switchTask(prev: a, prevState: .sleeping, next: .idle))
        s.at(2200, .waking(waker: .idle, target: a, targetCPU: CPU(0), context: .hardIRQ))
        s.at(2200, .switchTask(prev: .idle, prevState: .running, next: a))
        s.at(2300, .exit(task: a))
        var options = ReplayOptions()
        options.cpuScale = 4
        let run = try ReplayEngine(plan: s.plan(), options: options).run(index: 0, warmup: false).run
        #expect(run.counts.timedSleeps == 2)
        #expect(run.counts.lateTimedSleeps == 2)
        let task = try #require(run.tasks.first)
        #expect(task.sleeps == 2)
        #expect(task.voluntarySwitches.map { $0 >= 2 && $0 <= 4 } == true, "blocked \(String(describing: task.voluntarySwitches)) times")
    }

    @Test func aSleepOrWaitLongerThanASecondIsOneSleep() throws {
        // a sleeps 1.6 s on a timer, then wakes b, which slept all that time for it: one sleep
        // each in the trace, so one block each in the replay (sleeping in 1 s slices, so as to
        // see a stop request, blocked each of them twice).
        let plan = lateWakee(wakerRunsOnFor: 100, wakeeSleepsAt: 100, wakeAt: 1_600_000)
        let run = try ReplayEngine(plan: plan).run(index: 0, warmup: false).run
        #expect(run.counts.timedSleeps == 1)
        #expect(run.counts.timedOutWaits == 0)
        for task in run.tasks {
            #expect(task.voluntarySwitches == 1, "\(task.comm) blocked \(String(describing: task.voluntarySwitches)) times")
        }
        #expect(run.makespanNanoseconds >= 1_600_000_000)
    }

    @Test func aWaitFarBehindItsRecordedWakeLooksAgainLessAndLessOften() throws {
        // b blocks at once for a's wake, which came after a's 100 µs run in the trace; at
        // --cpu-scale 4000 the run takes 400 ms, so b's wait runs ~400 ms past its recorded
        // wake. Looking again every 50 ms would wake b 8 times; doubling the interval (50,
        // 100, 200 ms) wakes it 3 times before the wake comes.
        var s = TraceScript()
        let a = s.task("a"), b = s.task("b")
        s.at(0, .switchTask(prev: .idle, prevState: .running, next: a))
        s.at(0, cpu: 1, .switchTask(prev: .idle, prevState: .running, next: b))
        s.at(1, cpu: 1, .switchTask(prev: b, prevState: .sleeping, next: .idle))
        s.at(100, .waking(waker: a, target: b, targetCPU: CPU(1), context: .task))
        s.at(101, .exit(task: a))
        s.at(110, cpu: 1, .switchTask(prev: .idle, prevState: .running, next: b))
        s.at(111, cpu: 1, .exit(task: b))
        var options = ReplayOptions()
        options.cpuScale = 4000
        options.waitRecheckNanoseconds = 50_000_000
        let run = try ReplayEngine(plan: s.plan(), options: options).run(index: 0, warmup: false).run
        #expect(run.counts.timedOutWaits == 0)
        #expect((run.counts.wakesMissed ?? 0) == 0)
        let wakee = try #require(run.tasks.first { $0.comm == "b" })
        #expect(wakee.wakesReceived == 1)
        // 3 looks and the wake; one more if the machine delayed the waker past 750 ms.
        #expect(wakee.voluntarySwitches.map { $0 >= 3 && $0 <= 5 } == true, "b blocked \(String(describing: wakee.voluntarySwitches)) times")
        #expect(run.makespanNanoseconds >= 400_000_000)
    }

    @Test func aThreadWaitingForItsWakersBlockInAOneAtATimeProcessRunsAfterIt() throws {
        // Threads of process 101: main runs 20 ms, waking w at 5 ms, and blocks, giving w its
        // CPU; w runs 10 ms, wakes main and ends; main runs 1 ms more. They ran one at a time
        // (w's first 1 µs was on CPU 1), so main's wake is issued at its block: w's 10 ms
        // cannot start before main's 20 ms are done, however many CPUs this machine has.
        var s = TraceScript()
        let main = s.task("main"), w = s.task("w", tgid: 101)
        s.at(0, .switchTask(prev: .idle, prevState: .running, next: main))
        s.at(0, cpu: 1, .switchTask(prev: .idle, prevState: .running, next: w))
        s.at(1, cpu: 1, .switchTask(prev: w, prevState: .sleeping, next: .idle))
        s.at(5_000, .waking(waker: main, target: w, targetCPU: CPU(0), context: .task))
        s.at(20_000, .switchTask(prev: main, prevState: .sleeping, next: w))
        s.at(30_000, .waking(waker: w, target: main, targetCPU: CPU(0), context: .task))
        s.at(30_001, .switchTask(prev: w, prevState: .dead, next: main))
        s.at(30_001, .exit(task: w))
        s.at(31_001, .exit(task: main))
        let plan = s.plan()
        #expect(plan.lockGroups.first?.wakesAtBlock == 1)
        let run = try ReplayEngine(plan: plan).run(index: 0, warmup: false).run
        #expect(run.counts.timedOutWaits == 0)
        #expect(run.makespanNanoseconds >= 30_000_000, "w ran alongside main: \(run.makespanNanoseconds) ns")
        let wakee = try #require(run.tasks.first { $0.comm == "w" })
        #expect(wakee.wakesReceived == 1)
        #expect(wakee.cpuWithExitNanoseconds >= 9_500_000)
    }

    @Test func timedSleepsKeepAbsoluteDeadlines() throws {
        var s = TraceScript()
        let a = s.task("timer")
        s.at(0, .switchTask(prev: .idle, prevState: .running, next: a))
        var t: UInt64 = 0
        for i in 1...20 {
            s.at(t + 100, .switchTask(prev: a, prevState: .sleeping, next: .idle))
            t = UInt64(i) * 2000
            s.at(t, .waking(waker: .idle, target: a, targetCPU: CPU(0), context: .hardIRQ))
            s.at(t + 3, .switchTask(prev: .idle, prevState: .running, next: a))
        }
        s.at(t + 100, .exit(task: a))
        let plan = s.plan()
        #expect(program(plan, "timer").timedSleepCount == 20)
        let run = try ReplayEngine(plan: plan).run(index: 0, warmup: false).run
        #expect(run.counts.timedSleeps == 20)
        // Every sleep is either measured or, when the thread got there after its deadline
        // (a loaded machine: other test suites run in parallel), counted as late.
        #expect(run.timerOvershoot.count + run.counts.lateTimedSleeps == 20)
        #expect(run.timerOvershoot.count >= 10)
        // Deadlines are absolute: 20 periods of 2 ms end at 40 ms; late sleeps are not made up
        // for by sleeping longer, so lateness does not add up.
        #expect(run.makespanNanoseconds >= 40_000_000)
        #expect(run.makespanNanoseconds < 60_000_000)
        #expect(run.timerOvershoot.percentile(50) < 1_000_000)
    }

    @Test func spawnedThreadStartsAtItsForkAndAnswersItsParent() throws {
        var s = TraceScript()
        let parent = s.task("parent")
        let child = s.task("child", parent: parent)
        s.at(0, .switchTask(prev: .idle, prevState: .running, next: parent))
        s.at(1000, .fork(parent: parent, child: child))
        s.at(1000, .switchTask(prev: parent, prevState: .sleeping, next: child))
        s.at(6000, .waking(waker: child, target: parent, targetCPU: CPU(0), context: .task))
        s.at(6000, .exit(task: child))
        s.at(6001, .switchTask(prev: child, prevState: .dead, next: parent))
        s.at(7000, .exit(task: parent))
        let plan = s.plan()
        let outcome = try ReplayEngine(plan: plan).run(index: 0, warmup: false)
        let byComm = Dictionary(uniqueKeysWithValues: outcome.run.tasks.map { ($0.comm, $0) })
        #expect(abs(Int64(byComm["child"]!.cpuNanoseconds) - 5_000_000) < 250_000)
        #expect(abs(Int64(byComm["parent"]!.cpuNanoseconds) - 2_000_000) < 250_000)
        // 7 ms of burns, less the threads' set-up CPU (tens of µs), which they count in.
        #expect(outcome.run.makespanNanoseconds >= 6_800_000)
        // The spawn is not a wakeup: one latency sample, the parent's.
        #expect(outcome.run.wakeupLatency.count + outcome.run.counts.waitsAlreadySatisfied >= 1)
        #expect(outcome.run.counts.wakes == 1)
        // The child's thread was created when the parent had burned its first millisecond.
        let childIndex = plan.programs.firstIndex { $0.comm == "child" }!
        let spawned = outcome.spawnedMonotonicNanoseconds[childIndex]
        #expect(spawned >= outcome.startMonotonicNanoseconds + 900_000, "spawned \(spawned - outcome.startMonotonicNanoseconds) ns after the start")
        #expect(outcome.replayTids[childIndex] != 0 && outcome.replayTids[childIndex] != outcome.replayTids[0])
    }

    @Test func spawnChainRunsToTheEnd() throws {
        // A parent forks a child that forks a grandchild; the parent waits for its child's
        // exit: threads created by threads are all run and joined, and the run ends after
        // the last.
        var s = TraceScript()
        let a = s.task("a")
        let b = s.task("b", parent: a)
        let c = s.task("c", parent: b)
        s.at(0, .switchTask(prev: .idle, prevState: .running, next: a))
        s.at(500, .fork(parent: a, child: b))
        s.at(500, .switchTask(prev: a, prevState: .sleeping, next: b))
        s.at(1000, .fork(parent: b, child: c))
        s.at(2000, .exit(task: b))
        s.at(2000, .waking(waker: b, target: a, targetCPU: CPU(0), context: .task))
        s.at(2000, .switchTask(prev: b, prevState: .dead, next: c))
        s.at(3000, .exit(task: c))
        s.at(3000, .switchTask(prev: c, prevState: .dead, next: a))
        s.at(3500, .exit(task: a))
        let plan = s.plan()
        #expect(plan.programs.count == 3)
        let outcome = try ReplayEngine(plan: plan).run(index: 0, warmup: false)
        let byComm = Dictionary(uniqueKeysWithValues: outcome.run.tasks.map { ($0.comm, $0) })
        #expect(abs(Int64(byComm["b"]!.cpuNanoseconds) - 1_500_000) < 250_000)
        #expect(abs(Int64(byComm["c"]!.cpuNanoseconds) - 1_000_000) < 250_000)
        #expect(Set(outcome.replayTids).count == 3)
        // a: 0.5 ms, waits for b (spawned then, 1.5 ms), 0.5 ms more.
        #expect(outcome.endMonotonicNanoseconds - outcome.startMonotonicNanoseconds >= 2_400_000)
    }

    @Test func cpuScaleScalesBurns() throws {
        var s = TraceScript()
        let a = s.task("burner")
        s.at(0, .switchTask(prev: .idle, prevState: .running, next: a))
        s.at(20_000, .exit(task: a))
        var options = ReplayOptions()
        options.cpuScale = 0.5
        let run = try ReplayEngine(plan: s.plan(), options: options).run(index: 0, warmup: false).run
        let cpu = Double(run.tasks[0].cpuNanoseconds)
        #expect(abs(cpu - 10_000_000) / 10_000_000 < 0.02)
    }

    @Test func theLastRunLeavesOutTheThreadsExit() throws {
        // The thread's exit is charged to it after its program ends, as a process's exit
        // path is part of the recorded CPU: the last run leaves it out (never more than
        // that run), and the task's result says how much.
        var s = TraceScript()
        let a = s.task("burner")
        s.at(0, .switchTask(prev: .idle, prevState: .running, next: a))
        s.at(2_000, .switchTask(prev: a, prevState: .sleeping, next: .idle))
        s.at(3_000, .switchTask(prev: .idle, prevState: .running, next: a))
        s.at(5_000, .exit(task: a))
        let measured = try ReplayEngine(plan: s.plan()).threadExitCost
        #expect(measured > 0, "a thread's exit costs some µs")
        for exitCost: UInt64 in [0, 500_000, 3_000_000] {
            var options = ReplayOptions()
            options.threadExitCostNanoseconds = exitCost
            let run = try ReplayEngine(plan: s.plan(), options: options).run(index: 0, warmup: false).run
            // 4 ms less the exit, but never less than the runs before the last (2 ms).
            let expected = 4_000_000 - Int64(min(exitCost, 2_000_000))
            #expect(abs(Int64(run.tasks[0].cpuNanoseconds) - expected) < 100_000, "exit cost \(exitCost)")
            #expect(run.tasks[0].exitAllowanceNanoseconds == min(exitCost, 2_000_000))
            #expect(abs(Int64(run.tasks[0].cpuWithExitNanoseconds) - 4_000_000) < 100_000)
        }
    }

    @Test(arguments: [WakeOrder.deferred, .hold])
    func aWakeWaitsForItsWakeeToSleep(order: WakeOrder) throws {
        // b runs 5 ms and sleeps; a timer wakes a at 6 ms and a wakes b. Replayed at 3× the
        // CPU time, b only reaches its sleep at 15 ms: a's wake must wait for it, so that b
        // really sleeps and its wakeup is measured, as in the trace.
        let plan = lateWakee(wakerRunsOnFor: 1)
        var options = ReplayOptions()
        options.cpuScale = 3
        options.wakeOrder = order
        // a's wake is held (or deferred, then left to the coordinating thread as a ends) until
        // b reaches its wait. (b then usually blocks and is measured; on
        // a shared CPU the waker b releases may preempt b just before it blocks, so the wake
        // can also land as b arrives: either way it was never issued before b got there.)
        let held = try ReplayEngine(plan: plan, options: options).run(index: 0, warmup: false).run
        #expect(held.counts.heldWakes == 1)
        #expect(held.counts.timedOutWaits == 0, "the wake reached b")
        #expect(held.counts.waitsAlreadySatisfied + held.wakeupLatency.count == 1)
        // b's 15 ms burn counts its CPU from its creation, set-up included (tens of µs before
        // the release): it reaches its wait a little before 15 ms after the release.
        #expect(held.makespanNanoseconds >= 14_500_000)
        // Deferred, a ends 9 ms before b gets there: the coordinating thread delivers it,
        // woken by b's arrival (not by its 100 ms timeout).
        #expect(held.counts.wakesFromCoordinator == (order == .deferred ? 1 : 0))
        #expect(held.makespanNanoseconds < 80_000_000)
        options.wakeOrder = .free
        let free = try ReplayEngine(plan: plan, options: options).run(index: 0, warmup: false).run
        #expect(free.counts.heldWakes == 0)
        #expect(free.counts.waitsAlreadySatisfied == 1)
        #expect(free.wakeupLatency.count == 0)
        // Its wake came first, but b slept there in the trace: it still blocks, once, briefly.
        let b = free.tasks.first { $0.comm == "b" }!
        #expect(b.voluntarySwitches.map { $0 >= 1 } == true, "b blocked \(String(describing: b.voluntarySwitches)) times")
        // Nothing waited for a timeout (the coordinating thread's 100 ms, a wait's 1 s): b's
        // 15 ms burn and a brief block. Not 30 ms: a fresh-clone CI run on a slow VM, the other
        // suites running, took 45.5 ms (2026-12-08).
        #expect(free.makespanNanoseconds < 80_000_000)
    }

    @Test func aDeferredWakeIsDeliveredWhileItsWakerRuns() throws {
        // As above, but a runs on for 10 ms after its wake (30 ms replayed). Deferred, a's wake
        // reaches b once b waits (15 ms), while a is still burning: b's wakeup comes long
        // before a's end (36 ms), and a never blocked for it.
        var options = ReplayOptions()
        options.cpuScale = 3
        let run = try ReplayEngine(plan: lateWakee(wakerRunsOnFor: 10_000), options: options).run(index: 0, warmup: false).run
        #expect(run.counts.heldWakes == 1)
        #expect(run.counts.timedOutWaits == 0)
        #expect(run.counts.wakesFromCoordinator == 0, "a delivered it itself")
        #expect(run.counts.waitsAlreadySatisfied + run.wakeupLatency.count == 1)
        if run.wakeupLatency.count == 1 {
            #expect(run.wakeupLatency.percentile(100) < 15_000_000, "delivered by a's polling, not at its end")
        }
        let aTask = run.tasks.first { $0.comm == "a" }!
        #expect(aTask.cpuNanoseconds >= 29_000_000)
    }

    @Test func aWakerAboutToWaitForItsLateWakeeWakesItItself() throws {
        // a runs 51 ms, wakes b (asleep since 50.04 ms in the trace) and waits for b, which
        // runs 90 µs and wakes a; a runs 250 ms more. Replayed at a fifth of the CPU time, a
        // reaches its wake at ~10 ms, while b is still in a timed sleep until 50 ms: a
        // defers the wake, and must then block for b's wake, which cannot come before b gets
        // a's. a spins for b to reach its wait and wakes it itself (the kernel sees a wake b,
        // as in the trace); without that spin, a's wake goes to the coordinating thread.
        // (Margins of 40 ms: other suites load the machine; at half the CPU time and 25 ms,
        // a once reached its wake after b's timer, in the half without the spin.)
        var s = TraceScript()
        let a = s.task("a"), b = s.task("b")
        s.at(0, .switchTask(prev: .idle, prevState: .running, next: a))
        s.at(0, cpu: 1, .switchTask(prev: .idle, prevState: .running, next: b))
        s.at(100, cpu: 1, .switchTask(prev: b, prevState: .sleeping, next: .idle))
        s.at(50_000, cpu: 1, .waking(waker: .idle, target: b, targetCPU: CPU(1), context: .hardIRQ))
        s.at(50_001, cpu: 1, .switchTask(prev: .idle, prevState: .running, next: b))
        s.at(50_040, cpu: 1, .switchTask(prev: b, prevState: .sleeping, next: .idle))
        s.at(51_000, .waking(waker: a, target: b, targetCPU: CPU(1), context: .task))
        s.at(51_001, .switchTask(prev: a, prevState: .sleeping, next: .idle))
        s.at(51_010, cpu: 1, .switchTask(prev: .idle, prevState: .running, next: b))
        s.at(51_100, cpu: 1, .waking(waker: b, target: a, targetCPU: CPU(0), context: .task))
        s.at(51_110, .switchTask(prev: .idle, prevState: .running, next: a))
        // a's last run, 250 ms, leaves its spin 50 ms of CPU budget (spins stop at the
        // recorded CPU time; later burns absorb what they used).
        s.at(301_110, .exit(task: a))
        // b's last run, 2 ms: a wake b defers for a (not blocked yet) is delivered by b.
        s.at(53_100, cpu: 1, .exit(task: b))
        let plan = s.plan()
        var options = ReplayOptions()
        options.cpuScale = 0.2
        // Long enough for b's timer wakeup on a loaded test machine.
        options.wakeeSpinNanoseconds = 100_000_000
        let run = try ReplayEngine(plan: plan, options: options).run(index: 0, warmup: false).run
        // b's wake to a can be deferred too, if a is preempted before it blocks.
        #expect((run.counts.heldWakes ?? 0) >= 1, "b was late for a's wake")
        #expect(run.counts.wakesFromCoordinator == 0, "a delivered its wake itself")
        #expect(run.counts.timedOutWaits == 0)
        #expect(run.counts.waitsAlreadySatisfied + run.wakeupLatency.count == 2)
        options.wakeeSpinNanoseconds = 0
        let handed = try ReplayEngine(plan: plan, options: options).run(index: 0, warmup: false).run
        #expect((handed.counts.heldWakes ?? 0) >= 1)
        #expect(handed.counts.wakesFromCoordinator == 1, "a blocked first and handed its wake over")
        #expect(handed.counts.timedOutWaits == 0)
    }

    @Test func twoThreadsLateForEachOthersWakeWakeEachOther() throws {
        // a and b each run 1 ms, wake the other, wait for the other's wake and run 20 ms more
        // (a, woken, delivers its kept wake from that run; ending there, it would hand it to
        // the coordinating thread if b had not blocked yet: with 1 ms, 2 of 9 full test runs
        // under the test runner's load saw that once). Each reaches
        // its wake before the other reaches its wait, so both wakes are deferred, and each
        // then spins before its block for the other to block: a (the lower index) sees b
        // spinning for it and blocks keeping its wake; b wakes a, blocks, and a, woken, wakes
        // b. Both wakeups come from the replayed threads; with each waiting for the other to
        // block until its spin ran out, one or both wakes went to the coordinating thread
        // (in 5 runs of 5 here; 320 of the 370 hand-overs of a one-CPU python-queue run).
        var plan = handBuiltPlan(["a", "b"], edges: [(0, 1, 1), (1, 0, 1)])
        plan.programs[0].atoms = [.run(nanoseconds: 1_000_000), .wake(edge: 0, target: 1, rendezvous: 1),
                                  .wait(edge: 1, count: 1, recordedWake: 0), .run(nanoseconds: 20_000_000)]
        plan.programs[1].atoms = [.run(nanoseconds: 1_000_000), .wake(edge: 1, target: 0, rendezvous: 1),
                                  .wait(edge: 0, count: 1, recordedWake: 0), .run(nanoseconds: 20_000_000)]
        // Room for the spins (they stop at the recorded CPU time), and for the other thread's
        // run on a loaded test machine.
        for i in 0..<2 { plan.programs[i].recordedCPUNanoseconds = 200_000_000 }
        var options = ReplayOptions()
        options.wakeeSpinNanoseconds = 100_000_000
        options.waitTimeoutNanoseconds = 2_000_000_000
        for _ in 0..<5 {
            let run = try ReplayEngine(plan: plan, options: options).run(index: 0, warmup: false).run
            #expect(run.counts.timedOutWaits == 0)
            #expect(run.counts.heldWakes == 2, "each was late for the other's wake")
            #expect(run.counts.wakesFromCoordinator == 0, "each woke the other itself")
            #expect(run.wakeupLatency.count + run.counts.waitsAlreadySatisfied == 2)
            #expect(run.makespanNanoseconds < 1_000_000_000, "neither waited for a timeout")
        }
    }

    @Test func aWakeForAWakeeNotYetAsleepIsKeptUntilItSleeps() throws {
        // b commits to block (sets its waiting flag) and a's wake comes at once: counted, but
        // a keeps the futex_wake until b has had the settle time to fall asleep (50 ms here,
        // so that the test does not race), then wakes b asleep. Bumped at once, b's
        // futex_wait would have returned without sleeping.
        var options = ReplayOptions()
        options.wakeSettleNanoseconds = 50_000_000
        let engine = try ReplayEngine(plan: lateWakee(wakerRunsOnFor: 1), options: options)
        let shared = SharedState(programs: 2, edges: engine.plan.edges.count)
        defer { shared.deallocate() }
        let b = BlockedInItsFirstWait(ThreadContext(engine: engine, shared: shared, program: 1), edge: 0)
        let (counter, target, _) = b.context.waitWords(edge: 0, count: 1)
        let owed = try #require(engine.signalWake(shared, edge: 0, target: 1, settle: true), "b had just committed: the wake is kept")
        #expect(creplay_load32(counter) >= target, "the wake is counted")
        usleep(20_000)
        #expect(!b.hasEnded, "b is still asleep: its futex word was not bumped")
        let giveUp = creplay_monotonic_ns() + 5_000_000_000
        while !engine.wakeSleeper(shared, edge: 0, target: 1, block: owed) && creplay_monotonic_ns() < giveUp { usleep(1_000) }
        let r = try #require(b.result())
        #expect(r.outcome == .reached)
        #expect(r.blocked, "b slept, and the kept wake woke it")
        // b has left that block: nothing is owed any more.
        #expect(engine.wakeSleeper(shared, edge: 0, target: 1, block: owed))
        // Without a settle time, the same wake bumps b's word at once: nothing is kept.
        var immediate = ReplayOptions()
        immediate.wakeSettleNanoseconds = 0
        #expect(try ReplayEngine(plan: engine.plan, options: immediate).signalWake(shared, edge: 0, target: 1, settle: true) == nil)
    }

    @Test func pooledWaitsEndAtWhicheverWakerComesFirst() throws {
        // r's first wait was ended by w1 in the trace, but w1 can only wake r after r has woken
        // it; w2 wakes r at once. Pooled, r takes w2's wake, runs, wakes w1, and w1's wake ends
        // r's second wait. Waiting for w1 in particular, r and w1 wait for each other until
        // the timeout.
        var plan = handBuiltPlan(["w1", "w2", "r"], edges: [(0, 2, 1), (1, 2, 2), (2, 0, 1)])
        plan.programs[0].atoms = [.wait(edge: 2, count: 1, recordedWake: 0), .wake(edge: 0, target: 2, rendezvous: 0)]
        plan.programs[1].atoms = [.wake(edge: 1, target: 2, rendezvous: 0)]
        plan.programs[2].atoms = [.wait(edge: 0, count: 1, recordedWake: 0), .run(nanoseconds: 100_000),
                                  .wake(edge: 2, target: 0, rendezvous: 0), .wait(edge: 1, count: 1, recordedWake: 0)]
        var options = ReplayOptions()
        options.waitTimeoutNanoseconds = 200_000_000
        let pooled = try ReplayEngine(plan: plan, options: options).run(index: 0, warmup: false).run
        #expect(pooled.counts.timedOutWaits == 0)
        #expect(pooled.counts.wakes == 3)
        options.pooledWaits = false
        let perWaker = try ReplayEngine(plan: plan, options: options).run(index: 0, warmup: false).run
        #expect(perWaker.counts.timedOutWaits >= 1)
    }

    /// In the trace s1's wake ended r's first wait and s2's its second; here r is blocked in
    /// its first wait when s2 gets to its wake, with s1 late. Delivered to whichever pooled
    /// wait needs a wake, s2's wake ends that wait (a wakeup from s2, as the real reader of a
    /// socket with two writers would have) and s1's, coming next, finds the wait served and
    /// stays deferred for r's next. Delivered only to the recorded wait, s2's waits for r's
    /// second wait and s1's ends the first.
    @Test(arguments: [true, false])
    func aLateWakeeTakesADeferredPooledWakeInWhicheverWaitNeedsOne(anyWait: Bool) throws {
        var plan = handBuiltPlan(["s1", "s2", "r"], edges: [(0, 2, 1), (1, 2, 2)])
        plan.programs[0].atoms = [.wake(edge: 0, target: 2, rendezvous: 1)]
        plan.programs[1].atoms = [.wake(edge: 1, target: 2, rendezvous: 1)]
        plan.programs[2].atoms = [.wait(edge: 0, count: 1, recordedWake: 0), .run(nanoseconds: 10_000),
                                  .wait(edge: 1, count: 1, recordedWake: 0)]
        var options = ReplayOptions()
        options.deliverToAnyPooledWait = anyWait
        options.wakeSettleNanoseconds = 0
        let engine = try ReplayEngine(plan: plan, options: options)
        let shared = SharedState(programs: 3, edges: 2)
        defer { shared.deallocate() }
        let s1 = ThreadContext(engine: engine, shared: shared, program: 0)
        let s2 = ThreadContext(engine: engine, shared: shared, program: 1)
        let r = BlockedInItsFirstWait(ThreadContext(engine: engine, shared: shared, program: 2), edge: 0)
        let (armed2, ordinal2) = s2.armWords(edge: 1, rendezvous: 1)
        #expect(ordinal2 == 2, "s2's wake ended r's second wait in the trace")
        #expect(s2.deliverWhenBlocked(edge: 1, target: 2, armed: armed2, ordinal: ordinal2) == anyWait)
        let (armed1, ordinal1) = s1.armWords(edge: 0, rendezvous: 1)
        #expect(s1.deliverWhenBlocked(edge: 0, target: 2, armed: armed1, ordinal: ordinal1) == !anyWait,
                anyWait ? "r's wait had its one wake already" : "r is blocked in the wait s1's wake ended")
        #expect(creplay_load32(shared.poolCount(2)) == 1, "r's first wait got exactly one wake")
        #expect(r.result()?.outcome == .reached)
        #expect(s1.wakesIssued + s2.wakesIssued == 1)
    }

    /// s hands its deferred wake over just as r has committed to block: delivered there, the
    /// wake is owed (r may not be asleep yet), and s settles it before it leaves (here, with
    /// a settle time longer than its retries, by giving up and bumping r's word). Settled
    /// before that last delivery, the owed wake was left behind and r slept on.
    @Test func aWakeDeliveredWhileHandingOverIsSettledBeforeTheWakerLeaves() throws {
        var plan = handBuiltPlan(["s", "r"], edges: [(0, 1, 1)])
        plan.programs[0].atoms = [.wake(edge: 0, target: 1, rendezvous: 1)]
        plan.programs[1].atoms = [.wait(edge: 0, count: 1, recordedWake: 0)]
        var options = ReplayOptions()
        options.wakeSettleNanoseconds = 50_000_000
        let engine = try ReplayEngine(plan: plan, options: options)
        let shared = SharedState(programs: 2, edges: 1)
        defer { shared.deallocate() }
        let s = ThreadContext(engine: engine, shared: shared, program: 0)
        let r = BlockedInItsFirstWait(ThreadContext(engine: engine, shared: shared, program: 1), edge: 0)
        let (armed, ordinal) = s.armWords(edge: 0, rendezvous: 1)
        s.pending.append((0, 1, armed, ordinal))
        let word = creplay_load32(shared.futex(1))
        s.handOverPendingWakes()
        #expect(s.wakesIssued == 1, "delivered by s itself, not handed to the coordinating thread")
        #expect(shared.handedOff.isEmpty)
        #expect(s.owed.isEmpty, "nothing left owed when s leaves")
        #expect(s.unsettledWakes == 1, "r had not had its settle time: s gave up and bumped its word")
        #expect(creplay_load32(shared.futex(1)) != word)
        #expect(r.result()?.outcome == .reached)
    }

    /// A wake counted without its futex_wake (the bug of an owed wake left behind) is found
    /// when the wait's futex_wait times out: counted as missed, and as a block (it slept),
    /// not as a wait whose wake came first.
    @Test func aWakeCountedWithoutItsFutexWakeIsCountedAsMissed() throws {
        let plan = handBuiltPlan(["s", "r"], edges: [(0, 1, 1)])
        let engine = try ReplayEngine(plan: plan)
        let shared = SharedState(programs: 2, edges: 1)
        defer { shared.deallocate() }
        let r = BlockedInItsFirstWait(ThreadContext(engine: engine, shared: shared, program: 1), edge: 0, giveUpAfter: 200_000_000)
        usleep(10_000)
        _ = creplay_add32(shared.poolCount(1), 1)  // counted, never futex-woken
        let v = try #require(r.result())
        #expect(v.outcome == .reached)
        #expect(v.blocked)
        #expect(r.context.wakesMissed == 1)
    }

    @Test func refusesTooManyThreads() {
        var options = ReplayOptions()
        options.maxThreads = 1
        #expect(throws: ReplayError.tooManyThreads(needed: 2, limit: 1)) {
            try ReplayEngine(plan: pingPong(roundTrips: 1, runMicroseconds: 10), options: options)
        }
    }
}
