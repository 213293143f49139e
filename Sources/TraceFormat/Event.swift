/// Index of a task in a trace's task table. Index 0 is always the idle task (tid 0).
public struct TaskIndex: RawRepresentable, Hashable, Comparable, Sendable, Codable, CustomStringConvertible {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public init(_ value: Int) { self.rawValue = UInt32(value) }
    /// The idle task ("swapper", tid 0) of every CPU.
    public static let idle = TaskIndex(rawValue: 0)
    public var isIdle: Bool { rawValue == 0 }
    public var intValue: Int { Int(rawValue) }
    public static func < (a: TaskIndex, b: TaskIndex) -> Bool { a.rawValue < b.rawValue }
    public var description: String { "#\(rawValue)" }
    public init(from decoder: Decoder) throws { rawValue = try decoder.singleValueContainer().decode(UInt32.self) }
    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(rawValue)
    }
}

/// A CPU number as the kernel numbers it.
public struct CPU: RawRepresentable, Hashable, Comparable, Sendable, Codable, CustomStringConvertible {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public init(_ value: Int) { self.rawValue = UInt32(value) }
    public var intValue: Int { Int(rawValue) }
    public static func < (a: CPU, b: CPU) -> Bool { a.rawValue < b.rawValue }
    public var description: String { "cpu\(rawValue)" }
    public init(from decoder: Decoder) throws { rawValue = try decoder.singleValueContainer().decode(UInt32.self) }
    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(rawValue)
    }
}

/// State of the task leaving the CPU in a switch (`prev_state` of `sched_switch`).
public enum TaskState: UInt8, Sendable, Codable, CaseIterable {
    /// Still runnable: preempted (R, R+).
    case running = 0
    /// Interruptible sleep (S).
    case sleeping = 1
    /// Uninterruptible sleep (D), e.g. disk.
    case uninterruptible = 2
    /// Exiting (X or Z).
    case dead = 3
    /// Stopped or traced (T, t).
    case stopped = 4
    /// Idle-parked kernel thread (I) or anything else.
    case other = 5

    /// True when the task blocked (it needs a wakeup to run again).
    public var isBlocked: Bool { self == .sleeping || self == .uninterruptible || self == .other || self == .stopped }

    /// The letter perf and trace-cmd print for this state.
    public var letter: String {
        switch self {
        case .running: "R"
        case .sleeping: "S"
        case .uninterruptible: "D"
        case .dead: "X"
        case .stopped: "T"
        case .other: "I"
        }
    }
}

/// Where a wakeup came from, from the trace entry's flags.
public enum WakeContext: UInt8, Sendable, Codable, CaseIterable {
    /// A task woke another from process context (pipe write, futex wake, …).
    case task = 0
    /// From a hard interrupt (timer expiry, device interrupt).
    case hardIRQ = 1
    /// From a soft interrupt (network, RCU, timers run in softirq).
    case softIRQ = 2
    /// From an NMI.
    case nmi = 3

    public var name: String {
        switch self {
        case .task: "task"
        case .hardIRQ: "hardirq"
        case .softIRQ: "softirq"
        case .nmi: "nmi"
        }
    }
}

/// One scheduler event. Timestamps are nanoseconds on the trace clock (`mono`, which lines up
/// with `CLOCK_MONOTONIC`).
public struct Event: Equatable, Sendable {
    /// Nanoseconds on the trace clock.
    public var timestamp: UInt64
    /// CPU the event was logged on.
    public var cpu: CPU
    public var kind: Kind

    public init(timestamp: UInt64, cpu: CPU, kind: Kind) {
        self.timestamp = timestamp
        self.cpu = cpu
        self.kind = kind
    }

    public enum Kind: Equatable, Sendable {
        /// `sched_switch`: `prev` leaves the CPU in `prevState`, `next` runs.
        case switchTask(prev: TaskIndex, prevState: TaskState, next: TaskIndex)
        /// `sched_waking`: `waker` (the task current when it fired, if known) wakes `target`
        /// towards `targetCPU`, from `context`.
        case waking(waker: TaskIndex?, target: TaskIndex, targetCPU: CPU, context: WakeContext)
        /// `sched_wakeup_new`: a forked task becomes runnable for the first time.
        case wakeupNew(target: TaskIndex, targetCPU: CPU)
        /// `sched_process_fork`.
        case fork(parent: TaskIndex, child: TaskIndex)
        /// `sched_process_exec`: the task now runs `comm`.
        case exec(task: TaskIndex, comm: String)
        /// `sched_process_exit`.
        case exit(task: TaskIndex)
        /// `sched_migrate_task`.
        case migrate(task: TaskIndex, from: CPU, to: CPU)
        /// `sched_stat_runtime`: the task ran `nanoseconds` of CPU time since the last report.
        case runtime(task: TaskIndex, nanoseconds: UInt64)
    }

    /// Short name of the kind, as used in `info --json`.
    public var kindName: String { kind.name }
}

extension Event.Kind {
    public var name: String {
        switch self {
        case .switchTask: "switch"
        case .waking: "waking"
        case .wakeupNew: "wakeupNew"
        case .fork: "fork"
        case .exec: "exec"
        case .exit: "exit"
        case .migrate: "migrate"
        case .runtime: "runtime"
        }
    }

    /// Every kind name, in the order `info` prints them.
    public static let allNames = ["switch", "waking", "wakeupNew", "fork", "exec", "exit", "migrate", "runtime"]
}
