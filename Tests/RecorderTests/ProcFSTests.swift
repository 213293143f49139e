import Foundation
import Testing
import CTraceFS
@testable import Recorder
import TraceFormat

/// /proc parsing (byte-level, used for every new task while recording) and the tid table.
@Suite struct ProcFSTests {
    /// A real `stat` line of a SCHED_FIFO kernel thread with a comm holding spaces and `)`.
    static let fifoStat = "17 (migration/0 (x) y) S 2 0 0 0 -1 69238848 0 0 0 0 0 3 0 0 -51 0 1 0 3 0 0 "
        + "18446744073709551615 0 0 0 0 0 0 0 2147483647 0 0 0 0 17 0 50 1 0 0 0 0 0 0 0 0 0 0 0\n"

    func parse(_ text: String, tid: Int32) -> ProcTaskInfo? {
        Array(text.utf8).withUnsafeBytes { ProcFS.parseStat($0, tid: tid) }
    }

    @Test func statFieldsOfARealtimeKernelThread() throws {
        let info = try #require(parse(Self.fifoStat, tid: 17))
        #expect(info.comm == "migration/0 (x) y")
        #expect(info.ppid == 2)
        #expect(info.isKernelThread)   // 69238848 has PF_KTHREAD (0x200000)
        #expect(info.policy == .fifo)
        #expect(info.realtimePriority == 50)
        #expect(info.nice == nil)
        #expect(info.tgid == 17)
    }

    @Test func truncatedOrMalformedStatIsRejected() {
        #expect(parse("17 (x) S 2 0 0", tid: 17) == nil)
        #expect(parse("no parentheses at all", tid: 17) == nil)
        #expect(parse(") (", tid: 17) == nil)
        #expect(parse("", tid: 17) == nil)
    }

    func status(_ text: String) -> ProcFS.StatusFields {
        Array(text.utf8).withUnsafeBytes { ProcFS.parseStatus($0) }
    }

    @Test func statusFields() {
        let text = "Name:\t my prog\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t4\nNgid:\t0\nPid:\t5\nPPid:\t1\n"
            + "Kthread:\t0\nCpus_allowed:\t3\nCpus_allowed_list:\t0-1,3\nMems_allowed_list:\t0\n"
        #expect(status(text) == ProcFS.StatusFields(name: " my prog", tgid: 4, ppid: 1, isKernelThread: false, affinity: [0, 1, 3]))
        // The kernel escapes \n and \\ in Name: the raw name must then come from stat.
        #expect(status("Name:\ta\\nb\nKthread:\t1\n").name == nil)
        #expect(status("Name:\tkthreadd\nKthread:\t1\n").isKernelThread == true)
        #expect(status("Name:\told kernel\nTgid:\t9\n").isKernelThread == nil)
        #expect(status("") == ProcFS.StatusFields())
    }

    @Test func cpuListsAsBytes() {
        func p(_ s: String) -> [Int]? { Array(s.utf8).withUnsafeBytes { ProcFS.parseCPUList($0) } }
        #expect(p("\t0-3,6,8-9\n") == [0, 1, 2, 3, 6, 8, 9])
        #expect(p("5") == [5])
        #expect(p("") == nil && p(" \n") == nil)
        #expect(p("3-1") == nil && p("x") == nil && p("1,y") == nil && p("0-999999999") == nil)
    }

    /// The fast way (status + system calls) and the slow way (stat) agree on live tasks:
    /// this process, a kernel thread, init, and a real-time kernel thread if there is one.
    @Test func statusAndSyscallsAgreeWithStat() throws {
        var tids: [Int32] = [getpid(), 1, 2]
        let all = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        tids += all.compactMap(Int32.init).filter { ProcFS.taskReadingStat($0)?.policy == .fifo }.prefix(2)
        for tid in tids {
            let slow = ProcFS.taskReadingStat(tid)
            #expect(slow != nil, "tid \(tid)")
            #expect(ProcFS.task(tid) == slow, "tid \(tid)")
        }
        #expect(ProcFS.task(2)?.isKernelThread == true)
    }

