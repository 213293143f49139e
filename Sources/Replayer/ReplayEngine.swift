import CReplay
import Foundation
import Stats
import Synchronization
import TraceFormat

/// How to replay.
public struct ReplayOptions: Sendable {
    /// Multiplies every recorded run length (a machine twice as fast: 0.5).
    public var cpuScale: Double = 1
    /// Find processes whose threads ran one at a time (`LockGroup`) and issue their wakes at
    /// the waker's block where the trace shows the wakee waiting for it (`PlanBuilder`).
    public var inferLocks = true
    /// Apply the recorded CPU affinity (folded onto the CPUs present).
    public var applyAffinity = true
    /// Apply the recorded policy, nice value and real-time priority.
    public var applyPolicy = true
    /// Refuse plans with more threads than this.
    public var maxThreads = 4096
    /// Stack of each replay thread.
    public var stackSize = 256 << 10
    /// CPU each thread's last run leaves out for the thread's exit; nil: measured when the
    /// engine is made (`ReplayEngine.threadExitCost`).
    public var threadExitCostNanoseconds: UInt64?
    /// A wait still without its wake this long after the recorded wake time is abandoned and
    /// counted (never a hang).
    public var waitTimeoutNanoseconds: UInt64 = 10_000_000_000
    /// A blocked thread looks again this long after the recorded wake time (or after it
    /// blocked, if later), then after twice as long each time: a wake counted but never
    /// futex-woken (`wakesMissed`) cannot strand it. At least 1 ms.
    public var waitRecheckNanoseconds: UInt64 = 1_000_000_000
    /// Timer slack of replay threads (the default 50 µs would add 50–100 µs to every sleep).
    public var timerSlackNanoseconds: UInt = 1
    /// What a waker does with a wake whose wakee was asleep at that wake in the trace but
    /// has not reached that sleep yet in the replay (see docs/replay.md, "Wake order").
    public var wakeOrder: WakeOrder = .deferred
    /// A wait ends at the n-th wake its task receives from any replayed waker, n as in the
    /// trace, rather than at the k-th wake from the task that woke it in the trace: a reader
    /// of a socket with many writers wakes for whoever writes first (docs/replay.md).
    public var pooledWaits = true
    /// With pooled waits and `.deferred`: a wake whose wakee is late goes to it as soon as it
    /// is blocked in any wait that still needs a wake, one wake per wake needed, instead of
    /// only in the wait the wake ended in the trace (docs/replay.md, "Pooled waits").
    public var deliverToAnyPooledWait = true
    /// With `.deferred`: how long a waker first spins (yielding the CPU) for a wakee that is
    /// about to reach its wait, before deferring the wake or, when it must block itself,
    /// before delivering its deferred wakes early.
    public var holdSpinNanoseconds: UInt64 = 20_000
    /// With `.deferred`: how long a thread about to block for a wake from a task it still
    /// holds a deferred wake for spins (yielding) for that task to reach its wait, so that it
    /// wakes it itself rather than leave the wake to the coordinating thread (docs/replay.md,
    /// "Wake order").
    public var wakeeSpinNanoseconds: UInt64 = 1_000_000
    /// How long a hand-off yields the CPU for its wake before it blocks (the wakee's run,
    /// recorded between the preemption and its block, plus a margin).
    public var handOffSpinNanoseconds: UInt64 = 50_000
    /// A wakee that has just committed to block is given this long to fall asleep in the
    /// kernel before its waker calls futex_wake; the waker keeps the wake meanwhile (counted,
    /// not yet delivered) and retries while it runs on, so that the wakee really sleeps and
    /// the kernel sees its waker wake it. 0: the wake bumps the wakee's futex word at once,
    /// and a wakee that was not asleep yet does not sleep (docs/replay.md, "Waits").
    public var wakeSettleNanoseconds: UInt64 = 2_000
    /// Hold the CPU latency limits the trace's requests held (`ReplayPlan.cpuLatency`), at
    /// the same offsets, through `/dev/cpu_dma_latency` (`--no-pm-qos` turns it off).
    public var applyCPULatency = true
    /// The CPU latency QoS device (another path only in tests).
    public var cpuLatencyDevicePath = "/dev/cpu_dma_latency"

    public init() {}
}

/// What a waker does when it reaches a wake whose wakee was asleep at that point of the
/// trace but has not yet reached that sleep in the replay.
public enum WakeOrder: String, Sendable, CaseIterable, Codable {
    /// Keep running and deliver the wake as soon as the wakee blocks for it: the next write
    /// of a producer wakes a consumer that went to sleep meanwhile. Later wakes to the same
    /// late wakee queue behind it. A waker that must block, sleep or end hands the wakes it
    /// still holds to the coordinating thread, which delivers them the same way.
    case deferred = "defer"
    /// Block the waker until the wakee has reached its wait, then wake it.
    case hold
    /// Wake at once: the wakee will find its wait already satisfied and not sleep.
    case free
}

/// Errors of the replay engine.
public enum ReplayError: Error, CustomStringConvertible, Equatable {
    case tooManyThreads(needed: Int, limit: Int)
    case threadCreation(index: Int, comm: String, errno: Int32)
    case nothingToReplay(String)
    case interrupted
    /// The recorded CPU latency limit cannot be held (the replay goes on without it).
    case cpuLatency(String)

    public var description: String {
        switch self {
        case let .tooManyThreads(needed, limit):
            "the selection needs \(needed) threads, more than the limit of \(limit) — select fewer tasks (--pid, --comm, --tree) or raise --max-threads"
        case let .threadCreation(index, comm, code):
            "cannot create replay thread \(index) (\(comm)): \(String(cString: strerror(code))) — check `ulimit -u`, kernel.pid_max and vm.max_map_count, or select fewer tasks"
        case let .nothingToReplay(why):
            "nothing to replay: \(why)"
        case .interrupted:
            "replay interrupted"
        case let .cpuLatency(why):
            why
        }
    }
}

/// Set from a signal handler to stop a replay promptly (SIGINT/SIGTERM).
public enum ReplayInterrupt {
    static let flag = Atomic<UInt32>(0)
    /// Asks every running replay to stop.
    public static func request() { flag.store(1, ordering: .relaxed) }
    public static var isRequested: Bool { flag.load(ordering: .relaxed) != 0 }
    /// Installs SIGINT and SIGTERM handlers that call `request()`, and unblocks both (a
    /// parent may have spawned us with them blocked; replay threads inherit the mask).
    public static func installSignalHandlers() {
        var set = sigset_t()
        sigemptyset(&set)
        for sig in [SIGINT, SIGTERM] {
            var action = sigaction()
            action.__sigaction_handler.sa_handler = { _ in ReplayInterrupt.request() }
            sigemptyset(&action.sa_mask)
            action.sa_flags = 0
            sigaction(sig, &action, nil)
            sigaddset(&set, sig)
        }
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
    }
}

/// What one run produced, beyond the `ReplayRun` record: the replay tid of each program.
public struct RunOutcome: Sendable {
    public var run: ReplayRun
    /// Replay thread id per program index.
    public var replayTids: [Int32]
    /// Setup problems (policy or affinity refused), one line each, deduplicated.
    public var warnings: [String]
    /// Release of the threads and end of the last one (CLOCK_MONOTONIC nanoseconds).
    public var startMonotonicNanoseconds: UInt64
    public var endMonotonicNanoseconds: UInt64
    /// Per program started by a parent's spawn: when it was spawned (CLOCK_MONOTONIC), or 0.
    /// Its thread was created then.
    public var spawnedMonotonicNanoseconds: [UInt64] = []
    /// CPU latency limit changes written to `/dev/cpu_dma_latency` during the run (0 when the
    /// plan has none, with `--no-pm-qos`, or when the device could not be used).
    public var cpuLatencyChangesApplied = 0
    /// Why the plan's CPU latency limits were not (all) held, when they were not.
    public var cpuLatencyProblem: String?
}

/// Runs a `ReplayPlan` with one thread per program: threads are created first, released
/// together, burn CPU on the thread CPU clock, block on futexes for task wakes and sleep to
/// absolute deadlines for timer wakes, recording every latency on CLOCK_MONOTONIC.
public final class ReplayEngine: @unchecked Sendable {
    public let plan: ReplayPlan
    public let options: ReplayOptions
    /// Spin iterations per nanosecond of CPU, measured at init.
    public let spinRate: Double
    /// CPU a thread is charged after its body returns (pthread and kernel exit), measured at
    /// init: each program's last run leaves it out, as the first runs absorb the thread's
    /// creation, so that the thread's whole life costs the recorded CPU.
    public let threadExitCost: UInt64
    let anyPooledWait: Bool
    /// Notes about folding affinity onto this machine's CPUs, policies that need root, ….
    public private(set) var notes: [String] = []
    let cpuCount: Int
    /// Per program: the CPUs to pin to (already folded), or nil.
    let affinities: [[Int32]?]
    /// Per edge: its waits count the wakee's wakes from everyone (`pooledWaits`; never for
    /// spawn edges).
    let pooledEdges: [Bool]
    /// Per edge: spawn edge.
    let spawnEdges: [Bool]

