import Foundation

/// Converts the text of `perf script --ns -F comm,tid,pid,cpu,time,event,trace` over a
/// `perf sched record` file into trace events.
///
/// perf's text has no interrupt-context flags, so a wakeup's context is inferred: a waking
/// logged while the idle task was current is taken as an interrupt (timer or device), any
/// other as a task wakeup. The metadata says so (`extra["wakeContext"]`).
public struct PerfScriptImporter {
    public private(set) var tasks: [TaskInfo] = [TaskInfo.idle]
    public private(set) var events: [Event] = []
    /// Lines that could not be parsed (line number, reason), at most 20 kept.
    public private(set) var problems: [(line: Int, reason: String)] = []
    public private(set) var skippedLines = 0
    private var indexOfTid: [Int32: TaskIndex] = [0: .idle]
    private var exited = Set<Int32>()
    private var lineNumber = 0
    private var maxCPU = 0

    public init() {}

    /// The task index for `tid`, creating it (a tid seen after its exit gets a new index).
    mutating func task(_ tid: Int32, tgid: Int32? = nil, comm: String) -> TaskIndex {
        if tid <= 0 { return .idle }
        if let i = indexOfTid[tid], !exited.contains(tid) {
            if let tgid, tasks[i.intValue].tgid != tgid { tasks[i.intValue].tgid = tgid }
            return i
        }
        exited.remove(tid)
        tasks.append(TaskInfo(tid: tid, tgid: tgid ?? tid, comm: comm, isKernelThread: false))
        let i = TaskIndex(tasks.count - 1)
        indexOfTid[tid] = i
        return i
    }

