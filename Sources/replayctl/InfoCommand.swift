import ArgumentParser
import Foundation
import TraceFormat

struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show a trace's metadata, event counts, lost events and task table.",
        discussion: """
            The task table lists tid, comm, CPU time, sleeps (blocking switch-outs), wakeups \
            received and preemptions, sorted by CPU time. --json prints the same as one JSON \
            object (schema in docs/info-json.md). A damaged trace exits 65; --salvage prints \
            what can still be read from it instead.
            """)

    @Argument(help: "The .rpl trace.") var file: String
    @Flag(help: "Print JSON for scripts.") var json = false
    @Flag(help: "Read what can be read from a damaged trace, listing the damage.") var salvage = false
    @Option(help: "Show at most this many tasks (0: all).") var limit = 20

    func run() throws {
        try reportingErrors {
            let reader = try TraceReader(path: file)
            var skipped: [TraceError] = []
            var builder = TraceSummary.Builder(taskCount: reader.tasks.count)
            try reader.forEachEvent(skipDamaged: salvage, skipped: { skipped.append($0) }) { builder.feed($0) }
            let summary = builder.finish()
            if json {
                print(try InfoReport(reader: reader, summary: summary, skipped: skipped).jsonString())
            } else {
                printText(reader: reader, summary: summary, skipped: skipped)
            }
        }
    }

    func printText(reader: TraceReader, summary: TraceSummary, skipped: [TraceError]) {
        let m = reader.metadata
        let perEvent = summary.totalEvents > 0 ? Double(reader.fileSize) / Double(summary.totalEvents) : 0
        print("trace:      \(file) (\(formatBytes(reader.fileSize)), format \(reader.version.major).\(reader.version.minor))")
        let start = m.startWallTimeNanoseconds > 0
            ? ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: Double(m.startWallTimeNanoseconds) / 1e9)) : "unknown time"
        print("recorded:   \(start) on \(m.hostname.isEmpty ? "unknown host" : m.hostname), kernel \(m.kernelRelease.isEmpty ? "?" : m.kernelRelease)"
              + " \(m.architecture), \(m.cpuCount) CPU\(m.cpuCount == 1 ? "" : "s") (\(m.cpuModel.isEmpty ? "model unknown" : m.cpuModel))")
        print("recorder:   \(m.recorderVersion.isEmpty ? "?" : m.recorderVersion), clock \(m.clock)")
        print("command:    \(m.command.isEmpty ? "(system-wide or attached)" : m.command.joined(separator: " "))"
              + (m.exitStatus.map { " → exit \($0)" } ?? ""))
        print("duration:   \(formatSeconds(m.durationNanoseconds))")
        let counts = Event.Kind.allNames.map { "\($0) \(summary.eventCounts[$0] ?? 0)" }.joined(separator: ", ")
        print("events:     \(summary.totalEvents) (\(String(format: "%.2f", perEvent)) bytes/event in \(reader.chunks.count) chunks): \(counts)")
        let lost = m.totalLostEvents
        if lost > 0 {
            let perCPU = m.lostEvents.enumerated().filter { $0.element > 0 }.map { "cpu\($0.offset) \($0.element)" }.joined(separator: ", ")
            print("LOST:       \(lost) events dropped by the kernel (\(perCPU)) — figures below undercount; record with a larger --buffer-size")
        } else {
            print("lost:       0 events")
        }
        print("inferred:   \(summary.inferredSwitchIns) switch-ins the kernel did not log"
              + (summary.inferredWithoutRuntime > 0 ? " (\(summary.inferredWithoutRuntime) without sched_stat_runtime: approximate)" : ""))
        print("cpu QoS:    " + cpuLatencyText(reader))
        for w in m.decodingWarnings { print("WARNING:    \(w)") }
        if reader.isRecovered || !reader.damage.isEmpty {
            print("DAMAGED:    the file has no valid footer; recovered \(reader.chunks.count) complete chunks (\(reader.eventCount) events)")
            for d in reader.damage { print("            lost \(d)") }
        }
        for e in skipped { print("SKIPPED:    \(e)") }
        print("")
        let rows = summary.tasks.filter { $0.task.intValue > 0 && $0.task.intValue < reader.tasks.count }
            .sorted { ($0.cpuNanoseconds, $1.task) > ($1.cpuNanoseconds, $0.task) }
        print(pad("TID", 8) + pad("PID", 8) + "  " + pad("COMM", 16, left: true) + pad("CPU(ms)", 11) + pad("SLEEPS", 9) + pad("WAKEUPS", 9) + pad("PREEMPT", 9))
        for row in limit > 0 ? Array(rows.prefix(limit)) : rows {
            let t = reader.tasks[row.task.intValue]
            print(pad("\(t.tid)", 8) + pad("\(t.tgid)", 8) + "  " + pad(t.comm + (t.isKernelThread ? "" : ""), 16, left: true)
                  + pad(String(format: "%.3f", Double(row.cpuNanoseconds) / 1e6), 11)
                  + pad("\(row.sleeps)", 9) + pad("\(row.wakeups)", 9) + pad("\(row.preemptions)", 9))
        }
        if limit > 0 && rows.count > limit { print("… \(rows.count - limit) more tasks (--limit 0 shows all)") }
    }

    /// One line on the CPU latency QoS requests: who made them and the limits they held.
    func cpuLatencyText(_ reader: TraceReader) -> String {
        let m = reader.metadata
        guard let requests = m.cpuLatencyRequests else {
            if !m.decodingWarnings.isEmpty { return "unreadable, ignored (see the warning below)" }
            return "not recorded (trace before format 2.1, or a kernel without power/pm_qos_* events)"
        }
        if requests.isEmpty { return "no CPU latency requests (/dev/cpu_dma_latency)" }
        let holds = CPULatencyTimeline.holds(of: requests, origin: m.firstTimestamp)
        let holders = Set(requests.map(\.task)).sorted().map { taskName(reader, $0) }
        var text = "\(requests.count) calls on \(Set(requests.map(\.request)).count) CPU latency requests by \(holders.joined(separator: ", "))"
        if holds.isEmpty { return text + "; none limited the latency" }
        let shown = holds.prefix(4).map { h in
            "\(h.valueMicroseconds) µs +\(milliseconds(h.startOffsetNanoseconds))–"
                + (h.endOffsetNanoseconds.map { "+" + milliseconds($0) } ?? "end") + " ms"
        }
        text += "; held " + shown.joined(separator: ", ")
        if holds.count > 4 { text += ", … \(holds.count - 4) more (--json lists them)" }
        return text
    }
}