    public init(plan: ReplayPlan, options: ReplayOptions = ReplayOptions()) throws {
        guard !plan.programs.isEmpty else { throw ReplayError.nothingToReplay("no task of the trace was selected") }
        guard plan.programs.count <= options.maxThreads else {
            throw ReplayError.tooManyThreads(needed: plan.programs.count, limit: options.maxThreads)
        }
        self.plan = plan
        self.options = options
        spinRate = ReplayEngine.calibrateSpin()
        // parallel-build's short tasks (`cat`, 0.7 ms) each came out 20–35 µs over the
        // recorded CPU before their last run left this out.
        threadExitCost = options.threadExitCostNanoseconds ?? creplay_thread_exit_cost_ns(options.stackSize, 9)
        anyPooledWait = options.pooledWaits && options.deliverToAnyPooledWait
        let cpus = max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        cpuCount = cpus
        var folded = false
        var affinities: [[Int32]?] = []
        for p in plan.programs {
            guard options.applyAffinity, let a = p.affinity, !a.isEmpty else { affinities.append(nil); continue }
            let set = Set(a.map { Int32($0 % cpus) })
            if a.contains(where: { $0 >= cpus }) { folded = true }
            // A mask covering every CPU here is no constraint.
            affinities.append(set.count >= cpus ? nil : set.sorted())
        }
        self.affinities = affinities
        spawnEdges = plan.edges.map(\.isSpawn)
        pooledEdges = plan.edges.map { options.pooledWaits && !$0.isSpawn }
        if folded {
            notes.append("the trace was recorded with more CPUs than the \(cpus) here: affinity masks folded onto CPUs 0–\(cpus - 1) (cpu mod \(cpus))")
        }
    }

    /// Measures how many `creplay_spin` iterations make one nanosecond of thread CPU time.
    static func calibrateSpin() -> Double {
        var best = 0.0
        for _ in 0..<3 {
            let iterations: UInt64 = 2_000_000
            let c0 = creplay_thread_cpu_ns()
            creplay_spin(iterations)
            let c1 = creplay_thread_cpu_ns()
            let rate = Double(iterations) / Double(max(1, c1 - c0))
            best = max(best, rate)  // the fastest round is the least disturbed
        }
        return best
    }

    /// Runs the plan once with fresh threads.
    /// - Throws: `ReplayError.threadCreation` when a thread cannot be created (all threads
    ///   already created are stopped and joined first).
    public func run(index: Int, warmup: Bool) throws -> RunOutcome {
        let shared = SharedState(programs: plan.programs.count, edges: plan.edges.count)
        defer { shared.deallocate() }
        // The recorded CPU latency limits, held from this process for the run: the file is
        // closed on every way out (and by the kernel if the process dies).
        let latencyChanges = options.applyCPULatency ? CPULatencyTimeline.changes(plan.cpuLatency) : []
        var latencyFile: CPULatencyRequestFile?
        var latencyProblem: String?
        if !latencyChanges.isEmpty {
            do { latencyFile = try CPULatencyRequestFile(path: options.cpuLatencyDevicePath) } catch { latencyProblem = "\(error)" }
        }
        defer { latencyFile?.close() }
        var nextChange = 0
        var changesApplied = 0
        /// Writes the changes due by `now` (CLOCK_MONOTONIC; offsets count from `start`).
        func applyLatencyChanges(start: UInt64, now: UInt64) {
            guard let file = latencyFile else { return }
            while nextChange < latencyChanges.count && start.adding(saturating: latencyChanges[nextChange].offsetNanoseconds) <= now {
                if let failure = file.set(latencyChanges[nextChange].valueMicroseconds) {
                    latencyProblem = latencyProblem ?? failure
                } else {
                    changesApplied += 1
                }
                nextChange += 1
            }
        }
        let contexts = plan.programs.indices.map { ThreadContext(engine: self, shared: shared, program: $0) }
        shared.contexts = contexts
        defer { shared.contexts = [] }
        // The tasks that exist at the start get their threads now; a spawned task gets its
        // thread when its parent spawns it, so that the kernel places it as a new task
        // (fork balancing), not as a wakeup of a thread created long before.
        let roots = contexts.filter { plan.programs[$0.program].spawnedBy == nil }
        for ctx in roots {
            if let r = createThread(ctx, shared) {
                shared.stop()
                creplay_store64(shared.startTime, creplay_monotonic_ns())
                creplay_store32(shared.startWord, 1)
                _ = creplay_futex_wake(shared.startWord, Int32.max)
                for t in shared.takeThreads() { _ = creplay_thread_join(t) }
                throw ReplayError.threadCreation(index: ctx.program, comm: plan.programs[ctx.program].comm, errno: r)
            }
        }
        // Wait until every thread has set itself up, then release them together.
        while true {
            let ready = creplay_load32(shared.readyWord)
            if Int(ready) >= roots.count { break }
            _ = creplay_futex_wait(shared.readyWord, ready, 50_000_000)
        }
        let wallStart = UInt64(Date().timeIntervalSince1970 * 1e9)
        let start = creplay_monotonic_ns() + 200_000
        // A limit held from the trace's start is in force when the threads start.
        applyLatencyChanges(start: start, now: start)
        creplay_store64(shared.startTime, start)
        creplay_store32(shared.startWord, 1)
        _ = creplay_futex_wake(shared.startWord, Int32.max)
        // Watch for Ctrl-C while the threads run, deliver the deferred wakes that threads
        // handed over as their wakees reach their waits, and change the CPU latency
        // limit at its recorded offsets: wake when nudged, at the next change, or within
        // 100 ms for Ctrl-C.
        while true {
            let sequence = creplay_load32(shared.coordinatorWord)
            if creplay_load32(shared.handedOffWord) > 0 { deliverHandedOff(shared, all: false) }
            // Done first, then created: a thread that could still create one is not done.
            let done = creplay_load32(shared.doneWord)
            if done >= creplay_load32(shared.createdWord) {
                // Wakes whose wakee ended without reaching their wait still count as issued.
                deliverHandedOff(shared, all: true)
                break
            }
            if ReplayInterrupt.isRequested { shared.stop() }
            let now = creplay_monotonic_ns()
            applyLatencyChanges(start: start, now: now)
            var timeout: UInt64 = 100_000_000
            if latencyFile != nil && nextChange < latencyChanges.count {
                let due = start.adding(saturating: latencyChanges[nextChange].offsetNanoseconds)
                timeout = min(timeout, max(1, due > now ? due - now : 1))
            }
            _ = creplay_futex_wait(shared.coordinatorWord, sequence, timeout)
        }
        for t in shared.takeThreads() { _ = creplay_thread_join(t) }
        latencyFile?.close()
        if ReplayInterrupt.isRequested { throw ReplayError.interrupted }
        if let (program, code) = shared.creationFailure {
            throw ReplayError.threadCreation(index: program, comm: plan.programs[program].comm, errno: code)
        }
        var outcome = collect(contexts: contexts, start: start, wallStart: wallStart, index: index, warmup: warmup,
                              handedOffWakes: UInt64(creplay_load32(shared.handedOffDelivered)),
                              handedOffWakesAtWait: UInt64(creplay_load32(shared.handedOffDeliveredAtWait)))
        outcome.cpuLatencyChangesApplied = changesApplied
        outcome.cpuLatencyProblem = latencyProblem
        if let latencyProblem { outcome.warnings.append(latencyProblem) }
        return outcome
    }

    /// Starts the thread of `ctx`; returns the error number when it cannot be created.
    func createThread(_ ctx: ThreadContext, _ shared: SharedState) -> Int32? {
        _ = creplay_add32(shared.createdWord, 1)
        let box = Unmanaged.passRetained(ctx)
        var handle: UInt = 0
        let r = creplay_thread_create(replayThreadBody, box.toOpaque(), options.stackSize, &handle)
        if r != 0 {
            box.release()
            _ = creplay_add32(shared.createdWord, 0 &- 1)
            return r
        }
        shared.threadsLock.lock()
        shared.threads.append(handle)
        shared.threadsLock.unlock()
        return nil
    }

    /// Delivers the handed-off wakes whose wakee has reached its wait (`all`: every one).
    func deliverHandedOff(_ shared: SharedState, all: Bool) {
        shared.handedOffLock.lock()
        var delivered: UInt32 = 0
        var atWait: UInt32 = 0
        shared.handedOff.removeAll { w in
            let arrived = ThreadContext.hasReachedItsWait(w)
            guard all || arrived else { return false }
            _ = creplay_add32(shared.handedOffTo(w.target), 0 &- 1)
            _ = signalWake(shared, edge: w.edge, target: w.target)
            delivered += 1
            if arrived { atWait += 1 }
            return true
        }
        shared.handedOffLock.unlock()
        if delivered > 0 {
            _ = creplay_add32(shared.handedOffWord, 0 &- delivered)
            _ = creplay_add32(shared.handedOffDelivered, delivered)
            _ = creplay_add32(shared.handedOffDeliveredAtWait, atWait)
        }
    }

