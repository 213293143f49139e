import Foundation
import TraceFormat

/// Which events a recording keeps.
enum RecordingScope: Sendable {
    /// Every event; every task counts as recorded (`record -a`).
    case everything
    /// Events that touch the recorded tasks (and every switch and runtime report, so CPU
    /// occupancy and run lengths stay exact on the CPUs the tree shares).
    case tree
}

/// Bits of an ftrace entry's `common_flags` (kernel `enum trace_flag_type`).
enum EntryFlags {
    static let hardIRQ: UInt8 = 0x08
    static let softIRQ: UInt8 = 0x10
    static let nmi: UInt8 = 0x40

    static func context(_ flags: UInt8) -> WakeContext {
        if flags & nmi != 0 { return .nmi }
        if flags & hardIRQ != 0 { return .hardIRQ }
        if flags & softIRQ != 0 { return .softIRQ }
        return .task
    }
}

/// Maps `prev_state` of `sched_switch` (TASK_REPORT bits; 0 or only the "preempted" bit
/// above them means runnable) to a `TaskState`.
func taskState(fromPrevState value: Int64) -> TaskState {
    let bits = value & 0xFF
    if bits == 0 { return .running }
    if bits & 0x01 != 0 { return .sleeping }      // S
    if bits & 0x02 != 0 { return .uninterruptible } // D
    if bits & 0x0C != 0 { return .stopped }       // T, t
    if bits & 0x30 != 0 { return .dead }          // X, Z
    return .other                                 // P (parked), I (idle kthread)
}

/// Turns decoded records (tids) into trace events (task indices), keeps the task table, follows
/// the recorded process tree through fork events, and writes to a `TraceWriter`.
///
/// Records must come in non-decreasing time order (a straggler is clamped to the last time
/// and counted in `reorderedEvents`). Not thread-safe: used by the merging thread only.
///
/// `convert` runs for every record, so the state it touches opts out of the runtime
/// exclusivity check (`@exclusivity(unchecked)`): private, one thread, and never passed
/// `inout` to code that reaches it again.
final class EventConverter {
    let writer: TraceWriter
    let scope: RecordingScope
    private let lookup: (Int32) -> ProcTaskInfo?
    private let snapshots: TaskSnapshots?
    @exclusivity(unchecked) private var indexByTid = TidTable()
    /// Tids of the recorded tree (tree scope); processes also by their tgid.
    @exclusivity(unchecked) private var recordedTids: Set<Int32>
    @exclusivity(unchecked) private var recordedByIndex: [Bool] = [false]
    /// Each task's name as last seen: a thread renamed with prctl(PR_SET_NAME) or
    /// /proc/self/comm (no event says so) takes the name its switches show, as `perf sched`
    /// shows the latest comm.
    @exclusivity(unchecked) private var commByIndex: [Comm] = [Comm()]
    @exclusivity(unchecked) private var tracker = RunTracker()
    @exclusivity(unchecked) private var lastTimestamp: UInt64 = 0
    @exclusivity(unchecked) private(set) var firstTimestamp: UInt64?
    /// Timestamp of the last event written.
    var lastWritten: UInt64 { lastTimestamp }
    /// Events whose timestamp was below one already written (clamped).
    @exclusivity(unchecked) private(set) var reorderedEvents: UInt64 = 0
    /// Records left out because they did not touch the recorded tree.
    @exclusivity(unchecked) private(set) var filteredRecords: UInt64 = 0
    /// Events written.
    var eventCount: UInt64 { writer.eventCount }
    /// Switch-ins inferred so far (the final count includes the end of the trace).
    var inferredSwitchIns: Int { tracker.inferredSwitchIns }
    /// CPU latency QoS requests of recorded tasks, in time order (`TraceMetadata.cpuLatencyRequests`).
    private(set) var cpuLatencyRequests: [CPULatencyRequest] = []
    /// Removes that matched no active request and came from a kernel thread or were ambiguous.
    private(set) var unattributedLatencyRemoves = 0
    /// A CPU latency request active now, of any task: attribution needs them all.
    private struct ActiveLatencyRequest {
        var request: Int
        var holderTid: Int32
        var holderTgid: Int32
        /// Index of the holder when it is recorded (its calls are kept), else nil.
        var holder: TaskIndex?
    }
    /// In the order they were added.
    private var activeLatency: [ActiveLatencyRequest] = []
    private var lastLatencyRequest = 0
    /// Tids seen exiting (cleared when the tid is forked again): a request whose holder
    /// exited can be released later by a kernel thread.
    private var exitedTids = Set<Int32>()

