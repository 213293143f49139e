import TraceFormat

/// Which recorded tasks to replay.
public struct TaskSelection: Sendable, Equatable {
    /// Thread or process ids: the tasks with that tid, or in that thread group.
    public var pids: [Int32] = []
    /// Command names (exact, as in the task table).
    public var comms: [String] = []
    /// Process trees: the process, its threads and every descendant.
    public var trees: [Int32] = []
    /// Every user task (kernel threads still excluded unless named by `pids`).
    public var all = false

    public init(pids: [Int32] = [], comms: [String] = [], trees: [Int32] = [], all: Bool = false) {
        self.pids = pids
        self.comms = comms
        self.trees = trees
        self.all = all
    }

    /// True when nothing was asked: the recorded command's tree, or for a system-wide
    /// trace every user task.
    public var isDefault: Bool { pids.isEmpty && comms.isEmpty && trees.isEmpty && !all }

    /// Resolves the selection against a task table. Kernel threads are left out unless a
    /// `pids` entry names them.
    public func resolve(_ tasks: [TaskInfo]) -> Set<TaskIndex> {
        var selected = Set<TaskIndex>()
        let user = tasks.indices.filter { $0 > 0 && !tasks[$0].isKernelThread && tasks[$0].tid > 0 }
        if isDefault {
            let recorded = user.filter { tasks[$0].isRecorded }
            for i in recorded.isEmpty ? user : recorded { selected.insert(TaskIndex(i)) }
            return selected
        }
        if all { for i in user { selected.insert(TaskIndex(i)) } }
        for i in tasks.indices where i > 0 {
            let t = tasks[i]
            if pids.contains(t.tid) || pids.contains(t.tgid) { selected.insert(TaskIndex(i)) }
        }
        for i in user where comms.contains(tasks[i].comm) { selected.insert(TaskIndex(i)) }
        if !trees.isEmpty {
            // A task is in a tree when it, its thread group or an ancestor is a root.
            var memo = [Int: Bool]()
            func inTree(_ i: Int, depth: Int) -> Bool {
                if let m = memo[i] { return m }
                let t = tasks[i]
                var result = trees.contains(t.tid) || trees.contains(t.tgid)
                if !result, depth < 4096, let p = t.parent, p.intValue > 0, p.intValue < tasks.count, p.intValue != i {
                    result = inTree(p.intValue, depth: depth + 1)
                }
                memo[i] = result
                return result
            }
            for i in user where inTree(i, depth: 0) { selected.insert(TaskIndex(i)) }
        }
        return selected
    }
}

/// Turns a trace into replay programs (DESIGN.md, "Replay model"). Pure: no threads, no clocks.
///
/// Two passes over the events. The first rebuilds every selected task's run intervals with
/// `RunTracker` (so runs whose switch-in the kernel did not log still get their true length,
/// and idle gaps are never burned). The second walks the events in order and cuts each task's
/// CPU time at the points where it woke someone, blocked, forked, exec'd or exited:
/// - a switch-out in a blocked state (S, D, …) is a sleep; a preemption (R) is not,
/// - the sleep ends with the next `sched_waking` of the task: from a replayed task in task
///   context it becomes `wait` on that waker's edge, and the waker gets a `wake` at that
///   point of its own program; from an interrupt, a timer or an unreplayed task it becomes a
///   timed sleep to the recorded wake time,
/// - a fork by a replayed parent becomes `spawn`; other tasks start at their first activity,
/// - in a process whose threads ran one at a time (`LockGroup`), a wake whose wakee first ran
///   when its waker blocked and gave it the CPU is issued at that block.
public enum PlanBuilder {
    /// Threads of one process that ran two at once for less than this share of the time its
    /// threads other than the busiest ran are taken to share a lock (`LockGroup`). Measured:
    /// CPython threads passing work through queues 2.8–3.5 %, `perf bench sched pipe -T`
    /// 0.4 %, cyclictest 0.8 %; threads doing work side by side, `perf bench sched messaging
    /// -t` 45 %, `xz -T2` 99 %.
    public static let lockOverlapLimit = 0.10