    /// Parses one line of perf script output.
    public mutating func parse(line raw: Substring) {
        lineNumber += 1
        let line = raw.trimmingCharacters(in: .whitespaces)
        guard !line.isEmpty else { return }
        // "<comm> <tid>/<pid> [<cpu>] <sec>.<ns>: sched:<event>: <fields>"
        guard let cpuOpen = line.range(of: " ["), let cpuClose = line.range(of: "] ", range: cpuOpen.upperBound..<line.endIndex) else {
            return problem("no [cpu] field")
        }
        let head = line[..<cpuOpen.lowerBound].trimmingCharacters(in: .whitespaces)
        guard let space = head.lastIndex(of: " ") else { return problem("no tid/pid field") }
        let ids = head[head.index(after: space)...].split(separator: "/")
        let comm = head[..<space].trimmingCharacters(in: .whitespaces)
        guard ids.count == 2, let tid = Int32(ids[0]), let pid = Int32(ids[1]) else { return problem("bad tid/pid") }
        guard let cpu = Int(line[cpuOpen.upperBound..<cpuClose.lowerBound]) else { return problem("bad cpu") }
        let rest = line[cpuClose.upperBound...].trimmingCharacters(in: .whitespaces)
        guard let colon = rest.firstIndex(of: ":") else { return problem("no timestamp") }
        let timeText = rest[..<colon]
        let parts = timeText.split(separator: ".")
        guard parts.count == 2, let seconds = UInt64(parts[0]), let fraction = UInt64(parts[1]), parts[1].count <= 9 else {
            return problem("bad timestamp \(timeText) (use perf script --ns)")
        }
        let scale = UInt64(pow(10.0, Double(9 - parts[1].count)))
        let timestamp = seconds * 1_000_000_000 + fraction * scale
        let afterTime = rest[rest.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        guard let eventEnd = afterTime.range(of: ": ") ?? (afterTime.hasSuffix(":") ? afterTime.range(of: ":", options: .backwards) : nil) else {
            return problem("no event name")
        }
        let name = afterTime[..<eventEnd.lowerBound].split(separator: ":").last.map(String.init) ?? ""
        let fields = Self.fields(String(afterTime[eventEnd.upperBound...]))
        maxCPU = max(maxCPU, cpu)
        let current = task(tid, tgid: pid, comm: comm)
        let c = CPU(cpu)
        func int(_ key: String) -> Int32? { fields[key].flatMap { Int32($0.trimmingCharacters(in: .whitespaces)) } }
        switch name {
        case "sched_switch":
            guard let prevPid = int("prev_pid"), let nextPid = int("next_pid") else { return problem("sched_switch without pids") }
            let prev = task(prevPid, comm: fields["prev_comm"] ?? "?")
            let next = task(nextPid, comm: fields["next_comm"] ?? "?")
            events.append(Event(timestamp: timestamp, cpu: c, kind: .switchTask(prev: prev, prevState: Self.state(fields["prev_state"] ?? ""), next: next)))
        case "sched_waking", "sched_wakeup_new":
            guard let target = int("pid") else { return problem("\(name) without pid") }
            let t = task(target, comm: fields["comm"] ?? "?")
            let targetCPU = CPU(Int(fields["target_cpu"] ?? "") ?? cpu)
            if name == "sched_waking" {
                let context: WakeContext = current.isIdle ? .hardIRQ : .task
                events.append(Event(timestamp: timestamp, cpu: c, kind: .waking(waker: current, target: t, targetCPU: targetCPU, context: context)))
            } else {
                events.append(Event(timestamp: timestamp, cpu: c, kind: .wakeupNew(target: t, targetCPU: targetCPU)))
            }
        case "sched_process_fork":
            guard let parent = int("pid"), let child = int("child_pid") else { return problem("fork without pids") }
            let p = task(parent, comm: fields["comm"] ?? comm)
            let parentTgid = tasks[p.intValue].tgid
            // A thread (clone with CLONE_THREAD) shows up later with its own tid/pid; start it in the parent's group
            // only when a later line says so.
            let ch = task(child, comm: fields["child_comm"] ?? "?")
            tasks[ch.intValue].parent = p
            _ = parentTgid
            events.append(Event(timestamp: timestamp, cpu: c, kind: .fork(parent: p, child: ch)))
        case "sched_process_exec":
            let target = int("pid") ?? tid
            let t = task(target, comm: comm)
            let file = fields["filename"] ?? comm
            let newComm = String((file.split(separator: "/").last.map(String.init) ?? file).prefix(15))
            events.append(Event(timestamp: timestamp, cpu: c, kind: .exec(task: t, comm: newComm)))
        case "sched_process_exit":
            let target = int("pid") ?? tid
            let t = task(target, comm: fields["comm"] ?? comm)
            events.append(Event(timestamp: timestamp, cpu: c, kind: .exit(task: t)))
            exited.insert(target)
        case "sched_migrate_task":
            guard let target = int("pid"), let from = int("orig_cpu"), let to = int("dest_cpu") else { return problem("migrate without fields") }
            let t = task(target, comm: fields["comm"] ?? "?")
            events.append(Event(timestamp: timestamp, cpu: c, kind: .migrate(task: t, from: CPU(Int(from)), to: CPU(Int(to)))))
        case "sched_stat_runtime":
            guard let target = int("pid"), let runtime = fields["runtime"].flatMap({ UInt64($0.split(separator: " ").first ?? "") }) else {
                return problem("sched_stat_runtime without fields")
            }
            let t = task(target, comm: fields["comm"] ?? "?")
            events.append(Event(timestamp: timestamp, cpu: c, kind: .runtime(task: t, nanoseconds: runtime)))
        default:
            skippedLines += 1
        }
    }

    private mutating func problem(_ reason: String) {
        if problems.count < 20 { problems.append((lineNumber, reason)) }
        skippedLines += 1
    }

    /// `key=value` pairs; values may contain spaces (comms), so a value runs to the next ` key=`.
    static func fields(_ text: String) -> [String: String] {
        var result: [String: String] = [:]
        let tokens = text.split(separator: " ", omittingEmptySubsequences: true)
        var key: String?
        var value = ""
        for token in tokens {
            if token == "==>" { continue }
            if let eq = token.firstIndex(of: "="), token[..<eq].allSatisfy({ $0.isLetter || $0 == "_" }), !token[..<eq].isEmpty {
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

    /// perf's prev_state letters: R, R+, S, D, T, t, X, Z, P, I, and combinations like "D|K".
    static func state(_ text: String) -> TaskState {
        switch text.first {
        case "R": .running
        case "S": .sleeping
        case "D": .uninterruptible
        case "X", "Z": .dead
        case "T", "t": .stopped
        default: .other
        }
    }

    /// Events in time order (perf script already sorts them; a stable sort keeps equal times in file order).
    public func sortedEvents() -> [Event] {
        var e = events
        e.sort { $0.timestamp < $1.timestamp }
        return e
    }

    /// Writes the imported trace to `path`. Tasks whose thread group is `recordedTgids` (and
    /// their descendants) are marked as recorded.
    /// - Throws: `TraceError.io`.
    public func write(to path: String, metadata: TraceMetadata, recordedTgids: Set<Int32> = []) throws {
        let sorted = sortedEvents()
        var meta = metadata
        meta.firstTimestamp = sorted.first?.timestamp ?? 0
        meta.lastTimestamp = sorted.last?.timestamp ?? 0
        meta.durationNanoseconds = meta.lastTimestamp - meta.firstTimestamp
        if meta.cpuCount == 0 { meta.cpuCount = maxCPU + 1 }
        meta.extra["wakeContext"] = "inferred (perf script has no irq flags): a waking with the idle task current is taken as an interrupt"
        let writer = try TraceWriter(path: path, metadata: meta)
        var table = tasks
        for i in table.indices where i > 0 {
            let comm = table[i].comm
            table[i].isKernelThread = Self.looksLikeKernelThread(comm) && table[i].parent == nil
            var p: TaskIndex? = TaskIndex(i)
            var depth = 0
            while let q = p, depth < 1000 {
                if recordedTgids.contains(table[q.intValue].tgid) || recordedTgids.contains(table[q.intValue].tid) {
                    table[i].isRecorded = true
                    break
                }
                p = table[q.intValue].parent
                depth += 1
            }
        }
        for t in table.dropFirst() { _ = writer.addTask(t) }
        var inferred = RunTracker(taskCount: table.count)
        for e in sorted {
            try writer.append(e)
            _ = inferred.feed(e)
        }
        inferred.finish { _ in }
        meta.inferredSwitchIns = UInt64(inferred.inferredSwitchIns)
        try writer.finish(metadata: meta)
    }

    /// Kernel threads perf shows without a fork: kworker/…, ksoftirqd/…, migration/…, rcu_…
    static func looksLikeKernelThread(_ comm: String) -> Bool {
        let prefixes = ["kworker", "ksoftirqd", "migration", "rcu_", "kthreadd", "watchdog", "cpuhp", "idle_inject", "kcompactd",
                        "khugepaged", "kswapd", "irq/", "jbd2", "kauditd", "oom_reaper", "writeback", "kblockd", "swapper"]
        return prefixes.contains { comm.hasPrefix($0) }
    }
}