    /// - Parameters:
    ///   - recordedTids: tids (and tgids) of the tree at the start (tree scope).
    ///   - lookup: live facts about a task (tests pass a fake).
    ///   - snapshots: facts about forked children taken by the readers at the fork; a child
    ///     with a snapshot is not looked up again.
    init(writer: TraceWriter, scope: RecordingScope, recordedTids: Set<Int32>,
         lookup: @escaping (Int32) -> ProcTaskInfo? = ProcFS.task, snapshots: TaskSnapshots? = nil) {
        self.writer = writer
        self.scope = scope
        self.recordedTids = recordedTids
        self.lookup = lookup
        self.snapshots = snapshots
    }

    /// Adds `tid` to the recorded tree (a command spawned after tracing started).
    func addRecorded(_ tid: Int32) { recordedTids.insert(tid) }

    private func isRecorded(_ tid: Int32) -> Bool {
        if scope == .everything { return tid != 0 }
        if tid == 0 { return false }
        if let i = indexByTid[tid] { return recordedByIndex[i.intValue] }
        return recordedTids.contains(tid)
    }

    /// - Parameter snapshot: what /proc said at the fork (`.some(nil)`: the task was gone);
    ///   nil to look the task up now.
    private func newTask(_ tid: Int32, comm: String, parent: TaskIndex?, tgidHint: Int32 = 0,
                         snapshot: ProcTaskInfo?? = nil) -> TaskIndex {
        let live: ProcTaskInfo? = if let snapshot { snapshot } else { lookup(tid) }
        // A task that ended before the reader saw it fork keeps tgid = tid (unknowable later).
        var t = TaskInfo(tid: tid, tgid: live?.tgid ?? (tgidHint > 0 ? tgidHint : tid), comm: comm.isEmpty ? (live?.comm ?? "") : comm, parent: parent)
        t.policy = live?.policy
        t.nice = live?.nice
        t.realtimePriority = live?.realtimePriority
        t.affinity = live?.affinity
        if let live {
            t.isKernelThread = live.isKernelThread
        } else if let parent {
            let p = writer.task(parent)
            t.isKernelThread = p.tid == 2 || (p.isKernelThread && p.tid != 0)
        }
        t.isRecorded = scope == .everything ? true
            : recordedTids.contains(tid) || (t.tgid != tid && recordedTids.contains(t.tgid))
        if t.isRecorded { recordedTids.insert(tid) }
        let index = writer.addTask(t)
        indexByTid[tid] = index
        recordedByIndex.append(t.isRecorded)
        commByIndex.append(Comm(t.comm))
        return index
    }

    private func rename(_ task: TaskIndex, _ comm: Comm) {
        commByIndex[task.intValue] = comm
        let name = comm.string
        writer.updateTask(task) { $0.comm = name }
    }

    private func index(_ tid: Int32, _ comm: Comm) -> TaskIndex {
        if tid == 0 { return .idle }
        if let i = indexByTid[tid] { return i }
        return newTask(tid, comm: comm.string, parent: nil)
    }

    private func emit(_ r: RawRecord, _ kind: Event.Kind) throws {
        var t = r.timestamp
        if t < lastTimestamp {
            t = lastTimestamp
            reorderedEvents += 1
        }
        lastTimestamp = t
        if firstTimestamp == nil { firstTimestamp = t }
        let event = Event(timestamp: t, cpu: CPU(rawValue: UInt32(r.cpu)), kind: kind)
        try writer.append(event)
        _ = tracker.feed(event)
    }