    /// Builds the plan for `selection` from a trace file (reads it twice, streaming).
    /// - Throws: `TraceError` for a damaged chunk.
    /// - Parameter observe: also given every event, in the first of the two passes over the
    ///   trace (a caller that needs its own figures need not read the trace once more).
    /// - Parameter inferLocks: find `LockGroup`s and issue their wakes at the waker's block
    ///   where the trace shows the wakee waiting for it (`--no-lock-inference`: false).
    public static func build(reader: TraceReader, selection: Set<TaskIndex>, inferLocks: Bool = true,
                             observe: ((Event) -> Void)? = nil) throws -> ReplayPlan {
        var builder = Builder(tasks: reader.tasks, selection: selection)
        try reader.forEachEvent { builder.trackRuns($0); observe?($0) }
        builder.finishRuns()
        if inferLocks { builder.findLockGroups() }
        try reader.forEachEvent { builder.feed($0) }
        return builder.finish(cpuLatencyRequests: reader.metadata.cpuLatencyRequests ?? [], selection: selection)
    }

    /// Builds the plan from events in memory (tests, imports).
    /// - Parameter cpuLatencyRequests: the trace's CPU latency QoS calls (`TraceMetadata.cpuLatencyRequests`).
    public static func build(events: [Event], tasks: [TaskInfo], selection: Set<TaskIndex>,
                             cpuLatencyRequests: [CPULatencyRequest] = [], inferLocks: Bool = true) -> ReplayPlan {
        var builder = Builder(tasks: tasks, selection: selection)
        for e in events { builder.trackRuns(e) }
        builder.finishRuns()
        if inferLocks { builder.findLockGroups() }
        for e in events { builder.feed(e) }
        return builder.finish(cpuLatencyRequests: cpuLatencyRequests, selection: selection)
    }

    struct TaskState {
        var program = -1
        var blocked = false
        /// The current block is the one the task was in when the trace (or the task) started.
        var initialBlock = false
        var exited = false
        /// CPU time is accounted up to this trace time.
        var boundary: UInt64 = 0
        var intervals: [RunInterval] = []
        var cursor = 0
        /// The task this one last woke (task context), for hand-offs.
        var lastWoke = -1
        /// The task that preempted this one right after this one woke it, or -1, and when.
        var preemptedBy = -1
        var preemptedAt: UInt64 = 0
        /// A hand-off waiting for confirmation: the task that blocked and gave this one its
        /// CPU back, when, and how many atoms that task had then.
        var pendingHandOff = -1
        var handOffTime: UInt64 = 0
        /// How long it waited for that hand-off in the trace (preemption → the other's block).
        var handOffWaited: UInt64 = 0
        var handOffAtomCount = 0
        /// Wakes received from replayed wakers so far (pooled ordinals).
        var wakesReceived: UInt32 = 0
        /// The last wake this task received while it was still running, if it has not been
        /// preempted since: when the task then blocks and runs again with no wake in between,
        /// that wake ended the block (`InFlightWake`).
        var inFlightWake: InFlightWake?
        /// Until this task next runs: the task whose wake ended its last block, and the index
        /// of that wake in the waker's program (for `issueAtBlock`).
        var lastWaker = -1
        var lastWakeAtom = -1
    }

    /// A wake that came just before its wakee switched out to sleep: `sched_waking` is
    /// logged when `try_to_wake_up` starts, which can be while the wakee, already marked as
    /// sleeping, is still on its way into `schedule()` on another CPU. The wakee then does
    /// block, briefly, and this wake is what ends the block (no other `sched_waking` comes).
    struct InFlightWake {
        var edge: Int
        /// The waker (task index) and the index of the wake atom in its program.
        var waker: Int
        var atom: Int
        /// The edge's wake count and the wakee's pooled ordinal with this wake.
        var count: UInt32
        var ordinal: UInt32
        var time: UInt64
    }

    struct Builder {
        let tasks: [TaskInfo]
        let selected: [Bool]
        var state: [TaskState]
        var tracker: RunTracker
        var plan = ReplayPlan()
        var edgeIndex: [UInt64: Int] = [:]
        var started = false
        var lastTimestamp: UInt64 = 0
        /// Index in `plan.lockGroups` of each task's process, when it is one.
        var lockGroup: [Int32: Int] = [:]

        init(tasks: [TaskInfo], selection: Set<TaskIndex>) {
            self.tasks = tasks
            var s = [Bool](repeating: false, count: tasks.count)
            for t in selection where t.intValue < tasks.count && !t.isIdle { s[t.intValue] = true }
            selected = s
            state = [TaskState](repeating: TaskState(), count: tasks.count)
            tracker = RunTracker(taskCount: tasks.count)
        }

