// Bit encoding of events inside an events chunk, format version 2. See docs/format.md,
// "Events chunk".
//
// Every event is coded against what the chunk's earlier events predict: its "op" (kind, how
// its CPU relates to the previous event's, which of its fields are predicted) as a rank in a
// list of the ops that followed the previous event's op; its time as the difference from the
// gap last seen between those two ops; a runtime report as the difference from the time
// elapsed since the task's switch-in or last report; tasks and CPUs from per-CPU and per-task
// memories. Numbers are zigzag Exp-Golomb codes whose order follows a running mean. Encoder and
// decoder update the same state the same way, and it starts empty in every chunk, so chunks
// decode alone. Version 1 chunks are read by EventCodecV1.swift.

enum KindCode: UInt8 {
    case switchTask = 0, waking = 1, runtime = 2, migrate = 3, wakeupNew = 4, fork = 5, exit = 6, exec = 7
}

/// Why a chunk's bytes could not be decoded. The reader adds the file and offset.
struct DecodeFailure: Error {
    var reason: String
    var eventNumber: Int
}

/// Layout of an op (11 bits): bits 0-2 kind, bits 3-4 CPU class, bits 5-10 the kind's flags.
enum Op {
    static let bits = 11
    /// Context of a chunk's first event (not an op: its CPU class is 3).
    static let start: UInt16 = 0x7FF
    static let cpuSame: UInt16 = 0, cpuAlternate: UInt16 = 1, cpuExplicit: UInt16 = 2

    /// True when `op` is one an encoder writes (every class in range, unused bits 0).
    static func isValid(_ op: UInt16) -> Bool {
        guard op < 1 << bits, (op >> 3) & 3 != 3 else { return false }
        let flags = op >> 5
        switch UInt8(op & 7) {
        case KindCode.switchTask.rawValue: return (flags >> 3) & 3 != 3 && flags >> 5 == 0
        case KindCode.waking.rawValue: return (flags >> 2) & 3 != 3 && (flags >> 4) & 3 != 3
        case KindCode.runtime.rawValue: return flags & 3 != 3 && flags >> 2 == 0
        case KindCode.migrate.rawValue: return flags == 0
        case KindCode.wakeupNew.rawValue: return flags & 0xF == 0 && (flags >> 4) & 3 != 3
        default: return flags & ~0x04 == 0  // fork, exit, exec: bit 7 only
        }
    }
}

/// Adaptive numbers: a statistic per kind of number, from which the Exp-Golomb order follows.
enum NumberStat {
    static let cpu = 0, task = 1, next = 2, target = 3, runtime = 4  // runtime + reference kind (0-2)
    static let count = 7
    static let initial: UInt32 = 256

    /// Exp-Golomb order for a statistic `s` (about 4 × the running mean of the values).
    @inline(__always) static func order(_ s: UInt32) -> Int {
        max(0, (32 &- (s >> 2).leadingZeroBitCount) &- 2)
    }

    @inline(__always) static func updated(_ s: UInt32, _ value: UInt64) -> UInt32 {
        // At most 4 × (2^29 + 1) < 2^32 for ever: no overflow.
        s &- (s >> 2) &+ UInt32(truncatingIfNeeded: min(value, 1 << 29))
    }
}

@inline(__always) func zigzag(_ value: UInt64) -> UInt64 {
    let v = Int64(bitPattern: value)
    return UInt64(bitPattern: (v << 1) ^ (v >> 63))
}

@inline(__always) func unzigzag(_ value: UInt64) -> UInt64 {
    UInt64(bitPattern: Int64(bitPattern: value >> 1) ^ -Int64(bitPattern: value & 1))
}

/// What the codec remembers of one CPU within a chunk.
struct CPUMemory {
    /// Task last switched in.
    var current = ChunkModel.unknown
    /// `prev` of the last switch.
    var lastOut = ChunkModel.unknown
    /// Target of the last waking or wakeup-new towards this CPU (0 when none).
    var lastWoken: UInt32 = 0
    /// Target CPU of the last waking logged on this CPU.
    var wakeTargetCPU = ChunkModel.unknown
    /// Target of the last waking without a waker logged on this CPU (0 when none).
    var noWakerTarget: UInt32 = 0
    var lastTimestamp: UInt64 = 0
    var hasTimestamp = false
}

/// What the codec remembers of one task within a chunk.
struct TaskMemory {
    /// Time of the task's last switch-in or runtime report (which: `referenceKind` 1 or 2; 0 none).
    var referenceTime: UInt64 = 0
    var referenceKind: UInt8 = 0
    /// Last `runtime − elapsed` after a switch-in, and after a report (bit patterns of Int64).
    var offsetAfterSwitchIn: UInt64 = 0
    var offsetAfterReport: UInt64 = 0
    /// Last task this task woke (0 when none).
    var lastTarget: UInt32 = 0
    /// CPU the task was last seen on or sent to.
    var lastCPU = ChunkModel.unknown
}

/// Owns the memory of a `ChunkModel`; the tables grow (by doubling) as contexts, CPUs and
/// tasks appear, so a chunk of a few tasks touches a few kilobytes.
final class ChunkModelStorage {
    var contextSlots: UnsafeMutablePointer<UInt16>
    var rankOps: UnsafeMutablePointer<UInt16>
    var rankCounts: UnsafeMutablePointer<UInt16>
    var rankStats: UnsafeMutablePointer<UInt32>
    var rankGaps: UnsafeMutablePointer<UInt64>
    var rankLengths: UnsafeMutablePointer<UInt8>
    var cpus: UnsafeMutablePointer<CPUMemory>
    var tasks: UnsafeMutablePointer<TaskMemory>
    let stats: UnsafeMutablePointer<UInt32>

