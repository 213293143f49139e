/// One call on the kernel's CPU latency QoS (`cpu_latency_qos_add/update/remove_request`),
/// from the `power/pm_qos_*_request` trace events. A process makes these calls by opening
/// `/dev/cpu_dma_latency` (add), writing an s32 number of microseconds to it (update) and
/// closing it or exiting (remove); cyclictest, for one, holds 0 µs for its whole life, which
/// keeps the CPUs out of deep idle states and changes every wakeup's cost.
///
/// The kernel's events carry only the value, not which request they act on: the recorder
/// numbers the requests (`request`) and attributes each update and remove to one of them
/// (docs/format.md, "CPU latency requests").
public struct CPULatencyRequest: Equatable, Sendable, Codable {
    /// What the call did.
    public enum Action: String, Equatable, Sendable, Codable {
        /// A new request (opening `/dev/cpu_dma_latency` adds one at `noConstraint`).
        case add
        /// A new value for an existing request.
        case update
        /// The request ended (the file was closed, explicitly or by the process's exit).
        case remove
    }

    /// `PM_QOS_DEFAULT_VALUE`: the value of a request that constrains nothing (traced by
    /// every add from `/dev/cpu_dma_latency` and by every remove).
    public static let noConstraint: Int32 = -1
    /// The kernel's default CPU latency limit (`PM_QOS_CPU_LATENCY_DEFAULT_VALUE`, µs): what
    /// `/dev/cpu_dma_latency` reads when no request constrains it. Requests at or above it
    /// constrain nothing either.
    public static let kernelDefaultMicroseconds: Int32 = 2_000_000_000

    /// When the call was made, nanoseconds on the trace clock.
    public var timestamp: UInt64
    public var action: Action
    /// Which request, numbered from 1 within the trace. An update or remove names the request
    /// it changed; a request that was added before the recording started gets its number at
    /// the first call seen.
    public var request: Int
    /// The task holding the request: the one that added it (task table index).
    public var task: TaskIndex
    /// Thread id of the task that made the call (the event's `common_pid`). Usually the
    /// holder; another one when a forked child shares the open file, or when the file was
    /// released by a kernel thread after the holder exited.
    public var tid: Int32
    /// The value traced, microseconds; `noConstraint` (-1) for an add from
    /// `/dev/cpu_dma_latency` and for every remove.
    public var valueMicroseconds: Int32

    public init(timestamp: UInt64, action: Action, request: Int, task: TaskIndex, tid: Int32, valueMicroseconds: Int32) {
        self.timestamp = timestamp
        self.action = action
        self.request = request
        self.task = task
        self.tid = tid
        self.valueMicroseconds = valueMicroseconds
    }

    /// Whether a request at `value` limits the CPU latency at all.
    public static func constrains(_ value: Int32) -> Bool {
        value != noConstraint && value < kernelDefaultMicroseconds
    }
}
