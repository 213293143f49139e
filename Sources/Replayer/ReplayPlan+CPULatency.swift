import Foundation
import TraceFormat

extension ReplayPlan {
    /// One line on the CPU latency limits of the plan, for the console and results.json:
    /// "holding CPU latency QoS at 0 µs from +2.1 ms to +951.3 ms, as the recorded cyclictest
    /// did", or, when `applied` is false, that they are not held. Nil when the plan has none.
    /// - Parameter tasks: the trace's task table (for the holders' names).
    public func cpuLatencyDescription(tasks: [TaskInfo], applied: Bool) -> String? {
        guard let first = cpuLatency.first, let last = cpuLatency.last else { return nil }
        func ms(_ ns: UInt64) -> String { String(format: "+%.1f ms", Double(ns) / 1e6) }
        func span(_ h: CPULatencyHold) -> String {
            "\(h.valueMicroseconds) µs from \(ms(h.startOffsetNanoseconds)) to " + (h.endOffsetNanoseconds.map(ms) ?? "the end")
        }
        let limits: String
        if cpuLatency.count <= 3 {
            limits = cpuLatency.map(span).joined(separator: ", then ")
        } else {
            let lowest = cpuLatency.map(\.valueMicroseconds).min() ?? 0
            limits = "\(cpuLatency.count) limits (lowest \(lowest) µs) from \(ms(first.startOffsetNanoseconds)) to "
                + (last.endOffsetNanoseconds.map(ms) ?? "the end")
        }
        var names: [String] = []
        for h in cpuLatency {
            for t in h.holders where t.intValue < tasks.count && !names.contains(tasks[t.intValue].comm) {
                names.append(tasks[t.intValue].comm)
            }
        }
        let holders = names.count <= 1 ? (names.first ?? "tasks")
            : names.dropLast().joined(separator: ", ") + " and " + names.last!
        return applied ? "holding CPU latency QoS at \(limits), as the recorded \(holders) did"
            : "not holding CPU latency QoS (--no-pm-qos); the recorded \(holders) held it at \(limits)"
    }
}
