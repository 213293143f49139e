/// Scheduling policy of a task (`SCHED_*`).
public enum SchedulingPolicy: String, Sendable, Codable, CaseIterable {
    case other = "SCHED_OTHER"
    case fifo = "SCHED_FIFO"
    case roundRobin = "SCHED_RR"
    case batch = "SCHED_BATCH"
    case idle = "SCHED_IDLE"
    case deadline = "SCHED_DEADLINE"
    case ext = "SCHED_EXT"

    /// The kernel's number for the policy.
    public var number: Int32 {
        switch self {
        case .other: 0
        case .fifo: 1
        case .roundRobin: 2
        case .batch: 3
        case .idle: 5
        case .deadline: 6
        case .ext: 7
        }
    }

    public init?(number: Int32) {
        guard let p = Self.allCases.first(where: { $0.number == number }) else { return nil }
        self = p
    }
}

/// One row of a trace's task table: a task as first seen, updated with what was learnt later.
public struct TaskInfo: Equatable, Sendable, Codable {
    /// Thread id (the kernel's pid of the task).
    public var tid: Int32
    /// Thread-group id (the process id). Equal to `tid` for a main thread.
    public var tgid: Int32
    /// Command name (up to 15 bytes), as first seen.
    public var comm: String
    /// The task that forked this one, if it is in the table.
    public var parent: TaskIndex?
    /// Scheduling policy, when known.
    public var policy: SchedulingPolicy?
    /// Nice value for normal policies, when known.
    public var nice: Int32?
    /// Real-time priority (1…99) for FIFO/RR, when known.
    public var realtimePriority: Int32?
    /// CPUs the task may run on, when known.
    public var affinity: [Int]?
    /// True for kernel threads (kworkers, ksoftirqd, …).
    public var isKernelThread: Bool
    /// True when the task belongs to the command that was recorded (the process tree of
    /// `record -- COMMAND` or of `-p PID`).
    public var isRecorded: Bool

    public init(
        tid: Int32, tgid: Int32, comm: String, parent: TaskIndex? = nil,
        policy: SchedulingPolicy? = nil, nice: Int32? = nil, realtimePriority: Int32? = nil,
        affinity: [Int]? = nil, isKernelThread: Bool = false, isRecorded: Bool = false
    ) {
        self.tid = tid
        self.tgid = tgid
        self.comm = comm
        self.parent = parent
        self.policy = policy
        self.nice = nice
        self.realtimePriority = realtimePriority
        self.affinity = affinity
        self.isKernelThread = isKernelThread
        self.isRecorded = isRecorded
    }

    /// The idle task, always at index 0.
    public static let idle = TaskInfo(tid: 0, tgid: 0, comm: "<idle>", isKernelThread: true)
}

/// What is known about the recording: machine, kernel, command, and what was lost.
public struct TraceMetadata: Equatable, Sendable, Codable {
    /// `uname -r` of the recording machine.
    public var kernelRelease: String = ""
    /// `uname -m`.
    public var architecture: String = ""
    public var hostname: String = ""
    /// CPU model name from /proc/cpuinfo.
    public var cpuModel: String = ""
    /// Number of CPUs online at recording time.
    public var cpuCount: Int = 0
    /// Trace clock used for timestamps (`mono` lines up with CLOCK_MONOTONIC).
    public var clock: String = "mono"
    /// Wall-clock start of the recording, nanoseconds since the Unix epoch.
    public var startWallTimeNanoseconds: UInt64 = 0
    /// First and last event time on the trace clock.
    public var firstTimestamp: UInt64 = 0
    public var lastTimestamp: UInt64 = 0
    /// Duration of the recording (nanoseconds).
    public var durationNanoseconds: UInt64 = 0
    /// Program and version that wrote the trace.
    public var recorderVersion: String = ""
    /// The command recorded (empty for a system-wide or `-p` recording).
    public var command: [String] = []
    /// Events the kernel dropped per CPU (index = CPU number), from the instance's stats.
    public var lostEvents: [UInt64] = []
    /// Switch-ins the kernel did not log and the recorder inferred.
    public var inferredSwitchIns: UInt64 = 0
    /// Exit status of the recorded command, when there was one.
    public var exitStatus: Int32?
    /// Free-form key/values (tool options, source of an import, …).
    public var extra: [String: String] = [:]
    /// CPU latency QoS requests of the recorded tasks (`/dev/cpu_dma_latency`), in time order;
    /// empty when none was made, nil when the recording did not trace them (an older trace, a
    /// kernel without the `power/pm_qos_*_request` events, an import).
    public var cpuLatencyRequests: [CPULatencyRequest]?
    /// Fields of the stored metadata that were malformed and ignored, one line each (not
    /// stored; filled when decoding, so that a bad optional field never makes a trace unreadable).
    public var decodingWarnings: [String] = []

