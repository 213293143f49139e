import Foundation

/// Converts the text of `trace-cmd report -l -R -t` over a `trace-cmd record` file (trace.dat)
/// into trace events.
///
/// Unlike perf's text, trace-cmd's latency format carries each record's interrupt flags, so a
/// wakeup's context (task, hard-irq, soft-irq, NMI) is the kernel's, not a guess. Three line
/// shapes are read:
/// - `-l -R`: `comm-tid  0-0x9  2988.352313410: sched_waking: comm=x pid=15 prio=120 target_cpu=000`
///   (CPU, then the flags byte in hex: 0x08 hard-irq, 0x10 soft-irq, 0x40 NMI),
/// - `-l`: `comm-tid  0d.h2.  2988.352313: …` (the third flag letter: `h` hard-irq, `s` soft-irq,
///   `H` hard-irq inside soft-irq, `z`/`Z` NMI, `.` none),
/// - plain: `comm-tid [000] 2988.352313: …` (no flags: context inferred as for perf).
///
/// The `comm-tid` head is trace-cmd's cached comm, cut to 8 characters and possibly from a
/// later exec; a comm from a record's own fields replaces it.
public struct TraceCmdImporter {
    /// The command line that produces the text this importer reads (after `trace-cmd`, before `-i FILE`).
    public static let reportArguments = ["report", "-l", "-R", "-t"]

    /// Tasks, events, counts and notes collected so far.
    public private(set) var assembler = SchedEventAssembler()
    /// CPU count from the `cpus=N` line, when present.
    public private(set) var cpuCount: Int?
    /// True when no line carried interrupt flags (plain format): contexts were inferred.
    public var contextsInferred: Bool { !sawFlags }
    private var sawFlags = false
    private var firstExecTid: Int32?
    private var lineNumber = 0

    public init() {}

    /// The task table so far (index 0 is the idle task).
    public var tasks: [TaskInfo] { assembler.tasks }
    /// Converted events in input order.
    public var events: [Event] { assembler.events }

    /// Parses one line of `trace-cmd report` output.
    public mutating func parse(line raw: Substring) {
        lineNumber += 1
        let line = raw.trimmingCharacters(in: .whitespaces)
        guard !line.isEmpty else { return }
        if line.hasPrefix("cpus="), let n = Int(line.dropFirst(5)) { cpuCount = n; return }
        if line.hasPrefix("CPU:") { return lost(line) }
        if line.hasPrefix("CPU ") && line.hasSuffix("is empty") { return }
        // Tokens with their positions: the first `sec.frac:` token is the timestamp, the one
        // after it the event name; before it, the CPU/flags token and the `comm-tid` head.
        let tokens = line.split(separator: " ", omittingEmptySubsequences: true)
        guard let timeIndex = tokens.firstIndex(where: Self.isTimestamp), timeIndex >= 2, timeIndex + 1 < tokens.count else {
            return assembler.problem(line: lineNumber, "no `comm-tid cpu time: event:` head")
        }
        let eventToken = tokens[timeIndex + 1]
        guard eventToken.hasSuffix(":") else { return assembler.problem(line: lineNumber, "no event name after the timestamp") }
        guard let timestamp = PerfScriptImporter.nanoseconds(tokens[timeIndex].dropLast()) else {
            return assembler.problem(line: lineNumber, "bad timestamp \(tokens[timeIndex])")
        }
        let head = line[tokens[0].startIndex..<tokens[timeIndex - 2].endIndex]
        guard let dash = head.lastIndex(of: "-"), let tid = Int32(head[head.index(after: dash)...]) else {
            return assembler.problem(line: lineNumber, "bad comm-tid head \(head)")
        }
        guard let (cpu, context) = Self.cpuAndContext(tokens[timeIndex - 1]) else {
            return assembler.problem(line: lineNumber, "bad cpu/flags field \(tokens[timeIndex - 1])")
        }
        if context != nil { sawFlags = true }
        let name = String(eventToken.dropLast().split(separator: ":").last ?? "")
        let fields = SchedEventAssembler.fields(line[eventToken.endIndex...])
        let current = assembler.task(tid, comm: String(head[..<dash]), provisional: true)
        if name == "sched_process_exec", firstExecTid == nil {
            firstExecTid = fields["pid"].flatMap { Int32($0) } ?? tid
        }
        assembler.add(name: name, fields: fields, timestamp: timestamp, cpu: cpu, current: current, context: context, line: lineNumber)
    }

    static func isTimestamp(_ token: Substring) -> Bool {
        guard token.count >= 4, token.last == ":" else { return false }
        let body = token.dropLast()
        guard let dot = body.firstIndex(of: "."), dot != body.startIndex else { return false }
        return body[..<dot].allSatisfy(\.isNumber) && body[body.index(after: dot)...].allSatisfy(\.isNumber) && body.index(after: dot) != body.endIndex
    }

