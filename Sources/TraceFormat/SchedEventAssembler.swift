import Foundation

/// Builds a trace (task table + events) from decoded scheduler tracepoints, whatever text
/// tool printed them (`perf script`, `trace-cmd report`). Shared by `PerfScriptImporter` and
/// `TraceCmdImporter`: they parse a line into a tracepoint name, its fields and the task that
/// was current; this turns it into `Event`s, counts what was seen and says what was missing.
public struct SchedEventAssembler {
    /// The task table so far (index 0 is the idle task).
    public private(set) var tasks: [TaskInfo] = [TaskInfo.idle]
    /// Converted events in input order (not necessarily time order: see `sortedEvents()`).
    public private(set) var events: [Event] = []
    /// Lines that could not be used (line number, reason); at most 20 kept.
    public private(set) var problems: [(line: Int, reason: String)] = []
    /// Lines skipped: unparsable ones and tracepoints this model does not use.
    public private(set) var skippedLines = 0
    /// How many records of each tracepoint (name without system, e.g. `sched_switch`) were read.
    public private(set) var tracepointCounts: [String: Int] = [:]
    /// Highest CPU number seen.
    public private(set) var maxCPU = 0
    /// Events the source tool reported as lost, per CPU.
    public var lostEvents: [UInt64] = []
    /// `sched_wakeup` records, kept aside: used as wakings only when the trace has no `sched_waking`.
    private var wakeups: [Event] = []
    private var indexOfTid: [Int32: TaskIndex] = [0: .idle]
    /// Tasks whose comm came from a truncated or cached source and should take the next
    /// comm a tracepoint field gives.
    private var provisionalComm = Set<Int>()

    public init() {}

    /// The task index for `tid`, creating it. `newTask` (a fork's child) always gets a new
    /// index, so a reused pid is a new task.
    /// - Parameters:
    ///   - provisional: the comm is a guess (trace-cmd's cached, truncated comm); the first
    ///     comm a tracepoint field gives replaces it.
    public mutating func task(_ tid: Int32, tgid: Int32? = nil, comm: String, provisional: Bool = false, newTask: Bool = false) -> TaskIndex {
        if tid <= 0 { return .idle }
        // A task still shows up after its sched_process_exit (its last switch-out), so only
        // a fork makes a known tid a new task (pid reuse).
        if let i = indexOfTid[tid], !newTask {
            if let tgid, tasks[i.intValue].tgid != tgid { tasks[i.intValue].tgid = tgid }
            if !provisional, provisionalComm.contains(i.intValue), !comm.isEmpty, comm != "?" {
                tasks[i.intValue].comm = comm
                provisionalComm.remove(i.intValue)
            }
            return i
        }
        tasks.append(TaskInfo(tid: tid, tgid: tgid ?? tid, comm: comm, isKernelThread: false))
        let i = TaskIndex(tasks.count - 1)
        if provisional || comm == "?" { provisionalComm.insert(i.intValue) }
        indexOfTid[tid] = i
        return i
    }

    /// Records a line that could not be used.
    public mutating func problem(line: Int, _ reason: String) {
        if problems.count < 20 { problems.append((line, reason)) }
        skippedLines += 1
    }

