// Byte encoding of events inside an events chunk of a version 1 file. See docs/format.md,
// "Version 1 events". Version 2 files use EventCodec.swift; this decoder stays so that
// version 1 files remain readable, and the encoder so that tests can make version 1 chunks.
//
// Every event starts with a tag byte: bits 0-2 the kind, bit 3 "CPU changed", bits 4-7
// kind-specific flags. Then the zigzag varint time delta from the previous event of the
// chunk, the CPU as a varint when bit 3 is set, then the kind's fields. The decoder keeps,
// per CPU, the task last switched in; a switch's `prev` or a waking's `waker` equal to it
// is left out. All of this state starts empty in every chunk, so chunks decode alone.

/// Mutable state shared by the encoder and decoder of one chunk.
struct ChunkCodecStateV1 {
    var previousTimestamp: UInt64
    var previousCPU: UInt32 = 0
    /// Task last switched in per CPU, `UInt32.max` when unknown.
    var current: [UInt32] = []

    init(firstTimestamp: UInt64) { previousTimestamp = firstTimestamp }

    @inline(__always) func currentTask(on cpu: UInt32) -> UInt32 {
        Int(cpu) < current.count ? current[Int(cpu)] : UInt32.max
    }

    @inline(__always) mutating func setCurrent(_ task: UInt32, on cpu: UInt32) {
        let i = Int(cpu)
        if i >= current.count {
            // CPU numbers come from the file: cap the table so a corrupt value cannot
            // allocate gigabytes. Beyond the cap nothing is remembered (fields stay explicit).
            guard i < 65536 else { return }
            current.append(contentsOf: repeatElement(UInt32.max, count: i + 1 - current.count))
        }
        current[i] = task
    }
}

/// Appends events to a chunk's bytes, in memory the writer allocates once (no array, no
/// capacity or uniqueness check per byte: this runs for every event recorded).
struct EventEncoderV1 {
    /// Most bytes one event can take: tag, 10-byte time delta, 5-byte CPU, then at worst an
    /// exec (5-byte task, 2-byte length, 255 bytes of name). The writer flushes a chunk once it
    /// holds `chunkByteLimit` bytes and keeps this much room beyond that.
    static let maximumEventBytes = 1 + 10 + 5 + 5 + 2 + 255

    var state: ChunkCodecStateV1
    /// Where the chunk's events go; the owner guarantees room for `maximumEventBytes` more
    /// before every `encode`.
    let base: UnsafeMutablePointer<UInt8>
    /// Bytes encoded so far.
    private(set) var count = 0

    init(firstTimestamp: UInt64, base: UnsafeMutablePointer<UInt8>) {
        state = ChunkCodecStateV1(firstTimestamp: firstTimestamp)
        self.base = base
    }

    /// Starts a new chunk (the per-CPU table keeps its storage).
    mutating func reset(firstTimestamp: UInt64) {
        state.previousTimestamp = firstTimestamp
        state.previousCPU = 0
        state.current.removeAll(keepingCapacity: true)
        count = 0
    }