    @Test func integers() {
        func p(_ s: String) -> Int64? { Array(s.utf8).withUnsafeBytes { ProcFS.parseInteger($0) } }
        #expect(p("-20") == -20)
        #expect(p("+7") == 7)
        #expect(p("18446744073709551615") == nil)  // does not fit Int64
        #expect(p("") == nil)
        #expect(p("-") == nil)
        #expect(p("1x") == nil)
    }

    /// The live parse agrees with what the kernel reports through system calls.
    @Test func liveTaskMatchesSystemCalls() throws {
        let me = try #require(ProcFS.task(getpid()))
        #expect(me.tgid == getpid())
        #expect(me.ppid == getppid())
        #expect(!me.isKernelThread)
        errno = 0
        let nice = getpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0)
        if sched_getscheduler(0) == SCHED_OTHER { #expect(me.policy == .other && me.nice == nice) }
        // Affinity: a child pinned with taskset to the last online CPU.
        let last = ProcFS.onlineCPUs().last ?? 0
        let child = Process()
        child.executableURL = URL(fileURLWithPath: "/usr/bin/taskset")
        child.arguments = ["-c", String(last), "sleep", "5"]
        try child.run()
        defer { kill(child.processIdentifier, SIGKILL); child.waitUntilExit() }
        var pinned: ProcTaskInfo?
        for _ in 0..<200 {
            pinned = ProcFS.task(child.processIdentifier)
            if pinned?.comm == "sleep" { break }
            usleep(10_000)
        }
        #expect(pinned?.comm == "sleep")
        #expect(pinned?.affinity == [last])
        #expect(pinned?.tgid == child.processIdentifier && pinned?.ppid == getpid())
        // A thread: its own tid, the process's tgid.
        let box = Unmanaged.passRetained(ThreadResult())
        var thread = pthread_t()
        pthread_create(&thread, nil, { arg in
            let r = Unmanaged<ThreadResult>.fromOpaque(arg!).takeUnretainedValue()
            r.tid = Int32(replayctl_recorder_gettid())
            r.info = ProcFS.task(r.tid)
            return nil
        }, box.toOpaque())
        pthread_join(thread, nil)
        let r = box.takeRetainedValue()
        #expect(r.tid != getpid())
        #expect(r.info?.tgid == getpid())
        #expect(ProcFS.task(0) == nil && ProcFS.task(-1) == nil)
    }

    @Test func tidTableKeepsSmallAndHugeTids() {
        var t = TidTable()
        #expect(t[5] == nil)
        t[5] = TaskIndex(0)  // index 0 must be told apart from "absent"
        t[70_000] = TaskIndex(3)
        t[Int32.max] = TaskIndex(9)
        #expect(t[5] == TaskIndex(0) && t[70_000] == TaskIndex(3) && t[Int32.max] == TaskIndex(9))
        #expect(t[6] == nil && t[1_000_000] == nil)
        t[5] = nil
        t[Int32.max] = nil
        #expect(t[5] == nil && t[Int32.max] == nil && t[70_000] == TaskIndex(3))
        t[2_000_000] = nil  // removing an absent tid beyond the array does not grow it
        #expect(t[2_000_000] == nil)
    }

    @Test func snapshotsAreTakenOncePerFork() {
        let s = TaskSnapshots()
        let info = ProcTaskInfo(tgid: 7, ppid: 1, comm: "c", isKernelThread: false)
        s.put(8, forkedAt: 100, info)
        s.put(9, forkedAt: 100, nil)
        #expect(s.take(8, forkedAt: 99) == nil)            // another fork of the same tid
        #expect(s.take(8, forkedAt: 100) == .some(info))
        #expect(s.take(8, forkedAt: 100) == nil)           // taken
        #expect(s.take(9, forkedAt: 100) == .some(nil))    // gone at the fork: known, not looked up again
        #expect(s.count == 0)
    }
}

final class ThreadResult: @unchecked Sendable {
    var tid: Int32 = 0
    var info: ProcTaskInfo?
}
