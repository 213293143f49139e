/// A stretch of a trace during which one CPU latency limit was in force: the lowest value of
/// the requests active then (the kernel aggregates CPU latency QoS requests by their minimum).
public struct CPULatencyHold: Equatable, Sendable {
    /// The limit in force, microseconds.
    public var valueMicroseconds: Int32
    /// Start and end, nanoseconds after the timeline's origin; `endOffsetNanoseconds` is nil
    /// when the limit was still in force at the end of the trace.
    public var startOffsetNanoseconds: UInt64
    public var endOffsetNanoseconds: UInt64?
    /// The tasks whose request was that lowest value at some point of the stretch, by index.
    public var holders: [TaskIndex]

    public init(valueMicroseconds: Int32, startOffsetNanoseconds: UInt64, endOffsetNanoseconds: UInt64?, holders: [TaskIndex]) {
        self.valueMicroseconds = valueMicroseconds
        self.startOffsetNanoseconds = startOffsetNanoseconds
        self.endOffsetNanoseconds = endOffsetNanoseconds
        self.holders = holders
    }
}

/// A point where the effective CPU latency limit changes.
public struct CPULatencyChange: Equatable, Sendable {
    /// Nanoseconds after the timeline's origin.
    public var offsetNanoseconds: UInt64
    /// The limit from then on, microseconds; nil when no request limits anything any more.
    public var valueMicroseconds: Int32?

    public init(offsetNanoseconds: UInt64, valueMicroseconds: Int32?) {
        self.offsetNanoseconds = offsetNanoseconds
        self.valueMicroseconds = valueMicroseconds
    }
}

/// Derives the effective CPU latency limit over time from a trace's requests. Pure.
public enum CPULatencyTimeline {
    /// The stretches during which some request of `tasks` limited the CPU latency, in time
    /// order, not overlapping.
    ///
    /// Requests are taken in time order (ties in list order); calls at the same offset count
    /// as one instant, so no stretch is empty. An update of a request not seen added (it was
    /// added before the recording) starts it; a remove of an unknown request is ignored; a
    /// value of -1 (`PM_QOS_DEFAULT_VALUE`) or of 2 000 000 000 µs and more limits nothing.
    /// - Parameters:
    ///   - requests: the trace's requests (`TraceMetadata.cpuLatencyRequests`).
    ///   - tasks: only the requests held by these tasks count (nil: every request).
    ///   - origin: trace time of offset 0 (earlier calls are placed at 0).
    public static func holds(of requests: [CPULatencyRequest], tasks: Set<TaskIndex>? = nil, origin: UInt64) -> [CPULatencyHold] {
        let ordered = requests.enumerated()
            .filter { tasks?.contains($0.element.task) ?? true }
            .sorted { ($0.element.timestamp, $0.offset) < ($1.element.timestamp, $1.offset) }
            .map(\.element)
        var active: [Int: (task: TaskIndex, value: Int32)] = [:]
        var holds: [CPULatencyHold] = []
        var current: Int32?
        var i = 0
        while i < ordered.count {
            let offset = ordered[i].timestamp > origin ? ordered[i].timestamp - origin : 0
            // Every call at this offset, then the state they leave.
            while i < ordered.count && (ordered[i].timestamp > origin ? ordered[i].timestamp - origin : 0) == offset {
                let r = ordered[i]
                switch r.action {
                case .add, .update: active[r.request] = (r.task, r.valueMicroseconds)
                case .remove: active[r.request] = nil
                }
                i += 1
            }
            let limiting = active.values.filter { CPULatencyRequest.constrains($0.value) }
            let effective = limiting.map(\.value).min()
            let holders = Set(limiting.filter { $0.value == effective }.map(\.task))
            if effective != current {
                if current != nil { holds[holds.count - 1].endOffsetNanoseconds = offset }
                if let effective {
                    holds.append(CPULatencyHold(valueMicroseconds: effective, startOffsetNanoseconds: offset,
                                                endOffsetNanoseconds: nil, holders: holders.sorted()))
                }
                current = effective
            } else if effective != nil {
                holds[holds.count - 1].holders = Set(holds[holds.count - 1].holders).union(holders).sorted()
            }
        }
        return holds
    }

    /// The points where the limit of `holds` changes: each start, and each end not followed
    /// at once by another stretch (value nil: no limit from then on).
    public static func changes(_ holds: [CPULatencyHold]) -> [CPULatencyChange] {
        var changes: [CPULatencyChange] = []
        var openEnd: UInt64?
        for h in holds {
            if let end = openEnd, end < h.startOffsetNanoseconds {
                changes.append(CPULatencyChange(offsetNanoseconds: end, valueMicroseconds: nil))
            }
            changes.append(CPULatencyChange(offsetNanoseconds: h.startOffsetNanoseconds, valueMicroseconds: h.valueMicroseconds))
            openEnd = h.endOffsetNanoseconds
        }
        if let end = openEnd { changes.append(CPULatencyChange(offsetNanoseconds: end, valueMicroseconds: nil)) }
        return changes
    }
}
