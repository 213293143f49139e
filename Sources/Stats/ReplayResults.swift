/// What `replayctl replay --output results.json` writes: the input of `replayctl compare`.
/// Schema `replayctl-results/1`, documented in docs/results-json.md.
public struct ReplayResults: Equatable, Sendable, Codable {
    public static let schemaName = "replayctl-results/1"
    public var schema: String = ReplayResults.schemaName
    /// replayctl version that ran the replay.
    public var tool: String
    public var trace: TraceIdentity
    /// The machine the replay ran on.
    public var machine: MachineDescription
    /// Replay options, as given (`cpuScale`, `affinity`, `policy`, `selection`, …).
    public var options: [String: String]
    /// Every run, warmups included (flagged).
    public var runs: [ReplayRun]
    /// What the replay did beyond the options, one sentence each (the CPU latency limits it
    /// held, or why it could not); absent in older files and when there is nothing to say.
    public var notes: [String]?
    /// CPU a replay thread is charged after its program ends (its exit), measured when the
    /// replay starts; each thread's last run leaves it out (at most that run's length), so
    /// `tasks[].cpuNanoseconds` is up to that much under the recorded CPU by design
    /// (`exitAllowanceNanoseconds` says how much). Absent in older files.
    public var threadExitCostNanoseconds: UInt64?

    public init(tool: String, trace: TraceIdentity, machine: MachineDescription, options: [String: String], runs: [ReplayRun] = [],
                notes: [String]? = nil) {
        self.tool = tool
        self.trace = trace
        self.machine = machine
        self.options = options
        self.runs = runs
        self.notes = notes
    }

    /// Appends `note` to `notes` unless it is there already.
    public mutating func addNote(_ note: String) {
        if notes?.contains(note) == true { return }
        notes = (notes ?? []) + [note]
    }

    /// Runs that count (not warmups).
    public var measuredRuns: [ReplayRun] { runs.filter { !$0.warmup } }
}

/// Which trace was replayed: `compare` refuses results of different traces.
public struct TraceIdentity: Equatable, Sendable, Codable {
    public var path: String
    /// SHA-256 of the trace file, hex.
    public var sha256: String
    /// Kernel and host the trace was recorded on.
    public var recordedKernel: String
    public var recordedHost: String
    public var durationNanoseconds: UInt64
    /// Tasks replayed (after selection) and events in the trace.
    public var replayedTasks: Int
    public var events: UInt64

    public init(path: String, sha256: String, recordedKernel: String, recordedHost: String,
                durationNanoseconds: UInt64, replayedTasks: Int, events: UInt64) {
        self.path = path
        self.sha256 = sha256
        self.recordedKernel = recordedKernel
        self.recordedHost = recordedHost
        self.durationNanoseconds = durationNanoseconds
        self.replayedTasks = replayedTasks
        self.events = events
    }
}

/// A machine and kernel.
public struct MachineDescription: Equatable, Sendable, Codable {
    public var hostname: String
    public var kernelRelease: String
    public var architecture: String
    public var cpuModel: String
    public var cpuCount: Int

    public init(hostname: String, kernelRelease: String, architecture: String, cpuModel: String, cpuCount: Int) {
        self.hostname = hostname
        self.kernelRelease = kernelRelease
        self.architecture = architecture
        self.cpuModel = cpuModel
        self.cpuCount = cpuCount
    }
}

/// One replay run: fresh threads, released together.
public struct ReplayRun: Equatable, Sendable, Codable {
    public var index: Int
    public var warmup: Bool
    /// Wall-clock start, nanoseconds since the Unix epoch.
    public var startWallTimeNanoseconds: UInt64
    /// Release of the threads → last thread done (CLOCK_MONOTONIC).
    public var makespanNanoseconds: UInt64
    /// The same span in the trace, for the replayed tasks.
    public var recordedMakespanNanoseconds: UInt64
    /// Wake issued → wakee running, for waits that really blocked (nanoseconds).
    public var wakeupLatency: LatencyHistogram
    /// The same, split by whether waker and wakee were on the same CPU at that moment.
    public var wakeupLatencySameCPU: LatencyHistogram
    public var wakeupLatencyCrossCPU: LatencyHistogram
    /// Timed sleep: deadline → running again (nanoseconds), for sleeps entered before their deadline.
    public var timerOvershoot: LatencyHistogram
    public var counts: ReplayCounts
    public var tasks: [ReplayTaskResult]

    public init(index: Int, warmup: Bool, startWallTimeNanoseconds: UInt64, makespanNanoseconds: UInt64,
                recordedMakespanNanoseconds: UInt64, wakeupLatency: LatencyHistogram, wakeupLatencySameCPU: LatencyHistogram,
                wakeupLatencyCrossCPU: LatencyHistogram, timerOvershoot: LatencyHistogram, counts: ReplayCounts, tasks: [ReplayTaskResult]) {
        self.index = index
        self.warmup = warmup
        self.startWallTimeNanoseconds = startWallTimeNanoseconds
        self.makespanNanoseconds = makespanNanoseconds
        self.recordedMakespanNanoseconds = recordedMakespanNanoseconds
        self.wakeupLatency = wakeupLatency
        self.wakeupLatencySameCPU = wakeupLatencySameCPU
        self.wakeupLatencyCrossCPU = wakeupLatencyCrossCPU
        self.timerOvershoot = timerOvershoot
        self.counts = counts
        self.tasks = tasks
    }
}

