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
    func eventsEncodeToDocumentedBytes() {
        // docs/format.md, "Example": a switch-in, a waking of another task on CPU 1 and a switch to idle.
        let buffer = UnsafeMutablePointer<UInt8>.allocate(capacity: 4 * EventEncoder.maximumEventBytes)
        defer { buffer.deallocate() }
        var encoder = EventEncoder(firstTimestamp: 1000, base: buffer)
        encoder.encode(Event(timestamp: 1000, cpu: CPU(0), kind: .switchTask(prev: .idle, prevState: .running, next: TaskIndex(1))))
        encoder.encode(Event(timestamp: 3000, cpu: CPU(0), kind: .waking(waker: TaskIndex(1), target: TaskIndex(2), targetCPU: CPU(1), context: .task)))
        encoder.encode(Event(timestamp: 2900, cpu: CPU(0), kind: .switchTask(prev: TaskIndex(1), prevState: .sleeping, next: .idle)))
        #expect(Array(encoder.bytes) == [
            0x10, 0x00, 0x00, 0x01,  // switch, prev explicit (CPU's task unknown): prev 0, state R, next 1
            0x81, 0xA0, 0x1F, 0x02, 0x01,  // waking, delta +2000 (zigzag 4000), target 2, waker implicit, target CPU 1
            0xA0, 0xC7, 0x01,  // switch, prev implicit, state S, next idle; delta -100 (zigzag 199)
        ])
    }

    @Test("the decoder rejects malformed varints and stray bytes")
    func decoderRejectsMalformedInput() {
        func decode(_ bytes: [UInt8], count: Int, taskCount: Int = 4) -> String? {
            do {
                try bytes.withUnsafeBytes { try EventDecoder.decode($0, firstTimestamp: 0, count: count, taskCount: taskCount) { _ in } }
                return nil
            } catch let failure as DecodeFailure {
                return failure.reason
            } catch {
                return "\(error)"
            }
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