        @inline(__always) func isSelected(_ t: TaskIndex?) -> Bool {
            guard let t, t.intValue < selected.count else { return false }
            return selected[t.intValue]
        }

        // MARK: Pass 1

        mutating func trackRuns(_ event: Event) {
            if !started {
                started = true
                plan.traceStart = event.timestamp
            }
            if let run = tracker.feed(event), isSelected(run.task) { state[run.task.intValue].intervals.append(run) }
        }

        mutating func finishRuns() {
            var late: [RunInterval] = []
            tracker.finish { run in late.append(run) }
            for run in late where isSelected(run.task) { state[run.task.intValue].intervals.append(run) }
            for i in state.indices where !state[i].intervals.isEmpty {
                state[i].intervals.sort { $0.start < $1.start }
            }
            plan.inferredSwitchIns = tracker.inferredSwitchIns
        }

        /// The processes (two or more selected threads, seen on two CPUs or more) whose threads
        /// ran two at once for less than `lockOverlapLimit` of the time the threads other than
        /// the busiest one ran (against the time any ran, a busy thread and a helper that
        /// runs now and then beside it would pass): from the run intervals of pass 1, each
        /// thread's own merged first, swept in time order.
        mutating func findLockGroups() {
            var members: [Int32: [Int]] = [:]
            for i in state.indices where !state[i].intervals.isEmpty { members[tasks[i].tgid, default: []].append(i) }
            for (tgid, threads) in members.sorted(by: { $0.key < $1.key }) where threads.count >= 2 {
                var marks: [(time: UInt64, step: Int)] = []
                var cpus = Set<CPU>()
                var total: UInt64 = 0, busiest: UInt64 = 0
                for i in threads {
                    // A thread's own intervals can overlap (a switch-in inferred early): merged,
                    // so that one thread is never two at once.
                    var spans: [(start: UInt64, end: UInt64)] = []
                    for r in state[i].intervals where r.end > r.start {
                        cpus.insert(r.cpu)
                        if let last = spans.last, r.start <= last.end {
                            spans[spans.count - 1].end = max(last.end, r.end)
                        } else {
                            spans.append((r.start, r.end))
                        }
                    }
                    var own: UInt64 = 0
                    for span in spans {
                        marks.append((span.start, 1))
                        marks.append((span.end, -1))
                        own += span.end - span.start
                    }
                    total = total.adding(saturating: own)
                    busiest = max(busiest, own)
                }
                // Threads kept on one CPU (a one-CPU machine, `taskset`) could not have run at
                // once: their turns say nothing of a lock.
                guard cpus.count >= 2 else { continue }
                // Ends before starts at one instant: a thread handing the CPU to another is
                // not two running at once.
                marks.sort { $0.time < $1.time || ($0.time == $1.time && $0.step < $1.step) }
                var running = 0, last: UInt64 = 0, several: UInt64 = 0
                for m in marks {
                    if running >= 2 { several += m.time - last }
                    running += m.step
                    last = m.time
                }
                let others = total - busiest
                guard others > 0, Double(several) < PlanBuilder.lockOverlapLimit * Double(others) else { continue }
                let leader = threads.first { tasks[$0].tid == tgid } ?? threads[0]
                lockGroup[tgid] = plan.lockGroups.count
                plan.lockGroups.append(LockGroup(tgid: tgid, comm: tasks[leader].comm, threads: threads.count,
                                                 othersRunningNanoseconds: others, overlapNanoseconds: several))
            }
        }

        // MARK: Pass 2

