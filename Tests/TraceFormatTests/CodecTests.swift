import Foundation
import Testing
@testable import TraceFormat

/// The building blocks of the byte format, checked against fixed values.
@Suite struct CodecTests {
    @Test("CRC-32C matches the standard check value")
    func crc32cCheckValue() {
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
        #expect(CRC32C.checksum([]) == 0)
        // Slicing-by-8 and the byte-wise tail agree at every length and alignment.
        let bytes = (0..<300).map { UInt8(truncatingIfNeeded: $0 &* 73 &+ 5) }
        for start in 0..<9 {
            for length in [0, 1, 7, 8, 9, 63, 64, 65, 200] where start + length <= bytes.count {
                let slice = Array(bytes[start..<start + length])
                var bitwise: UInt32 = 0xFFFF_FFFF
                for b in slice {
                    bitwise ^= UInt32(b)
                    for _ in 0..<8 { bitwise = bitwise & 1 != 0 ? (bitwise >> 1) ^ 0x82F6_3B78 : bitwise >> 1 }
                }
                #expect(CRC32C.checksum(slice) == ~bitwise, "start \(start) length \(length)")
            }
        }
    }

    @Test("events encode to the documented bytes")
    func eventsEncodeToDocumentedBytes() throws {
        // docs/format.md, "Example": a switch-in, a waking of another task on CPU 1 and a switch to idle.
        let buffer = UnsafeMutablePointer<UInt8>.allocate(capacity: 4 * EventEncoder.maximumEventBytes)
        defer { buffer.deallocate() }
        var encoder = EventEncoder(firstTimestamp: 1000, base: buffer)
        let events = [
            Event(timestamp: 1000, cpu: CPU(0), kind: .switchTask(prev: .idle, prevState: .running, next: TaskIndex(1))),
            Event(timestamp: 3000, cpu: CPU(0), kind: .waking(waker: TaskIndex(1), target: TaskIndex(2), targetCPU: CPU(1), context: .task)),
            Event(timestamp: 2900, cpu: CPU(0), kind: .switchTask(prev: TaskIndex(1), prevState: .sleeping, next: .idle)),
        ]
        for event in events { encoder.encode(event) }
        let expected: [UInt8] = [0x01, 0x15, 0x04, 0xC5, 0x00, 0x02, 0x7D, 0x90, 0x0C, 0x41, 0xC0, 0x0F]
        #expect(Array(encoder.bytes) == expected)
        var decoded: [Event] = []
        try expected.withUnsafeBytes { try EventDecoder.decode($0, firstTimestamp: 1000, count: 3, taskCount: 3) { decoded.append($0) } }
        #expect(decoded == events)
    }

    @Test("version 1 events encode to the documented bytes")
    func version1EventsEncodeToDocumentedBytes() throws {
        // docs/format.md, "Version 1 events", "Example".
        let buffer = UnsafeMutablePointer<UInt8>.allocate(capacity: 4 * EventEncoderV1.maximumEventBytes)
        defer { buffer.deallocate() }
        var encoder = EventEncoderV1(firstTimestamp: 1000, base: buffer)
        let events = [
            Event(timestamp: 1000, cpu: CPU(0), kind: .switchTask(prev: .idle, prevState: .running, next: TaskIndex(1))),
            Event(timestamp: 3000, cpu: CPU(0), kind: .waking(waker: TaskIndex(1), target: TaskIndex(2), targetCPU: CPU(1), context: .task)),
            Event(timestamp: 2900, cpu: CPU(0), kind: .switchTask(prev: TaskIndex(1), prevState: .sleeping, next: .idle)),
        ]
        for event in events { encoder.encode(event) }
        let expected: [UInt8] = [0x10, 0x00, 0x00, 0x01, 0x81, 0xA0, 0x1F, 0x02, 0x01, 0xA0, 0xC7, 0x01]
        #expect(Array(encoder.bytes) == expected)
        var decoded: [Event] = []
        try expected.withUnsafeBytes { try EventDecoderV1.decode($0, firstTimestamp: 1000, count: 3, taskCount: 3) { decoded.append($0) } }
        #expect(decoded == events)
    }

    /// Packs (value, width) fields first bit lowest, as the events encoding does.
    static func bits(_ fields: [(UInt64, Int)]) -> [UInt8] {
        var bytes: [UInt8] = []
        var position = 0
        for (value, width) in fields {
            for i in 0..<width {
                if position / 8 == bytes.count { bytes.append(0) }
                if (value >> UInt64(i)) & 1 == 1 { bytes[position / 8] |= 1 << UInt8(position % 8) }
                position += 1
            }
        }
        return bytes
    }

