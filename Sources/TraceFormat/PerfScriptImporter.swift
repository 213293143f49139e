import Foundation

/// Converts the text of `perf script --ns -F comm,tid,pid,cpu,time,event,trace` over a
/// `perf sched record` file into trace events.
///
/// perf's text has no interrupt-context flags, so a wakeup's context is inferred: a waking
/// logged while the idle task was current is taken as an interrupt (timer or device), any
/// other as a task wakeup. The metadata says so (`extra["wakeContext"]`).
public struct PerfScriptImporter {
    /// The command line that produces the text this importer reads (after `perf`, before `-i FILE`).
    public static let scriptArguments = ["script", "--ns", "-F", "comm,tid,pid,cpu,time,event,trace"]

    /// Tasks, events, counts and notes collected so far.
    public private(set) var assembler = SchedEventAssembler()
    private var lineNumber = 0

    public init() {}

    /// The task table so far (index 0 is the idle task).
    public var tasks: [TaskInfo] { assembler.tasks }
    /// Converted events in input order.
    public var events: [Event] { assembler.events }
    /// Lines that could not be parsed (line number, reason), at most 20 kept.
    public var problems: [(line: Int, reason: String)] { assembler.problems }
    /// Lines skipped (unparsable or tracepoints the model does not use).
    public var skippedLines: Int { assembler.skippedLines }

    /// Parses one line of perf script output:
    /// `<comm> <tid>/<pid> [<cpu>] <sec>.<ns>: sched:<event>: <fields>`.
    public mutating func parse(line raw: Substring) {
        lineNumber += 1
        let line = raw.trimmingCharacters(in: .whitespaces)
        guard !line.isEmpty else { return }
        guard let cpuOpen = line.range(of: " ["), let cpuClose = line.range(of: "] ", range: cpuOpen.upperBound..<line.endIndex) else {
            return assembler.problem(line: lineNumber, "no [cpu] field")
        }
        let head = line[..<cpuOpen.lowerBound].trimmingCharacters(in: .whitespaces)
        guard let space = head.lastIndex(of: " ") else { return assembler.problem(line: lineNumber, "no tid/pid field") }
        let ids = head[head.index(after: space)...].split(separator: "/")
        let comm = head[..<space].trimmingCharacters(in: .whitespaces)
        guard ids.count == 2, let tid = Int32(ids[0]), let pid = Int32(ids[1]) else { return assembler.problem(line: lineNumber, "bad tid/pid") }
        guard let cpu = Int(line[cpuOpen.upperBound..<cpuClose.lowerBound].trimmingCharacters(in: .whitespaces)), cpu >= 0, cpu < 65536 else {
            return assembler.problem(line: lineNumber, "bad cpu")
        }
        let rest = line[cpuClose.upperBound...].trimmingCharacters(in: .whitespaces)
        guard let colon = rest.firstIndex(of: ":") else { return assembler.problem(line: lineNumber, "no timestamp") }
        guard let timestamp = Self.nanoseconds(rest[..<colon]) else {
            return assembler.problem(line: lineNumber, "bad timestamp \(rest[..<colon]) (use perf script --ns)")
        }
        let afterTime = rest[rest.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        guard let eventEnd = afterTime.range(of: ": ") ?? (afterTime.hasSuffix(":") ? afterTime.range(of: ":", options: .backwards) : nil) else {
            return assembler.problem(line: lineNumber, "no event name")
        }
        let name = afterTime[..<eventEnd.lowerBound].split(separator: ":").last.map(String.init) ?? ""
        let fields = SchedEventAssembler.fields(afterTime[eventEnd.upperBound...])
        let current = assembler.task(tid, tgid: pid, comm: comm)
        assembler.add(name: name, fields: fields, timestamp: timestamp, cpu: cpu, current: current, context: nil, line: lineNumber)
    }

    /// `seconds.fraction` (up to 9 fraction digits) in nanoseconds.
    static func nanoseconds<S: StringProtocol>(_ text: S) -> UInt64? {
        let parts = text.split(separator: ".")
        guard parts.count == 2, parts[1].count <= 9, let seconds = UInt64(parts[0]), let fraction = UInt64(parts[1]),
              seconds < 18_000_000_000 else { return nil }
        var scale: UInt64 = 1
        for _ in 0..<(9 - parts[1].count) { scale *= 10 }
        return seconds * 1_000_000_000 + fraction * scale
    }

    /// The recorded command's tids: perf forks it before tracing starts and it is named
    /// `perf-exec` until it execs; a child forked by a `perf` task counts too.
    public func recordedRoots() -> Set<Int32> {
        var roots = Set<Int32>()
        var perfTids = Set<Int32>()
        for t in tasks where t.comm == "perf" { perfTids.insert(t.tid) }
        for t in tasks where t.comm == "perf-exec" { roots.insert(t.tid) }
        for e in events {
            if case let .fork(parent, child) = e.kind, perfTids.contains(tasks[parent.intValue].tid) {
                roots.insert(tasks[child.intValue].tid)
            }
        }
        return roots
    }

    /// Events in time order.
    public func sortedEvents() -> [Event] { assembler.sortedEvents() }

    /// Writes the imported trace to `path`; the trees of `recordedTgids` are marked recorded.
    /// - Throws: `TraceError.io`.
    public func write(to path: String, metadata: TraceMetadata, recordedTgids: Set<Int32> = []) throws {
        var meta = metadata
        meta.extra["wakeContext"] = "inferred (perf script has no irq flags): a waking with the idle task current is taken as an interrupt"
        try assembler.write(to: path, metadata: meta, recordedTids: recordedTgids)
    }
}

extension PerfScriptImporter {
    /// Fills metadata from `perf script --header-only`: `# hostname : vm`, `# os release : …`,
    /// `# arch : …`, `# nrcpus online : …`, `# cpudesc : …`, `# cmdline : …`.
    public static func metadata(fromHeader text: String, into metadata: inout TraceMetadata) {
        for raw in text.split(separator: "\n") {
            guard raw.hasPrefix("# "), let colon = raw.range(of: " : ") else { continue }
            let key = raw[raw.index(raw.startIndex, offsetBy: 2)..<colon.lowerBound].trimmingCharacters(in: .whitespaces)
            let value = raw[colon.upperBound...].trimmingCharacters(in: .whitespaces)
            switch key {
            case "hostname": metadata.hostname = value
            case "os release": metadata.kernelRelease = value
            case "arch": metadata.architecture = value
            case "nrcpus online": metadata.cpuCount = Int(value) ?? metadata.cpuCount
            case "cpudesc": metadata.cpuModel = value
            case "cmdline": metadata.extra["perf.cmdline"] = value
            default: break
            }
        }
    }
}