        /// CPU time `task` used between `from` and `to` (trace time). Where the kernel reported
        /// what it charged for a run, that is the run's CPU time (what the replay's burn on the
        /// thread CPU clock reproduces); what it charged beyond the interval (the wakeup of an
        /// idle CPU, charged before the switch-in) belongs to the part the run starts with.
        mutating func cpu(_ task: Int, from: UInt64, to: UInt64) -> UInt64 {
            guard to > from else { return 0 }
            var total: UInt64 = 0
            let intervals = state[task].intervals
            var i = state[task].cursor
            while i < intervals.count && intervals[i].end <= from { i += 1 }
            state[task].cursor = i
            while i < intervals.count && intervals[i].start < to {
                let run = intervals[i]
                let s = max(run.start, from)
                let e = min(run.end, to)
                var part = e > s ? e - s : 0
                if run.chargedNanoseconds > 0 {
                    let length = run.length
                    if run.chargedNanoseconds >= length {
                        if s == run.start { part = part.adding(saturating: run.chargedNanoseconds - length) }
                    } else if length > 0 {
                        // Charged less than the interval (an inferred start placed early):
                        // scale, so that the parts still add up to the charge.
                        part = UInt64(saturatingNanoseconds: Double(part) * Double(run.chargedNanoseconds) / Double(length))
                    }
                }
                total = total.adding(saturating: part)
                i += 1
            }
            return total
        }

        func offset(_ t: UInt64) -> UInt64 { t > plan.traceStart ? t - plan.traceStart : 0 }

        mutating func append(_ atom: Atom, to task: Int) {
            plan.programs[state[task].program].atoms.append(atom)
        }

        /// Accounts the task's CPU time up to `t` as a run atom (merged with a run before it).
        mutating func emitRun(_ task: Int, upTo t: UInt64) {
            let ns = cpu(task, from: state[task].boundary, to: t)
            state[task].boundary = max(state[task].boundary, t)
            guard ns > 0 else { return }
            let p = state[task].program
            if case let .run(previous)? = plan.programs[p].atoms.last {
                plan.programs[p].atoms[plan.programs[p].atoms.count - 1] = .run(nanoseconds: previous.adding(saturating: ns))
            } else {
                plan.programs[p].atoms.append(.run(nanoseconds: ns))
            }
            plan.programs[p].recordedCPUNanoseconds = plan.programs[p].recordedCPUNanoseconds.adding(saturating: ns)
        }

        mutating func newProgram(_ task: Int) -> Int {
            plan.programs.append(TaskProgram(task: TaskIndex(task), info: tasks[task]))
            state[task].program = plan.programs.count - 1
            return state[task].program
        }

        /// Creates the program of a task that existed before the trace (or was forked by an
        /// unreplayed parent we did not see), the first time it shows up.
        mutating func ensureStarted(_ task: Int, at t: UInt64, blocked: Bool) {
            guard state[task].program < 0 else { return }
            _ = newProgram(task)
            state[task].boundary = plan.traceStart
            if blocked {
                state[task].blocked = true
                state[task].initialBlock = true
            } else if let first = state[task].intervals.first, offset(first.start) > 0 {
                // Runnable from the start but first ran later: start it then.
                append(.sleepUntil(offset: offset(first.start), unmatched: false), to: task)
                state[task].boundary = first.start
            }
        }

        mutating func edge(from waker: Int, to wakee: Int, spawn: Bool) -> Int {
            let key = UInt64(waker) << 33 | UInt64(wakee) << 1 | (spawn ? 1 : 0)
            if let e = edgeIndex[key] { return e }
            plan.edges.append(WakeEdge(waker: waker, wakee: wakee, isSpawn: spawn, count: 0))
            edgeIndex[key] = plan.edges.count - 1
            return plan.edges.count - 1
        }