    /// The bytes encoded so far.
    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }

    @inline(__always) mutating func append(_ byte: UInt8) {
        base[count] = byte
        count &+= 1
    }

    @inline(__always) mutating func varint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        append(UInt8(v))
    }

    @inline(__always) mutating func varint(_ value: UInt32) { varint(UInt64(value)) }

    mutating func encode(_ event: Event) {
        let cpu = event.cpu.rawValue
        let delta = Int64(bitPattern: event.timestamp &- state.previousTimestamp)
        let zigzag = UInt64(bitPattern: (delta << 1) ^ (delta >> 63))
        state.previousTimestamp = event.timestamp
        let cpuChanged = cpu != state.previousCPU
        state.previousCPU = cpu
        let current = state.currentTask(on: cpu)
        var tag: UInt8 = cpuChanged ? 0x08 : 0
        let tagPosition = count
        append(0)
        varint(zigzag)
        if cpuChanged { varint(cpu) }
        switch event.kind {
        case let .switchTask(prev, prevState, next):
            tag |= KindCode.switchTask.rawValue
            if prev.rawValue != current {
                tag |= 0x10
                varint(prev.rawValue)
            }
            let stateCode: UInt8 = prevState.rawValue <= 2 ? prevState.rawValue : 3
            tag |= stateCode << 5
            if stateCode == 3 { append(prevState.rawValue) }
            if next.isIdle { tag |= 0x80 } else { varint(next.rawValue) }
            state.setCurrent(next.rawValue, on: cpu)
        case let .waking(waker, target, targetCPU, context):
            tag |= KindCode.waking.rawValue
            tag |= context.rawValue << 5
            varint(target.rawValue)
            if let waker, waker.rawValue == current {
                // implicit
            } else {
                tag |= 0x10
                varint(waker.map { UInt64($0.rawValue) + 1 } ?? 0)
            }
            if targetCPU.rawValue != cpu {
                tag |= 0x80
                varint(targetCPU.rawValue)
            }
        case let .runtime(task, nanoseconds):
            tag |= KindCode.runtime.rawValue
            if task.rawValue != current {
                tag |= 0x10
                varint(task.rawValue)
            }
            varint(nanoseconds)
        case let .migrate(task, from, to):
            tag |= KindCode.migrate.rawValue
            varint(task.rawValue)
            varint(from.rawValue)
            varint(to.rawValue)
        case let .wakeupNew(target, targetCPU):
            tag |= KindCode.wakeupNew.rawValue
            varint(target.rawValue)
            if targetCPU.rawValue != cpu {
                tag |= 0x80
                varint(targetCPU.rawValue)
            }
        case let .fork(parent, child):
            tag |= KindCode.fork.rawValue
            if parent.rawValue != current {
                tag |= 0x10
                varint(parent.rawValue)
            }
            varint(child.rawValue)
        case let .exit(task):
            tag |= KindCode.exit.rawValue
            if task.rawValue != current {
                tag |= 0x10
                varint(task.rawValue)
            }
        case let .exec(task, comm):
            tag |= KindCode.exec.rawValue
            if task.rawValue != current {
                tag |= 0x10
                varint(task.rawValue)
            }
            // At most 255 bytes, cut on a character boundary so the name stays valid UTF-8.
            var length = min(comm.utf8.count, 255)
            if length < comm.utf8.count {
                let utf8 = Array(comm.utf8)
                while length > 0 && utf8[length] & 0xC0 == 0x80 { length -= 1 }
            }
            varint(UInt64(length))
            for byte in comm.utf8.prefix(length) { append(byte) }
        }
        base[tagPosition] = tag
    }
}