    /// Adds one tracepoint record.
    /// - Parameters:
    ///   - name: tracepoint name without its system (`sched_switch`).
    ///   - fields: `key=value` fields as printed (values may be numbers or letters).
    ///   - current: the task that was running when the record was logged.
    ///   - context: the interrupt context from the record's flags, or nil when the tool does
    ///     not print them (then a waking with the idle task current is taken as an interrupt).
    ///   - line: input line number, for problems.
    public mutating func add(
        name: String, fields: [String: String], timestamp: UInt64, cpu: Int, current: TaskIndex,
        context: WakeContext?, line: Int
    ) {
        tracepointCounts[name, default: 0] += 1
        maxCPU = max(maxCPU, cpu)
        let c = CPU(cpu)
        func int(_ key: String) -> Int32? { fields[key].flatMap { Int32($0.trimmingCharacters(in: .whitespaces)) } }
        func comm(_ key: String) -> String { fields[key] ?? "?" }
        switch name {
        case "sched_switch":
            guard let prevPid = int("prev_pid"), let nextPid = int("next_pid") else { return problem(line: line, "sched_switch without prev_pid/next_pid") }
            let prev = task(prevPid, comm: comm("prev_comm"))
            let next = task(nextPid, comm: comm("next_comm"))
            learnPriority(prev, int("prev_prio"))
            learnPriority(next, int("next_prio"))
            events.append(Event(timestamp: timestamp, cpu: c, kind: .switchTask(prev: prev, prevState: Self.state(fields["prev_state"] ?? ""), next: next)))
        case "sched_waking", "sched_wakeup":
            guard let target = int("pid") else { return problem(line: line, "\(name) without pid") }
            let t = task(target, comm: comm("comm"))
            let targetCPU = CPU(Int(fields["target_cpu"]?.trimmingCharacters(in: .whitespaces) ?? "") ?? cpu)
            let ctx = context ?? (current.isIdle ? .hardIRQ : .task)
            let event = Event(timestamp: timestamp, cpu: c, kind: .waking(waker: current, target: t, targetCPU: targetCPU, context: ctx))
            if name == "sched_waking" { events.append(event) } else { wakeups.append(event) }
        case "sched_wakeup_new":
            guard let target = int("pid") else { return problem(line: line, "\(name) without pid") }
            let t = task(target, comm: comm("comm"))
            let targetCPU = CPU(Int(fields["target_cpu"]?.trimmingCharacters(in: .whitespaces) ?? "") ?? cpu)
            events.append(Event(timestamp: timestamp, cpu: c, kind: .wakeupNew(target: t, targetCPU: targetCPU)))
        case "sched_process_fork":
            // perf prints `comm= pid= child_comm= child_pid=`, trace-cmd -R the field names.
            guard let parent = int("parent_pid") ?? int("pid"), let child = int("child_pid") else {
                return problem(line: line, "sched_process_fork without parent/child pid")
            }
            let p = task(parent, comm: fields["parent_comm"] ?? comm("comm"))
            let ch = task(child, comm: comm("child_comm"), newTask: true)
            tasks[ch.intValue].parent = p
            events.append(Event(timestamp: timestamp, cpu: c, kind: .fork(parent: p, child: ch)))
        case "sched_process_exec":
            guard let target = int("pid") ?? (current.isIdle ? nil : tasks[current.intValue].tid) else {
                return problem(line: line, "sched_process_exec without pid")
            }
            let t = task(target, comm: tasks[current.intValue].comm, provisional: true)
            let file = fields["filename"] ?? tasks[t.intValue].comm
            let newComm = String((file.split(separator: "/").last.map(String.init) ?? file).prefix(15))
            events.append(Event(timestamp: timestamp, cpu: c, kind: .exec(task: t, comm: newComm)))
        case "sched_process_exit":
            guard let target = int("pid") else { return problem(line: line, "sched_process_exit without pid") }
            let t = task(target, comm: comm("comm"))
            events.append(Event(timestamp: timestamp, cpu: c, kind: .exit(task: t)))
        case "sched_migrate_task":
            guard let target = int("pid"), let from = int("orig_cpu"), let to = int("dest_cpu"), from >= 0, to >= 0 else {
                return problem(line: line, "sched_migrate_task without pid/orig_cpu/dest_cpu")
            }
            let t = task(target, comm: comm("comm"))
            learnPriority(t, int("prio"))
            events.append(Event(timestamp: timestamp, cpu: c, kind: .migrate(task: t, from: CPU(Int(from)), to: CPU(Int(to)))))
        case "sched_stat_runtime":
            guard let target = int("pid"), let runtime = fields["runtime"].flatMap({ UInt64($0.split(separator: " ").first ?? "") }) else {
                return problem(line: line, "sched_stat_runtime without pid/runtime")
            }
            let t = task(target, comm: comm("comm"))
            events.append(Event(timestamp: timestamp, cpu: c, kind: .runtime(task: t, nanoseconds: runtime)))
        default:
            skippedLines += 1
        }
    }