/// Event counts of one run.
public struct ReplayCounts: Equatable, Sendable, Codable {
    /// Task-to-task wakes issued.
    public var wakes: UInt64 = 0
    /// Waits whose wake had already arrived (no blocking, no latency sample).
    public var waitsAlreadySatisfied: UInt64 = 0
    /// Waits that blocked and were woken (one latency sample each).
    public var waitsBlocked: UInt64 = 0
    public var timedSleeps: UInt64 = 0
    /// Timed sleeps whose deadline had passed when the thread got there (the replay ran
    /// late); each still sleeps, as briefly as really blocks.
    public var lateTimedSleeps: UInt64 = 0
    /// Waits turned into timed sleeps when the programs were built (waker not replayed).
    public var unmatchedWaits: UInt64 = 0
    /// Waits given up after the safety timeout (a wake never came): should be 0.
    public var timedOutWaits: UInt64 = 0
    /// Wakes held or deferred until their wakee reached its wait (docs/replay.md, "Wake order"); absent in older files.
    public var heldWakes: UInt64?
    /// Hand-offs (docs/replay.md): resumed while yielding the CPU, as in the trace, or after
    /// blocking because the wake was long in coming; absent in older files.
    public var handOffsYielded: UInt64?
    public var handOffsBlocked: UInt64?
    /// Wakes whose wakee had committed to block but was not asleep yet: the waker kept each
    /// (counted, not delivered) and woke the wakee once it slept (docs/replay.md, "Waits");
    /// and those of them given up because the waker had to block, sleep or end first (the
    /// wakee then did not sleep for it). Absent in older files.
    public var wakesKeptUntilAsleep: UInt64?
    public var wakesNotKeptUntilAsleep: UInt64?
    /// Waits whose wake was counted but whose futex_wake never came: the thread found its
    /// wake only when its futex_wait timed out (at most a second later). Should be 0 (a lost
    /// wakeup in replayctl); absent in older files.
    public var wakesMissed: UInt64?
    /// Deferred wakes their waker could not keep (it had to block, sleep or end first) and
    /// the coordinating thread delivered as their wakee reached its wait: the wakee is woken
    /// by that thread, not the trace's waker, or finds its wait satisfied if the wake lands
    /// before it blocks. Absent in older files.
    public var wakesFromCoordinator: UInt64?

    public init() {}
}

/// One replayed task in one run.
public struct ReplayTaskResult: Equatable, Sendable, Codable {
    public var originalTid: Int32
    public var replayTid: Int32
    public var comm: String
    /// CPU time the trace says the task used, and what the replay thread used
    /// (CLOCK_THREAD_CPUTIME_ID, from its creation to its end).
    public var recordedCpuNanoseconds: UInt64
    public var cpuNanoseconds: UInt64
    public var wakesReceived: UInt64
    public var sleeps: UInt64
    public var timedSleeps: UInt64
    public var wakeupLatencyP50: UInt64
    public var wakeupLatencyP99: UInt64
    /// Times the replay thread really blocked during the run (its voluntary context
    /// switches, getrusage): what a recording of the replay would count as sleeps, against
    /// `sleeps` from the trace; absent in older files.
    public var voluntarySwitches: UInt64?
    /// What the thread's last run left out for what its exit costs after `cpuNanoseconds` was
    /// read (`ReplayResults.threadExitCostNanoseconds`, at most the last run's length): its CPU,
    /// exit included, is about `cpuNanoseconds` + this. Absent in older files.
    public var exitAllowanceNanoseconds: UInt64?

    /// `cpuNanoseconds` plus the exit allowance: what to compare with `recordedCpuNanoseconds`.
    public var cpuWithExitNanoseconds: UInt64 {
        let (sum, overflow) = cpuNanoseconds.addingReportingOverflow(exitAllowanceNanoseconds ?? 0)
        return overflow ? .max : sum
    }

    public init(originalTid: Int32, replayTid: Int32, comm: String, recordedCpuNanoseconds: UInt64, cpuNanoseconds: UInt64,
                wakesReceived: UInt64, sleeps: UInt64, timedSleeps: UInt64, wakeupLatencyP50: UInt64, wakeupLatencyP99: UInt64,
                voluntarySwitches: UInt64? = nil, exitAllowanceNanoseconds: UInt64? = nil) {
        self.voluntarySwitches = voluntarySwitches
        self.exitAllowanceNanoseconds = exitAllowanceNanoseconds
        self.originalTid = originalTid
        self.replayTid = replayTid
        self.comm = comm
        self.recordedCpuNanoseconds = recordedCpuNanoseconds
        self.cpuNanoseconds = cpuNanoseconds
        self.wakesReceived = wakesReceived
        self.sleeps = sleeps
        self.timedSleeps = timedSleeps
        self.wakeupLatencyP50 = wakeupLatencyP50
        self.wakeupLatencyP99 = wakeupLatencyP99
    }
}