    /// Issues a wake on `edge` to program `target`: counts it, records when and from which
    /// CPU, and wakes the target if it is blocked in a wait. With `settle`, a target that has
    /// committed to block but may not be asleep in the kernel yet is not nudged: the wake is
    /// counted, and the block it must still end is returned (the caller owes it a
    /// futex_wake: `wakeSleeper`).
    @inline(__always) func signalWake(_ shared: SharedState, edge: Int, target: Int, settle: Bool = false) -> UInt32? {
        stampWake(shared, edge: edge, target: target)
        _ = creplay_add32(pooledEdges[edge] ? shared.poolCount(target) : shared.edgeCount(edge), 1)
        return wakeCounted(shared, edge: edge, target: target, settle: settle)
    }

    /// Where a wake on `edge` to `target` records when it was issued and from which CPU
    /// (the wakee's pooled words, or the edge's), for the wakee's latency sample.
    @inline(__always) func wakeStamp(_ shared: SharedState, edge: Int, target: Int) -> (time: UnsafeMutablePointer<UInt64>, cpu: UnsafeMutablePointer<UInt32>) {
        pooledEdges[edge] ? (shared.poolTime(target), shared.poolCPU(target)) : (shared.edgeTime(edge), shared.edgeCPU(edge))
    }

    /// Records now and this CPU as when and where a wake on `edge` to `target` was issued.
    @inline(__always) func stampWake(_ shared: SharedState, edge: Int, target: Int) {
        let stamp = wakeStamp(shared, edge: edge, target: target)
        creplay_store64(stamp.time, creplay_monotonic_ns())
        creplay_store32(stamp.cpu, UInt32(bitPattern: creplay_getcpu()))
    }

    /// A pooled wake delivered only if its wakee is blocked in a wait (or, `handOffToo`,
    /// yielding in a hand-off) that still needs a wake: the count goes up by
    /// compare-and-swap, so that two wakers reaching one blocked wakee at once give it one
    /// wake, not two (the second would satisfy a later wait before it is reached). `nil`
    /// when it was not delivered; otherwise what `signalWake` returns.
    @inline(__always) func signalPooledWaitNeedingAWake(_ shared: SharedState, edge: Int, target: Int, handOffToo: Bool) -> UInt32?? {
        let waiting = creplay_load32(shared.waiting(target))
        guard waiting == ThreadContext.BlockReason.wake.rawValue || (handOffToo && waiting == ThreadContext.BlockReason.handOff.rawValue) else { return nil }
        let count = shared.poolCount(target)
        let needed = creplay_load32(shared.poolArmed(target))
        var c = creplay_load32(count)
        guard c < needed else { return nil }
        stampWake(shared, edge: edge, target: target)
        while c < needed {
            if creplay_cas32(count, c, c &+ 1) != 0 {
                return .some(wakeCounted(shared, edge: edge, target: target, settle: true))
            }
            c = creplay_load32(count)
        }
        return nil
    }

    /// After a wake was counted: futex_wake the wakee, or keep the wake (settle).
    @inline(__always) func wakeCounted(_ shared: SharedState, edge: Int, target: Int, settle: Bool) -> UInt32? {
        if settle && options.wakeSettleNanoseconds > 0 && creplay_load32(shared.waiting(target)) == ThreadContext.BlockReason.wake.rawValue {
            let block = creplay_load32(shared.blockSequence(target))
            return wakeSleeper(shared, edge: edge, target: target, block: block) ? nil : block
        }
        shared.nudge(target, for: .wake)
        return nil
    }

    /// A wake already counted for `target`'s block number `block`: futex_wake it once it has
    /// been committed for `wakeSettleNanoseconds`, without bumping its futex word, so that a
    /// wakee not yet asleep falls asleep (its word unchanged) and this call, or a later one,
    /// wakes it. Returns true when nothing is owed any more: it was woken, or it is no longer
    /// in that block (it saw the count before sleeping).
    @inline(__always) func wakeSleeper(_ shared: SharedState, edge: Int, target: Int, block: UInt32) -> Bool {
        guard creplay_load32(shared.waiting(target)) == ThreadContext.BlockReason.wake.rawValue,
              creplay_load32(shared.blockSequence(target)) == block else { return true }
        let now = creplay_monotonic_ns()
        if now < creplay_load64(shared.committedAt(target)).adding(saturating: options.wakeSettleNanoseconds) { return false }
        // The latency it will measure starts at the futex_wake that really wakes it.
        creplay_store64(wakeStamp(shared, edge: edge, target: target).time, now)
        return creplay_futex_wake(shared.futex(target), 1) > 0
    }

    private func collect(contexts: [ThreadContext], start: UInt64, wallStart: UInt64, index: Int, warmup: Bool,
                         handedOffWakes: UInt64, handedOffWakesAtWait: UInt64) -> RunOutcome {
        var wake = LatencyHistogram(), same = LatencyHistogram(), cross = LatencyHistogram(), timer = LatencyHistogram()
        var counts = ReplayCounts()
        counts.unmatchedWaits = UInt64(plan.unmatchedWaits)
        // Deferred wakes their waker handed to the coordinating thread, delivered by it.
        counts.wakes = handedOffWakes
        counts.wakesFromCoordinator = handedOffWakesAtWait
        var tasks: [ReplayTaskResult] = []
        var end = start
        var warnings = Set<String>()
        for ctx in contexts {
            let p = plan.programs[ctx.program]
            var own = LatencyHistogram()
            for s in ctx.wakeLatencies {
                let value = s & ~ThreadContext.sameCPUBit
                own.record(value)
                if s & ThreadContext.sameCPUBit != 0 { same.record(value) } else { cross.record(value) }
            }
            wake.merge(own)
            for o in ctx.overshoots { timer.record(o) }
            counts.wakes += ctx.wakesIssued
            counts.waitsAlreadySatisfied += ctx.waitsAlreadySatisfied
            counts.waitsBlocked += UInt64(ctx.wakeLatencies.count)
            counts.timedSleeps += ctx.timedSleeps
            counts.lateTimedSleeps += ctx.lateTimedSleeps
            counts.timedOutWaits += ctx.timedOutWaits
            counts.heldWakes = (counts.heldWakes ?? 0) + ctx.heldWakes
            counts.handOffsYielded = (counts.handOffsYielded ?? 0) + ctx.handOffsYielded
            counts.handOffsBlocked = (counts.handOffsBlocked ?? 0) + ctx.handOffsBlocked
            counts.wakesKeptUntilAsleep = (counts.wakesKeptUntilAsleep ?? 0) + ctx.settlingWakes
            counts.wakesNotKeptUntilAsleep = (counts.wakesNotKeptUntilAsleep ?? 0) + ctx.unsettledWakes
            counts.wakesMissed = (counts.wakesMissed ?? 0) + ctx.wakesMissed
            end = max(end, ctx.endTime)
            for w in ctx.warnings { warnings.insert(w) }
            tasks.append(ReplayTaskResult(
                originalTid: p.tid, replayTid: ctx.tid, comm: p.comm,
                recordedCpuNanoseconds: UInt64(saturatingNanoseconds: Double(p.recordedCPUNanoseconds) * options.cpuScale),
                cpuNanoseconds: ctx.cpuUsed, wakesReceived: UInt64(ctx.wakeLatencies.count) + ctx.waitsAlreadySatisfied,
                sleeps: ctx.waits + ctx.timedSleeps, timedSleeps: ctx.timedSleeps,
                wakeupLatencyP50: own.percentile(50), wakeupLatencyP99: own.percentile(99),
                voluntarySwitches: ctx.voluntarySwitches, exitAllowanceNanoseconds: ctx.exitAllowance))
        }
        let run = ReplayRun(
            index: index, warmup: warmup, startWallTimeNanoseconds: wallStart, makespanNanoseconds: end - start,
            recordedMakespanNanoseconds: plan.recordedMakespan, wakeupLatency: wake, wakeupLatencySameCPU: same,
            wakeupLatencyCrossCPU: cross, timerOvershoot: timer, counts: counts, tasks: tasks)
        return RunOutcome(run: run, replayTids: contexts.map(\.tid), warnings: warnings.sorted(),
                          startMonotonicNanoseconds: start, endMonotonicNanoseconds: end,
                          spawnedMonotonicNanoseconds: contexts.map(\.spawnedAt))
    }
}