/// "comm tid" of a task index (guarded: the index comes from the file).
func taskName(_ reader: TraceReader, _ task: TaskIndex) -> String {
    guard task.intValue > 0 && task.intValue < reader.tasks.count else { return "task \(task)" }
    let t = reader.tasks[task.intValue]
    return "\(t.comm) \(t.tid)"
}

func milliseconds(_ ns: UInt64) -> String { String(format: "%.1f", Double(ns) / 1e6) }

/// `info --json`. Documented in docs/info-json.md; keys are stable.
struct InfoReport: Encodable {
    struct Task: Encodable {
        var tid: Int32
        var tgid: Int32
        var comm: String
        var isKernelThread: Bool
        var isRecorded: Bool
        var cpuNanoseconds: UInt64
        var reportedRuntimeNanoseconds: UInt64
        var sleeps: Int
        var wakeups: Int
        var wakeupsGiven: Int
        var preemptions: Int
        var migrations: Int
        var inferredSwitchIns: Int
    }

    var file: String
    var fileBytes: UInt64
    var formatVersion: String
    var metadata: TraceMetadata
    var events: [String: UInt64]
    var bytesPerEvent: Double
    var lostEvents: UInt64
    var inferredSwitchIns: Int
    var durationNanoseconds: UInt64
    var recovered: Bool
    var damage: [String]
    /// Metadata fields that were malformed and ignored.
    var warnings: [String]
    /// The CPU latency limits the requests held; absent when they were not recorded.
    var cpuLatencyQoS: CPULatencyQoS?
    var tasks: [Task]

