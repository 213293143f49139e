import Foundation
import Synchronization
import TraceFormat

private let sessionCounter = Atomic<Int>(0)

/// Records scheduler events from a private tracefs instance into a `.rpl` file.
///
/// ```swift
/// let session = try RecordingSession(options: RecordingOptions(target: .pids([getpid()]), outputPath: "self.rpl"))
/// try session.start()
/// … work …
/// let summary = try session.stop()
/// ```
///
/// One reader thread per CPU (nice −10) decodes the ring buffer; a merging thread puts the
/// CPUs' events in time order, maps tids to task indices, keeps what touches the recorded
/// tasks and streams it to a `TraceWriter`, flushing complete chunks every second. The
/// instance (`replayctl-<pid>-<n>`) is destroyed by `stop()`, or by `deinit` if `stop()` was
/// never called; instances of dead recorders are removed by the next session's `init`.
public final class RecordingSession: @unchecked Sendable {
    public let options: RecordingOptions
    /// Name of the tracefs instance (under `instances/`).
    public let instanceName: String
    /// Stale instances removed by `init`.
    public let reapedInstances: [String]
    private let tracingDirectory: String
    private let decoder: SchedDecoder
    private let kinds: [RawKind]

    private var instance: TraceInstance?
    private var readers: [CPUReader] = []
    private var cpus: [Int] = []
    private var writer: TraceWriter?
    private var converter: EventConverter?
    private var workload: Workload?
    private var metadata = TraceMetadata()
    private var startMonotonic: UInt64 = 0
    private var state = State.created

    private let mergerStop = Atomic<Bool>(false)
    /// Signalled by `stop()` so the sleeping merger ends at once.
    private let mergerWake = DispatchSemaphore(value: 0)
    private let mergerDone = DispatchSemaphore(value: 0)
    private let snapshots = TaskSnapshots()
    private var mergerRunning = false
    private let eventsWritten = Atomic<UInt64>(0)
    private let bytesWritten = Atomic<UInt64>(0)
    private let failureLock = NSLock()
    private var mergerFailure: Error?
    // Merge state (merging thread, then the stopping thread after the join).
    private var pending: [[RawRecord]] = []
    private var heads: [Int] = []
    private var marks: [UInt64] = []

    private enum State { case created, recording, stopped }

    /// Pid of the recorded command once started (`.command` targets).
    public var workloadPID: Int32? { workload?.pid }

    /// Checks permissions and the event formats, and removes stale instances of dead recorders.
    /// - Throws: `RecorderError` (`.permission` when not root).
    public init(options: RecordingOptions) throws {
        try options.validate()
        self.options = options
        tracingDirectory = try TraceInstance.tracingDirectory()
        reapedInstances = TraceInstance.reapStale()
        var kinds: [RawKind] = [.switchTask, .waking, .wakeupNew, .fork, .exec, .exit, .migrate]
        if options.recordRuntime { kinds.append(.runtime) }
        // Kernels without CPU latency QoS tracing are recorded without it.
        let eventsDirectory = "\(tracingDirectory)/events"
        if options.recordCPULatency,
           RawKind.cpuLatencyKinds.allSatisfy({ access("\(eventsDirectory)/\($0.qualifiedName)/format", R_OK) == 0 }) {
            kinds += RawKind.cpuLatencyKinds
        }
        self.kinds = kinds
        decoder = try SchedDecoder(tracingDirectory: tracingDirectory, kinds: kinds)
        let n = sessionCounter.wrappingAdd(1, ordering: .relaxed).newValue
        instanceName = "\(TraceInstance.namePrefix)\(getpid())-\(n)"
    }

    deinit {
        if state == .recording { _ = try? stop() }
    }

    /// Creates the instance, starts the readers and tracing, then (for `.command`) the command.
    /// - Throws: `RecorderError`, `TraceError` for the output file. On error nothing is left behind.
    public func start() throws {
        guard state == .created else { throw RecorderError.invalidState("start() called twice") }
        do {
            try startRecording()
        } catch {
            tearDownAfterFailure()
            throw error
        }
        state = .recording
    }