        mutating func feed(_ event: Event) {
            let t = event.timestamp
            lastTimestamp = max(lastTimestamp, t)
            switch event.kind {
            case let .waking(waker, target, _, context):
                let x = target.intValue
                guard isSelected(target), !state[x].exited else {
                    if context == .task, isSelected(waker), !target.isIdle { plan.wakesToUnreplayed += 1 }
                    return
                }
                ensureStarted(x, at: t, blocked: true)
                // An exiting task still wakes its parent (exit_notify runs after sched_process_exit).
                if context == .task, let waker, isSelected(waker), waker != target {
                    let w = waker.intValue
                    ensureStarted(w, at: t, blocked: false)
                    resumeIfBlocked(w, at: t)
                    confirmHandOff(w, wakee: x)
                    emitRun(w, upTo: t)
                    let e = edge(from: state[w].program, to: state[x].program, spawn: false)
                    plan.edges[e].count += 1
                    state[x].wakesReceived += 1
                    plan.edges[e].poolOrdinals.append(state[x].wakesReceived)
                    state[w].lastWoke = x
                    if state[x].blocked {
                        plan.edges[e].waits += 1
                        plan.edges[e].waitPoolOrdinals.append(state[x].wakesReceived)
                        append(.wake(edge: e, target: state[x].program, rendezvous: plan.edges[e].waits), to: w)
                        append(.wait(edge: e, count: plan.edges[e].count, recordedWake: offset(t)), to: x)
                        endBlock(x, at: t)
                        state[x].lastWaker = w
                        state[x].lastWakeAtom = plan.programs[state[w].program].atoms.count - 1
                    } else {
                        // The wakee was not asleep (it had not switched out yet): no order to
                        // keep, unless it blocks next and this wake ends that block.
                        append(.wake(edge: e, target: state[x].program, rendezvous: 0), to: w)
                        state[x].inFlightWake = InFlightWake(
                            edge: e, waker: w, atom: plan.programs[state[w].program].atoms.count - 1,
                            count: plan.edges[e].count, ordinal: state[x].wakesReceived, time: t)
                    }
                } else if state[x].blocked {
                    let unmatched = context == .task && !(waker.map { $0 == target || $0.isIdle } ?? false)
                    if unmatched { plan.unmatchedWaits += 1 }
                    append(.sleepUntil(offset: offset(t), unmatched: unmatched), to: x)
                    endBlock(x, at: t)
                }
            case let .switchTask(prev, prevState, next):
                var handedOff = false
                if isSelected(prev), !state[prev.intValue].exited {
                    let p = prev.intValue
                    state[p].lastWaker = -1
                    ensureStarted(p, at: t, blocked: false)
                    resumeIfBlocked(p, at: t)
                    if prevState.isBlocked && !state[p].blocked {
                        emitRun(p, upTo: t)
                        state[p].pendingHandOff = -1
                        if isSelected(next), state[next.intValue].preemptedBy == p, !state[next.intValue].exited {
                            let n = next.intValue
                            state[n].pendingHandOff = p
                            state[n].handOffTime = t
                            state[n].handOffAtomCount = plan.programs[state[p].program].atoms.count
                            state[n].handOffWaited = t > state[n].preemptedAt ? t - state[n].preemptedAt : 0
                            state[n].preemptedBy = -1
                            handedOff = true
                        }
                        if !handedOff, isSelected(next), state[next.intValue].lastWaker == p {
                            issueAtBlock(waker: p, wakee: next.intValue)
                        }
                        state[p].blocked = true
                        state[p].initialBlock = false
                    } else if prevState == .running {
                        // Preempted: a wake it got while running found it runnable.
                        state[p].inFlightWake = nil
                    }
                    if prevState == .running, isSelected(next), state[p].lastWoke == next.intValue {
                        // The task it just woke preempted it (wakeup preemption).
                        state[p].preemptedBy = next.intValue
                        state[p].preemptedAt = t
                    }
                }
                if isSelected(next), !handedOff { state[next.intValue].preemptedBy = -1 }
                if isSelected(next) { state[next.intValue].lastWaker = -1 }
                if isSelected(next), !state[next.intValue].exited {
                    ensureStarted(next.intValue, at: t, blocked: false)
                    // Running again without a wakeup since it blocked: woken by a wake that came
                    // just before the block, else by one the trace lost.
                    if state[next.intValue].blocked {
                        resumeWithoutWake(next.intValue, at: t)
                    } else {
                        // Woken while waiting for a CPU (preempted): that wake ends no block.
                        state[next.intValue].inFlightWake = nil
                    }
                }
            case let .fork(parent, child):
                let c = child.intValue
                guard isSelected(child), state[c].program < 0 else { return }
                if isSelected(parent), !state[parent.intValue].exited {
                    let p = parent.intValue
                    ensureStarted(p, at: t, blocked: false)
                    resumeIfBlocked(p, at: t)
                    emitRun(p, upTo: t)
                    let program = newProgram(c)
                    plan.programs[program].spawnedBy = state[p].program
                    let e = edge(from: state[p].program, to: program, spawn: true)
                    plan.edges[e].count = 1
                    append(.spawn(program: program, edge: e), to: p)
                    append(.wait(edge: e, count: 1, recordedWake: offset(t)), to: c)
                } else {
                    _ = newProgram(c)
                    if offset(t) > 0 { append(.sleepUntil(offset: offset(t), unmatched: false), to: c) }
                }
                state[c].boundary = t
            case let .exec(task, comm):
                guard isSelected(task), !state[task.intValue].exited else { return }
                ensureStarted(task.intValue, at: t, blocked: false)
                resumeIfBlocked(task.intValue, at: t)
                state[task.intValue].pendingHandOff = -1
                emitRun(task.intValue, upTo: t)
                append(.exec(comm: comm), to: task.intValue)
            case let .exit(task):
                guard isSelected(task), !state[task.intValue].exited else { return }
                ensureStarted(task.intValue, at: t, blocked: false)
                resumeIfBlocked(task.intValue, at: t)
                emitRun(task.intValue, upTo: t)
                state[task.intValue].exited = true
            case .runtime(let task, _):
                if isSelected(task) { ensureStarted(task.intValue, at: t, blocked: false) }
            case .wakeupNew, .migrate:
                break
            }
        }