    init(slots: Int, cpus cpuCapacity: Int, tasks taskCapacity: Int) {
        contextSlots = .allocate(capacity: ChunkModel.contexts)
        let entries = slots * ChunkModel.ranks
        rankOps = .allocate(capacity: entries)
        rankCounts = .allocate(capacity: entries)
        rankStats = .allocate(capacity: entries)
        rankGaps = .allocate(capacity: entries)
        rankLengths = .allocate(capacity: slots)
        cpus = .allocate(capacity: cpuCapacity)
        tasks = .allocate(capacity: taskCapacity)
        stats = .allocate(capacity: NumberStat.count)
    }

    deinit {
        contextSlots.deallocate()
        rankOps.deallocate()
        rankCounts.deallocate()
        rankStats.deallocate()
        rankGaps.deallocate()
        rankLengths.deallocate()
        cpus.deallocate()
        tasks.deallocate()
        stats.deallocate()
    }
}

/// `count` elements of `old` moved into a new allocation of `capacity`; `old` is freed.
private func grown<T>(_ old: UnsafeMutablePointer<T>, count: Int, capacity: Int) -> UnsafeMutablePointer<T> {
    let new = UnsafeMutablePointer<T>.allocate(capacity: capacity)
    new.moveInitialize(from: old, count: count)
    old.deallocate()
    return new
}

/// Makes `table[0...i]` valid: doubles `capacity` (moving the table) until it holds index `i`,
/// then fills the new elements from `count` to `i` with `fresh`.
private func extend<T>(_ table: inout UnsafeMutablePointer<T>, count: inout Int, capacity: inout Int, through i: Int, with fresh: T) {
    if i >= capacity {
        var c = capacity
        while c <= i { c *= 2 }
        table = grown(table, count: count, capacity: c)
        capacity = c
    }
    (table + count).initialize(repeating: fresh, count: i + 1 - count)
    count = i + 1
}

/// The state encoder and decoder of one chunk share: op ranks with their time predictions,
/// per-CPU and per-task memories, number statistics, previous event. `reset` starts a chunk.
///
/// Pointers into the CPU and task tables are valid until the next `cpu(_:)` or `task(_:)` call
/// that adds an entry (a table may move when it grows).
struct ChunkModel {
    static let contexts = 1 << Op.bits
    static let ranks = 8
    /// CPUs and tasks from this number on are not remembered (their fields stay explicit), so
    /// that a corrupt value cannot make a decoder allocate or clear much memory.
    static let memoryLimit = 65536
    static let unknown = UInt32.max

    let storage: ChunkModelStorage
    /// Per context (previous op): 0, or 1 + the slot holding its op entries.
    let contextSlots: UnsafeMutablePointer<UInt16>
    var rankOps: UnsafeMutablePointer<UInt16>
    var rankCounts: UnsafeMutablePointer<UInt16>
    var rankStats: UnsafeMutablePointer<UInt32>
    var rankGaps: UnsafeMutablePointer<UInt64>
    var rankLengths: UnsafeMutablePointer<UInt8>
    var slotCount = 0
    var slotCapacity: Int
    var cpuTable: UnsafeMutablePointer<CPUMemory>
    var cpuCapacity: Int
    var cpuCount = 0
    var taskTable: UnsafeMutablePointer<TaskMemory>
    var taskCapacity: Int
    var taskCount = 0
    /// Statistics of the numbers, indexed by `NumberStat`.
    let stats: UnsafeMutablePointer<UInt32>
    var previousTimestamp: UInt64 = 0
    var previousCPU: UInt32 = 0
    var alternateCPU: UInt32 = 0
    var previousOp = Op.start

    init(firstTimestamp: UInt64) {
        slotCapacity = 32
        cpuCapacity = 16
        taskCapacity = 64
        storage = ChunkModelStorage(slots: slotCapacity, cpus: cpuCapacity, tasks: taskCapacity)
        contextSlots = storage.contextSlots
        rankOps = storage.rankOps
        rankCounts = storage.rankCounts
        rankStats = storage.rankStats
        rankGaps = storage.rankGaps
        rankLengths = storage.rankLengths
        cpuTable = storage.cpus
        taskTable = storage.tasks
        stats = storage.stats
        reset(firstTimestamp: firstTimestamp)
    }

    mutating func reset(firstTimestamp: UInt64) {
        contextSlots.update(repeating: 0, count: Self.contexts)
        slotCount = 0
        cpuCount = 0
        taskCount = 0
        stats.update(repeating: NumberStat.initial, count: NumberStat.count)
        previousTimestamp = firstTimestamp
        previousCPU = 0
        alternateCPU = 0
        previousOp = Op.start
    }

    /// The slot of the op entries that follow op `context`, made (empty) on first use.
    @inline(__always) mutating func slot(for context: Int) -> Int {
        let s = Int(contextSlots[context])
        if s != 0 { return s - 1 }
        return makeSlot(for: context)
    }

    private mutating func makeSlot(for context: Int) -> Int {
        if slotCount == slotCapacity {
            let capacity = slotCapacity * 2  // at most 2048 slots: one per context
            let entries = slotCount * Self.ranks
            rankOps = grown(rankOps, count: entries, capacity: capacity * Self.ranks)
            rankCounts = grown(rankCounts, count: entries, capacity: capacity * Self.ranks)
            rankStats = grown(rankStats, count: entries, capacity: capacity * Self.ranks)
            rankGaps = grown(rankGaps, count: entries, capacity: capacity * Self.ranks)
            rankLengths = grown(rankLengths, count: slotCount, capacity: capacity)
            (storage.rankOps, storage.rankCounts, storage.rankStats, storage.rankGaps, storage.rankLengths) =
                (rankOps, rankCounts, rankStats, rankGaps, rankLengths)
            slotCapacity = capacity
        }
        let s = slotCount
        slotCount += 1
        rankLengths[s] = 0
        contextSlots[context] = UInt16(s + 1)
        return s
    }

