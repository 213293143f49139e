/// Per-task figures derived from a trace's events.
public struct TaskSummary: Equatable, Sendable {
    public var task: TaskIndex
    /// CPU time from run intervals (switch-in to switch-out, inferred starts included).
    public var cpuNanoseconds: UInt64 = 0
    /// CPU time as the kernel reported it through `sched_stat_runtime` (0 if not recorded).
    public var reportedRuntimeNanoseconds: UInt64 = 0
    public var runs = 0
    /// Times the task left a CPU blocked (S, D, …).
    public var sleeps = 0
    /// Times the task left a CPU still runnable.
    public var preemptions = 0
    /// `sched_waking` events targeting the task.
    public var wakeups = 0
    /// Task-context wakeups the task gave to others.
    public var wakeupsGiven = 0
    public var migrations = 0
    /// Runs whose switch-in was inferred.
    public var inferredSwitchIns = 0

    public init(task: TaskIndex) { self.task = task }
}

/// Event counts and per-task figures of a whole trace, as `replayctl info` shows them.
public struct TraceSummary: Sendable {
    /// Events per kind name (`Event.Kind.allNames`).
    public var eventCounts: [String: UInt64] = [:]
    public var totalEvents: UInt64 = 0
    public var firstTimestamp: UInt64 = 0
    public var lastTimestamp: UInt64 = 0
    /// Indexed by `TaskIndex`.
    public var tasks: [TaskSummary] = []
    public var inferredSwitchIns = 0
    public var inferredWithoutRuntime = 0

    /// Reads every event of `reader`.
    /// - Throws: `TraceError` for a damaged chunk.
    public init(reader: TraceReader) throws {
        var builder = Builder(taskCount: reader.tasks.count)
        try reader.forEachEvent { builder.feed($0) }
        self = builder.finish()
    }

    /// Summarises events already in memory.
    public init(events: [Event], taskCount: Int) {
        var builder = Builder(taskCount: taskCount)
        for e in events { builder.feed(e) }
        self = builder.finish()
    }

    fileprivate init() {}

    /// Streaming construction.
    public struct Builder {
        var summary = TraceSummary()
        var tracker: RunTracker

        public init(taskCount: Int) {
            summary.tasks = (0..<taskCount).map { TaskSummary(task: TaskIndex($0)) }
            tracker = RunTracker(taskCount: taskCount)
            for name in Event.Kind.allNames { summary.eventCounts[name] = 0 }
        }

        private mutating func ensure(_ task: TaskIndex) {
            while summary.tasks.count <= task.intValue { summary.tasks.append(TaskSummary(task: TaskIndex(summary.tasks.count))) }
        }

        public mutating func feed(_ event: Event) {
            if summary.totalEvents == 0 { summary.firstTimestamp = event.timestamp }
            summary.lastTimestamp = max(summary.lastTimestamp, event.timestamp)
            summary.totalEvents += 1
            summary.eventCounts[event.kind.name, default: 0] += 1
            switch event.kind {
            case let .waking(waker, target, _, context):
                ensure(target)
                summary.tasks[target.intValue].wakeups += 1
                if context == .task, let waker, !waker.isIdle {
                    ensure(waker)
                    summary.tasks[waker.intValue].wakeupsGiven += 1
                }
            case let .migrate(task, _, _):
                ensure(task)
                summary.tasks[task.intValue].migrations += 1
            case let .runtime(task, ns):
                ensure(task)
                // Saturating: a damaged or crafted trace must not trap on overflow.
                summary.tasks[task.intValue].reportedRuntimeNanoseconds = summary.tasks[task.intValue].reportedRuntimeNanoseconds.adding(saturating: ns)
            default:
                break
            }
            if let run = tracker.feed(event) { Self.account(run, in: &summary) }
        }

        static func account(_ run: RunInterval, in summary: inout TraceSummary) {
            while summary.tasks.count <= run.task.intValue { summary.tasks.append(TaskSummary(task: TaskIndex(summary.tasks.count))) }
            var t = summary.tasks[run.task.intValue]
            t.cpuNanoseconds = t.cpuNanoseconds.adding(saturating: run.length)  // saturating, as above
            t.runs += 1
            if run.startInferred { t.inferredSwitchIns += 1 }
            if let state = run.endState {
                if state == .running { t.preemptions += 1 } else if state.isBlocked { t.sleeps += 1 }
            }
            summary.tasks[run.task.intValue] = t
        }

        public mutating func finish() -> TraceSummary {
            var summary = self.summary
            tracker.finish { run in Self.account(run, in: &summary) }
            summary.inferredSwitchIns = tracker.inferredSwitchIns
            summary.inferredWithoutRuntime = tracker.inferredWithoutRuntime
            return summary
        }
    }
}