    private func startRecording() throws {
        let instance = try TraceInstance(name: instanceName)
        self.instance = instance
        try instance.write("trace_clock", "mono")
        try instance.setBufferSize(kilobytes: options.bufferSizeKilobytes)
        for kind in kinds { try instance.enable(system: kind.system, event: kind.eventName) }

        // Who is recorded.
        var scope = RecordingScope.tree
        var recorded = Set<Int32>()
        switch options.target {
        case .system:
            scope = .everything
        case let .pids(pids):
            for pid in pids where kill(pid, 0) != 0 && errno == ESRCH { throw RecorderError.noSuchProcess(pid: pid) }
            let processes = Set(pids).union(ProcFS.descendants(of: Set(pids)))
            for p in processes {
                recorded.insert(p)
                recorded.formUnion(ProcFS.threads(of: p))
            }
        case .command:
            break
        }

        let names = ProcFS.uname()
        cpus = ProcFS.onlineCPUs()
        metadata.kernelRelease = names.release
        metadata.architecture = names.machine
        metadata.hostname = names.node
        metadata.cpuModel = ProcFS.cpuModel()
        metadata.cpuCount = cpus.count
        metadata.clock = "mono"
        metadata.recorderVersion = options.recorderVersion
        if case let .command(argv) = options.target { metadata.command = argv }
        metadata.extra["scope"] = scope == .everything ? "system" : "process tree"
        if case let .pids(pids) = options.target { metadata.extra["pids"] = pids.map(String.init).joined(separator: " ") }
        metadata.extra["events"] = kinds.map(\.eventName).joined(separator: " ")
        metadata.extra["bufferSizeKilobytesPerCPU"] = String(options.bufferSizeKilobytes)
        metadata.extra["instance"] = instanceName
        if !options.recorderCommandLine.isEmpty { metadata.extra["recorderCommandLine"] = options.recorderCommandLine.joined(separator: " ") }
        metadata.startWallTimeNanoseconds = wallClockNanoseconds()

        let writer = try TraceWriter(path: options.outputPath, metadata: metadata)
        self.writer = writer
        converter = EventConverter(writer: writer, scope: scope, recordedTids: recorded, snapshots: snapshots)

        let subbufferSize = instance.subbufferSize()
        let poll = UInt32(clamping: max(1_000, options.pollInterval.components.seconds * 1_000_000
                                           + options.pollInterval.components.attoseconds / 1_000_000_000_000))
        for cpu in cpus {
            let fd = try instance.openRawPipe(cpu: cpu)
            readers.append(try CPUReader(cpu: cpu, fd: fd, subbufferSize: subbufferSize, decoder: decoder,
                                         pollMicroseconds: poll, nice: options.readerNice, snapshots: snapshots))
        }
        pending = (0..<readers.count).map { _ in
            var records: [RawRecord] = []
            records.reserveCapacity(CPUReader.batchCapacity)
            return records
        }
        heads = Array(repeating: 0, count: readers.count)
        marks = Array(repeating: 0, count: readers.count)
        for r in readers { r.start() }
        startMonotonic = monotonicNanoseconds()
        try instance.traceOn()

        if case let .command(argv) = options.target {
            let w = try Workload(argv: argv)
            workload = w
            // Known before the merger sees any event: the fork event marks nothing by itself.
            converter?.addRecorded(w.pid)
            RecordingSignals.forward(to: w.pid)
        }
        startMerger()
    }

    private func startMerger() {
        mergerRunning = true
        let flushEvery = UInt64(options.flushInterval.components.seconds) * 1_000_000_000
            + UInt64(options.flushInterval.components.attoseconds / 1_000_000_000)
        let thread = Thread { [self] in
            var nextFlush = monotonicNanoseconds() + flushEvery
            while !mergerStop.load(ordering: .acquiring) {
                do {
                    try mergeOnce(final: false)
                    if monotonicNanoseconds() >= nextFlush {
                        try writer?.flush()
                        nextFlush = monotonicNanoseconds() + flushEvery
                    }
                } catch {
                    failureLock.withLock { mergerFailure = error }
                    break
                }
                _ = mergerWake.wait(timeout: .now() + .milliseconds(50))
            }
            mergerDone.signal()
        }
        thread.name = "replayctl-merge"
        thread.start()
    }

