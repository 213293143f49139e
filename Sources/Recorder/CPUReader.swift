import CTraceFS
import Foundation
import Synchronization

/// Reads one CPU's `trace_pipe_raw` on its own thread (at raised priority), decodes each
/// sub-buffer with kbuffer and hands the records to the merging thread in batches.
///
/// The reader polls with non-blocking reads: after a read finds the buffer empty, every later
/// record of this CPU is newer than the time taken just before that read (minus a margin for
/// records being written at that instant). That time is the reader's *watermark*; the merger
/// writes events only up to the lowest watermark of all CPUs, so the output is in time order
/// even for CPUs that log nothing for a while.
final class CPUReader: @unchecked Sendable {
    let cpu: Int
    private let fd: Int32
    private var fdOpen = true
    private var tcpu: OpaquePointer?
    private let kbuf: OpaquePointer
    private let buffer: UnsafeMutableRawPointer
    private let decoder: SchedDecoder
    private let pollMicroseconds: UInt32
    private let nice: Int32
    /// Margin subtracted from the empty-read time (mono trace clock vs CLOCK_MONOTONIC skew,
    /// records being committed while we read).
    static let watermarkMargin: UInt64 = 2_000_000

    /// Records decoded before they are handed over even when the buffer is not empty yet.
    static let publishThreshold = 16384
    /// Capacity reserved up front for each array of records that circulates between reader and
    /// merger (they are swapped, not reallocated): a batch plus the sub-buffer that crossed the
    /// threshold, and room for two batches while the merger is late. Growing them later means
    /// a new allocation whose pages all fault in again.
    static let batchCapacity = 2 * publishThreshold + 1024

    private let lock = NSLock()
    private var queue: [RawRecord] = []
    private var watermark: UInt64 = 0
    private var finished = false
    private let stopRequested = Atomic<Bool>(false)
    /// Signalled by `requestStop()` so a sleeping reader drains and ends at once.
    private let wake = DispatchSemaphore(value: 0)
    private let done = DispatchSemaphore(value: 0)
    private let snapshots: TaskSnapshots?
    private var started = false

    // Written by the reader thread only (per record: no runtime exclusivity check); read after `join()`.
    @exclusivity(unchecked) private(set) var subbuffersRead: UInt64 = 0
    @exclusivity(unchecked) private(set) var bytesRead: UInt64 = 0
    @exclusivity(unchecked) private(set) var recordsDecoded: UInt64 = 0
    /// Sub-buffers whose header said events were lost before them.
    @exclusivity(unchecked) private(set) var subbuffersWithMissedEvents: UInt64 = 0
    /// Threads CPU time of the reader (nanoseconds), measured at its end.
    private(set) var threadCPUNanoseconds: UInt64 = 0
    /// Whether raising the priority worked.
    private(set) var priorityRaised = false

    /// Opens the reader for `cpu` on `fd` (opened with O_CLOEXEC; owned by the reader from now on).
    /// - Parameter snapshots: where the /proc facts of forked children go (nil: only their tgid
    ///   is looked up, into the record's `value`).
    init(cpu: Int, fd: Int32, subbufferSize: Int, decoder: SchedDecoder, pollMicroseconds: UInt32, nice: Int32,
         snapshots: TaskSnapshots? = nil) throws {
        self.cpu = cpu
        self.snapshots = snapshots
        self.fd = fd
        self.decoder = decoder
        self.pollMicroseconds = pollMicroseconds
        self.nice = nice
        guard let t = tracefs_cpu_alloc_fd(fd, Int32(subbufferSize), true) else {
            let code = errno
            close(fd)
            throw RecorderError.tracefs(operation: "tracefs_cpu_alloc_fd", path: "cpu\(cpu)/trace_pipe_raw", reason: errnoText(code))
        }
        guard let k = kbuffer_alloc(KBUFFER_LSIZE_SAME_AS_HOST, KBUFFER_ENDIAN_SAME_AS_HOST) else {
            tracefs_cpu_free_fd(t)
            close(fd)
            throw RecorderError.tracefs(operation: "kbuffer_alloc", path: "cpu\(cpu)", reason: "out of memory")
        }
        tcpu = t
        kbuf = k
        queue.reserveCapacity(Self.batchCapacity)
        buffer = UnsafeMutableRawPointer.allocate(byteCount: subbufferSize, alignment: 64)
    }