    /// The memory of `cpu`, created on first use; nil beyond `memoryLimit`.
    @inline(__always) mutating func cpu(_ cpu: UInt32) -> UnsafeMutablePointer<CPUMemory>? {
        let i = Int(cpu)
        if i < cpuCount { return cpuTable + i }
        return addCPUs(through: i)
    }

    private mutating func addCPUs(through i: Int) -> UnsafeMutablePointer<CPUMemory>? {
        guard i < Self.memoryLimit else { return nil }
        extend(&cpuTable, count: &cpuCount, capacity: &cpuCapacity, through: i, with: CPUMemory())
        storage.cpus = cpuTable
        return cpuTable + i
    }

    /// The memory of `task`, created on first use; nil beyond `memoryLimit`.
    @inline(__always) mutating func task(_ task: UInt32) -> UnsafeMutablePointer<TaskMemory>? {
        let i = Int(task)
        if i < taskCount { return taskTable + i }
        return addTasks(through: i)
    }

    private mutating func addTasks(through i: Int) -> UnsafeMutablePointer<TaskMemory>? {
        guard i < Self.memoryLimit else { return nil }
        extend(&taskTable, count: &taskCount, capacity: &taskCapacity, through: i, with: TaskMemory())
        storage.tasks = taskTable
        return taskTable + i
    }

    /// Current task of `cpu` (`unknown` when not known).
    @inline(__always) func currentTask(on cpu: UInt32) -> UInt32 {
        Int(cpu) < cpuCount ? cpuTable[Int(cpu)].current : Self.unknown
    }

    /// Last CPU of `task` (`unknown` when not known).
    @inline(__always) func lastCPU(of task: UInt32) -> UInt32 {
        Int(task) < taskCount ? taskTable[Int(task)].lastCPU : Self.unknown
    }

    /// Adds `op` as a new entry of `slot` (replacing the last when full); returns its rank.
    @inline(__always) mutating func insert(_ op: UInt16, slot: Int) -> Int {
        let length = Int(rankLengths[slot])
        let rank = length < Self.ranks ? length : Self.ranks - 1
        if length < Self.ranks { rankLengths[slot] = UInt8(length + 1) }
        let e = slot * Self.ranks + rank
        rankOps[e] = op
        rankCounts[e] = 0
        rankStats[e] = NumberStat.initial
        rankGaps[e] = 0
        return rank
    }

    /// Counts a use of entry `rank` of `slot` and moves it up past entries used less.
    @inline(__always) mutating func promote(_ rank: Int, slot: Int) {
        // Slots < 2048, ranks < 8: the index arithmetic cannot overflow.
        let base = slot &* Self.ranks
        var r = rank
        rankCounts[base &+ r] &+= 1
        if rankCounts[base &+ r] >= 255 {
            for i in 0..<Int(rankLengths[slot]) { rankCounts[base &+ i] >>= 1 }
        }
        while r > 0 && rankCounts[base &+ r] > rankCounts[base &+ r &- 1] {
            rankOps.swapAt(base &+ r, base &+ r &- 1)
            rankCounts.swapAt(base &+ r, base &+ r &- 1)
            rankStats.swapAt(base &+ r, base &+ r &- 1)
            rankGaps.swapAt(base &+ r, base &+ r &- 1)
            r &-= 1
        }
    }

    /// What an event's time is a gap from: the CPU's last timestamp, else the previous event's.
    @inline(__always) func timeBase(_ memory: UnsafeMutablePointer<CPUMemory>?) -> UInt64 {
        if let memory, memory.pointee.hasTimestamp { return memory.pointee.lastTimestamp }
        return previousTimestamp
    }

    /// The memory of `task` if there is one.
    @inline(__always) mutating func task(_ task: TaskIndex?) -> UnsafeMutablePointer<TaskMemory>? {
        guard let task else { return nil }
        return self.task(task.rawValue)
    }

    /// Bookkeeping common to every event, after its fields.
    @inline(__always) mutating func finishEvent(cpu: UInt32, timestamp: UInt64, op: UInt16) {
        if cpu != previousCPU { alternateCPU = previousCPU }
        previousCPU = cpu
        previousTimestamp = timestamp
        // Fetched again: a table may have grown since the event's start.
        if let memory = self.cpu(cpu) {
            memory.pointee.lastTimestamp = timestamp
            memory.pointee.hasTimestamp = true
        }
        previousOp = op
    }
}

extension UnsafeMutablePointer {
    @inline(__always) func swapAt(_ a: Int, _ b: Int) {
        let t = self[a]
        self[a] = self[b]
        self[b] = t
    }
}

/// Appends events to a chunk's bits, in memory the writer allocates once (no array, no
/// capacity or uniqueness check per byte: this runs for every event recorded).
struct EventEncoder {
    /// Most bytes one event can take, plus the 8 bytes every store may touch beyond the last:
    /// an exec with every field explicit and at its longest — op 20 bits, CPU and time 112
    /// each, task 112, name 8 + 255 × 8 — is 2404 bits.
    static let maximumEventBytes = 2404 / 8 + 1 + 8

