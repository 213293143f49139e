// Binary task rows of version 2 files (task definitions and task table blocks). See
// docs/format.md, "Task rows". Version 1 files hold the same rows as JSON.

/// Why a task block's bytes could not be decoded. The reader adds the file and offset.
struct TaskBlockFailure: Error {
    var reason: String
}

/// Encodes and decodes `TaskInfo` rows: a flags byte, then varints and the name's bytes
/// (about 20 bytes a task, against 150 as JSON: a recording writes every task twice).
enum TaskBinary {
    private static let kernelThread: UInt8 = 1 << 0, recorded: UInt8 = 1 << 1, hasParent: UInt8 = 1 << 2
    private static let hasPolicy: UInt8 = 1 << 3, hasNice: UInt8 = 1 << 4, hasPriority: UInt8 = 1 << 5
    private static let hasAffinity: UInt8 = 1 << 6

    /// A task table block: count, then the rows in index order.
    static func encode(tasks: [TaskInfo]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(tasks.count * 24 + 4)
        varint(UInt64(tasks.count), &out)
        for task in tasks { append(task, to: &out) }
        return out
    }

    /// A task definitions block: count, then (index, row) pairs.
    static func encode(definitions: [TaskDefinition]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(definitions.count * 26 + 4)
        varint(UInt64(definitions.count), &out)
        for d in definitions {
            varint(UInt64(d.index), &out)
            append(d.task, to: &out)
        }
        return out
    }

    static func decodeTasks(_ bytes: [UInt8]) throws -> [TaskInfo] {
        var reader = Reader(bytes: bytes)
        let count = try reader.count()
        var tasks: [TaskInfo] = []
        tasks.reserveCapacity(count)
        for _ in 0..<count { tasks.append(try reader.task()) }
        try reader.finish()
        return tasks
    }

    static func decodeDefinitions(_ bytes: [UInt8]) throws -> [TaskDefinition] {
        var reader = Reader(bytes: bytes)
        let count = try reader.count()
        var definitions: [TaskDefinition] = []
        definitions.reserveCapacity(count)
        for _ in 0..<count {
            let index = try reader.varint()
            guard index <= UInt64(UInt32.max) else { throw TaskBlockFailure(reason: "task index \(index) does not fit 32 bits") }
            definitions.append(TaskDefinition(index: UInt32(index), task: try reader.task()))
        }
        try reader.finish()
        return definitions
    }

    private static func append(_ t: TaskInfo, to out: inout [UInt8]) {
        var flags: UInt8 = 0
        if t.isKernelThread { flags |= kernelThread }
        if t.isRecorded { flags |= recorded }
        if t.parent != nil { flags |= hasParent }
        if t.policy != nil { flags |= hasPolicy }
        if t.nice != nil { flags |= hasNice }
        if t.realtimePriority != nil { flags |= hasPriority }
        if t.affinity != nil { flags |= hasAffinity }
        out.append(flags)
        signed(Int64(t.tid), &out)
        signed(Int64(t.tgid) - Int64(t.tid), &out)
        varint(UInt64(t.comm.utf8.count), &out)
        out.append(contentsOf: t.comm.utf8)
        if let parent = t.parent { varint(UInt64(parent.rawValue), &out) }
        if let policy = t.policy { out.append(UInt8(policy.number)) }
        if let nice = t.nice { signed(Int64(nice), &out) }
        if let priority = t.realtimePriority { signed(Int64(priority), &out) }
        if let affinity = t.affinity {
            varint(UInt64(affinity.count), &out)
            var previous: Int64 = 0
            for cpu in affinity {
                signed(Int64(cpu) &- previous, &out)
                previous = Int64(cpu)
            }
        }
    }

    private static func varint(_ value: UInt64, _ out: inout [UInt8]) {
        var v = value
        while v >= 0x80 {
            out.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        out.append(UInt8(v))
    }

    private static func signed(_ value: Int64, _ out: inout [UInt8]) {
        varint(UInt64(bitPattern: (value << 1) ^ (value >> 63)), &out)
    }

    private struct Reader {
        let bytes: [UInt8]
        var position = 0

        mutating func byte() throws -> UInt8 {
            guard position < bytes.count else { throw TaskBlockFailure(reason: "task row runs past the end of the block") }
            position += 1
            return bytes[position - 1]
        }

        mutating func varint() throws -> UInt64 {
            var result: UInt64 = 0
            var shift: UInt64 = 0
            while true {
                let b = try byte()
                if shift == 63 && b > 1 { throw TaskBlockFailure(reason: "varint overflows 64 bits") }
                result |= UInt64(b & 0x7F) << shift
                if b & 0x80 == 0 { return result }
                shift += 7
                if shift > 63 { throw TaskBlockFailure(reason: "varint longer than 10 bytes") }
            }
        }

        mutating func signed() throws -> Int64 {
            let z = try varint()
            return Int64(bitPattern: z >> 1) ^ -Int64(bitPattern: z & 1)
        }

        mutating func int32(_ what: String) throws -> Int32 {
            let v = try signed()
            guard let narrow = Int32(exactly: v) else { throw TaskBlockFailure(reason: "\(what) \(v) does not fit 32 bits") }
            return narrow
        }

        /// A count of items of at least one byte each: never more than the bytes left.
        mutating func count() throws -> Int {
            let n = try varint()
            guard n <= UInt64(bytes.count - position) else { throw TaskBlockFailure(reason: "count \(n) exceeds the block's \(bytes.count - position) remaining bytes") }
            return Int(n)
        }

        mutating func task() throws -> TaskInfo {
            let flags = try byte()
            guard flags & 0x80 == 0 else { throw TaskBlockFailure(reason: "unknown task flags \(flags)") }
            let tid = try int32("tid")
            let tgidDifference = try signed()
            guard let tgid = Int32(exactly: Int64(tid) &+ tgidDifference) else { throw TaskBlockFailure(reason: "tgid does not fit 32 bits") }
            let length = try count()
            let comm = String(decoding: bytes[position..<position + length], as: UTF8.self)
            position += length
            var task = TaskInfo(tid: tid, tgid: tgid, comm: comm, isKernelThread: flags & kernelThread != 0, isRecorded: flags & recorded != 0)
            if flags & hasParent != 0 {
                let parent = try varint()
                guard parent <= UInt64(UInt32.max) else { throw TaskBlockFailure(reason: "parent index \(parent) does not fit 32 bits") }
                task.parent = TaskIndex(rawValue: UInt32(parent))
            }
            if flags & hasPolicy != 0 {
                let number = try byte()
                guard let policy = SchedulingPolicy(number: Int32(number)) else { throw TaskBlockFailure(reason: "unknown scheduling policy \(number)") }
                task.policy = policy
            }
            if flags & hasNice != 0 { task.nice = try int32("nice") }
            if flags & hasPriority != 0 { task.realtimePriority = try int32("real-time priority") }
            if flags & hasAffinity != 0 {
                let n = try count()
                var affinity: [Int] = []
                affinity.reserveCapacity(n)
                var previous: Int64 = 0
                for _ in 0..<n {
                    previous = previous &+ (try signed())
                    affinity.append(Int(previous))
                }
                task.affinity = affinity
            }
            return task
        }

        func finish() throws {
            guard position == bytes.count else { throw TaskBlockFailure(reason: "\(bytes.count - position) stray bytes after the last task row") }
        }
    }
}