    static func decodeFailure(_ bytes: [UInt8], count: Int, taskCount: Int = 4, version1: Bool = false) -> String? {
        do {
            try bytes.withUnsafeBytes {
                if version1 {
                    try EventDecoderV1.decode($0, firstTimestamp: 0, count: count, taskCount: taskCount) { _ in }
                } else {
                    try EventDecoder.decode($0, firstTimestamp: 0, count: count, taskCount: taskCount) { _ in }
                }
            }
            return nil
        } catch let failure as DecodeFailure {
            return failure.reason
        } catch {
            return "\(error)"
        }
    }

    @Test("the decoder rejects malformed events, stray bytes and set padding bits")
    func decoderRejectsMalformedInput() {
        func decode(_ fields: [(UInt64, Int)], count: Int = 1) -> String? { Self.decodeFailure(Self.bits(fields), count: count) }
        // New op (rank 0 of 0 known: one 1 bit, then 11 bits), time 0 (order 5: a 1 bit and 5 zeros), fields.
        let migrate: [(UInt64, Int)] = [(1, 1), (3, 11), (1, 6), (1 | 1 << 1, 6), (1, 6), (1 | 1 << 1, 5)]  // task 1, CPU 0 → 1 (order 4 by then)
        #expect(decode(migrate) == nil)
        #expect(Self.decodeFailure(Self.bits(migrate) + [0xFF], count: 1) == "1 stray bytes after the last event")
        #expect(decode(migrate + [(1, 1)]) == "padding bits after the last event are not 0")
        #expect(Self.decodeFailure([], count: 1) == "chunk ends after 0 of 1 events")
        // Fewer than 8 bits left can still hold an event: the zero padding reads as a rank past the list.
        #expect(decode(migrate, count: 2) == "op rank 64 beyond the 0 known after op 3")
        #expect(Self.decodeFailure([0x00], count: 1) == "op rank 64 beyond the 0 known after op 2047")
        #expect(decode([(1, 1), (0x18, 11)]) == "invalid op 24")
        #expect(decode([(1, 1), (3, 11), (1, 6), (1 | 9 << 1, 6)]) == "task index 9 is not in the task table (4 tasks)")
        #expect(decode([(1, 1), (2, 11), (1, 6)]) == "runtime refers to the CPU's current task, which is unknown")
        #expect(decode([(1, 1), (0xE0, 11), (1, 6), (1, 3)]) == "task state 1 written in full")
        #expect(decode([(1, 1), (0xE0, 11), (1, 6), (7, 3)]) == "unknown task state 7")
        #expect(decode([(1, 1), (0x100, 11), (1, 6)]) == "switch refers to the CPU's current task, which is unknown")
        #expect(decode([(1, 1), (7 | 1 << 7, 11), (1, 6), (1 | 1 << 1, 6), (5, 8), (0x61, 8)]) == "exec name runs past the chunk")
        #expect(decode([(1, 1), (3, 11), (1, 6), (1 | 1 << 1, 6)]) == "event runs past the end of the chunk")
    }

    @Test("the version 1 decoder rejects malformed varints and stray bytes")
    func version1DecoderRejectsMalformedInput() {
        func decode(_ bytes: [UInt8], count: Int, taskCount: Int = 4) -> String? {
            Self.decodeFailure(bytes, count: count, taskCount: taskCount, version1: true)
        }
        #expect(decode([0x03, 0x00, 0x01, 0x00, 0x01], count: 1) == nil)  // migrate task 1 from CPU 0 to 1: valid
        #expect(decode([0x03, 0x00, 0x01, 0x00, 0x01, 0xFF], count: 1) == "1 stray bytes after the last event")
        #expect(decode([0x03, 0x00, 0x01, 0x00, 0x01], count: 2) == "chunk ends after 1 of 2 events")
        #expect(decode([0x03, 0x00, 0x09, 0x00, 0x01], count: 1) == "task index 9 is not in the task table (4 tasks)")
        #expect(decode([0x03, 0x00] + Array(repeating: 0x80, count: 10) + [0x01], count: 1) == "varint overflows 64 bits")
        #expect(decode([0x03, 0x00, 0x01, 0x80, 0x80, 0x80, 0x80, 0x10, 0x01], count: 1) == "value 4294967296 does not fit 32 bits")
        #expect(decode([0x02, 0x00, 0x05], count: 1) == "runtime refers to the CPU's current task, which is unknown")
        #expect(decode([0x70, 0x00, 0x00, 0x09, 0x01], count: 1) == "unknown task state 9")
        #expect(decode([0x07, 0x00], count: 1) == "exec refers to the CPU's current task, which is unknown")
        #expect(decode([0x17, 0x00, 0x01, 0x05, 0x61], count: 1) == "exec name runs past the chunk")
        #expect(decode([0x03, 0x00, 0x01], count: 1) == "event runs past the end of the chunk")
    }
}