    /// Converts and writes one record (or filters it out).
    func convert(_ r: RawRecord) throws {
        switch r.kind {
        case .switchTask:
            let prev = index(r.pid1, r.comm1)
            if !prev.isIdle, commByIndex[prev.intValue] != r.comm1, r.comm1 != Comm() { rename(prev, r.comm1) }
            let next = index(r.pid2, r.comm2)
            try emit(r, .switchTask(prev: prev, prevState: taskState(fromPrevState: r.value), next: next))
        case .runtime:
            guard r.pid1 != 0 else { return }
            try emit(r, .runtime(task: index(r.pid1, r.comm1), nanoseconds: UInt64(max(0, r.value))))
        case .waking:
            let context = EntryFlags.context(r.flags)
            guard isRecorded(r.pid1) || (context == .task && isRecorded(r.commonPid)) else { filteredRecords += 1; return }
            let target = index(r.pid1, r.comm1)
            let waker = index(r.commonPid, Comm())
            try emit(r, .waking(waker: waker, target: target, targetCPU: CPU(rawValue: UInt32(clamping: r.value)), context: context))
        case .wakeupNew:
            guard isRecorded(r.pid1) else { filteredRecords += 1; return }
            try emit(r, .wakeupNew(target: index(r.pid1, r.comm1), targetCPU: CPU(rawValue: UInt32(clamping: r.value))))
        case .fork:
            let parentRecorded = isRecorded(r.pid1)
            // A command spawned by the recorder is registered before its fork event is seen.
            let registered = indexByTid[r.pid2] == nil && recordedTids.contains(r.pid2)
            let snapshot = snapshots?.take(r.pid2, forkedAt: r.timestamp)
            if !exitedTids.isEmpty { exitedTids.remove(r.pid2) }
            // A fork always makes a new task, even when the tid was seen before (tids are reused).
            if indexByTid[r.pid2] != nil {
                indexByTid[r.pid2] = nil
                recordedTids.remove(r.pid2)
            }
            if parentRecorded { recordedTids.insert(r.pid2) }
            guard parentRecorded || registered || scope == .everything else { filteredRecords += 1; return }
            let parent = index(r.pid1, r.comm1)
            let child = newTask(r.pid2, comm: r.comm2.string, parent: parent, tgidHint: Int32(clamping: r.value), snapshot: snapshot)
            try emit(r, .fork(parent: parent, child: child))
        case .exec:
            // A non-leader thread that execs takes over the leader's tid (old_pid → pid).
            if r.pid2 != r.pid1, r.pid2 != 0, let old = indexByTid[r.pid2] {
                indexByTid[r.pid2] = nil
                indexByTid[r.pid1] = old
                writer.updateTask(old) { $0.tid = r.pid1 }
            }
            guard isRecorded(r.pid1) else { filteredRecords += 1; return }
            let task = index(r.pid1, r.comm1)
            let comm = r.comm1.string
            writer.updateTask(task) { $0.comm = comm }
            commByIndex[task.intValue] = r.comm1
            try emit(r, .exec(task: task, comm: comm))
        case .exit:
            if !activeLatency.isEmpty { exitedTids.insert(r.pid1) }
            guard isRecorded(r.pid1) else { filteredRecords += 1; return }
            try emit(r, .exit(task: index(r.pid1, r.comm1)))
        case .migrate:
            guard isRecorded(r.pid1) else { filteredRecords += 1; return }
            let from = UInt32(truncatingIfNeeded: r.value >> 32), to = UInt32(truncatingIfNeeded: r.value)
            try emit(r, .migrate(task: index(r.pid1, r.comm1), from: CPU(rawValue: from), to: CPU(rawValue: to)))
        case .latencyAdd, .latencyUpdate, .latencyRemove:
            noteLatencyCall(r)
        }
    }

    // MARK: CPU latency QoS

    /// Keeps a `pm_qos_*_request` call, attributed to a request (docs/format.md, "CPU latency
    /// requests"). The kernel's events carry only the value: an add starts a request held by
    /// its caller; an update or remove is matched to an active request by who called.
    private func noteLatencyCall(_ r: RawRecord) {
        let caller = r.commonPid
        let value = Int32(truncatingIfNeeded: r.value)
        switch r.kind {
        case .latencyAdd:
            let request = startLatencyRequest(holder: caller)
            keepLatencyCall(r, .add, request, value: value)
        case .latencyUpdate:
            if let k = matchLatencyRequest(caller: caller, removing: false) {
                keepLatencyCall(r, .update, activeLatency[k], value: value)
            } else {
                // Added before the recording started: held by its caller, it seems.
                let request = startLatencyRequest(holder: caller)
                keepLatencyCall(r, .update, request, value: value)
            }
        default:
            if let k = matchLatencyRequest(caller: caller, removing: true) {
                keepLatencyCall(r, .remove, activeLatency.remove(at: k), value: value)
            } else {
                unattributedLatencyRemoves += 1
                // Kept under a new number (it changes nothing) when the caller is recorded.
                lastLatencyRequest += 1
                if isRecorded(caller) {
                    let request = ActiveLatencyRequest(request: lastLatencyRequest, holderTid: caller, holderTgid: caller,
                                                       holder: index(caller, Comm()))
                    keepLatencyCall(r, .remove, request, value: value)
                }
            }
        }
    }

