// libFuzzer target for the .rpl reader and the events decoder. Built by fuzz/run.sh together
// with Sources/TraceFormat/*.swift into one module (so internal helpers are reachable); never
// part of `swift build` or `swift test`.
//
// Each input is used in one of two ways, chosen by its first byte:
// - even: the input is a whole file, opened with TraceReader from memory (header, footer,
//   scan, resynchronisation, JSON blocks, then every chunk);
// - odd: the rest is the payload of one events chunk (20-byte chunk header, then events),
//   decoded directly by EventDecoder as the reader would after the checksum passed, so the
//   fuzzer reaches the event decoder instead of stopping at the CRC. Bits 1-6 of the first
//   byte give the task count; bit 7 picks the version 1 decoder instead of the current one.
// Any crash, trap or sanitizer report is a bug.
import Foundation

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = UnsafeRawBufferPointer(start: data, count: size)
    if let first = input.first, first & 1 == 1 {
        let payload = UnsafeRawBufferPointer(rebasing: input.dropFirst())
        guard payload.count >= 20 else { return 0 }
        let firstTimestamp = readLE(payload, 0, as: UInt64.self)
        let count = Int(readLE(payload, 16, as: UInt32.self))
        var events = 0
        let taskCount = Int(first >> 1) & 63 + 1
        let bytes = UnsafeRawBufferPointer(rebasing: payload[20...])
        if first & 0x80 != 0 {
            try? EventDecoderV1.decode(bytes, firstTimestamp: firstTimestamp, count: count, taskCount: taskCount) { _ in events += 1 }
        } else {
            try? EventDecoder.decode(bytes, firstTimestamp: firstTimestamp, count: count, taskCount: taskCount) { _ in events += 1 }
        }
        return 0
    }
    guard let reader = try? TraceReader(path: "fuzz-input", contents: Array(input)) else { return 0 }
    try? reader.forEachEvent(skipDamaged: true, skipped: { _ in }) { _ in }
    _ = reader.validate()
    if let first = reader.chunks.first {
        // Time-range access through the index, around the first chunk.
        try? reader.forEachEvent(in: first.firstTimestamp...max(first.firstTimestamp, first.lastTimestamp), skipDamaged: true) { _ in }
    }
    _ = reader.damage.map(\.description)
    return 0
}
