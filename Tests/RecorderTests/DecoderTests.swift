import Foundation
import Testing
@testable import Recorder
import TraceFormat

/// Decoding without tracefs: format parsing, field layouts, flag and state mapping.
@Suite struct DecoderTests {
    static let forkFormat = """
        name: sched_process_fork
        ID: 318
        format:
        \tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
        \tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
        \tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
        \tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

        \tfield:__data_loc char[] parent_comm;\toffset:8;\tsize:4;\tsigned:0;
        \tfield:pid_t parent_pid;\toffset:12;\tsize:4;\tsigned:1;
        \tfield:__data_loc char[] child_comm;\toffset:16;\tsize:4;\tsigned:0;
        \tfield:pid_t child_pid;\toffset:20;\tsize:4;\tsigned:1;

        print fmt: "comm=%s pid=%d child_comm=%s child_pid=%d", __get_str(parent_comm), REC->parent_pid, __get_str(child_comm), REC->child_pid
        """

    @Test func parsesDataLocFields() throws {
        let layout = try EventLayout.parse(Self.forkFormat, path: "fork/format")
        #expect(layout.id == 318)
        #expect(layout.fields["child_comm"]?.isDynamic == true)
        #expect(layout.fields["child_pid"]?.offset == 20)
        #expect(layout.fields["common_pid"]?.size == 4)
    }

    @Test func rejectsFormatWithoutID() {
        #expect(throws: RecorderError.self) { try EventLayout.parse("name: x\nformat:\n", path: "x/format") }
    }

    @Test func decodesForkRecordWithDataLocStrings() throws {
        let layout = try EventLayout.parse(Self.forkFormat, path: "fork/format")
        let decoder = try SchedDecoder(layouts: [.fork: (layout, "fork/format")])
        // Record: header, parent_comm at 24 ("bash\0"), child_comm at 29 ("worker\0").
        var bytes = [UInt8](repeating: 0, count: 40)
        func put<T: FixedWidthInteger>(_ v: T, _ at: Int) { withUnsafeBytes(of: v.littleEndian) { for (i, b) in $0.enumerated() { bytes[at + i] = b } } }
        put(UInt16(318), 0); bytes[2] = 0x08; put(Int32(77), 4)
        put(UInt32(5 << 16 | 24), 8); put(Int32(100), 12)
        put(UInt32(7 << 16 | 29), 16); put(Int32(101), 20)
        for (i, c) in "bash\0worker\0".utf8.enumerated() { bytes[24 + i] = c }
        let r = try #require(bytes.withUnsafeBytes { decoder.decode($0.baseAddress!, size: $0.count, timestamp: 5, cpu: 1) })
        #expect(r.kind == .fork)
        #expect(r.pid1 == 100 && r.pid2 == 101 && r.commonPid == 77)
        #expect(r.comm1.string == "bash" && r.comm2.string == "worker")
        #expect(EntryFlags.context(r.flags) == .hardIRQ)
        // A record too short for its fields is not decoded.
        #expect(bytes.withUnsafeBytes { decoder.decode($0.baseAddress!, size: 20, timestamp: 5, cpu: 1) } == nil)
    }

    @Test func mapsPrevStateAndContextBits() {
        #expect(taskState(fromPrevState: 0) == .running)
        #expect(taskState(fromPrevState: 0x100) == .running)  // preempted bit only
        #expect(taskState(fromPrevState: 0x01) == .sleeping)
        #expect(taskState(fromPrevState: 0x02) == .uninterruptible)
        #expect(taskState(fromPrevState: 0x10) == .dead)
        #expect(taskState(fromPrevState: 0x80) == .other)
        #expect(EntryFlags.context(0x00) == .task)
        #expect(EntryFlags.context(0x81) == .task)  // bottom halves off, irqs off: still task context
        #expect(EntryFlags.context(0x10) == .softIRQ)
        #expect(EntryFlags.context(0x18) == .hardIRQ)
        #expect(EntryFlags.context(0x48) == .nmi)
    }

    @Test func parsesCPULists() {
        #expect(ProcFS.parseCPUList("0-3,6,8-9\n") == [0, 1, 2, 3, 6, 8, 9])
        #expect(ProcFS.parseCPUList("") == nil)
        #expect(ProcFS.parseCPUList("3-1") == nil)
    }