        /// Hand-offs. Task P woke Q, Q preempted P at once (wakeup preemption), then Q
        /// blocked and handed the CPU back to P. If the first thing P does after resuming is
        /// to wake Q again, it was answering Q (the pipe ping-pong of two tasks sharing a
        /// CPU): P could not have gone on before Q blocked, and the replay must keep that
        /// order even when the two run on different CPUs. It becomes a wake in Q's program at
        /// its block and a wait in P's at its preemption (free when they share a CPU again;
        /// not a sleep). If P wakes someone else first (a sender writing to its next
        /// receiver), there was no dependency and nothing is added.
        mutating func confirmHandOff(_ resumed: Int, wakee: Int) {
            let q = state[resumed].pendingHandOff
            guard q >= 0 else { return }
            state[resumed].pendingHandOff = -1
            // Only while Q is still in the block it handed off from (no atom since).
            guard q == wakee, state[q].blocked, plan.programs[state[q].program].atoms.count == state[resumed].handOffAtomCount else { return }
            let t = state[resumed].handOffTime
            let e = edge(from: state[q].program, to: state[resumed].program, spawn: false)
            plan.edges[e].count += 1
            state[resumed].wakesReceived += 1
            plan.edges[e].poolOrdinals.append(state[resumed].wakesReceived)
            plan.edges[e].waits += 1
            plan.edges[e].waitPoolOrdinals.append(state[resumed].wakesReceived)
            append(.wake(edge: e, target: state[resumed].program, rendezvous: plan.edges[e].waits), to: q)
            emitRun(resumed, upTo: t)
            append(.handOff(edge: e, count: plan.edges[e].count, recordedWake: offset(t), recordedWait: state[resumed].handOffWaited), to: resumed)
            plan.handoffs += 1
        }

        /// A task seen running at `t` (waking someone, switching out, forking, exec'ing,
        /// exiting) while still blocked here was switched in without a logged switch-in and
        /// without a wake since it blocked: its block ended when that run started.
        mutating func resumeIfBlocked(_ task: Int, at t: UInt64) {
            guard state[task].blocked else { return }
            let runs = state[task].intervals
            var lo = 0, hi = runs.count
            while lo < hi {
                let mid = (lo + hi) / 2
                if runs[mid].start <= t { lo = mid + 1 } else { hi = mid }
            }
            let start = lo > 0 && runs[lo - 1].end >= t ? max(runs[lo - 1].start, state[task].boundary) : t
            resumeWithoutWake(task, at: start)
            plan.resumedWithoutSwitchIn += 1
        }

        /// Ends the block of `task`, running again at `t` with no wake seen since it blocked:
        /// the wake that came just before it blocked ends it (turned into a wake the waker
        /// holds for this wait, and the wait), or, without one, a timed sleep to `t`.
        mutating func resumeWithoutWake(_ task: Int, at t: UInt64) {
            if let w = state[task].inFlightWake, !state[task].initialBlock, state[w.waker].program >= 0 {
                let e = w.edge
                plan.edges[e].waits += 1
                plan.edges[e].waitPoolOrdinals.append(w.ordinal)
                plan.programs[state[w.waker].program].atoms[w.atom] = .wake(edge: e, target: state[task].program, rendezvous: plan.edges[e].waits)
                append(.wait(edge: e, count: w.count, recordedWake: offset(w.time)), to: task)
                plan.inFlightWakes += 1
            } else {
                append(.sleepUntil(offset: offset(t), unmatched: false), to: task)
            }
            endBlock(task, at: t)
        }