    var model: ChunkModel
    /// Where the chunk's events go; the owner guarantees room for `maximumEventBytes` more
    /// before every `encode`.
    let base: UnsafeMutablePointer<UInt8>
    /// Whole bytes written.
    private var byteCount = 0
    /// Bits not yet in a whole byte (fewer than 8); they are in memory already, at `base[byteCount]`.
    private var accumulator: UInt64 = 0
    private var bitCount = 0

    init(firstTimestamp: UInt64, base: UnsafeMutablePointer<UInt8>) {
        model = ChunkModel(firstTimestamp: firstTimestamp)
        self.base = base
    }

    /// Starts a new chunk (the tables keep their storage).
    mutating func reset(firstTimestamp: UInt64) {
        model.reset(firstTimestamp: firstTimestamp)
        byteCount = 0
        accumulator = 0
        bitCount = 0
    }

    /// Bytes encoded so far, the last one padded with zero bits.
    var count: Int { byteCount + (bitCount > 0 ? 1 : 0) }

    /// The bytes encoded so far.
    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }

    /// Appends the low `width` bits of `value` (width ≤ 56; higher bits of `value` must be 0).
    @inline(__always) mutating func put(_ value: UInt64, _ width: Int) {
        accumulator |= value &<< UInt64(bitCount)
        bitCount &+= width
        UnsafeMutableRawPointer(base + byteCount).storeBytes(of: accumulator.littleEndian, as: UInt64.self)
        let whole = bitCount &>> 3
        byteCount &+= whole
        accumulator = accumulator &>> UInt64(whole &* 8)
        bitCount &= 7
    }

    /// Exp-Golomb code of order `k` (docs/format.md, "Numbers").
    @inline(__always) mutating func putExpGolomb(_ value: UInt64, order k: Int) {
        let q = value &>> UInt64(k)
        if q >= (1 << 48) - 1 {
            put(0, 48)
            put(value & 0xFFFF_FFFF, 32)
            put(value &>> 32, 32)
            return
        }
        let w = q + 1
        let l = 63 - w.leadingZeroBitCount
        let low = value & ((1 &<< UInt64(k)) &- 1)
        // l zeros, a one, the l low bits of w, the k low bits of the value.
        let head = ((w & ((1 &<< UInt64(l)) &- 1)) &<< UInt64(l + 1)) | (1 &<< UInt64(l))
        if 2 * l + 1 + k <= 56 {
            put(head | low &<< UInt64(2 * l + 1), 2 * l + 1 + k)
        } else if 2 * l + 1 <= 56 {
            put(head, 2 * l + 1)
            put(low, k)
        } else {
            put(1 &<< UInt64(l), l + 1)
            put(w & ((1 &<< UInt64(l)) &- 1), l)
            put(low, k)
        }
    }

    /// A number with the adaptive order of statistic `which`.
    @inline(__always) mutating func putNumber(_ value: UInt64, _ which: Int) {
        let s = model.stats[which]
        putExpGolomb(value, order: NumberStat.order(s))
        model.stats[which] = NumberStat.updated(s, value)
    }

    @inline(__always) mutating func putTask(_ task: TaskIndex) { putNumber(UInt64(task.rawValue), NumberStat.task) }
    @inline(__always) mutating func putCPU(_ cpu: UInt32) { putNumber(UInt64(cpu), NumberStat.cpu) }

    /// A task as its signed difference from `reference`.
    @inline(__always) mutating func putTask(_ task: TaskIndex, from reference: UInt32, _ which: Int) {
        putNumber(zigzag(UInt64(task.rawValue) &- UInt64(reference)), which)
    }

    mutating func encode(_ event: Event) {
        let cpu = event.cpu.rawValue
        let timestamp = event.timestamp
        let memory = model.cpu(cpu)
        let current = memory?.pointee.current ?? ChunkModel.unknown
        var op = UInt16(cpu == model.previousCPU ? Op.cpuSame : cpu == model.alternateCPU ? Op.cpuAlternate : Op.cpuExplicit) << 3

        // The op's flags, and the fields in locals (one switch: the kind holds a String, and
        // every binding of it would copy the enum).
        var first = TaskIndex.idle, second = TaskIndex.idle
        var cpuField: UInt32 = 0, otherCPU: UInt32 = 0
        var value: UInt64 = 0
        var state: UInt8 = 0
        var hasWaker = false
        switch event.kind {
        case let .switchTask(prev, prevState, next):
            op |= UInt16(KindCode.switchTask.rawValue)
            op |= UInt16(prevState.rawValue <= 2 ? prevState.rawValue : 3) << 5
            if prev.rawValue != current || current == ChunkModel.unknown { op |= 1 << 7 }
            let lastOut = memory?.pointee.lastOut ?? ChunkModel.unknown
            op |= (next.isIdle ? 0 : next.rawValue == lastOut && lastOut != ChunkModel.unknown ? 1 : 2) << 8
            (first, second, state) = (prev, next, prevState.rawValue)
        case let .waking(waker, target, targetCPU, context):
            op |= UInt16(KindCode.waking.rawValue) | UInt16(context.rawValue) << 5
            if let waker {
                op |= (waker.rawValue == current && current != ChunkModel.unknown ? 0 : 2) << 7
                (first, hasWaker) = (waker, true)
            } else {
                op |= 1 << 7
            }
            op |= targetCPUClass(targetCPU, of: target, cpu: cpu) << 9
            (second, cpuField) = (target, targetCPU.rawValue)
        case let .runtime(task, nanoseconds):
            op |= UInt16(KindCode.runtime.rawValue)
            op |= runtimeTaskClass(task, current: current, memory: memory) << 5
            (first, value) = (task, nanoseconds)
        case let .migrate(task, from, to):
            op |= UInt16(KindCode.migrate.rawValue)
            (first, cpuField, otherCPU) = (task, from.rawValue, to.rawValue)
        case let .wakeupNew(target, targetCPU):
            op |= UInt16(KindCode.wakeupNew.rawValue) | targetCPUClass(targetCPU, of: target, cpu: cpu) << 9
            (second, cpuField) = (target, targetCPU.rawValue)
        case let .fork(parent, child):
            op |= UInt16(KindCode.fork.rawValue) | implicitFlag(parent, current)
            (first, second) = (parent, child)
        case let .exit(task):
            op |= UInt16(KindCode.exit.rawValue) | implicitFlag(task, current)
            first = task
        case let .exec(task, comm):
            // Rare, and the only kind with a String: apart, so the common path holds none.
            encodeExec(op | UInt16(KindCode.exec.rawValue) | implicitFlag(task, current), task: task, comm: comm,
                       cpu: cpu, timestamp: timestamp, memory: memory)
            return
        }

        encodeHead(op: op, cpu: cpu, timestamp: timestamp, memory: memory)

        // The fields the op does not give.
        switch UInt8(op & 7) {
        case KindCode.switchTask.rawValue:
            let (prev, next) = (first, second)
            if state > 2 { put(UInt64(state), 3) }
            if op & (1 << 7) != 0 { putTask(prev) }
            if (op >> 8) & 3 == 2 { putTask(next, from: memory?.pointee.lastWoken ?? 0, NumberStat.next) }
            model.task(prev.rawValue)?.pointee.lastCPU = cpu
            if let t = model.task(next.rawValue) {
                t.pointee.lastCPU = cpu
                if !next.isIdle {
                    t.pointee.referenceTime = timestamp
                    t.pointee.referenceKind = 1
                }
            }
            if let memory {
                memory.pointee.lastOut = prev.rawValue
                memory.pointee.current = next.rawValue
            }
        case KindCode.waking.rawValue:
            let (target, targetCPU) = (second, cpuField)
            if (op >> 7) & 3 == 2 { putTask(first) }
            let wakerMemory = hasWaker ? model.task(first.rawValue) : nil
            let reference = hasWaker ? wakerMemory?.pointee.lastTarget ?? 0 : memory?.pointee.noWakerTarget ?? 0
            putTask(target, from: reference, NumberStat.target)
            if (op >> 9) & 3 == 2 { putCPU(targetCPU) }
            if hasWaker { wakerMemory?.pointee.lastTarget = target.rawValue } else { memory?.pointee.noWakerTarget = target.rawValue }
            memory?.pointee.wakeTargetCPU = targetCPU
            model.cpu(targetCPU)?.pointee.lastWoken = target.rawValue
            model.task(target.rawValue)?.pointee.lastCPU = targetCPU
        case KindCode.runtime.rawValue:
            let nanoseconds = value
            if (op >> 5) & 3 == 2 { putTask(first) }
            let t = model.task(first.rawValue)
            let kind = Int(t?.pointee.referenceKind ?? 0)
            var elapsed: UInt64 = 0
            var prediction: UInt64 = 0
            if let t, kind != 0 {
                elapsed = timestamp &- t.pointee.referenceTime
                prediction = elapsed &+ (kind == 1 ? t.pointee.offsetAfterSwitchIn : t.pointee.offsetAfterReport)
            }
            putNumber(zigzag(nanoseconds &- prediction), NumberStat.runtime + kind)
            if let t {
                if kind == 1 { t.pointee.offsetAfterSwitchIn = nanoseconds &- elapsed }
                if kind == 2 { t.pointee.offsetAfterReport = nanoseconds &- elapsed }
                t.pointee.referenceTime = timestamp
                t.pointee.referenceKind = 2
            }
        case KindCode.migrate.rawValue:
            putTask(first)
            putCPU(cpuField)
            putCPU(otherCPU)
            model.task(first.rawValue)?.pointee.lastCPU = otherCPU
        case KindCode.wakeupNew.rawValue:
            let (target, targetCPU) = (second, cpuField)
            putTask(target)
            if (op >> 9) & 3 == 2 { putCPU(targetCPU) }
            model.cpu(targetCPU)?.pointee.lastWoken = target.rawValue
            model.task(target.rawValue)?.pointee.lastCPU = targetCPU
        case KindCode.fork.rawValue:
            if op & (1 << 7) != 0 { putTask(first) }
            putTask(second)
        case KindCode.exit.rawValue:
            if op & (1 << 7) != 0 { putTask(first) }
        default:
            break  // exec: encodeExec
        }
        model.finishEvent(cpu: cpu, timestamp: timestamp, op: op)
    }

    /// The op (as its rank among those that followed the previous op), the CPU when explicit,
    /// and the time (against the gap last seen between these two ops).
    @inline(__always) private mutating func encodeHead(op: UInt16, cpu: UInt32, timestamp: UInt64, memory: UnsafeMutablePointer<CPUMemory>?) {
        let slot = model.slot(for: Int(model.previousOp))
        let entries = slot * ChunkModel.ranks
        let length = Int(model.rankLengths[slot])
        var rank = 0
        while rank < length && model.rankOps[entries + rank] != op { rank += 1 }
        put(1 << UInt64(rank), rank + 1)
        if rank == length {
            put(UInt64(op), Op.bits)
            rank = model.insert(op, slot: slot)
        }
        if op & 0x18 == Op.cpuExplicit << 3 { putCPU(cpu) }

        // The time, against the gap last seen between these two ops.
        let base = model.timeBase(memory)
        let gap = timestamp &- base
        let e = entries + rank
        let s = model.rankStats[e]
        let residual = zigzag(gap &- model.rankGaps[e])
        putExpGolomb(residual, order: NumberStat.order(s))
        model.rankStats[e] = NumberStat.updated(s, residual)
        model.rankGaps[e] = gap
        model.promote(rank, slot: slot)
    }

    @inline(never) private mutating func encodeExec(_ op: UInt16, task: TaskIndex, comm: String, cpu: UInt32, timestamp: UInt64,
                                                    memory: UnsafeMutablePointer<CPUMemory>?) {
        encodeHead(op: op, cpu: cpu, timestamp: timestamp, memory: memory)
        if op & (1 << 7) != 0 { putTask(task) }
        // At most 255 bytes, cut on a character boundary so the name stays valid UTF-8.
        var length = min(comm.utf8.count, 255)
        if length < comm.utf8.count {
            let utf8 = Array(comm.utf8)
            while length > 0 && utf8[length] & 0xC0 == 0x80 { length -= 1 }
        }
        put(UInt64(length), 8)
        for byte in comm.utf8.prefix(length) { put(UInt64(byte), 8) }
        model.finishEvent(cpu: cpu, timestamp: timestamp, op: op)
    }

    /// 0: the event's CPU; 1: the CPU the target was last seen on; 2: explicit.
    @inline(__always) private func targetCPUClass(_ targetCPU: CPU, of target: TaskIndex, cpu: UInt32) -> UInt16 {
        if targetCPU.rawValue == cpu { return 0 }
        let last = model.lastCPU(of: target.rawValue)
        return last != ChunkModel.unknown && last == targetCPU.rawValue ? 1 : 2
    }

    /// 0: the CPU's current task; 1: the current task of the CPU this CPU last woke a task
    /// towards (the kernel reports a runtime there when it updates that CPU's queue); 2: explicit.
    @inline(__always) private func runtimeTaskClass(_ task: TaskIndex, current: UInt32, memory: UnsafeMutablePointer<CPUMemory>?) -> UInt16 {
        if task.rawValue == current && current != ChunkModel.unknown { return 0 }
        let wakeCPU = memory?.pointee.wakeTargetCPU ?? ChunkModel.unknown
        let there = wakeCPU == ChunkModel.unknown ? ChunkModel.unknown : model.currentTask(on: wakeCPU)
        return there != ChunkModel.unknown && there == task.rawValue ? 1 : 2
    }

    @inline(__always) private func implicitFlag(_ task: TaskIndex, _ current: UInt32) -> UInt16 {
        task.rawValue == current && current != ChunkModel.unknown ? 0 : 1 << 7
    }
}

