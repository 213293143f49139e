/// Scheduling latencies of one task, from a trace: raw samples in nanoseconds (trace clock).
public struct TaskLatencies: Equatable, Sendable {
    public var task: TaskIndex
    /// Waking (or wakeup of a new task) → the task switched in, where the switch-in is in
    /// the trace.
    public var wakeupLatency: [UInt64] = []
    /// The same where the switch-in was not logged (a task woken onto an idle CPU whose
    /// idle → task switch the kernel did not emit) and its time was inferred by
    /// `RunTracker` (from `sched_stat_runtime` when recorded). Kept apart: less exact.
    public var inferredWakeupLatency: [UInt64] = []
    /// Preempted (switched out still runnable, state R) → switched back in.
    public var runDelay: [UInt64] = []
    /// The same with an inferred switch-in.
    public var inferredRunDelay: [UInt64] = []
    /// CPU time from the run intervals (inferred starts included).
    public var runtimeNanoseconds: UInt64 = 0
    /// Runs on a CPU (times switched in, logged or inferred).
    public var switches = 0
    /// Of those, runs whose switch-in was inferred.
    public var inferredSwitchIns = 0
    /// `sched_migrate_task` events for the task.
    public var migrations = 0
    /// Wakeups that found the task already on a CPU or already woken (no latency sample).
    public var wakeupsWithoutSample = 0

    /// Empty figures for `task`.
    public init(task: TaskIndex) { self.task = task }
}

/// Wakeup latency, run delay, runtime, switches and migrations per task, like
/// `perf sched latency` but keeping every sample so that percentiles can be computed.
///
/// Works on traces with missing switch-ins: runs are rebuilt by `RunTracker`, and a
/// latency whose end is an inferred switch-in is recorded in the `inferred…` lists, never
/// mixed with measured ones nor dropped.
public struct LatencyAnalysis: Sendable {
    /// Indexed by `TaskIndex` (index 0, the idle task, stays empty).
    public var tasks: [TaskLatencies]
    /// Switch-ins inferred in the whole trace, and of those without runtime reports.
    public var inferredSwitchIns = 0
    public var inferredWithoutRuntime = 0

    /// Analyses events already in memory (in time order).
    public init(events: [Event], taskCount: Int) {
        var builder = Builder(taskCount: taskCount)
        for e in events { builder.feed(e) }
        self = builder.finish()
    }

    /// Reads every event of `reader`.
    /// - Throws: `TraceError` for a damaged chunk.
    public init(reader: TraceReader) throws {
        var builder = Builder(taskCount: reader.tasks.count)
        try reader.forEachEvent { builder.feed($0) }
        self = builder.finish()
    }

    fileprivate init(tasks: [TaskLatencies]) { self.tasks = tasks }

    /// Streaming construction: feed events in time order, then `finish()`.
    public struct Builder {
        private var tasks: [TaskLatencies]
        private var tracker: RunTracker
        /// Per task: when it was woken and has not run since (nil: no pending wakeup).
        private var pendingWake: [UInt64?]
        /// Per task: when it was preempted and has not run since.
        private var pendingPreempt: [UInt64?]
        /// Per task: on a CPU according to the logged switches.
        private var onCPU: [Bool]

        /// A builder for a trace with `taskCount` tasks (it grows if events name more).
        public init(taskCount: Int) {
            tasks = (0..<taskCount).map { TaskLatencies(task: TaskIndex($0)) }
            tracker = RunTracker(taskCount: taskCount)
            pendingWake = Array(repeating: nil, count: taskCount)
            pendingPreempt = Array(repeating: nil, count: taskCount)
            onCPU = Array(repeating: false, count: taskCount)
        }

        private mutating func ensure(_ task: TaskIndex) {
            while tasks.count <= task.intValue {
                tasks.append(TaskLatencies(task: TaskIndex(tasks.count)))
                pendingWake.append(nil)
                pendingPreempt.append(nil)
                onCPU.append(false)
            }
        }

        private mutating func woken(_ target: TaskIndex, at t: UInt64) {
            guard !target.isIdle else { return }
            ensure(target)
            let i = target.intValue
            if onCPU[i] || pendingWake[i] != nil || pendingPreempt[i] != nil {
                // Already running, already woken, or runnable after a preemption: the
                // wakeup changes nothing the latency can measure.
                tasks[i].wakeupsWithoutSample += 1
            } else {
                pendingWake[i] = t
            }
        }

        /// The task started running at `start` (logged switch-in, or inferred).
        private mutating func started(_ task: TaskIndex, at start: UInt64, inferred: Bool) {
            let i = task.intValue
            if let w = pendingWake[i] {
                if start >= w {
                    if inferred { tasks[i].inferredWakeupLatency.append(start - w) } else { tasks[i].wakeupLatency.append(start - w) }
                }
                pendingWake[i] = nil
            }
            if let p = pendingPreempt[i] {
                if start >= p {
                    if inferred { tasks[i].inferredRunDelay.append(start - p) } else { tasks[i].runDelay.append(start - p) }
                }
                pendingPreempt[i] = nil
            }
        }

        private mutating func account(_ run: RunInterval) {
            ensure(run.task)
            let i = run.task.intValue
            // Saturating: the timestamps of a damaged trace can be anything.
            tasks[i].runtimeNanoseconds = tasks[i].runtimeNanoseconds.adding(saturating: run.length)
            tasks[i].switches += 1
            if run.startInferred {
                tasks[i].inferredSwitchIns += 1
                started(run.task, at: run.start, inferred: true)
            }
        }

        /// Feeds one event.
        public mutating func feed(_ event: Event) {
            let t = event.timestamp
            let ended = tracker.feed(event)
            if let ended { account(ended) }
            switch event.kind {
            case let .switchTask(prev, prevState, next):
                if !prev.isIdle {
                    ensure(prev)
                    onCPU[prev.intValue] = false
                    // A wakeup still pending when the task leaves the CPU belonged to a run
                    // the trace did not show starting and that was not inferred: drop it.
                    pendingWake[prev.intValue] = nil
                    pendingPreempt[prev.intValue] = prevState == .running ? t : nil
                }
                if !next.isIdle {
                    ensure(next)
                    onCPU[next.intValue] = true
                    started(next, at: t, inferred: false)
                }
            case let .waking(_, target, _, _):
                woken(target, at: t)
            case let .wakeupNew(target, _):
                woken(target, at: t)
            case let .migrate(task, _, _):
                ensure(task)
                tasks[task.intValue].migrations += 1
            case let .exit(task):
                ensure(task)
                pendingWake[task.intValue] = nil
                pendingPreempt[task.intValue] = nil
            default:
                break
            }
        }

        /// Ends the trace: accounts runs still open.
        public mutating func finish() -> LatencyAnalysis {
            var runs: [RunInterval] = []
            tracker.finish { runs.append($0) }
            // Runs still open when the trace ends: on a CPU, or seen only through runtime
            // reports. Their switch-ins were not counted yet.
            for run in runs { account(run) }
            var result = LatencyAnalysis(tasks: tasks)
            result.inferredSwitchIns = tracker.inferredSwitchIns
            result.inferredWithoutRuntime = tracker.inferredWithoutRuntime
            return result
        }
    }
}