/// Decodes the events of one version 1 chunk.
struct EventDecoderV1 {
    /// Decodes `count` events from `bytes`, checking every field against `taskCount`.
    static func decode(
        _ bytes: UnsafeRawBufferPointer, firstTimestamp: UInt64, count: Int, taskCount: Int,
        _ body: (Event) throws -> Void
    ) throws {
        var state = ChunkCodecStateV1(firstTimestamp: firstTimestamp)
        var position = 0
        let end = bytes.count
        var eventNumber = 0

        func fail(_ reason: String) -> DecodeFailure { DecodeFailure(reason: reason, eventNumber: eventNumber) }

        @inline(__always) func varint() throws -> UInt64 {
            var result: UInt64 = 0
            var shift: UInt64 = 0
            while true {
                guard position < end else { throw fail("event runs past the end of the chunk") }
                let b = bytes[position]
                position += 1
                if shift == 63 && b > 1 { throw fail("varint overflows 64 bits") }
                result |= UInt64(b & 0x7F) << shift
                if b & 0x80 == 0 { return result }
                shift += 7
                if shift > 63 { throw fail("varint longer than 10 bytes") }
            }
        }
        @inline(__always) func u32() throws -> UInt32 {
            let v = try varint()
            guard v <= UInt64(UInt32.max) else { throw fail("value \(v) does not fit 32 bits") }
            return UInt32(v)
        }
        @inline(__always) func task() throws -> TaskIndex {
            let v = try varint()
            guard v < UInt64(taskCount) else { throw fail("task index \(v) is not in the task table (\(taskCount) tasks)") }
            return TaskIndex(rawValue: UInt32(v))
        }
        @inline(__always) func implicitTask(_ current: UInt32, _ what: String) throws -> TaskIndex {
            guard current != UInt32.max else { throw fail("\(what) refers to the CPU's current task, which is unknown") }
            return TaskIndex(rawValue: current)
        }

        while eventNumber < count {
            guard position < end else { throw fail("chunk ends after \(eventNumber) of \(count) events") }
            let tag = bytes[position]
            position += 1
            let zigzag = try varint()
            let delta = Int64(bitPattern: zigzag >> 1) ^ -Int64(bitPattern: zigzag & 1)
            let timestamp = state.previousTimestamp &+ UInt64(bitPattern: delta)
            state.previousTimestamp = timestamp
            if tag & 0x08 != 0 { state.previousCPU = try u32() }
            let cpu = state.previousCPU
            let current = state.currentTask(on: cpu)
            let kind: Event.Kind
            switch tag & 0x07 {
            case KindCode.switchTask.rawValue:
                let prev = tag & 0x10 != 0 ? try task() : try implicitTask(current, "switch")
                var stateCode = (tag >> 5) & 0x03
                if stateCode == 3 {
                    guard position < end else { throw fail("switch state runs past the chunk") }
                    stateCode = bytes[position]
                    position += 1
                }
                guard let prevState = TaskState(rawValue: stateCode) else { throw fail("unknown task state \(stateCode)") }
                let next = tag & 0x80 != 0 ? TaskIndex.idle : try task()
                state.setCurrent(next.rawValue, on: cpu)
                kind = .switchTask(prev: prev, prevState: prevState, next: next)
            case KindCode.waking.rawValue:
                guard let context = WakeContext(rawValue: (tag >> 5) & 0x03) else { throw fail("bad wake context") }
                let target = try task()
                var waker: TaskIndex?
                if tag & 0x10 != 0 {
                    let w = try varint()
                    if w > 0 {
                        guard w - 1 < UInt64(taskCount) else { throw fail("waker index \(w - 1) is not in the task table") }
                        waker = TaskIndex(rawValue: UInt32(w - 1))
                    }
                } else {
                    waker = try implicitTask(current, "waking")
                }
                let targetCPU = tag & 0x80 != 0 ? try u32() : cpu
                kind = .waking(waker: waker, target: target, targetCPU: CPU(rawValue: targetCPU), context: context)
            case KindCode.runtime.rawValue:
                let t = tag & 0x10 != 0 ? try task() : try implicitTask(current, "runtime")
                kind = .runtime(task: t, nanoseconds: try varint())
            case KindCode.migrate.rawValue:
                let t = try task()
                let from = try u32()
                let to = try u32()
                kind = .migrate(task: t, from: CPU(rawValue: from), to: CPU(rawValue: to))
            case KindCode.wakeupNew.rawValue:
                let t = try task()
                let targetCPU = tag & 0x80 != 0 ? try u32() : cpu
                kind = .wakeupNew(target: t, targetCPU: CPU(rawValue: targetCPU))
            case KindCode.fork.rawValue:
                let parent = tag & 0x10 != 0 ? try task() : try implicitTask(current, "fork")
                kind = .fork(parent: parent, child: try task())
            case KindCode.exit.rawValue:
                kind = .exit(task: tag & 0x10 != 0 ? try task() : try implicitTask(current, "exit"))
            default:  // exec
                let t = tag & 0x10 != 0 ? try task() : try implicitTask(current, "exec")
                let length = try varint()
                guard length <= 255, position + Int(length) <= end else { throw fail("exec name runs past the chunk") }
                let comm = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[position..<position + Int(length)]), as: UTF8.self)
                position += Int(length)
                kind = .exec(task: t, comm: comm)
            }
            try body(Event(timestamp: timestamp, cpu: CPU(rawValue: cpu), kind: kind))
            eventNumber += 1
        }
        if position != end { throw fail("\(end - position) stray bytes after the last event") }
    }
}