    @Test func forkMakesAFreshTaskForAReusedTid() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("conv-\(getpid()).rpl").path
        defer { unlink(path) }
        let writer = try TraceWriter(path: path, metadata: TraceMetadata())
        let conv = EventConverter(writer: writer, scope: .tree, recordedTids: [10], lookup: { _ in nil })
        func rec(_ t: UInt64, _ kind: RawKind, _ a: Int32, _ b: Int32 = 0, comm: String = "x", comm2: String = "") -> RawRecord {
            var r = RawRecord(timestamp: t, kind: kind, flags: 0, cpu: 0, commonPid: a, pid1: a, pid2: b)
            r.comm1 = Comm(comm); r.comm2 = Comm(comm2)
            return r
        }
        try conv.convert(rec(1, .fork, 10, 11, comm: "parent", comm2: "child"))
        try conv.convert(rec(2, .exit, 11))
        try conv.convert(rec(3, .fork, 99, 11, comm: "other", comm2: "reused"))  // unrelated parent reuses tid 11
        try conv.convert(rec(4, .exit, 11))                                   // not recorded: filtered
        try conv.convert(rec(5, .fork, 10, 12, comm: "parent", comm2: "second"))
        #expect(writer.taskCount == 4)  // idle, parent, child, second (not the unrelated reuse)
        #expect(writer.task(TaskIndex(2)).comm == "child" && writer.task(TaskIndex(2)).isRecorded)
        #expect(writer.task(TaskIndex(3)).comm == "second" && writer.task(TaskIndex(3)).parent == TaskIndex(1))
        #expect(conv.filteredRecords == 2)
        try writer.finish(metadata: TraceMetadata())
    }

    @Test func cpuLatencyCallsAreAttributedToTheRequestTheyChange() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("qos-\(getpid()).rpl").path
        defer { unlink(path) }
        let writer = try TraceWriter(path: path, metadata: TraceMetadata())
        // 10 and its child 11 are recorded; 50 is not; 7 is a kworker.
        let live: [Int32: ProcTaskInfo] = [
            7: ProcTaskInfo(tgid: 7, ppid: 2, comm: "kworker/0:1", isKernelThread: true),
            10: ProcTaskInfo(tgid: 10, ppid: 1, comm: "a", isKernelThread: false),
            50: ProcTaskInfo(tgid: 50, ppid: 1, comm: "other", isKernelThread: false),
        ]
        let conv = EventConverter(writer: writer, scope: .tree, recordedTids: [10], lookup: { live[$0] })
        func rec(_ t: UInt64, _ kind: RawKind, _ caller: Int32, _ value: Int64 = -1, child: Int32 = 0) -> RawRecord {
            var r = RawRecord(timestamp: t, kind: kind, flags: 0, cpu: 0, commonPid: caller, pid1: caller, pid2: child)
            r.value = value
            r.comm1 = Comm("a"); r.comm2 = Comm("a")
            return r
        }
        try conv.convert(rec(1, .latencyAdd, 10))                  // request 1, held by 10
        try conv.convert(rec(2, .latencyUpdate, 10, 0))
        try conv.convert(rec(3, .latencyAdd, 50))                  // request 2, not recorded
        try conv.convert(rec(4, .latencyUpdate, 50, 5))
        try conv.convert(rec(5, .fork, 10, child: 11))
        try conv.convert(rec(6, .latencyUpdate, 11, 4))            // the child writes the shared file: request 1
        try conv.convert(rec(7, .latencyUpdate, 50, 3))            // not recorded: followed, not kept
        try conv.convert(rec(8, .latencyRemove, 11))               // the child closes it last: request 1
        try conv.convert(rec(9, .latencyUpdate, 10, 20))           // opened before the recording: request 3
        try conv.convert(rec(10, .exit, 10))
        try conv.convert(rec(11, .latencyRemove, 7))               // kworker, after 10 exited: request 3, not 50's
        try conv.convert(rec(12, .latencyRemove, 7))               // kworker, one request left: 50's
        try conv.convert(rec(13, .latencyRemove, 7))               // nothing left: unattributed
        let parent = try #require(writer.task(TaskIndex(1)).tid == 10 ? TaskIndex(1) : nil)
        let calls = conv.cpuLatencyRequests.map { [Int($0.timestamp), $0.request, $0.task.intValue, Int($0.tid), Int($0.valueMicroseconds)] }
        #expect(calls == [
            [1, 1, parent.intValue, 10, -1], [2, 1, parent.intValue, 10, 0],
            [6, 1, parent.intValue, 11, 4], [8, 1, parent.intValue, 11, -1],
            [9, 3, parent.intValue, 10, 20], [11, 3, parent.intValue, 7, -1],
        ])
        #expect(conv.cpuLatencyRequests.map(\.action) == [.add, .update, .update, .remove, .update, .remove])
        #expect(conv.unattributedLatencyRemoves == 1)
        try writer.finish(metadata: TraceMetadata())
    }
}