    /// Moves the readers' records into time order and writes those every CPU has passed
    /// (all of them when `final`).
    private func mergeOnce(final: Bool) throws {
        guard let converter, let writer else { return }
        for (i, reader) in readers.enumerated() {
            // pending[i] holds only what is newer than the last limit (usually little or
            // nothing): an empty one is swapped with the reader's queue, not copied.
            marks[i] = reader.take(appendingTo: &pending[i]).watermark
        }
        let limit = final ? UInt64.max : (marks.min() ?? 0)
        try Self.merge(pending, heads: &heads, upTo: limit, into: converter)
        for i in pending.indices where heads[i] > 0 {
            if heads[i] == pending[i].count {
                pending[i].removeAll(keepingCapacity: true)
            } else {
                pending[i].removeFirst(heads[i])
            }
            heads[i] = 0
        }
        eventsWritten.store(writer.eventCount, ordering: .relaxed)
        bytesWritten.store(writer.bytesWritten, ordering: .relaxed)
    }

    /// Converts, in time order, the records of `queues` from `heads` on up to time `limit`, and
    /// moves `heads` past them. (The queues are a borrowed argument, not `self.pending`: no
    /// exclusivity check or reference count per record.)
    private static func merge(_ queues: [[RawRecord]], heads: inout [Int], upTo limit: UInt64,
                              into converter: EventConverter) throws {
        var h = heads
        defer { heads = h }
        if queues.count == 1 {
            let q = queues[0]
            while h[0] < q.count && q[h[0]].timestamp <= limit {
                try converter.convert(q[h[0]])
                h[0] += 1
            }
            return
        }
        while true {
            var best = -1
            var bestTime = UInt64.max
            for i in queues.indices where h[i] < queues[i].count {
                let t = queues[i][h[i]].timestamp
                if best < 0 || t < bestTime { best = i; bestTime = t }
            }
            guard best >= 0, bestTime <= limit else { break }
            try converter.convert(queues[best][h[best]])
            h[best] += 1
        }
    }

    /// Reaps the recorded command if it ended; returns its exit status (128 + signal if killed).
    public func workloadExitStatus() -> Int32? { workload?.poll() }

    /// Sends `signal` to the recorded command's process group.
    public func signalWorkload(_ signal: Int32) { workload?.signalGroup(signal) }

    /// Events, file size and lost events so far.
    /// - Parameter countingLost: read the lost-event counts from the instance's per-CPU stats
    ///   files (they are 0 in the result otherwise); a caller that only watches the time skips them.
    public func progress(countingLost: Bool = true) -> RecordingProgress {
        var lost: UInt64 = 0
        if countingLost, let instance, state == .recording { for cpu in cpus { lost += instance.lostEvents(cpu: cpu) ?? 0 } }
        return RecordingProgress(events: eventsWritten.load(ordering: .relaxed), fileBytes: bytesWritten.load(ordering: .relaxed),
                                 lostEvents: lost, elapsedNanoseconds: monotonicNanoseconds() &- startMonotonic)
    }