    deinit {
        if started { join() }
        closeFiles()
        kbuffer_free(kbuf)
        buffer.deallocate()
    }

    /// Closes `trace_pipe_raw` now (after `join()`): the instance cannot be removed while it is
    /// open, and `deinit` may come late — the ended thread's closure can still hold the reader.
    func closeFiles() {
        guard fdOpen else { return }
        if started { join() }
        if let t = tcpu { tracefs_cpu_free_fd(t) }
        tcpu = nil
        close(fd)
        fdOpen = false
    }

    /// Starts the reading thread.
    func start() {
        started = true
        let thread = Thread { [self] in self.run() }
        thread.name = "replayctl-cpu\(cpu)"
        thread.start()
    }

    /// Asks the thread to drain what is left and end (call after tracing was turned off).
    func requestStop() {
        stopRequested.store(true, ordering: .releasing)
        wake.signal()
    }

    /// Waits for the thread to end.
    func join() {
        guard started else { return }
        done.wait()
        started = false
    }

    /// Appends the records read so far to `records` and returns the watermark and whether the
    /// reader has ended. When `records` is empty the arrays are swapped rather than copied, so
    /// the reader goes on with `records`' storage: pass an emptied array with its capacity kept
    /// and no array is allocated once the capacities have grown to the batch sizes.
    func take(appendingTo records: inout [RawRecord]) -> (watermark: UInt64, finished: Bool) {
        lock.lock()
        defer { lock.unlock() }
        if records.isEmpty {
            swap(&records, &queue)
        } else {
            records.append(contentsOf: queue)
            queue.removeAll(keepingCapacity: true)
        }
        return (watermark, finished)
    }

    private func publish(_ local: inout [RawRecord], watermark newMark: UInt64, finished isFinished: Bool = false) {
        lock.lock()
        if queue.isEmpty {
            swap(&queue, &local)
        } else {
            queue.append(contentsOf: local)
        }
        if newMark > watermark { watermark = newMark }
        if isFinished { finished = true }
        lock.unlock()
        local.removeAll(keepingCapacity: true)
        if local.capacity < Self.batchCapacity { local.reserveCapacity(Self.batchCapacity) }
    }

    private func run() {
        priorityRaised = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), id_t(replayctl_recorder_gettid()), nice) == 0
        var local: [RawRecord] = []
        local.reserveCapacity(Self.batchCapacity)
        while true {
            let stopping = stopRequested.load(ordering: .acquiring)
            let before = monotonicNanoseconds()
            while true {
                let n = tracefs_cpu_read(tcpu, buffer, true)
                if n <= 0 { break }
                bytesRead += UInt64(n)
                decodeSubbuffer(into: &local)
                if local.count >= Self.publishThreshold, let last = local.last?.timestamp {
                    publish(&local, watermark: last)
                }
            }
            if stopping {
                publish(&local, watermark: UInt64.max, finished: true)
                break
            }
            publish(&local, watermark: before > Self.watermarkMargin ? before - Self.watermarkMargin : 0)
            _ = wake.wait(timeout: .now() + .microseconds(Int(pollMicroseconds)))
        }
        var ts = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
        threadCPUNanoseconds = UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
        done.signal()
    }

    private func decodeSubbuffer(into local: inout [RawRecord]) {
        guard kbuffer_load_subbuffer(kbuf, buffer) >= 0 else { return }
        subbuffersRead += 1
        if kbuffer_missed_events(kbuf) != 0 { subbuffersWithMissedEvents += 1 }
        var ts: UInt64 = 0
        var record = kbuffer_read_event(kbuf, &ts)
        let cpuNumber = UInt16(cpu)
        while let p = record {
            let size = Int(kbuffer_event_size(kbuf))
            if var r = decoder.decode(UnsafeRawPointer(p), size: size, timestamp: ts, cpu: cpuNumber) {
                // Thread or process? Only /proc knows, and only while the child lives: ask now,
                // within a poll interval of the fork, rather than when the merger gets to it.
                // The merger uses the whole snapshot instead of reading /proc again.
                if r.kind == .fork {
                    let info = ProcFS.task(r.pid2)
                    r.value = Int64(info?.tgid ?? 0)
                    snapshots?.put(r.pid2, forkedAt: r.timestamp, info)
                }
                local.append(r)
                recordsDecoded += 1
            }
            record = kbuffer_next_event(kbuf, &ts)
        }
    }
}