/// Words shared by the threads of one run, each on its own cache line.
final class SharedState: @unchecked Sendable {
    static let line = 64
    let memory: UnsafeMutableRawPointer
    let programs: Int
    let edges: Int
    // Control words.
    var readyWord: UnsafeMutablePointer<UInt32> { memory.assumingMemoryBound(to: UInt32.self) }
    var startWord: UnsafeMutablePointer<UInt32> { (memory + Self.line).assumingMemoryBound(to: UInt32.self) }
    var startTime: UnsafeMutablePointer<UInt64> { (memory + 2 * Self.line).assumingMemoryBound(to: UInt64.self) }
    var stopWord: UnsafeMutablePointer<UInt32> { (memory + 3 * Self.line).assumingMemoryBound(to: UInt32.self) }
    var doneWord: UnsafeMutablePointer<UInt32> { (memory + 4 * Self.line).assumingMemoryBound(to: UInt32.self) }
    /// Bumped (and the coordinating thread woken) when the last thread ends, when a thread
    /// hands over deferred wakes, and when a wakee with a handed-off wake (`handedOffTo`)
    /// reaches a wait.
    var coordinatorWord: UnsafeMutablePointer<UInt32> { (memory + 5 * Self.line).assumingMemoryBound(to: UInt32.self) }
    /// Deferred wakes handed to the coordinating thread and not delivered yet (`handedOff`;
    /// per wakee: `handedOffTo`), and how many it delivered in all (+4).
    var handedOffWord: UnsafeMutablePointer<UInt32> { (memory + 6 * Self.line).assumingMemoryBound(to: UInt32.self) }
    var handedOffDelivered: UnsafeMutablePointer<UInt32> { (memory + 6 * Self.line + 4).assumingMemoryBound(to: UInt32.self) }
    /// Of those, the ones delivered when their wakee had reached its wait (+8); the rest went
    /// at the run's end to wakees that ended without reaching it.
    var handedOffDeliveredAtWait: UnsafeMutablePointer<UInt32> { (memory + 6 * Self.line + 8).assumingMemoryBound(to: UInt32.self) }
    /// Deferred wakes whose waker could not keep them (it had to block, sleep or end).
    var handedOff: [ThreadContext.PendingWake] = []
    let handedOffLock = NSLock()
    /// Threads created so far (+8 in the done line): the run is over when as many are done.
    var createdWord: UnsafeMutablePointer<UInt32> { (memory + 4 * Self.line + 8).assumingMemoryBound(to: UInt32.self) }
    /// Every program's context, for a parent to start its child's thread (cleared after the run).
    var contexts: [ThreadContext] = []
    /// Handles of the threads created, for joining.
    var threads: [UInt] = []
    let threadsLock = NSLock()
    /// The first spawned thread that could not be created (program, errno).
    var creationFailure: (Int, Int32)?
    static let controlLines = 7

    func takeThreads() -> [UInt] {
        threadsLock.lock()
        defer { threadsLock.unlock() }
        let t = threads
        threads = []
        return t
    }

    /// Bumps program `p`'s futex word, and wakes it only if it is waiting on it.
    /// Only a thread blocked for that kind of news is woken: a wait is not disturbed by its
    /// waker's wakee arriving, nor a held wake by a wake (each would be a sleep the trace
    /// does not have, and a wakeup edge it does not have either).
    @inline(__always) func nudge(_ p: Int, for reason: ThreadContext.BlockReason) {
        let word = futex(p)
        _ = creplay_add32(word, 1)
        if creplay_load32(waiting(p)) == reason.rawValue { _ = creplay_futex_wake(word, 1) }
    }

    /// Wakes the coordinating thread.
    func nudgeCoordinator() {
        _ = creplay_add32(coordinatorWord, 1)
        _ = creplay_futex_wake(coordinatorWord, 1)
    }

    init(programs: Int, edges: Int) {
        self.programs = programs
        self.edges = edges
        let size = (Self.controlLines + programs + edges) * Self.line
        memory = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: Self.line)
        memory.initializeMemory(as: UInt8.self, repeating: 0, count: size)
    }

    func deallocate() { memory.deallocate() }

    /// The futex word of program `p`: bumped on every wake sent to it.
    @inline(__always) func futex(_ p: Int) -> UnsafeMutablePointer<UInt32> {
        (memory + (Self.controlLines + p) * Self.line).assumingMemoryBound(to: UInt32.self)
    }

    /// Non-zero while program `p` is (about to be) blocked in futex_wait, the value saying
    /// for what (`ThreadContext.BlockReason`): wakers skip the futex_wake syscall otherwise. Set before the waiter's last check of its edge count,
    /// read after the waker's increment, both sequentially consistent, so one of the two
    /// always sees the other.
    @inline(__always) func waiting(_ p: Int) -> UnsafeMutablePointer<UInt32> {
        (memory + (Self.controlLines + p) * Self.line + 4).assumingMemoryBound(to: UInt32.self)
    }

    /// Blocks program `p` has entered (+28), and when it last committed to one (+32,
    /// CLOCK_MONOTONIC): a waker owing it a wake (`ReplayEngine.wakeSleeper`) knows by them
    /// whether it is still in that block and how long it has had to fall asleep.
    @inline(__always) func blockSequence(_ p: Int) -> UnsafeMutablePointer<UInt32> {
        (memory + (Self.controlLines + p) * Self.line + 28).assumingMemoryBound(to: UInt32.self)
    }
    @inline(__always) func committedAt(_ p: Int) -> UnsafeMutablePointer<UInt64> {
        (memory + (Self.controlLines + p) * Self.line + 32).assumingMemoryBound(to: UInt64.self)
    }

    /// Handed-off wakes to program `p` the coordinating thread still holds (+40): `p` wakes
    /// it when it reaches a wait while there are any.
    @inline(__always) func handedOffTo(_ p: Int) -> UnsafeMutablePointer<UInt32> {
        (memory + (Self.controlLines + p) * Self.line + 40).assumingMemoryBound(to: UInt32.self)
    }

    /// While program `p` spins before blocking (+44): 1 + the first wakee of its deferred
    /// wakes that has reached the wait the wake ended (usually not blocked in it yet, or the
    /// wake would have gone), 0 otherwise (`ThreadContext.yieldsToMutualWaker`).
    @inline(__always) func spinningFor(_ p: Int) -> UnsafeMutablePointer<UInt32> {
        (memory + (Self.controlLines + p) * Self.line + 44).assumingMemoryBound(to: UInt32.self)
    }

    /// Program `p`'s pooled wakes received (+8), CPU of the last waker (+12), time of the
    /// last wake (+16), and the pooled ordinal of the latest wait it entered (+24).
    @inline(__always) func poolCount(_ p: Int) -> UnsafeMutablePointer<UInt32> {
        (memory + (Self.controlLines + p) * Self.line + 8).assumingMemoryBound(to: UInt32.self)
    }
    @inline(__always) func poolCPU(_ p: Int) -> UnsafeMutablePointer<UInt32> {
        (memory + (Self.controlLines + p) * Self.line + 12).assumingMemoryBound(to: UInt32.self)
    }
    @inline(__always) func poolTime(_ p: Int) -> UnsafeMutablePointer<UInt64> {
        (memory + (Self.controlLines + p) * Self.line + 16).assumingMemoryBound(to: UInt64.self)
    }
    @inline(__always) func poolArmed(_ p: Int) -> UnsafeMutablePointer<UInt32> {
        (memory + (Self.controlLines + p) * Self.line + 24).assumingMemoryBound(to: UInt32.self)
    }

    /// Edge `e`: wakes sent so far (+0), CPU of the last waker (+4), time of the last wake (+8).
    @inline(__always) func edgeCount(_ e: Int) -> UnsafeMutablePointer<UInt32> {
        (memory + (Self.controlLines + programs + e) * Self.line).assumingMemoryBound(to: UInt32.self)
    }
    @inline(__always) func edgeCPU(_ e: Int) -> UnsafeMutablePointer<UInt32> {
        (memory + (Self.controlLines + programs + e) * Self.line + 4).assumingMemoryBound(to: UInt32.self)
    }
    @inline(__always) func edgeTime(_ e: Int) -> UnsafeMutablePointer<UInt64> {
        (memory + (Self.controlLines + programs + e) * Self.line + 8).assumingMemoryBound(to: UInt64.self)
    }
    /// Waits the wakee has entered on edge `e` (per-waker waits; held and deferred wakes).
    @inline(__always) func edgeArmed(_ e: Int) -> UnsafeMutablePointer<UInt32> {
        (memory + (Self.controlLines + programs + e) * Self.line + 16).assumingMemoryBound(to: UInt32.self)
    }

    var isStopped: Bool { creplay_load32(stopWord) != 0 }

    /// Stops every thread: waits, and timed sleeps over 100 ms, return at once (a shorter
    /// sleep runs to its deadline).
    func stop() {
        creplay_store32(stopWord, 1)
        _ = creplay_futex_wake(stopWord, Int32.max)  // threads in a timed sleep
        for p in 0..<programs {
            _ = creplay_add32(futex(p), 1)
            _ = creplay_futex_wake(futex(p), Int32.max)
        }
    }
}