    private func startLatencyRequest(holder tid: Int32) -> ActiveLatencyRequest {
        lastLatencyRequest += 1
        let facts = latencyCaller(tid)
        let request = ActiveLatencyRequest(request: lastLatencyRequest, holderTid: tid, holderTgid: facts.tgid,
                                           holder: tid != 0 && isRecorded(tid) ? index(tid, Comm()) : nil)
        activeLatency.append(request)
        return request
    }

    private func keepLatencyCall(_ r: RawRecord, _ action: CPULatencyRequest.Action, _ request: ActiveLatencyRequest, value: Int32) {
        guard let holder = request.holder else { return }
        cpuLatencyRequests.append(CPULatencyRequest(timestamp: r.timestamp, action: action, request: request.request,
                                                    task: holder, tid: r.commonPid, valueMicroseconds: value))
    }

    /// The active request a call by `caller` acts on (index into `activeLatency`): one held by
    /// the same thread, else the same process, else a process it descends from (a forked child
    /// shares the open file); for a remove by a kernel thread (a deferred release), the only
    /// request whose holder exited, else the only active one. Among several, the latest added.
    private func matchLatencyRequest(caller: Int32, removing: Bool) -> Int? {
        if activeLatency.isEmpty { return nil }
        if let k = activeLatency.lastIndex(where: { $0.holderTid == caller }) { return k }
        let facts = latencyCaller(caller)
        if let k = activeLatency.lastIndex(where: { $0.holderTgid == facts.tgid }) { return k }
        if let k = activeLatency.lastIndex(where: { facts.ancestors.contains($0.holderTgid) }) { return k }
        guard removing, facts.isKernel else { return nil }
        let exited = activeLatency.indices.filter { exitedTids.contains(activeLatency[$0].holderTid) }
        if exited.count == 1 { return exited[0] }
        if exited.isEmpty && activeLatency.count == 1 { return 0 }
        return nil
    }

    /// Process, ancestor processes and kind of the task `tid`: from the task table when it is
    /// there, else from /proc.
    private func latencyCaller(_ tid: Int32) -> (tgid: Int32, ancestors: Set<Int32>, isKernel: Bool) {
        if tid == 0 { return (0, [], true) }
        if let i = indexByTid[tid] {
            let t = writer.task(i)
            var ancestors = Set<Int32>()
            var parent = t.parent
            var depth = 0
            while let p = parent, !p.isIdle, depth < 256 {
                let pt = writer.task(p)
                ancestors.insert(pt.tgid)
                parent = pt.parent
                depth += 1
            }
            return (t.tgid, ancestors, t.isKernelThread)
        }
        let live = lookup(tid)
        return (live?.tgid ?? tid, live.map { [$0.ppid] } ?? [], live?.isKernelThread ?? false)
    }

    /// Final count of inferred switch-ins, including runs still open at the end.
    func finishInference() -> Int {
        var copy = tracker
        copy.finish { _ in }
        return copy.inferredSwitchIns
    }
}

/// Task index by tid: a flat array (tids are small dense numbers, below `pid_max`), with a
/// dictionary for tids beyond `directLimit` so a huge tid cannot make the array huge.
struct TidTable {
    /// Tids below this are kept in the array (4 bytes each: 4 MiB at most).
    static let directLimit: Int32 = 1 << 20
    /// `TaskIndex.rawValue + 1` per tid; 0 when the tid has no task.
    private var direct: [UInt32] = []
    private var large: [Int32: TaskIndex] = [:]

    subscript(tid: Int32) -> TaskIndex? {
        get {
            if tid >= 0 && tid < Self.directLimit {
                let i = Int(tid)
                guard i < direct.count else { return nil }
                let v = direct[i]
                return v == 0 ? nil : TaskIndex(rawValue: v &- 1)
            }
            return large[tid]
        }
        set {
            if tid >= 0 && tid < Self.directLimit {
                let i = Int(tid)
                if i >= direct.count {
                    guard newValue != nil else { return }
                    let size = min(Int(Self.directLimit), max(i + 1, direct.count * 2, 4096))
                    direct.append(contentsOf: repeatElement(0, count: size - direct.count))
                }
                direct[i] = newValue.map { $0.rawValue &+ 1 } ?? 0
            } else {
                large[tid] = newValue
            }
        }
    }
}