    /// Policy and nice/priority from a kernel `prio` field, the first time a task shows one:
    /// -1 deadline, 0…99 real-time (FIFO or RR: the text does not say which; FIFO is assumed),
    /// 100…139 a normal task with nice = prio − 120 (BATCH and IDLE look the same as OTHER).
    mutating func learnPriority(_ task: TaskIndex, _ prio: Int32?) {
        guard let prio, !task.isIdle, tasks[task.intValue].policy == nil else { return }
        switch prio {
        case ..<0:
            tasks[task.intValue].policy = .deadline
        case 0..<100:
            tasks[task.intValue].policy = .fifo
            tasks[task.intValue].realtimePriority = 99 - prio
        case 100..<140:
            tasks[task.intValue].policy = .other
            tasks[task.intValue].nice = prio - 120
        default:
            break
        }
    }

    /// `key=value` pairs; values may contain spaces (comms), so a value runs to the next ` key=`.
    public static func fields(_ text: Substring) -> [String: String] {
        var result: [String: String] = [:]
        var key: String?
        var value = ""
        for token in text.split(separator: " ", omittingEmptySubsequences: true) {
            if token == "==>" { continue }
            if let eq = token.firstIndex(of: "="), eq != token.startIndex, token[..<eq].allSatisfy({ $0.isLetter || $0 == "_" || $0.isNumber }) {
                if let k = key { result[k] = value }
                key = String(token[..<eq])
                value = String(token[token.index(after: eq)...])
            } else if key != nil {
                value += " " + token
            }
        }
        if let k = key { result[k] = value }
        return result
    }

    /// `prev_state` as letters (perf: R, R+, S, D, T, t, X, Z, P, I, W, "D|K") or as the raw
    /// number trace-cmd -R prints (TASK_* bits; 0x100, TASK_REPORT_MAX, means preempted).
    public static func state(_ text: String) -> TaskState {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        if let number = Int(trimmed) ?? (trimmed.hasPrefix("0x") ? Int(trimmed.dropFirst(2), radix: 16) : nil) {
            if number == 0 || number & 0x100 != 0 { return .running }
            if number & 0x01 != 0 { return .sleeping }
            if number & 0x02 != 0 { return .uninterruptible }
            if number & 0x0C != 0 { return .stopped }
            if number & 0x30 != 0 { return .dead }
            return .other
        }
        switch trimmed.first {
        case "R": return .running
        case "S": return .sleeping
        case "D": return .uninterruptible
        case "X", "Z": return .dead
        case "T", "t": return .stopped
        default: return .other
        }
    }

    /// What the trace lacks and what that costs, one sentence each. Empty when every
    /// tracepoint the model uses was seen.
    public var missingEventNotes: [String] {
        var notes: [String] = []
        let n = tracepointCounts
        if n["sched_switch", default: 0] == 0 {
            notes.append("no sched_switch: no run intervals, nothing to replay — record with sched:sched_switch")
        }
        if n["sched_waking", default: 0] == 0 {
            if n["sched_wakeup", default: 0] > 0 {
                notes.append("no sched_waking: sched_wakeup used instead (wake times a little late, logged where the wakee is queued)")
            } else {
                notes.append("no sched_waking or sched_wakeup: every sleep replays as a timed sleep, no task-to-task wakes")
            }
        }
        if n["sched_stat_runtime", default: 0] == 0 {
            notes.append("no sched_stat_runtime: runs whose switch-in was not logged are inferred from wakeups (less exact)")
        }
        if n["sched_process_fork", default: 0] == 0 {
            notes.append("no sched_process_fork: parents unknown, threads started before their first run")
        }
        if n["sched_process_exec", default: 0] == 0 { notes.append("no sched_process_exec: comm changes not seen") }
        if n["sched_process_exit", default: 0] == 0 { notes.append("no sched_process_exit: exits not seen") }
        if n["sched_wakeup_new", default: 0] == 0 { notes.append("no sched_wakeup_new") }
        return notes
    }