let replayThreadBody: @convention(c) (UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer? = { raw in
    let ctx = Unmanaged<ThreadContext>.fromOpaque(raw!).takeRetainedValue()
    ctx.main()
    return nil
}

/// One replay thread: its program, and what it measured (written only by that thread, read
/// after it is joined).
final class ThreadContext: @unchecked Sendable {
    static let sameCPUBit: UInt64 = 1 << 63
    unowned let engine: ReplayEngine
    let shared: SharedState
    let program: Int
    var tid: Int32 = 0
    /// Samples: wake issued → running, with `sameCPUBit` set when waker and wakee shared a CPU.
    var wakeLatencies: [UInt64] = []
    var overshoots: [UInt64] = []
    var waits: UInt64 = 0
    var waitsAlreadySatisfied: UInt64 = 0
    var timedSleeps: UInt64 = 0
    var lateTimedSleeps: UInt64 = 0
    var timedOutWaits: UInt64 = 0
    /// Waits that found their wake only when their futex_wait timed out (`ReplayCounts.wakesMissed`).
    var wakesMissed: UInt64 = 0
    var wakesIssued: UInt64 = 0
    /// Wakes held back until their wakee reached its wait (blocking the waker, or deferred).
    var heldWakes: UInt64 = 0
    /// When the spawn this program waited for came (CLOCK_MONOTONIC), or 0.
    var spawnedAt: UInt64 = 0
    /// Hand-offs whose wake came while yielding, and those that had to block.
    var handOffsYielded: UInt64 = 0
    var handOffsBlocked: UInt64 = 0
    /// Thread CPU clock value at which the program's whole recorded CPU time is used: spins
    /// for late wakees stop there (later burns absorb what they used, up to this).
    var cpuBudgetEnd: UInt64 = .max
    /// The thread CPU clock's last reading: a lower bound of its value (it only moves
    /// forward). A burn whose target is below it is done without reading the clock, which
    /// costs a system call (0.55–0.7 µs here, more than many recorded runs).
    var cpuSeen: UInt64 = 0
    /// What the program's last run left out for the thread's exit (`ReplayEngine.threadExitCost`,
    /// at most that run's length).
    var exitAllowance: UInt64 = 0
    /// Deferred wakes not delivered yet, in the order they were reached.
    var pending: [PendingWake] = []
    typealias PendingWake = (edge: Int, target: Int, armed: UnsafeMutablePointer<UInt32>, ordinal: UInt32)
    /// Wakes counted but not delivered yet: their wakee had committed to block and may not be
    /// asleep yet (`ReplayEngine.wakeSleeper`); retried while this thread runs on (at each
    /// atom, every 2 µs of a burn, in spins), settled before it blocks, sleeps or ends. The
    /// wakee's flag is read before its block number: a block number read first could be
    /// stale and the wake lost, read after it can at worst be a later block's, woken once
    /// for nothing.
    var owed: [(edge: Int, target: Int, block: UInt32)] = []
    /// Wakes kept until their wakee was asleep, and those of them given up.
    var settlingWakes: UInt64 = 0
    var unsettledWakes: UInt64 = 0
    var cpuUsed: UInt64 = 0
    /// Voluntary context switches during `execute` (real blocks), when getrusage works.
    var voluntarySwitches: UInt64?
    var endTime: UInt64 = 0
    var warnings: [String] = []

    init(engine: ReplayEngine, shared: SharedState, program: Int) {
        self.engine = engine
        self.shared = shared
        self.program = program
        let p = engine.plan.programs[program]
        wakeLatencies.reserveCapacity(p.waitCount)
        overshoots.reserveCapacity(p.timedSleepCount)
    }

    func setUp() {
        let p = engine.plan.programs[program]
        tid = creplay_gettid()
        _ = creplay_set_name(p.comm)
        _ = creplay_set_timer_slack(engine.options.timerSlackNanoseconds)
        if engine.options.applyPolicy, let policy = p.policy {
            let nice = p.nice ?? 0
            let priority = p.realtimePriority ?? 0
            let r = creplay_set_policy(tid, policy.number, nice, policy == .fifo || policy == .roundRobin ? priority : 0)
            if r != 0 {
                warnings.append("cannot apply \(policy.rawValue) nice \(nice) prio \(priority): \(String(cString: strerror(-r))) — run as root, or --no-policy")
            }
        } else if engine.options.applyPolicy, let nice = p.nice, nice != 0 {
            if setpriority(__priority_which_t(PRIO_PROCESS.rawValue), id_t(tid), nice) != 0 {
                warnings.append("cannot set nice \(nice): \(String(cString: strerror(errno))) — run as root, or --no-policy")
            }
        }
        if let cpus = engine.affinities[program] {
            let r = cpus.withUnsafeBufferPointer { creplay_set_affinity(tid, $0.baseAddress, Int32($0.count)) }
            if r != 0 { warnings.append("cannot pin to CPUs \(cpus): \(String(cString: strerror(-r))) — or --no-affinity") }
        }
    }

    func main() {
        setUp()
        _ = creplay_add32(shared.readyWord, 1)
        _ = creplay_futex_wake(shared.readyWord, 1)
        while creplay_load32(shared.startWord) == 0 {
            _ = creplay_futex_wait(shared.startWord, 0, 0)
        }
        let start = creplay_load64(shared.startTime)
        // Released slightly in the future so that every thread starts at the same instant.
        if creplay_monotonic_ns() < start { _ = creplay_sleep_until(start) }
        execute(start: start)
        endTime = creplay_monotonic_ns()
        // Only the last thread to end wakes the coordinating thread: a wakeup per ending
        // thread is a wakeup the trace does not have, and it preempted the thread before its
        // exit (parallel-build: 130 of them per run).
        let done = creplay_add32(shared.doneWord, 1) &+ 1
        if done >= creplay_load32(shared.createdWord) { shared.nudgeCoordinator() }
    }

    func execute(start: UInt64) {
        let plan = engine.plan
        let atoms = plan.programs[program].atoms
        let scale = engine.options.cpuScale
        // Burn targets count the thread's CPU from its birth: what its creation and set-up
        // cost (and, for the threads released together, the wait for the release) is CPU the
        // kernel charges to it, as it charged a forked task's first steps to that task, so
        // the first runs absorb it (messaging, 80 threads: 50 µs each over the recorded CPU
        // otherwise, docs/replay.md, "The engine").
        // Likewise the last run leaves out what the thread's exit will cost.
        let switchesBase = creplay_voluntary_switches()
        cpuSeen = 0
        var cpuTarget: Double = 0
        let exitCost = Double(engine.threadExitCost)
        cpuBudgetEnd = UInt64(saturatingNanoseconds: Double(plan.programs[program].recordedCPUNanoseconds) * scale - exitCost)
        let lastRun = atoms.lastIndex { if case .run = $0 { true } else { false } }
        let myFutex = shared.futex(program)
        let order = engine.options.wakeOrder
        for (index, atom) in atoms.enumerated() {
            if shared.isStopped { break }
            if !pending.isEmpty { deliverArmedWakes() }
            if !owed.isEmpty { retryOwedWakes() }
            switch atom {
            case let .run(ns):
                let length = Double(ns) * scale
                cpuTarget += length
                if index == lastRun { exitAllowance = UInt64(saturatingNanoseconds: min(length, exitCost)) }
                let target = UInt64(saturatingNanoseconds: cpuTarget)
                burn(until: target > exitAllowance ? target - exitAllowance : 0)
            case let .wait(edge, count, recordedWake):
                waits += 1
                let (counter, target) = arrive(edge: edge, count: count, order: order)
                if creplay_load32(counter) >= target {
                    wakeCameFirst(edge: edge)
                    continue
                }
                let (outcome, blocked) = blockForWake(counter, target, edge: edge, recordedWake: start.adding(saturating: recordedWake), myFutex: myFutex)
                if outcome == .reached {
                    if blocked && !engine.spawnEdges[edge] {
                        let now = creplay_monotonic_ns()
                        let stamp = engine.wakeStamp(shared, edge: edge, target: program)
                        let issued = creplay_load64(stamp.time)
                        let cpu = creplay_load32(stamp.cpu)
                        let sameCPU = cpu == UInt32(bitPattern: creplay_getcpu())
                        let latency = now > issued ? now - issued : 0
                        wakeLatencies.append(min(latency, ~ThreadContext.sameCPUBit) | (sameCPU ? ThreadContext.sameCPUBit : 0))
                    } else {
                        // The wake landed between the last check and the futex_wait.
                        wakeCameFirst(edge: edge)
                    }
                }
            case let .handOff(edge, count, recordedWake, _):
                let (counter, target) = arrive(edge: edge, count: count, order: order)
                // A fixed spin: yielding for as long as the trace waited (plus the margin) lost
                // more sleeps on shell-pipeline (14–19 % against 8 %, same recording).
                if creplay_load32(counter) >= target {
                    handOffsYielded += 1
                    continue
                }
                // Yielding, not blocked: a waker may deliver now (its wakee is not asleep).
                creplay_store32(shared.waiting(program), BlockReason.handOff.rawValue)
                let came = spin(for: engine.options.handOffSpinNanoseconds, until: { creplay_load32(counter) >= target })
                creplay_store32(shared.waiting(program), 0)
                if came {
                    handOffsYielded += 1
                    continue
                }
                _ = blockForWake(counter, target, edge: edge, recordedWake: start.adding(saturating: recordedWake), myFutex: myFutex)
                handOffsBlocked += 1
            case let .sleepUntil(offset, _):
                let deadline = start.adding(saturating: offset)
                timedSleeps += 1
                var now = creplay_monotonic_ns()
                if now >= deadline {
                    lateTimedSleeps += 1
                    // The trace slept here: still sleep, as briefly as really blocks.
                    deliverPendingWakes()
                    sleepBriefly()
                    continue
                }
                deliverPendingWakes()
                // One sleep to the deadline. A long one waits on the stop word, which only a
                // stop request changes and wakes (sleeping in 1 s slices to see a stop request
                // made a 1.6 s sleep two: rt-app's main thread, 17 sleeps recorded, 31
                // replayed). A short one is a clock_nanosleep, which a stop request outlasts
                // by at most 100 ms: the futex wait costs its thread ~0.9 µs more CPU per sleep
                // (periodic's cyclictest threads, ~10 µs of CPU per cycle: CPU error 3.6 → 7.8 %).
                while now < deadline && !shared.isStopped {
                    if deadline - now <= 100_000_000 {
                        _ = creplay_sleep_until(deadline)
                    } else {
                        let r = creplay_futex_wait_until(shared.stopWord, 0, deadline)
                        if r != 0 && r != -ETIMEDOUT && r != -EAGAIN && r != -EINTR {
                            // No FUTEX_WAIT_BITSET (a sandbox): in slices, as before.
                            _ = creplay_sleep_until(min(deadline, now.adding(saturating: 100_000_000)))
                        }
                    }
                    now = creplay_monotonic_ns()
                }
                overshoots.append(now > deadline ? now - deadline : 0)
            case let .wake(edge, target, rendezvous):
                if rendezvous > 0 && order != .free {
                    let (armed, ordinal) = armWords(edge: edge, rendezvous: rendezvous)
                    if order == .hold {
                        if creplay_load32(armed) < ordinal { holdUntilArmed(armed, ordinal: ordinal, myFutex: myFutex) }
                        signal(edge: edge, target: target)
                        continue
                    }
                    // Deferred, a wake goes only to a wakee that has reached the wait and is
                    // committed to block in it (or yielding in a hand-off): on arrival alone it
                    // could land before the wakee's last check, and that wait would not sleep.
                    if deliverWhenBlocked(edge: edge, target: target, armed: armed, ordinal: ordinal) { continue }
                    // Another wake to the same wakee may still be pending (the wakee is late):
                    // both stay queued, each delivered when the wakee blocks for it, so the
                    // wakee still sleeps for each.
                    heldWakes += 1
                    if spin(for: engine.options.holdSpinNanoseconds, until: {
                        deliverWhenBlocked(edge: edge, target: target, armed: armed, ordinal: ordinal)
                    }) {
                        continue
                    }
                    pending.append((edge, target, armed, ordinal))
                    continue
                }
                signal(edge: edge, target: target)
            case let .spawn(child, edge):
                // The child's first atom waits for this wake: it finds it there at once.
                shared.contexts[child].spawnedAt = creplay_monotonic_ns()
                signal(edge: edge, target: child)
                if let r = engine.createThread(shared.contexts[child], shared) {
                    shared.threadsLock.lock()
                    if shared.creationFailure == nil { shared.creationFailure = (child, r) }
                    shared.threadsLock.unlock()
                    shared.stop()
                }
            case let .exec(comm):
                _ = creplay_set_name(comm)
            }
        }
        // Ending with a wake kept for a wakee that has reached its wait but not blocked in it
        // yet (a thread woken after `yieldsToMutualWaker` can run before its waker has blocked,
        // on one CPU always): the hold spin gives that wakee the CPU to block, rather than
        // leaving the wake to the coordinating thread.
        // Not `spin`: that stops at the CPU budget, which the last burn has reached.
        if pending.contains(where: { Self.hasReachedItsWait($0) }) {
            let end = creplay_monotonic_ns().adding(saturating: engine.options.holdSpinNanoseconds)
            repeat {
                sched_yield()
                deliverArmedWakes()
            } while pending.contains(where: { Self.hasReachedItsWait($0) }) && creplay_monotonic_ns() < end && !shared.isStopped
        }
        handOverPendingWakes()
        cpuUsed = creplay_thread_cpu_ns()
        let switches = creplay_voluntary_switches()
        if switchesBase >= 0 && switches >= switchesBase { voluntarySwitches = UInt64(switches - switchesBase) }
    }

    /// Reaching a wait (or hand-off) for the `count`-th wake on `edge`: tells the wakers it has
    /// been reached (one may hold or defer its wake for it) and returns the counter to watch
    /// and the value it must reach.
    @inline(__always) func arrive(edge: Int, count: UInt32, order: WakeOrder) -> (UnsafeMutablePointer<UInt32>, UInt32) {
        let (counter, target, armed) = waitWords(edge: edge, count: count)
        if order != .free {
            if pooled(edge) { creplay_store32(armed, target) } else { _ = creplay_add32(armed, 1) }
            shared.nudge(engine.plan.edges[edge].waker, for: .arrival)
            // Only a wakee with a handed-off wake to collect wakes the coordinating thread
            // (any arrival while any wake was handed off did: ~5 000 wakeups of it per
            // messaging run, 20–25 ms of CPU on a saturated 2-CPU machine).
            if creplay_load32(shared.handedOffTo(program)) > 0 { shared.nudgeCoordinator() }
        }
        return (counter, target)
    }

    /// Delivers this thread's deferred wakes, then blocks until `counter` reaches `target`.
    /// Long recorded waits are legitimate: the timeout counts from the recorded wake time
    /// (`recordedWake`, CLOCK_MONOTONIC of the replay). A timeout is counted.
    func blockForWake(_ counter: UnsafeMutablePointer<UInt32>, _ target: UInt32, edge: Int, recordedWake: UInt64,
                      myFutex: UnsafeMutablePointer<UInt32>) -> (outcome: BlockOutcome, blocked: Bool) {
        if awaitWakeeThatWakesMe(edge: edge, counter: counter, target: target) {
            settleOwedWakes()
        } else {
            deliverPendingWakes(before: (edge, counter, target))
        }
        let giveUp = max(creplay_monotonic_ns(), recordedWake).adding(saturating: engine.options.waitTimeoutNanoseconds)
        let result = block(until: counter, reaches: target, giveUp: giveUp, expected: recordedWake, myFutex: myFutex, for: .wake)
        if result.outcome == .timedOut { timedOutWaits += 1 }
        return result
    }

    /// Before blocking for a wake whose waker in the trace is a task this thread still holds
    /// a deferred wake for: that task must usually run before this thread can (with pooled
    /// waits another task's wake may come first), so this thread has little to do but wait
    /// for it to reach its wait, and then wakes it itself, as in the trace (handed to the
    /// coordinating thread, the wake would come from outside the replayed tasks:
    /// python-queue's main thread and its workers, docs/replay.md). Spins, yielding, up to
    /// `wakeeSpinNanoseconds`, or until the wait is satisfied from elsewhere; the CPU it
    /// uses counts against the program's budget, as every spin's does.
    /// Returns true when it stopped for `yieldsToMutualWaker`: the thread then blocks keeping
    /// its deferred wakes.
    func awaitWakeeThatWakesMe(edge: Int, counter: UnsafeMutablePointer<UInt32>, target: UInt32) -> Bool {
        let ns = engine.options.wakeeSpinNanoseconds
        guard ns > 0, !pending.isEmpty else { return false }
        let waker = engine.plan.edges[edge].waker
        guard pending.contains(where: { $0.target == waker }) else { return false }
        var yielded = false
        _ = spin(for: ns) {
            deliverArmedWakes()
            if !pending.contains(where: { $0.target == waker }) || creplay_load32(counter) >= target { return true }
            yielded = yieldsToMutualWaker(waitingOn: edge, counter: counter, target: target)
            return yielded
        }
        creplay_store32(shared.spinningFor(program), 0)
        return yielded
    }

    /// Whether the wakee of a deferred wake has reached the wait that wake ended.
    @inline(__always) static func hasReachedItsWait(_ w: PendingWake) -> Bool { creplay_load32(w.armed) >= w.ordinal }

    /// Two threads about to block, each holding a deferred wake for the other, each spinning
    /// for the other to commit to its block (both were late for each other's wake: with one
    /// CPU, python-queue's main thread and a worker in 320 of 370 hand-overs per run) would
    /// both give up and leave both wakes to the coordinating thread. Each publishes the wakee
    /// it spins for (`SharedState.spinningFor`); the one with the lower index, on seeing that
    /// its wakee spins for it, stops and blocks keeping its deferred wakes: the other then
    /// delivers its wake (or, if it has to block first, the coordinating thread does: this
    /// thread has reached that wake's wait; or it yields in turn to a higher index and keeps
    /// it until woken), and this thread delivers its own once it runs again. A thread keeps
    /// wakes while blocked only for a wake held by a higher index, so those waits form no
    /// cycle: the highest thread of a chain delivers or hands over, and the chain unwinds.
    /// Only where that wake surely ends this wait: pooled waits delivered to any wait still
    /// needing a wake (the default), or a wait on an edge from that very wakee (one edge per
    /// waker and wakee).
    @inline(__always) func yieldsToMutualWaker(waitingOn edge: Int, counter: UnsafeMutablePointer<UInt32>, target: UInt32) -> Bool {
        guard let i = pending.firstIndex(where: { Self.hasReachedItsWait($0) }) else {
            creplay_store32(shared.spinningFor(program), 0)
            return false
        }
        let other = pending[i].target
        creplay_store32(shared.spinningFor(program), UInt32(other + 1))
        guard program < other, creplay_load32(shared.spinningFor(other)) == UInt32(program + 1) else { return false }
        // One wake short: a pooled wait that needs more (another waker is late too) could
        // wait for a task that waits for a wake this thread would keep; one already satisfied
        // does not block.
        let count = creplay_load32(counter)
        guard count < target, count &+ 1 >= target else { return false }
        return (engine.anyPooledWait && pooled(edge)) || engine.plan.edges[edge].waker == other
    }

    /// Whether waits on `edge` count the wakee's wakes from everyone.
    @inline(__always) func pooled(_ edge: Int) -> Bool { engine.pooledEdges[edge] }

    /// The counter a wait on `edge` watches, the value it needs, and the word that says the
    /// wait has been reached.
    @inline(__always) func waitWords(edge: Int, count: UInt32) -> (UnsafeMutablePointer<UInt32>, UInt32, UnsafeMutablePointer<UInt32>) {
        if pooled(edge) {
            let target = engine.plan.edges[edge].poolOrdinals.withUnsafeBufferPointer { Int(count) - 1 < $0.count ? $0[Int(count) - 1] : count }
            return (shared.poolCount(program), target, shared.poolArmed(program))
        }
        return (shared.edgeCount(edge), count, shared.edgeArmed(edge))
    }

    /// The word that says the wakee of `edge` has reached a wait, and the value it must reach
    /// for the `rendezvous`-th wait on this edge.
    @inline(__always) func armWords(edge: Int, rendezvous: UInt32) -> (UnsafeMutablePointer<UInt32>, UInt32) {
        if pooled(edge) {
            let e = engine.plan.edges[edge]
            let ordinal = Int(rendezvous) - 1 < e.waitPoolOrdinals.count ? e.waitPoolOrdinals[Int(rendezvous) - 1] : 0
            return (shared.poolArmed(e.wakee), ordinal)
        }
        return (shared.edgeArmed(edge), rendezvous)
    }

    /// Delivers the deferred wakes whose wakee has reached its wait and is blocking in it.
    func deliverArmedWakes() {
        var i = 0
        while i < pending.count {
            let w = pending[i]
            // Not spinning for that wakee any more once its wake may be delivered: woken, it
            // can run at once (on this CPU, before this thread), and reading that claim
            // still there it would block keeping its own wakes for a wake already spent
            // (10 s stalls, the wait's timeout, in 4 of 22 one-CPU python-queue runs).
            if creplay_load32(shared.spinningFor(program)) == UInt32(w.target + 1) {
                creplay_store32(shared.spinningFor(program), 0)
            }
            if deliverWhenBlocked(edge: w.edge, target: w.target, armed: w.armed, ordinal: w.ordinal) {
                pending.remove(at: i)
            } else {
                i += 1
            }
        }
    }

    /// Gives up every deferred wake (before this thread blocks or sleeps: a waker never keeps
    /// a wake while it cannot run, except as `yieldsToMutualWaker` says before `wait`), after
    /// giving their wakees `holdSpinNanoseconds` to arrive.
    func deliverPendingWakes(before wait: (edge: Int, counter: UnsafeMutablePointer<UInt32>, target: UInt32)? = nil) {
        settleOwedWakes()
        if pending.isEmpty { return }
        var yielded = false
        _ = spin(for: engine.options.holdSpinNanoseconds) {
            deliverArmedWakes()
            if pending.isEmpty { return true }
            if let wait { yielded = yieldsToMutualWaker(waitingOn: wait.edge, counter: wait.counter, target: wait.target) }
            return yielded
        }
        if wait != nil { creplay_store32(shared.spinningFor(program), 0) }
        // A wakee blocked in an earlier wait takes its wake now (a real wakeup); one still
        // running gets it from the coordinating thread when it reaches the wait the wake
        // ended (delivered now, it would find that wait satisfied and not sleep).
        pending.removeAll { w in
            guard creplay_load32(shared.waiting(w.target)) == BlockReason.wake.rawValue else { return false }
            signal(edge: w.edge, target: w.target)
            return true
        }
        if yielded {
            // Keeping the rest; a wake just delivered to a wakee that has only just committed
            // is owed, and is settled before this thread blocks, as everywhere else.
            settleOwedWakes()
            return
        }
        handOverPendingWakes()
    }

    /// A wait on `edge` whose wake came first: counted, and since the trace slept there, the
    /// thread still blocks, as briefly as really blocks. A spawned thread's start is neither
    /// a sleep nor a wakeup: not counted.
    func wakeCameFirst(edge: Int) {
        guard !engine.spawnEdges[edge] else { return }
        waitsAlreadySatisfied += 1
        deliverPendingWakes()
        sleepBriefly()
    }

    /// Blocks once, as briefly as the kernel allows: a timed sleep of 5 µs, doubled until the
    /// thread has really been switched out (a sleep that short can expire before it blocks).
    func sleepBriefly() {
        let switches = creplay_voluntary_switches()
        var length: UInt64 = 5_000
        repeat {
            _ = creplay_sleep_until(creplay_monotonic_ns() + length)
            length *= 2
        } while switches >= 0 && creplay_voluntary_switches() == switches && length <= 1_000_000
    }

    /// Delivers a deferred wake if its wakee is blocked in the wait the wake ended in the trace
    /// or, on a pooled edge (`deliverToAnyPooledWait`), in any wait still needing a wake
    /// (compare-and-swap on the count: two wakers finding one blocked wakee give it one wake).
    @inline(__always) func deliverWhenBlocked(edge: Int, target: Int, armed: UnsafeMutablePointer<UInt32>, ordinal: UInt32) -> Bool {
        guard engine.anyPooledWait && pooled(edge) else {
            guard isBlockedInItsWait(armed, ordinal, wakee: target) else { return false }
            signal(edge: edge, target: target)
            return true
        }
        // Pooled: into whichever wait the wakee is blocked in, if that wait still needs a
        // wake (another waker's may just have ended it: this one then waits for its next).
        // Not into a hand-off other than its own: a hand-off's waker stands preempted until
        // that wakee blocks, and resuming it on another wake lets it run alongside its
        // wakee (pipe-pingpong used 2.4 → 4.7 % more CPU than recorded, 18 replays each).
        let exact = isBlockedInItsWait(armed, ordinal, wakee: target)
        guard let owedBlock = engine.signalPooledWaitNeedingAWake(shared, edge: edge, target: target, handOffToo: exact) else { return false }
        issued(edge: edge, target: target, owing: owedBlock)
        return true
    }

    /// Whether the wakee has reached the wait a deferred wake ended (`armed` ≥ `ordinal`) and
    /// committed to block in it (its waiting flag set): delivered before that, the wake lands
    /// between its arrival and its check and the wait finds it already there (pipe-pingpong
    /// lost 2.7 % of its sleeps that way, 1.3 % with the check; python-queue 1.7 % and 1.3 %;
    /// medians of 5 rounds on one recording).
    @inline(__always) func isBlockedInItsWait(_ armed: UnsafeMutablePointer<UInt32>, _ ordinal: UInt32, wakee: Int) -> Bool {
        guard creplay_load32(armed) >= ordinal else { return false }
        let waiting = creplay_load32(shared.waiting(wakee))
        return waiting == BlockReason.wake.rawValue || waiting == BlockReason.handOff.rawValue
    }

    /// Spins, yielding the CPU, up to `nanoseconds` until `done` says so; never past the
    /// program's CPU budget (what a spin uses, later burns do not), nor past a stop request.
    /// Returns `done`'s answer.
    @inline(__always) func spin(for nanoseconds: UInt64, until done: () -> Bool) -> Bool {
        guard nanoseconds > 0 else { return false }
        let end = creplay_monotonic_ns().adding(saturating: nanoseconds)
        repeat {
            sched_yield()
            if !owed.isEmpty { retryOwedWakes() }
            if done() { return true }
        } while creplay_monotonic_ns() < end && creplay_thread_cpu_ns() < cpuBudgetEnd && !shared.isStopped
        return false
    }

    /// Hands the deferred wakes this thread cannot keep (it must block, sleep or end; their
    /// wakees are behind) to the coordinating thread, which delivers each when its wakee
    /// reaches the wait it ended: the wakee still sleeps for it (a producer's last messages
    /// still wake consumers that sleep for them). Delivering them at once would satisfy
    /// those waits before they are reached; waiting for the wakees here would cost this
    /// thread a sleep and a wakeup per late wakee, neither of which the trace has.
    func handOverPendingWakes() {
        // Delivered first, then settled: a wake delivered here to a wakee that has only just
        // committed is owed, and an owed wake left behind when this thread blocks or ends is
        // lost (its wakee slept until its futex_wait's 1 s slice ran out: 4 of 18
        // python-queue runs).
        deliverArmedWakes()
        settleOwedWakes()
        if pending.isEmpty { return }
        let n = UInt32(pending.count)
        for w in pending { _ = creplay_add32(shared.handedOffTo(w.target), 1) }
        shared.handedOffLock.lock()
        shared.handedOff.append(contentsOf: pending)
        shared.handedOffLock.unlock()
        pending.removeAll(keepingCapacity: true)
        _ = creplay_add32(shared.handedOffWord, n)
        // A wakee that arrived before the count went up nudged nobody: the coordinator looks
        // at every handed-off wake when woken.
        shared.nudgeCoordinator()
    }

    /// Blocks until `armed` reaches `ordinal`: the wakee has entered the wait that this wake
    /// ended in the trace. Counted as a held wake when it has to block.
    func holdUntilArmed(_ armed: UnsafeMutablePointer<UInt32>, ordinal: UInt32, myFutex: UnsafeMutablePointer<UInt32>) {
        if creplay_load32(armed) >= ordinal || shared.isStopped { return }
        heldWakes += 1
        deliverPendingWakes()
        let giveUp = creplay_monotonic_ns().adding(saturating: engine.options.waitTimeoutNanoseconds)
        let (outcome, _) = block(until: armed, reaches: ordinal, giveUp: giveUp, myFutex: myFutex, for: .arrival)
        if outcome == .timedOut { timedOutWaits += 1 }
    }

    enum BlockOutcome { case reached, stopped, timedOut }

    /// What a blocked thread waits for (the value of its waiting flag).
    enum BlockReason: UInt32 {
        /// A wake from another thread (a wait atom).
        case wake = 1
        /// A wakee reaching its wait (a held or deferred wake).
        case arrival = 2
        /// Not blocked: yielding the CPU in a hand-off until its wake comes.
        case handOff = 3
    }

    /// Blocks on this thread's futex word until `counter` reaches `target`, the run is
    /// stopped, or `giveUp` (CLOCK_MONOTONIC) passes; `expected` is when the wake came in the
    /// trace (replay clock), 0 for none. `blocked` is true when a futex_wait
    /// really slept and was woken. The waiting flag is set before the last check of the
    /// counter, so a `nudge` between that check and the futex_wait is never lost.
    func block(until counter: UnsafeMutablePointer<UInt32>, reaches target: UInt32, giveUp: UInt64, expected: UInt64 = 0,
               myFutex: UnsafeMutablePointer<UInt32>, for reason: BlockReason) -> (outcome: BlockOutcome, blocked: Bool) {
        let waitingFlag = shared.waiting(program)
        var blocked = false
        var outcome = BlockOutcome.reached
        var slice = max(engine.options.waitRecheckNanoseconds, 1_000_000), recheck: UInt64 = 0
        _ = creplay_add32(shared.blockSequence(program), 1)
        while true {
            creplay_store64(shared.committedAt(program), creplay_monotonic_ns())
            creplay_store32(waitingFlag, reason.rawValue)
            let sequence = creplay_load32(myFutex)
            if creplay_load32(counter) >= target { break }
            if shared.isStopped { outcome = .stopped; break }
            let now = creplay_monotonic_ns()
            if now >= giveUp { outcome = .timedOut; break }
            // A wake counted but never futex_woken (a bug: `wakesMissed`) shows up at the
            // timeout: a second after the recorded wake time, or from now if that is past. Not
            // sooner: every timeout of a wait still legitimately pending is a sleep the trace
            // does not have (1 s slices made a 1.6 s wait two sleeps), and each one after
            // that waits twice as long as the one before (a replay behind the recorded wake
            // times, `--cpu-scale` above 1, timed out once a second in every such wait).
            if recheck == 0 { recheck = max(expected.adding(saturating: slice), now.adding(saturating: slice)) }
            else if now >= recheck { slice = slice.multipliedReportingOverflow(by: 2).overflow ? .max : slice * 2; recheck = now.adding(saturating: slice) }
            let r = creplay_futex_wait(myFutex, sequence, min(giveUp - now, recheck > now ? recheck - now : 1))
            if r == 0 {
                blocked = true
            } else if r == -ETIMEDOUT && creplay_load32(counter) >= target {
                // Slept until the timeout with its wake already counted: the wake's futex_wake
                // never came. It did sleep (its latency sample says how long); counted, never
                // hidden among the waits whose wake came first.
                blocked = true
                wakesMissed += 1
            }
        }
        creplay_store32(waitingFlag, 0)
        return (outcome, blocked)
    }

    @inline(__always) func signal(edge: Int, target: Int) {
        if engine.spawnEdges[edge] {
            _ = engine.signalWake(shared, edge: edge, target: target)
            return
        }
        issued(edge: edge, target: target, owing: engine.signalWake(shared, edge: edge, target: target, settle: true))
    }

    /// Counts a wake this thread issued, and keeps it owed when its wakee was not asleep yet.
    @inline(__always) func issued(edge: Int, target: Int, owing block: UInt32?) {
        wakesIssued += 1
        if let block {
            owed.append((edge, target, block))
            settlingWakes += 1
        }
    }

    /// Retries the owed wakes; drops those done.
    @inline(__always) func retryOwedWakes() {
        owed.removeAll { w in
            engine.wakeSleeper(shared, edge: w.edge, target: w.target, block: w.block)
        }
    }

    /// Settles the owed wakes before this thread blocks, sleeps or ends: retries them for up
    /// to `holdSpinNanoseconds`, then bumps the futex word of each wakee still in that block
    /// (it has not fallen asleep: it will not sleep for this wake). Not `spin`: that stops at
    /// the CPU budget's end, which a program's last wakes have reached, and a wakee needs
    /// only microseconds to fall asleep.
    func settleOwedWakes() {
        if owed.isEmpty { return }
        let end = creplay_monotonic_ns().adding(saturating: engine.options.holdSpinNanoseconds)
        repeat {
            retryOwedWakes()
            if owed.isEmpty { return }
            sched_yield()
        } while creplay_monotonic_ns() < end
        for w in owed where creplay_load32(shared.blockSequence(w.target)) == w.block {
            shared.nudge(w.target, for: .wake)
            unsettledWakes += 1
        }
        owed.removeAll(keepingCapacity: true)
    }

    /// Spins until the thread's CPU clock reaches `target`. Checks the clock at most every
    /// 50 µs of spinning, and aims under the remainder so that it converges without overshoot.
    /// While deferred wakes are pending, checks them every 10 µs of spinning; while wakes are
    /// owed to wakees falling asleep, retries them every 2 µs. Returns without
    /// reading the clock when its last reading is already past `target`.
    @inline(__always) func burn(until target: UInt64) {
        if cpuSeen + 150 >= target { return }
        var now = creplay_thread_cpu_ns()
        defer { cpuSeen = now }
        let rate = engine.spinRate
        while now + 150 < target {
            let slice: UInt64 = !owed.isEmpty ? 2_000 : pending.isEmpty ? 50_000 : 10_000
            let remaining = min(target - now, slice)
            creplay_spin(UInt64(Double(remaining) * rate * 0.85))
            now = creplay_thread_cpu_ns()
            if !pending.isEmpty { deliverArmedWakes() }
            if !owed.isEmpty { retryOwedWakes() }
            if remaining == slice && shared.isStopped { return }
        }
    }
}