        /// A lock the trace cannot see. `waker` woke `wakee` (asleep), ran on, blocked, and gave
        /// `wakee` its CPU: the wakee waited for that block. In a `LockGroup` that wait was the
        /// lock (CPython's GIL: the waker holds it until it blocks; a woken thread that runs
        /// before only tries for it and sleeps again), so the wake moves to the block: the
        /// replay's wakee cannot run alongside its waker where the kernel puts it on another
        /// CPU either. Elsewhere the wait was the kernel's choice and stays the kernel's.
        /// Only over runs and wakes to other tasks; the wake's place becomes an empty run
        /// (`finish` removes them), so that atom indices held for in-flight wakes stay valid.
        mutating func issueAtBlock(waker p: Int, wakee x: Int) {
            guard let g = lockGroup[tasks[p].tgid], tasks[x].tgid == tasks[p].tgid else { return }
            let program = state[p].program
            let i = state[x].lastWakeAtom
            // In place: a copy of the atoms would make each move cost the whole program.
            let count = plan.programs[program].atoms.count
            guard i >= 0, i + 1 < count, case let .wake(_, target, _) = plan.programs[program].atoms[i] else { return }
            for j in (i + 1)..<count {
                switch plan.programs[program].atoms[j] {
                case .run: continue
                case let .wake(_, other, _) where other != target: continue
                default: return
                }
            }
            let wake = plan.programs[program].atoms[i]
            plan.programs[program].atoms[i] = .run(nanoseconds: 0)
            plan.programs[program].atoms.append(wake)
            plan.lockGroups[g].wakesAtBlock += 1
        }

        /// Removes the empty runs `issueAtBlock` left and merges the runs around them.
        mutating func mergeEmptyRuns() {
            for p in plan.programs.indices where plan.programs[p].atoms.contains(.run(nanoseconds: 0)) {
                var merged: [Atom] = []
                merged.reserveCapacity(plan.programs[p].atoms.count)
                for atom in plan.programs[p].atoms {
                    guard case let .run(ns) = atom else { merged.append(atom); continue }
                    if ns == 0 { continue }
                    if case let .run(previous)? = merged.last {
                        merged[merged.count - 1] = .run(nanoseconds: previous.adding(saturating: ns))
                    } else {
                        merged.append(atom)
                    }
                }
                plan.programs[p].atoms = merged
            }
        }

        mutating func endBlock(_ task: Int, at t: UInt64) {
            state[task].inFlightWake = nil
            if !state[task].initialBlock { plan.programs[state[task].program].sleeps += 1 }
            state[task].blocked = false
            state[task].initialBlock = false
            state[task].boundary = max(state[task].boundary, t)
        }

        /// - Parameter cpuLatencyRequests: the trace's CPU latency QoS calls; those on requests
        ///   of the selected tasks become the plan's `cpuLatency` (offsets from `traceStart`).
        mutating func finish(cpuLatencyRequests: [CPULatencyRequest] = [], selection: Set<TaskIndex> = []) -> ReplayPlan {
            plan.cpuLatency = CPULatencyTimeline.holds(of: cpuLatencyRequests, tasks: selection, origin: plan.traceStart)
            var last: UInt64 = plan.traceStart
            for i in state.indices where state[i].program >= 0 {
                if !state[i].exited {
                    let end = state[i].intervals.last.map { max($0.end, state[i].boundary) } ?? state[i].boundary
                    emitRun(i, upTo: end)
                } else if let dying = state[i].intervals.last, dying.endState != nil, dying.end > state[i].boundary {
                    // The exit path runs on after sched_process_exit (the address space and
                    // the files released, the parent notified) until the task's last
                    // switch-out: CPU the task used, hundreds of µs for a process with
                    // sockets, burned as its last run. Not when the trace ended first.
                    emitRun(i, upTo: dying.end)
                }
                last = max(last, state[i].boundary)
            }
            plan.recordedMakespan = last - plan.traceStart
            if !plan.lockGroups.isEmpty { mergeEmptyRuns() }
            // A trailing wait or sleep with nothing after it is kept: it reproduces the last block.
            return plan
        }
    }
}