    /// Stops tracing, drains every CPU, writes the footer and destroys the instance.
    /// - Returns: what was recorded.
    /// - Throws: `RecorderError` or `TraceError` when the trace could not be completed; the
    ///   instance is destroyed anyway.
    public func stop() throws -> RecordingSummary {
        guard state == .recording else {
            throw RecorderError.invalidState(state == .created ? "stop() before start()" : "stop() called twice")
        }
        state = .stopped
        let stopMonotonic = monotonicNanoseconds()
        // Teardown order matters: off → readers drain and end → stats → close readers → destroy.
        instance?.traceOff()
        for r in readers { r.requestStop() }
        for r in readers { r.join() }
        mergerStop.store(true, ordering: .releasing)
        mergerWake.signal()
        if mergerRunning { mergerDone.wait(); mergerRunning = false }
        var failure: Error? = failureLock.withLock { mergerFailure }
        if failure == nil {
            do { try mergeOnce(final: true) } catch { failure = error }
        }
        var lost: [UInt64] = Array(repeating: 0, count: (cpus.max() ?? 0) + 1)
        var warnings: [String] = []
        for cpu in cpus {
            if let n = instance?.lostEvents(cpu: cpu) { lost[cpu] = n } else { warnings.append("cannot read the lost-event count of cpu\(cpu)") }
        }
        var readerCPU: UInt64 = 0, decoded: UInt64 = 0, rawBytes: UInt64 = 0
        for r in readers {
            readerCPU += r.threadCPUNanoseconds
            decoded += r.recordsDecoded
            rawBytes += r.bytesRead
            if !r.priorityRaised { warnings.append("cpu\(r.cpu) reader could not raise its priority to nice \(options.readerNice): events may be lost under load") }
        }
        for r in readers { r.closeFiles() }
        readers.removeAll()
        if let message = instance?.destroy() { warnings.append(message) }
        instance = nil

        let status = workload?.poll()
        var inferred = 0
        if let converter {
            inferred = converter.finishInference()
            if converter.reorderedEvents > 0 {
                warnings.append("\(converter.reorderedEvents) events arrived after later ones had been written; their timestamps were raised to keep the order")
                metadata.extra["reorderedEvents"] = String(converter.reorderedEvents)
            }
            metadata.firstTimestamp = converter.firstTimestamp ?? 0
            if kinds.contains(.latencyAdd) {
                metadata.cpuLatencyRequests = converter.cpuLatencyRequests
                if converter.unattributedLatencyRemoves > 0 {
                    warnings.append("\(converter.unattributedLatencyRemoves) CPU latency QoS removes could not be matched to the request they ended")
                    metadata.extra["unattributedCPULatencyRequests"] = String(converter.unattributedLatencyRemoves)
                }
            }
        }
        metadata.lastTimestamp = max(metadata.firstTimestamp, lastWrittenTimestamp())
        metadata.durationNanoseconds = stopMonotonic &- startMonotonic
        metadata.lostEvents = lost
        metadata.inferredSwitchIns = UInt64(inferred)
        metadata.exitStatus = status
        var tasks = 0, recordedTasks = 0
        if let writer {
            tasks = writer.taskCount - 1
            for i in 1..<writer.taskCount where writer.task(TaskIndex(i)).isRecorded { recordedTasks += 1 }
            if failure == nil {
                do { try writer.finish(metadata: metadata) } catch { failure = error }
            }
        }
        RecordingSignals.forward(to: 0)
        if let failure { throw failure }
        var summary = RecordingSummary(path: options.outputPath, events: writer?.eventCount ?? 0, fileBytes: writer?.bytesWritten ?? 0,
                                lostEvents: lost, inferredSwitchIns: UInt64(inferred), durationNanoseconds: metadata.durationNanoseconds,
                                tasks: tasks, recordedTasks: recordedTasks, exitStatus: status, readerCPUNanoseconds: readerCPU,
                                recordsDecoded: decoded, rawBytesRead: rawBytes, reapedInstances: reapedInstances, warnings: warnings)
        summary.cpuLatencyCalls = metadata.cpuLatencyRequests?.count
        return summary
    }

    private func lastWrittenTimestamp() -> UInt64 { converter?.lastWritten ?? 0 }

    private func tearDownAfterFailure() {
        instance?.traceOff()
        for r in readers { r.requestStop() }
        for r in readers { r.join() }
        for r in readers { r.closeFiles() }
        readers.removeAll()
        instance?.destroy()
        instance = nil
        if let w = workload, w.poll() == nil { w.signalGroup(SIGKILL); w.poll(block: true) }
        if writer != nil { unlink(options.outputPath) }
        writer = nil
        state = .stopped
    }
}
