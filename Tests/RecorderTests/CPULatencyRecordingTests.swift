import Foundation
import TestSupport
import Testing
@testable import Recorder
import TraceFormat

/// Whether this kernel traces CPU latency QoS requests and has `/dev/cpu_dma_latency`.
let cpuLatencyTracingAvailable: Bool = liveTracingAvailable
    && access("/sys/kernel/tracing/events/power/pm_qos_add_request/format", R_OK) == 0
    && access("/dev/cpu_dma_latency", W_OK) == 0

/// Live recordings of programs that use `/dev/cpu_dma_latency`, serialized with the other
/// live recordings.
extension LiveRecordingTests {
    /// The calls of `reader` on requests held by the task `tid` (holder or caller).
    func latencyCalls(_ reader: TraceReader, holder tid: Int32) -> [CPULatencyRequest] {
        (reader.metadata.cpuLatencyRequests ?? []).filter { reader.tasks[$0.task.intValue].tid == tid }
    }

    @Test(.enabled(if: cpuLatencyTracingAvailable, "needs power/pm_qos_* events and /dev/cpu_dma_latency"))
    func cpuLatencyRequestIsRecordedFromAddToRemove() throws {
        cpuLatencyDeviceLock.lock()
        defer { cpuLatencyDeviceLock.unlock() }
        let script = """
            import os, struct, time
            fd = os.open("/dev/cpu_dma_latency", os.O_RDWR)
            os.write(fd, struct.pack("i", 0))
            time.sleep(0.2)
            os.close(fd)
            """
        let (reader, summary) = try record(["python3", "-c", script], name: "qos")
        defer { unlink(reader.path) }
        #expect(summary.exitStatus == 0)
        #expect(reader.metadata.extra["events"]?.contains("pm_qos_update_request") == true)
        let python = try #require(reader.tasks.first { $0.isRecorded && $0.comm.hasPrefix("python") })
        let calls = latencyCalls(reader, holder: python.tid)
        #expect(calls.map(\.action) == [.add, .update, .remove], "\(reader.metadata.cpuLatencyRequests ?? [])")
        #expect(calls.map(\.valueMicroseconds) == [-1, 0, -1])
        #expect(Set(calls.map(\.request)).count == 1)
        #expect(calls.allSatisfy { $0.tid == python.tid })
        // Held at 0 µs for the 0.2 s sleep, inside the recording.
        let holds = CPULatencyTimeline.holds(of: calls, origin: reader.metadata.firstTimestamp)
        let hold = try #require(holds.first)
        #expect(holds.count == 1 && hold.valueMicroseconds == 0)
        let length = (hold.endOffsetNanoseconds ?? 0) - hold.startOffsetNanoseconds
        #expect(length >= 195_000_000 && length < 1_000_000_000, "held \(length) ns")
        #expect(calls.allSatisfy { $0.timestamp >= reader.metadata.firstTimestamp && $0.timestamp <= reader.metadata.lastTimestamp })
    }

    @Test(.enabled(if: cpuLatencyTracingAvailable, "needs power/pm_qos_* events and /dev/cpu_dma_latency"))
    func forkedChildAndExitReleaseAreAttributedToTheHolder() throws {
        cpuLatencyDeviceLock.lock()
        defer { cpuLatencyDeviceLock.unlock() }
        // The parent opens and sets 3 µs, forks; the child inherits the file, sets 4 µs and
        // exits after the parent closed its copy: the child's calls act on the parent's request.
        // A second file is never closed: the exit releases it.
        let script = """
            import os, struct, time
            fd = os.open("/dev/cpu_dma_latency", os.O_RDWR)
            os.write(fd, struct.pack("i", 3))
            pid = os.fork()
            if pid == 0:
                time.sleep(0.1)
                os.write(fd, struct.pack("i", 4))
                os._exit(0)
            os.close(fd)
            os.waitpid(pid, 0)
            other = os.open("/dev/cpu_dma_latency", os.O_RDWR)
            os.write(other, struct.pack("i", 7))
            time.sleep(0.05)
            os._exit(0)
            """
        let (reader, summary) = try record(["python3", "-c", script], name: "qos-fork")
        defer { unlink(reader.path) }
        #expect(summary.exitStatus == 0)
        let parent = try #require(reader.tasks.first { $0.isRecorded && $0.comm.hasPrefix("python") && $0.parent.map { !reader.tasks[$0.intValue].comm.hasPrefix("python") } ?? true })
        let child = try #require(reader.tasks.first { $0.isRecorded && $0.tid != parent.tid && $0.tgid != parent.tgid && $0.comm.hasPrefix("python") })
        let calls = latencyCalls(reader, holder: parent.tid)
        let all = reader.metadata.cpuLatencyRequests ?? []
        #expect(calls.count == all.count, "every call is on a request the parent holds: \(all)")
        #expect(calls.map(\.action) == [.add, .update, .update, .remove, .add, .update, .remove], "\(all)")
        #expect(calls.map(\.valueMicroseconds) == [-1, 3, 4, -1, -1, 7, -1])
        #expect(calls.map(\.tid) == [parent.tid, parent.tid, child.tid, child.tid, parent.tid, parent.tid, parent.tid])
        #expect(calls.map(\.request) == [1, 1, 1, 1, 2, 2, 2].map { $0 + (calls.first?.request ?? 1) - 1 })
        #expect(reader.metadata.extra["unattributedCPULatencyRequests"] == nil)
    }
}
