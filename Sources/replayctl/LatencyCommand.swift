import ArgumentParser
import Foundation
import Stats
import TraceFormat

struct Latency: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Per-task and overall scheduling latencies of a trace, with percentiles.",
        discussion: """
            Like `perf sched latency` / `perf sched timehist -s`, with percentiles: wakeup \
            latency (sched_waking → the task switched in), run delay (preempted → back on a \
            CPU), runtime, switches and migrations, per task and overall. When the kernel did \
            not log a switch-in (no idle → task switch on some CPUs), the run start is inferred \
            from sched_stat_runtime and those samples are counted and summarised separately as \
            "inferred", never mixed in. --json prints everything (docs/compare.md, "latency").
            """)

    enum SortKey: String, ExpressibleByArgument, CaseIterable {
        case p50, p99, max, mean, wakeups, delay, runtime, switches, migrations, tid, comm
    }

    @Argument(help: "The .rpl trace (a recording or a replay's self-recording).") var file: String
    @Flag(help: "Print JSON for scripts.") var json = false
    @Option(help: "Sort tasks by: \(SortKey.allCases.map(\.rawValue).joined(separator: ", ")) (wakeup latency unless named delay/runtime/…).")
    var sort: SortKey = .p99
    @Option(help: "Show at most this many tasks (0: all).") var limit = 25

    func run() throws {
        try reportingErrors {
            let reader = try TraceReader(path: file)
            let analysis = try LatencyAnalysis(reader: reader)
            let report = LatencyReport(file: file, reader: reader, analysis: analysis, sort: sort)
            if json {
                print(try report.jsonString())
            } else {
                print(report.text(limit: limit))
            }
        }
    }
}

/// `latency --json`: per task and overall summaries; keys documented in docs/compare.md.
struct LatencyReport: Encodable {
    struct Task: Encodable {
        var tid: Int32
        var tgid: Int32
        var comm: String
        var runtimeNanoseconds: UInt64
        var switches: Int
        var migrations: Int
        var inferredSwitchIns: Int
        var wakeupsWithoutSample: Int
        var wakeupLatency: LatencySummary
        var inferredWakeupLatency: LatencySummary
        var runDelay: LatencySummary
        var inferredRunDelay: LatencySummary
    }
    struct Overall: Encodable {
        var tasks: Int
        var runtimeNanoseconds: UInt64
        var switches: Int
        var migrations: Int
        var wakeupLatency: LatencySummary
        var inferredWakeupLatency: LatencySummary
        var runDelay: LatencySummary
        var inferredRunDelay: LatencySummary
    }

    var file: String
    var kernelRelease: String
    var durationNanoseconds: UInt64
    var lostEvents: UInt64
    var inferredSwitchIns: Int
    var inferredWithoutRuntime: Int
    var overall: Overall
    var tasks: [Task]

    init(file: String, reader: TraceReader, analysis: LatencyAnalysis, sort: Latency.SortKey) {
        self.file = file
        kernelRelease = reader.metadata.kernelRelease
        durationNanoseconds = reader.metadata.durationNanoseconds
        lostEvents = reader.metadata.totalLostEvents
        inferredSwitchIns = analysis.inferredSwitchIns
        inferredWithoutRuntime = analysis.inferredWithoutRuntime
        var all = (LatencyHistogram(), LatencyHistogram(), LatencyHistogram(), LatencyHistogram())
        var rows: [Task] = []
        for t in analysis.tasks where !t.task.isIdle && (t.switches > 0 || !t.wakeupLatency.isEmpty || !t.inferredWakeupLatency.isEmpty) {
            let info = t.task.intValue < reader.tasks.count ? reader.tasks[t.task.intValue] : TaskInfo(tid: -1, tgid: -1, comm: "?")
            let h = (LatencyHistogram(t.wakeupLatency), LatencyHistogram(t.inferredWakeupLatency),
                     LatencyHistogram(t.runDelay), LatencyHistogram(t.inferredRunDelay))
            all.0.merge(h.0)
            all.1.merge(h.1)
            all.2.merge(h.2)
            all.3.merge(h.3)
            rows.append(Task(tid: info.tid, tgid: info.tgid, comm: info.comm, runtimeNanoseconds: t.runtimeNanoseconds,
                             switches: t.switches, migrations: t.migrations, inferredSwitchIns: t.inferredSwitchIns,
                             wakeupsWithoutSample: t.wakeupsWithoutSample,
                             wakeupLatency: h.0.summary, inferredWakeupLatency: h.1.summary, runDelay: h.2.summary, inferredRunDelay: h.3.summary))
        }
        func key(_ t: Task) -> Double {
            switch sort {
            case .p50: Double(t.wakeupLatency.p50)
            case .p99: Double(t.wakeupLatency.p99)
            case .max: Double(t.wakeupLatency.maximum)
            case .mean: t.wakeupLatency.mean
            case .wakeups: Double(t.wakeupLatency.count + t.inferredWakeupLatency.count)
            case .delay: Double(t.runDelay.p99)
            case .runtime: Double(t.runtimeNanoseconds)
            case .switches: Double(t.switches)
            case .migrations: Double(t.migrations)
            case .tid: -Double(t.tid)
            case .comm: 0
            }
        }
        if sort == .comm {
            rows.sort { ($0.comm, $0.tid) < ($1.comm, $1.tid) }
        } else {
            rows.sort { (key($0), $1.tid) > (key($1), $0.tid) }
        }
        tasks = rows
        overall = Overall(tasks: rows.count, runtimeNanoseconds: rows.reduce(UInt64(0)) { $0.adding(saturating: $1.runtimeNanoseconds) },
                          switches: rows.reduce(0) { $0 + $1.switches }, migrations: rows.reduce(0) { $0 + $1.migrations },
                          wakeupLatency: all.0.summary, inferredWakeupLatency: all.1.summary, runDelay: all.2.summary,
                          inferredRunDelay: all.3.summary)
    }