    /// Tracepoints the model uses without one in this trace (names), for `metadata.extra`.
    public var missingTracepoints: [String] {
        ["sched_switch", "sched_waking", "sched_wakeup_new", "sched_process_fork", "sched_process_exec",
         "sched_process_exit", "sched_migrate_task", "sched_stat_runtime"].filter { tracepointCounts[$0, default: 0] == 0 }
    }

    /// Events in time order, `sched_wakeup` records standing in for `sched_waking` when the
    /// trace has none. The sort is stable: equal times keep input order.
    public func sortedEvents() -> [Event] {
        var e = events
        if tracepointCounts["sched_waking", default: 0] == 0 { e += wakeups }
        // Index-tagged sort: Swift's sort is not documented as stable.
        let order = e.indices.sorted { e[$0].timestamp != e[$1].timestamp ? e[$0].timestamp < e[$1].timestamp : $0 < $1 }
        return order.map { e[$0] }
    }

    /// Writes the trace to `path`: the task table (kernel threads guessed from their comm;
    /// tasks in the trees of `recordedTids` marked recorded), the sorted events, and
    /// metadata with first/last time, CPU count, lost events, inferred switch-ins, the
    /// tracepoint counts (`extra["import.tracepoints"]`) and what is missing
    /// (`extra["import.missing"]`, `extra["import.notes"]`).
    /// - Throws: `TraceError.io`.
    public func write(to path: String, metadata: TraceMetadata, recordedTids: Set<Int32> = []) throws {
        let sorted = sortedEvents()
        var meta = metadata
        meta.firstTimestamp = sorted.first?.timestamp ?? 0
        meta.lastTimestamp = sorted.last?.timestamp ?? 0
        meta.durationNanoseconds = meta.lastTimestamp - meta.firstTimestamp
        if meta.cpuCount == 0 { meta.cpuCount = maxCPU + 1 }
        if !lostEvents.isEmpty { meta.lostEvents = lostEvents }
        meta.extra["import.tracepoints"] = tracepointCounts.keys.sorted().map { "\($0)=\(tracepointCounts[$0]!)" }.joined(separator: " ")
        let missing = missingTracepoints
        if !missing.isEmpty { meta.extra["import.missing"] = missing.joined(separator: " ") }
        let notes = missingEventNotes
        if !notes.isEmpty { meta.extra["import.notes"] = notes.joined(separator: "; ") }
        let writer = try TraceWriter(path: path, metadata: meta)
        let table = markedTasks(recordedTids: recordedTids)
        for t in table.dropFirst() { _ = writer.addTask(t) }
        var tracker = RunTracker(taskCount: table.count)
        for e in sorted {
            try writer.append(e)
            _ = tracker.feed(e)
        }
        tracker.finish { _ in }
        meta.inferredSwitchIns = UInt64(tracker.inferredSwitchIns)
        try writer.finish(metadata: meta)
    }

    /// The task table with `isKernelThread` guessed and the trees of `recordedTids` (a task
    /// whose tid, tgid or an ancestor's is listed) marked `isRecorded`.
    public func markedTasks(recordedTids: Set<Int32>) -> [TaskInfo] {
        var table = tasks
        for i in table.indices where i > 0 {
            table[i].isKernelThread = Self.looksLikeKernelThread(table[i].comm) && table[i].parent == nil
            var p: TaskIndex? = TaskIndex(i)
            var depth = 0
            while let q = p, depth < 1000 {
                if recordedTids.contains(table[q.intValue].tgid) || recordedTids.contains(table[q.intValue].tid) {
                    table[i].isRecorded = true
                    break
                }
                p = table[q.intValue].parent
                depth += 1
            }
        }
        return table
    }

    /// Kernel threads a text trace shows without a fork: kworker/…, ksoftirqd/…, migration/…, rcu_…
    public static func looksLikeKernelThread(_ comm: String) -> Bool {
        let prefixes = ["kworker", "ksoftirqd", "migration", "rcu_", "kthreadd", "watchdog", "cpuhp", "idle_inject", "kcompactd",
                        "khugepaged", "kswapd", "irq/", "jbd2", "kauditd", "oom_reaper", "writeback", "kblockd", "swapper"]
        return prefixes.contains { comm.hasPrefix($0) }
    }
}
