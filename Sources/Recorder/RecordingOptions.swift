import Foundation

/// What to record.
public enum RecordingTarget: Sendable, Equatable {
    /// Start this command (argv; PATH is searched) after tracing is on, record its whole process
    /// tree, stop when it exits.
    case command([String])
    /// Record these running processes, every thread of them, their live descendants, and every
    /// thread or child they create after the start.
    case pids([Int32])
    /// Record every task of the system.
    case system
}

/// Settings of a `RecordingSession`.
public struct RecordingOptions: Sendable {
    /// What to record.
    public var target: RecordingTarget
    /// The `.rpl` file to write (replaced if it exists).
    public var outputPath: String
    /// Ring-buffer size per CPU, in KiB. 4 MiB absorbs ~300 ms of reader delay at 0.25 M
    /// events/s per CPU (52 bytes per raw event).
    public var bufferSizeKilobytes: Int = 4096
    /// Record `sched_stat_runtime` (exact CPU time; recovers switch-ins the kernel does not log).
    public var recordRuntime: Bool = true
    /// Record the CPU latency QoS requests (`power/pm_qos_*_request`, `/dev/cpu_dma_latency`)
    /// when the kernel has those events: a replay reproduces them.
    public var recordCPULatency: Bool = true
    /// Nice value of the reader threads (negative needs root; keeps them from being starved).
    public var readerNice: Int32 = -10
    /// How long a reader sleeps after finding its buffer empty.
    public var pollInterval: Duration = .milliseconds(20)
    /// How often complete chunks are written out, so a killed recorder leaves them readable.
    public var flushInterval: Duration = .seconds(1)
    /// Written into the trace's metadata (`recorderVersion`).
    public var recorderVersion: String = "replayctl"
    /// The command line of the recorder, kept in the metadata's `extra`.
    public var recorderCommandLine: [String] = []

    /// Options to record `target` into `outputPath` with the defaults above.
    public init(target: RecordingTarget, outputPath: String) {
        self.target = target
        self.outputPath = outputPath
    }

    func validate() throws {
        if case let .command(argv) = target, argv.isEmpty {
            throw RecorderError.invalidOption("no command to record — give it after `--`, or use -a / -p PID")
        }
        if case let .pids(pids) = target, pids.isEmpty || pids.contains(where: { $0 <= 0 }) {
            throw RecorderError.invalidOption("-p needs positive process ids")
        }
        if bufferSizeKilobytes < 64 || bufferSizeKilobytes > 4 << 20 {
            throw RecorderError.invalidOption("buffer size \(bufferSizeKilobytes) KiB per CPU is out of range — use 64 KiB … 4 GiB")
        }
        if outputPath.isEmpty { throw RecorderError.invalidOption("no output file — give one with -o FILE") }
    }
}

/// A snapshot of a running recording, for a progress display.
public struct RecordingProgress: Sendable {
    /// Events written to the trace so far.
    public var events: UInt64
    /// Bytes written to the file so far (complete chunks only).
    public var fileBytes: UInt64
    /// Events the kernel dropped so far (all CPUs), from the instance's stats.
    public var lostEvents: UInt64
    /// Nanoseconds since the start.
    public var elapsedNanoseconds: UInt64
}

/// What a finished recording produced.
public struct RecordingSummary: Sendable {
    public var path: String
    public var events: UInt64
    public var fileBytes: UInt64
    /// Events the kernel dropped, per CPU (index = CPU number).
    public var lostEvents: [UInt64]
    public var totalLostEvents: UInt64 { lostEvents.reduce(0, +) }
    /// Switch-ins the kernel did not log that were inferred.
    public var inferredSwitchIns: UInt64
    /// Recording length (CLOCK_MONOTONIC nanoseconds, start to stop).
    public var durationNanoseconds: UInt64
    /// Tasks in the table (without the idle task), and how many of them were recorded.
    public var tasks: Int
    public var recordedTasks: Int
    /// Exit status of the recorded command (shell convention: 128 + signal when killed).
    public var exitStatus: Int32?
    /// CPU time of all reader threads together (nanoseconds).
    public var readerCPUNanoseconds: UInt64
    /// Raw records decoded by the readers (before filtering).
    public var recordsDecoded: UInt64
    /// Raw bytes read from the ring buffers.
    public var rawBytesRead: UInt64
    /// Stale instances of dead recorders removed at the start.
    public var reapedInstances: [String]
    /// Things the user should know (priority not raised, clamped timestamps, …).
    public var warnings: [String]
    /// CPU latency QoS calls kept (`TraceMetadata.cpuLatencyRequests`); nil when they were not traced.
    public var cpuLatencyCalls: Int? = nil

    /// File bytes per event.
    public var bytesPerEvent: Double { events > 0 ? Double(fileBytes) / Double(events) : 0 }
}