/// Decodes the events of one chunk. A struct rather than closures over local variables, so that
/// its state needs no runtime exclusivity checks.
struct EventDecoder {
    /// Bytes of zeros after a copy of the chunk's events, so that every read of one event stays
    /// inside the copy (an event reads at most `EventEncoder.maximumEventBytes`); the position
    /// is checked against the real end after every event.
    static let padding = 512

    /// Decodes `count` events from `bytes`, checking every field against `taskCount`.
    static func decode(
        _ bytes: UnsafeRawBufferPointer, firstTimestamp: UInt64, count: Int, taskCount: Int,
        _ body: (Event) throws -> Void
    ) throws {
        let end = bytes.count
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: end + padding, alignment: 16)
        defer { buffer.deallocate() }
        if end > 0 { buffer.copyMemory(from: bytes.baseAddress!, byteCount: end) }
        (buffer + end).initializeMemory(as: UInt8.self, repeating: 0, count: padding)
        var decoder = EventDecoder(data: UnsafeRawPointer(buffer), endBits: end * 8, taskCount: taskCount,
                                   model: ChunkModel(firstTimestamp: firstTimestamp))
        try decoder.run(count: count, body)
    }

    let data: UnsafeRawPointer
    let endBits: Int
    let taskCount: Int
    var model: ChunkModel
    /// Bit position of the next field.
    var position = 0
    var eventNumber = 0

    init(data: UnsafeRawPointer, endBits: Int, taskCount: Int, model: ChunkModel) {
        self.data = data
        self.endBits = endBits
        self.taskCount = taskCount
        self.model = model
    }

    @inline(__always) func fail(_ reason: String) -> DecodeFailure { DecodeFailure(reason: reason, eventNumber: eventNumber) }

    /// The next 57 or more bits from `position` on, first bit lowest: one unaligned load (the
    /// padding after the copy keeps it inside the buffer), cheaper than keeping a window and
    /// its count of bits in step.
    @inline(__always) func peek() -> UInt64 {
        UInt64(littleEndian: data.loadUnaligned(fromByteOffset: position &>> 3, as: UInt64.self)) &>> UInt64(position & 7)
    }
    /// Skips `width` bits (width ≤ 57, after `peek`).
    @inline(__always) mutating func consume(_ width: Int) {
        position &+= width
    }
    @inline(__always) mutating func read(_ width: Int) -> UInt64 {
        let v = peek() & ((1 &<< UInt64(width)) &- 1)
        consume(width)
        return v
    }
    @inline(__always) mutating func expGolomb(_ k: Int) -> UInt64 {
        let window = peek()
        let l = window.trailingZeroBitCount
        let total = 2 &* l &+ 1 &+ k
        if total <= 57 {
            // The whole code is in the window.
            consume(total)
            let bits = window &>> UInt64(l &+ 1)
            let w = (1 &<< UInt64(l)) | (bits & ((1 &<< UInt64(l)) &- 1))
            return (w &- 1) &<< UInt64(k) | ((bits &>> UInt64(l)) & ((1 &<< UInt64(k)) &- 1))
        }
        if l >= 48 {
            consume(48)
            let low = read(32)
            return read(32) &<< 32 | low
        }
        consume(l + 1)
        let w = (1 &<< UInt64(l)) | read(l)
        return (w &- 1) &<< UInt64(k) | read(k)
    }
    @inline(__always) mutating func number(_ which: Int) -> UInt64 {
        let s = model.stats[which]
        let v = expGolomb(NumberStat.order(s))
        model.stats[which] = NumberStat.updated(s, v)
        return v
    }
    @inline(__always) func checked(_ v: UInt64) throws -> TaskIndex {
        guard v < UInt64(taskCount) else { throw fail("task index \(v) is not in the task table (\(taskCount) tasks)") }
        return TaskIndex(rawValue: UInt32(v))
    }
    @inline(__always) mutating func task() throws -> TaskIndex { try checked(number(NumberStat.task)) }
    @inline(__always) mutating func readTask() throws -> TaskIndex { try task() }
    @inline(__always) mutating func task(from reference: UInt32, _ which: Int) throws -> TaskIndex {
        try checked(unzigzag(number(which)) &+ UInt64(reference))
    }
    @inline(__always) mutating func cpuNumber() throws -> CPU {
        let v = number(NumberStat.cpu)
        guard v <= UInt64(UInt32.max) else { throw fail("CPU \(v) does not fit 32 bits") }
        return CPU(rawValue: UInt32(v))
    }
    @inline(__always) func implicitTask(_ current: UInt32, _ what: String) throws -> TaskIndex {
        guard current != ChunkModel.unknown else { throw fail("\(what) refers to the CPU's current task, which is unknown") }
        return TaskIndex(rawValue: current)
    }

    /// 0: the event's CPU; 1: the target's last CPU; 2: explicit.
    @inline(__always) mutating func targetCPU(_ op: UInt16, target: TaskIndex, cpu: UInt32) throws -> CPU {
        switch (op >> 9) & 3 {
        case 0: return CPU(rawValue: cpu)
        case 1:
            let last = model.lastCPU(of: target.rawValue)
            guard last != ChunkModel.unknown else { throw fail("target CPU is the target's last CPU, which is unknown") }
            return CPU(rawValue: last)
        default: return try cpuNumber()
        }
    }

    /// An op not in the list of `slot` (rare: off the hot path): read, checked and added.
    /// Static, on the model alone, so that no call out of `run` takes the decoder's address
    /// (which keeps its bit position in a register).
    @inline(never) static func newOp(_ op: UInt16, model: inout ChunkModel, slot: Int, length: Int, eventNumber: Int) throws -> Int {
        guard Op.isValid(op) else { throw DecodeFailure(reason: "invalid op \(op)", eventNumber: eventNumber) }
        let entries = slot * ChunkModel.ranks
        for i in 0..<length where model.rankOps[entries + i] == op {
            throw DecodeFailure(reason: "op \(op) sent again while it has rank \(i)", eventNumber: eventNumber)
        }
        return model.insert(op, slot: slot)
    }

    /// Inlined into `decode`, where the decoder is a local: its position and counters can then
    /// live in registers.
    @inline(__always) mutating func run(count: Int, _ body: (Event) throws -> Void) throws {
        while eventNumber < count {
            guard position < endBits else { throw fail("chunk ends after \(eventNumber) of \(count) events") }
            // Op.
            let context = Int(model.previousOp)
            let slot = model.slot(for: context)
            let entries = slot &* ChunkModel.ranks
            let length = Int(model.rankLengths[slot])
            var rank = peek().trailingZeroBitCount
            guard rank <= length else { throw fail("op rank \(rank) beyond the \(length) known after op \(context)") }
            consume(rank &+ 1)
            let op: UInt16
            if rank == length {
                op = UInt16(read(Op.bits))
                rank = try Self.newOp(op, model: &model, slot: slot, length: length, eventNumber: eventNumber)
            } else {
                op = model.rankOps[entries &+ rank]
            }
            let cpu: UInt32
            switch op & 0x18 {
            case Op.cpuSame << 3: cpu = model.previousCPU
            case Op.cpuAlternate << 3: cpu = model.alternateCPU
            default: cpu = try cpuNumber().rawValue
            }
            let memory = model.cpu(cpu)
            let current = memory?.pointee.current ?? ChunkModel.unknown

            // Time.
            let base = model.timeBase(memory)
            let e = entries &+ rank
            let s = model.rankStats[e]
            let residual = expGolomb(NumberStat.order(s))
            model.rankStats[e] = NumberStat.updated(s, residual)
            let gap = model.rankGaps[e] &+ unzigzag(residual)
            model.rankGaps[e] = gap
            model.promote(rank, slot: slot)
            let timestamp = base &+ gap

            // Fields.
            let kind: Event.Kind
            switch UInt8(op & 7) {
            case KindCode.switchTask.rawValue:
                var stateCode = UInt8((op >> 5) & 3)
                if stateCode == 3 {
                    stateCode = UInt8(read(3))
                    guard stateCode > 2 else { throw fail("task state \(stateCode) written in full") }
                }
                guard let prevState = TaskState(rawValue: stateCode) else { throw fail("unknown task state \(stateCode)") }
                let prev = op & (1 << 7) != 0 ? try task() : try implicitTask(current, "switch")
                let next: TaskIndex
                switch (op >> 8) & 3 {
                case 0: next = .idle
                case 1:
                    let lastOut = memory?.pointee.lastOut ?? ChunkModel.unknown
                    guard lastOut != ChunkModel.unknown else { throw fail("switch to the CPU's last task, which is unknown") }
                    next = TaskIndex(rawValue: lastOut)
                default: next = try task(from: memory?.pointee.lastWoken ?? 0, NumberStat.next)
                }
                model.task(prev.rawValue)?.pointee.lastCPU = cpu
                if let t = model.task(next.rawValue) {
                    t.pointee.lastCPU = cpu
                    if !next.isIdle {
                        t.pointee.referenceTime = timestamp
                        t.pointee.referenceKind = 1
                    }
                }
                if let memory {
                    memory.pointee.lastOut = prev.rawValue
                    memory.pointee.current = next.rawValue
                }
                kind = .switchTask(prev: prev, prevState: prevState, next: next)
            case KindCode.waking.rawValue:
                let wakeContext = WakeContext(rawValue: UInt8((op >> 5) & 3))!
                let waker: TaskIndex?
                switch (op >> 7) & 3 {
                case 0: waker = try implicitTask(current, "waking")
                case 1: waker = nil
                default: waker = try task()
                }
                let wakerMemory = model.task(waker)
                let reference = waker == nil ? memory?.pointee.noWakerTarget ?? 0 : wakerMemory?.pointee.lastTarget ?? 0
                let target = try task(from: reference, NumberStat.target)
                let targetCPU = try targetCPU(op, target: target, cpu: cpu)
                if waker == nil { memory?.pointee.noWakerTarget = target.rawValue } else { wakerMemory?.pointee.lastTarget = target.rawValue }
                memory?.pointee.wakeTargetCPU = targetCPU.rawValue
                model.cpu(targetCPU.rawValue)?.pointee.lastWoken = target.rawValue
                model.task(target.rawValue)?.pointee.lastCPU = targetCPU.rawValue
                kind = .waking(waker: waker, target: target, targetCPU: targetCPU, context: wakeContext)
            case KindCode.runtime.rawValue:
                let task: TaskIndex
                switch (op >> 5) & 3 {
                case 0: task = try implicitTask(current, "runtime")
                case 1:
                    let wakeCPU = memory?.pointee.wakeTargetCPU ?? ChunkModel.unknown
                    let there = wakeCPU == ChunkModel.unknown ? ChunkModel.unknown : model.currentTask(on: wakeCPU)
                    guard there != ChunkModel.unknown else { throw fail("runtime refers to the task on the CPU last woken towards, which is unknown") }
                    task = TaskIndex(rawValue: there)
                default: task = try readTask()
                }
                let t = model.task(task.rawValue)
                let referenceKind = Int(t?.pointee.referenceKind ?? 0)
                var elapsed: UInt64 = 0
                var prediction: UInt64 = 0
                if let t, referenceKind != 0 {
                    elapsed = timestamp &- t.pointee.referenceTime
                    prediction = elapsed &+ (referenceKind == 1 ? t.pointee.offsetAfterSwitchIn : t.pointee.offsetAfterReport)
                }
                let nanoseconds = prediction &+ unzigzag(number(NumberStat.runtime + referenceKind))
                if let t {
                    if referenceKind == 1 { t.pointee.offsetAfterSwitchIn = nanoseconds &- elapsed }
                    if referenceKind == 2 { t.pointee.offsetAfterReport = nanoseconds &- elapsed }
                    t.pointee.referenceTime = timestamp
                    t.pointee.referenceKind = 2
                }
                kind = .runtime(task: task, nanoseconds: nanoseconds)
            case KindCode.migrate.rawValue:
                let t = try task()
                let from = try cpuNumber()
                let to = try cpuNumber()
                model.task(t.rawValue)?.pointee.lastCPU = to.rawValue
                kind = .migrate(task: t, from: from, to: to)
            case KindCode.wakeupNew.rawValue:
                let target = try task()
                let targetCPU = try targetCPU(op, target: target, cpu: cpu)
                model.cpu(targetCPU.rawValue)?.pointee.lastWoken = target.rawValue
                model.task(target.rawValue)?.pointee.lastCPU = targetCPU.rawValue
                kind = .wakeupNew(target: target, targetCPU: targetCPU)
            case KindCode.fork.rawValue:
                let parent = op & (1 << 7) != 0 ? try task() : try implicitTask(current, "fork")
                kind = .fork(parent: parent, child: try task())
            case KindCode.exit.rawValue:
                kind = .exit(task: op & (1 << 7) != 0 ? try task() : try implicitTask(current, "exit"))
            default:  // exec
                let t = op & (1 << 7) != 0 ? try task() : try implicitTask(current, "exec")
                let length = Int(read(8))
                guard position + length * 8 <= endBits else { throw fail("exec name runs past the chunk") }
                var name = [UInt8](repeating: 0, count: length)
                for i in 0..<length { name[i] = UInt8(read(8)) }
                kind = .exec(task: t, comm: String(decoding: name, as: UTF8.self))
            }
            guard position <= endBits else { throw fail("event runs past the end of the chunk") }
            model.finishEvent(cpu: cpu, timestamp: timestamp, op: op)
            try body(Event(timestamp: timestamp, cpu: CPU(rawValue: cpu), kind: kind))
            eventNumber &+= 1
        }
        if endBits - position >= 8 { throw fail("\((endBits - position) / 8) stray bytes after the last event") }
        if endBits > position && read(endBits - position) != 0 { throw fail("padding bits after the last event are not 0") }
    }
}