    static func us(_ ns: UInt64) -> String { String(format: "%.1f", Double(ns) / 1e3) }

    func text(limit: Int) -> String {
        var out: [String] = []
        out.append("trace \(file): kernel \(kernelRelease.isEmpty ? "?" : kernelRelease), \(formatSeconds(durationNanoseconds)), \(tasks.count) tasks ran")
        if lostEvents > 0 { out.append("LOST: \(lostEvents) events dropped by the kernel — latencies below may be wrong or missing") }
        if inferredSwitchIns > 0 {
            out.append("inferred: \(inferredSwitchIns) switch-ins were not in the trace and were inferred"
                       + (inferredWithoutRuntime > 0 ? " (\(inferredWithoutRuntime) without sched_stat_runtime: approximate)" : "")
                       + "; their samples are in the INF columns and the inferred rows, not in the percentiles")
        }
        out.append("")
        out.append(pad("COMM", 16, left: true) + pad("TID", 8) + pad("RUN(ms)", 10) + pad("SWITCH", 8) + pad("MIGR", 6)
                   + pad("WAKEUPS", 9) + pad("p50(µs)", 9) + pad("p99(µs)", 9) + pad("max(µs)", 10) + pad("INF", 6)
                   + pad("PREEMPT", 9) + pad("dly p50", 9) + pad("dly p99", 9) + pad("dly max", 10) + pad("INF", 6))
        for t in limit > 0 ? Array(tasks.prefix(limit)) : tasks {
            let w = t.wakeupLatency, d = t.runDelay
            out.append(pad(t.comm, 16, left: true) + pad("\(t.tid)", 8) + pad(String(format: "%.3f", Double(t.runtimeNanoseconds) / 1e6), 10)
                       + pad("\(t.switches)", 8) + pad("\(t.migrations)", 6) + pad("\(w.count)", 9)
                       + pad(w.count > 0 ? Self.us(w.p50) : "-", 9) + pad(w.count > 0 ? Self.us(w.p99) : "-", 9)
                       + pad(w.count > 0 ? Self.us(w.maximum) : "-", 10) + pad("\(t.inferredWakeupLatency.count)", 6)
                       + pad("\(d.count)", 9) + pad(d.count > 0 ? Self.us(d.p50) : "-", 9) + pad(d.count > 0 ? Self.us(d.p99) : "-", 9)
                       + pad(d.count > 0 ? Self.us(d.maximum) : "-", 10) + pad("\(t.inferredRunDelay.count)", 6))
        }
        if limit > 0 && tasks.count > limit { out.append("… \(tasks.count - limit) more tasks (--limit 0 shows all)") }
        out.append("")
        func line(_ name: String, _ s: LatencySummary) -> String {
            guard s.count > 0 else { return pad(name, 26, left: true) + "no samples" }
            return pad(name, 26, left: true) + "n \(s.count)  mean \(Self.us(UInt64(s.mean)))  sd \(Self.us(UInt64(s.standardDeviation)))  min \(Self.us(s.minimum))  "
                + "p50 \(Self.us(s.p50))  p90 \(Self.us(s.p90))  p99 \(Self.us(s.p99))  p99.9 \(Self.us(s.p999))  p99.99 \(Self.us(s.p9999))  max \(Self.us(s.maximum))  (µs)"
        }
        out.append("overall: runtime \(String(format: "%.3f", Double(overall.runtimeNanoseconds) / 1e6)) ms, \(overall.switches) switches, \(overall.migrations) migrations")
        out.append(line("wakeup latency", overall.wakeupLatency))
        out.append(line("wakeup latency (inferred)", overall.inferredWakeupLatency))
        out.append(line("run delay", overall.runDelay))
        out.append(line("run delay (inferred)", overall.inferredRunDelay))
        return out.joined(separator: "\n")
    }

    func jsonString() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }
}