    public init() {}

    private enum CodingKeys: String, CodingKey {
        case kernelRelease, architecture, hostname, cpuModel, cpuCount, clock, startWallTimeNanoseconds
        case firstTimestamp, lastTimestamp, durationNanoseconds, recorderVersion, command, lostEvents
        case inferredSwitchIns, exitStatus, extra, cpuLatencyRequests
    }

    /// Decodes the stored JSON. Every field but `cpuLatencyRequests` is required as before;
    /// that one, added in format 2.1, is read leniently: a value that does not decode is
    /// ignored (the trace reads as one without requests) and named in `decodingWarnings`.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        kernelRelease = try c.decode(String.self, forKey: .kernelRelease)
        architecture = try c.decode(String.self, forKey: .architecture)
        hostname = try c.decode(String.self, forKey: .hostname)
        cpuModel = try c.decode(String.self, forKey: .cpuModel)
        cpuCount = try c.decode(Int.self, forKey: .cpuCount)
        clock = try c.decode(String.self, forKey: .clock)
        startWallTimeNanoseconds = try c.decode(UInt64.self, forKey: .startWallTimeNanoseconds)
        firstTimestamp = try c.decode(UInt64.self, forKey: .firstTimestamp)
        lastTimestamp = try c.decode(UInt64.self, forKey: .lastTimestamp)
        durationNanoseconds = try c.decode(UInt64.self, forKey: .durationNanoseconds)
        recorderVersion = try c.decode(String.self, forKey: .recorderVersion)
        command = try c.decode([String].self, forKey: .command)
        lostEvents = try c.decode([UInt64].self, forKey: .lostEvents)
        inferredSwitchIns = try c.decode(UInt64.self, forKey: .inferredSwitchIns)
        exitStatus = try c.decodeIfPresent(Int32.self, forKey: .exitStatus)
        extra = try c.decode([String: String].self, forKey: .extra)
        do {
            cpuLatencyRequests = try c.decodeIfPresent([CPULatencyRequest].self, forKey: .cpuLatencyRequests)
        } catch {
            cpuLatencyRequests = nil
            decodingWarnings.append("metadata field cpuLatencyRequests is malformed (\(Self.reason(error))): ignored, the trace reads as one without CPU latency requests")
        }
    }

    /// A short reason for a decoding error: what was wrong and where.
    private static func reason(_ error: Error) -> String {
        func path(_ keys: [CodingKey]) -> String {
            keys.reduce("") { text, key in key.intValue.map { text + "[\($0)]" } ?? (text.isEmpty ? "" : text + ".") + key.stringValue }
        }
        switch error {
        case let DecodingError.typeMismatch(_, context), let DecodingError.valueNotFound(_, context),
             let DecodingError.dataCorrupted(context):
            return "\(path(context.codingPath)): \(context.debugDescription)"
        case let DecodingError.keyNotFound(key, context):
            return "\(path(context.codingPath)): no \(key.stringValue)"
        default:
            return "\(error)"
        }
    }

    /// Sum of `lostEvents`.
    public var totalLostEvents: UInt64 { lostEvents.reduce(0, +) }
}
