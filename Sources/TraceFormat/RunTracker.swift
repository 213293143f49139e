/// One stretch of time a task spent on a CPU.
public struct RunInterval: Equatable, Sendable {
    public var task: TaskIndex
    public var cpu: CPU
    /// Trace-clock nanoseconds.
    public var start: UInt64
    public var end: UInt64
    /// How the run ended: the state the task left the CPU in, or nil when the trace ended first.
    public var endState: TaskState?
    /// True when the switch-in was not in the trace and `start` was inferred.
    public var startInferred: Bool
    /// CPU time the kernel charged for this run (`sched_stat_runtime` reports while it ran),
    /// 0 when the trace has none. It can exceed `length`: a task woken onto an idle CPU is
    /// charged from the wakeup, before its switch-in (tens of µs on a VM whose idle CPU halts).
    public var chargedNanoseconds: UInt64 = 0

    /// `end − start`, 0 when a damaged trace put them out of order.
    public var length: UInt64 { end > start ? end - start : 0 }
}

/// Rebuilds run intervals from switch events, inferring switch-ins the kernel did not log.
///
/// Some kernels do not emit every `sched_switch` (on some VMs none from the idle task on a
/// CPU). When a task leaves a CPU it was never seen entering, its start is recovered from
/// the `sched_stat_runtime` reports of that run (they add up to its exact length); without
/// them, from the later of the CPU going idle, the task's wakeup and its previous run.
/// Every inference is counted.
public struct RunTracker {
    private struct CPUState {
        var current: TaskIndex = .idle
        var known = false
        var since: UInt64 = 0
    }

    private var cpus: [CPUState] = []
    /// Per task: runtime reported since it last left a CPU.
    private var runtimeSince: [UInt64] = []
    /// Per task: time of its last runtime report since leaving a CPU.
    private var lastRuntimeAt: [UInt64] = []
    private var lastRunEnd: [UInt64] = []
    private var lastWake: [UInt64] = []
    private var lastRunCPU: [UInt32] = []
    private var firstTimestamp: UInt64?
    private var lastTimestamp: UInt64 = 0
    /// Switch-ins inferred so far.
    public private(set) var inferredSwitchIns = 0
    /// Of those, inferred without runtime reports (less exact).
    public private(set) var inferredWithoutRuntime = 0

    public init(taskCount: Int = 0) { grow(to: taskCount) }

    private mutating func grow(to count: Int) {
        if count > runtimeSince.count {
            let n = count - runtimeSince.count
            runtimeSince.append(contentsOf: repeatElement(0, count: n))
            lastRuntimeAt.append(contentsOf: repeatElement(0, count: n))
            lastRunEnd.append(contentsOf: repeatElement(0, count: n))
            lastWake.append(contentsOf: repeatElement(0, count: n))
            lastRunCPU.append(contentsOf: repeatElement(UInt32.max, count: n))
        }
    }

    /// CPU numbers above this (a corrupt or hostile trace) share one overflow slot instead of
    /// allocating a table entry for every number up to them.
    static let maximumCPUs = 8192

    private mutating func cpuState(_ cpu: CPU) -> Int {
        let i = min(cpu.intValue, Self.maximumCPUs)
        if i >= cpus.count { cpus.append(contentsOf: repeatElement(CPUState(), count: i + 1 - cpus.count)) }
        return i
    }

    /// Feeds one event; returns the run interval that the event ends, if any.
    public mutating func feed(_ event: Event) -> RunInterval? {
        var ended: RunInterval?
        if firstTimestamp == nil { firstTimestamp = event.timestamp }
        lastTimestamp = max(lastTimestamp, event.timestamp)
        let t = event.timestamp
        switch event.kind {
        case let .switchTask(prev, prevState, next):
            grow(to: max(prev.intValue, next.intValue) + 1)
            let c = cpuState(event.cpu)
            if !prev.isIdle {
                let p = prev.intValue
                var start: UInt64
                var inferred = false
                if cpus[c].known && cpus[c].current == prev {
                    // Out-of-order timestamps in a damaged trace must not make a negative run.
                    start = min(cpus[c].since, t)
                } else {
                    inferred = true
                    inferredSwitchIns += 1
                    let floor = max(lastRunEnd[p], firstTimestamp ?? t)
                    if runtimeSince[p] > 0 {
                        start = t - min(runtimeSince[p], t > floor ? t - floor : 0)
                    } else {
                        inferredWithoutRuntime += 1
                        // The CPU was idle (or ran someone else) until `since`; the task could
                        // not run before its wakeup either.
                        start = max(floor, lastWake[p])
                        if cpus[c].known { start = max(start, cpus[c].since) }
                        start = min(start, t)
                    }
                }
                ended = RunInterval(task: prev, cpu: event.cpu, start: start, end: t, endState: prevState, startInferred: inferred,
                                    chargedNanoseconds: runtimeSince[p])
                runtimeSince[p] = 0
                lastRunEnd[p] = t
                lastRunCPU[p] = event.cpu.rawValue
            }
            cpus[c] = CPUState(current: next, known: true, since: t)
        case let .runtime(task, nanoseconds):
            grow(to: task.intValue + 1)
            runtimeSince[task.intValue] &+= nanoseconds
            lastRuntimeAt[task.intValue] = t
        case let .waking(_, target, _, _):
            grow(to: target.intValue + 1)
            lastWake[target.intValue] = t
        case let .wakeupNew(target, _):
            grow(to: target.intValue + 1)
            lastWake[target.intValue] = t
            lastRunEnd[target.intValue] = t
        case let .fork(_, child):
            grow(to: child.intValue + 1)
            lastRunEnd[child.intValue] = t
        default:
            break
        }
        return ended
    }

    /// Ends the trace: calls `run` for tasks still on a CPU, and for tasks whose runtime
    /// reports show they ran after their last switch without a switch-out in the trace.
    public mutating func finish(run: (RunInterval) -> Void) {
        var open = Set<Int>()
        for (c, state) in cpus.enumerated() where state.known && !state.current.isIdle {
            open.insert(state.current.intValue)
            run(RunInterval(task: state.current, cpu: CPU(min(c, Int(UInt32.max))), start: state.since, end: max(lastTimestamp, state.since),
                            endState: nil, startInferred: false, chargedNanoseconds: runtimeSince[state.current.intValue]))
            runtimeSince[state.current.intValue] = 0
        }
        for p in runtimeSince.indices where runtimeSince[p] > 0 && !open.contains(p) {
            let end = lastRuntimeAt[p]
            let start = min(max(end - min(runtimeSince[p], end), lastRunEnd[p]), end)
            inferredSwitchIns += 1
            run(RunInterval(task: TaskIndex(p), cpu: CPU(rawValue: lastRunCPU[p] == UInt32.max ? 0 : lastRunCPU[p]),
                            start: start, end: end, endState: nil, startInferred: true, chargedNanoseconds: runtimeSince[p]))
            runtimeSince[p] = 0
        }
    }
}