    struct CPULatencyQoS: Encodable {
        struct Hold: Encodable {
            var valueMicroseconds: Int32
            var startOffsetNanoseconds: UInt64
            var endOffsetNanoseconds: UInt64?
            var tids: [Int32]
        }
        var calls: Int
        var requests: Int
        var holds: [Hold]
    }

    init(reader: TraceReader, summary: TraceSummary, skipped: [TraceError]) {
        file = reader.path
        fileBytes = reader.fileSize
        formatVersion = "\(reader.version.major).\(reader.version.minor)"
        metadata = reader.metadata
        var counts = summary.eventCounts
        counts["total"] = summary.totalEvents
        events = counts
        bytesPerEvent = summary.totalEvents > 0 ? Double(reader.fileSize) / Double(summary.totalEvents) : 0
        lostEvents = reader.metadata.totalLostEvents
        inferredSwitchIns = summary.inferredSwitchIns
        durationNanoseconds = reader.metadata.durationNanoseconds
        recovered = reader.isRecovered
        damage = reader.damage.map(\.description) + skipped.map(\.description)
        warnings = reader.metadata.decodingWarnings
        if let requests = reader.metadata.cpuLatencyRequests {
            let tasks = reader.tasks
            let holds = CPULatencyTimeline.holds(of: requests, origin: reader.metadata.firstTimestamp).map { h in
                CPULatencyQoS.Hold(valueMicroseconds: h.valueMicroseconds, startOffsetNanoseconds: h.startOffsetNanoseconds,
                                   endOffsetNanoseconds: h.endOffsetNanoseconds,
                                   tids: h.holders.compactMap { $0.intValue < tasks.count ? tasks[$0.intValue].tid : nil })
            }
            cpuLatencyQoS = CPULatencyQoS(calls: requests.count, requests: Set(requests.map(\.request)).count, holds: holds)
        }
        tasks = summary.tasks.filter { $0.task.intValue > 0 && $0.task.intValue < reader.tasks.count }
            .sorted { ($0.cpuNanoseconds, $1.task) > ($1.cpuNanoseconds, $0.task) }
            .map { s in
                let t = reader.tasks[s.task.intValue]
                return Task(tid: t.tid, tgid: t.tgid, comm: t.comm, isKernelThread: t.isKernelThread, isRecorded: t.isRecorded,
                            cpuNanoseconds: s.cpuNanoseconds, reportedRuntimeNanoseconds: s.reportedRuntimeNanoseconds,
                            sleeps: s.sleeps, wakeups: s.wakeups, wakeupsGiven: s.wakeupsGiven, preemptions: s.preemptions,
                            migrations: s.migrations, inferredSwitchIns: s.inferredSwitchIns)
            }
    }

    func jsonString() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }
}

func pad(_ s: String, _ width: Int, left: Bool = false) -> String {
    if s.count >= width { return left ? s + " " : " " + s }
    let fill = String(repeating: " ", count: width - s.count)
    return left ? s + fill : fill + s
}

func formatBytes(_ n: UInt64) -> String {
    if n < 1024 { return "\(n) B" }
    if n < 1 << 20 { return String(format: "%.1f KiB", Double(n) / 1024) }
    if n < 1 << 30 { return String(format: "%.1f MiB", Double(n) / 1048576) }
    return String(format: "%.2f GiB", Double(n) / 1073741824)
}

func formatSeconds(_ ns: UInt64) -> String { String(format: "%.3f s", Double(ns) / 1e9) }