    /// `0-0x9` (CPU and hex flags), `0d.h2.` (CPU and latency letters) or `[000]` (CPU only).
    static func cpuAndContext(_ token: Substring) -> (Int, WakeContext?)? {
        if token.hasPrefix("["), token.hasSuffix("]") {
            guard let cpu = Int(token.dropFirst().dropLast()), cpu >= 0, cpu < 65536 else { return nil }
            return (cpu, nil)
        }
        let digits = token.prefix(while: \.isNumber)
        guard let cpu = Int(digits), cpu < 65536 else { return nil }
        let flags = token[digits.endIndex...]
        if flags.hasPrefix("-0x") {
            guard let bits = Int(flags.dropFirst(3), radix: 16) else { return nil }
            if bits & 0x40 != 0 { return (cpu, .nmi) }
            if bits & 0x08 != 0 { return (cpu, .hardIRQ) }
            if bits & 0x10 != 0 { return (cpu, .softIRQ) }
            return (cpu, .task)
        }
        let letters = Array(flags)
        guard letters.count >= 3 else { return nil }
        switch letters[2] {
        case "z", "Z": return (cpu, .nmi)
        case "h", "H": return (cpu, .hardIRQ)
        case "s": return (cpu, .softIRQ)
        case ".": return (cpu, .task)
        default: return nil
        }
    }

    /// `CPU:N [M EVENTS DROPPED]` (or `[EVENTS DROPPED]` with an unknown count, counted as 1).
    private mutating func lost(_ line: String) {
        let body = line.dropFirst(4)
        guard let space = body.firstIndex(of: " "), let cpu = Int(body[..<space]), cpu >= 0, cpu < 65536 else {
            return assembler.problem(line: lineNumber, "bad lost-events line")
        }
        let count = body[space...].split(separator: " ").compactMap { UInt64($0.trimmingCharacters(in: CharacterSet(charactersIn: "["))) }.first ?? 1
        if assembler.lostEvents.count <= cpu { assembler.lostEvents += Array(repeating: 0, count: cpu + 1 - assembler.lostEvents.count) }
        assembler.lostEvents[cpu] += count
    }

    /// Sets lost events per CPU from `trace-cmd report --stat` (overrun + dropped events of
    /// each `CPU: N` section), when they exceed what the report's inline lines counted.
    public mutating func applyStat(_ text: String) {
        let lost = Self.lostEvents(fromStat: text)
        for (cpu, n) in lost.enumerated() {
            if assembler.lostEvents.count <= cpu { assembler.lostEvents += Array(repeating: 0, count: cpu + 1 - assembler.lostEvents.count) }
            assembler.lostEvents[cpu] = max(assembler.lostEvents[cpu], n)
        }
    }

    /// Overrun + dropped events per CPU from `trace-cmd report --stat`.
    public static func lostEvents(fromStat text: String) -> [UInt64] {
        var result: [UInt64] = []
        var cpu: Int?
        for raw in text.split(separator: "\n") {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.hasPrefix("CPU:"), let n = Int(line.dropFirst(4).trimmingCharacters(in: .whitespaces)), n >= 0, n < 65536 {
                cpu = n
                if result.count <= n { result += Array(repeating: 0, count: n + 1 - result.count) }
            } else if let c = cpu, let colon = line.firstIndex(of: ":") {
                let key = line[..<colon]
                guard key == "overrun" || key == "dropped events" else { continue }
                result[c] += UInt64(line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)) ?? 0
            }
        }
        return result
    }

    /// The recorded command's tid: `trace-cmd record -- CMD` forks the command before
    /// tracing starts and it execs first thing, so it is the first `sched_process_exec`.
    public func recordedRoots() -> Set<Int32> {
        firstExecTid.map { [$0] } ?? []
    }

    /// Writes the imported trace to `path`, marking the trees of `recordedRoots()` (or of
    /// `recordedTids` when given) recorded.
    /// - Throws: `TraceError.io`.
    public func write(to path: String, metadata: TraceMetadata, recordedTids: Set<Int32>? = nil) throws {
        var meta = metadata
        if meta.cpuCount == 0, let cpuCount { meta.cpuCount = cpuCount }
        meta.extra["wakeContext"] = contextsInferred
            ? "inferred (report without -l has no irq flags): a waking with the idle task current is taken as an interrupt"
            : "from the records' irq flags (trace-cmd report -l)"
        try assembler.write(to: path, metadata: meta, recordedTids: recordedTids ?? recordedRoots())
    }
}
