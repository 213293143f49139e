import Foundation

/// Constants of the `.rpl` container. See docs/format.md.
public enum RPLFormat {
    /// First 8 bytes of every `.rpl` file: `\x89RPL\r\n\x1A\n` (PNG-style: catches text-mode
    /// transfers and truncation to 7 bits).
    public static let magic: [UInt8] = [0x89, 0x52, 0x50, 0x4C, 0x0D, 0x0A, 0x1A, 0x0A]
    /// Last 8 bytes of a complete file.
    public static let endMagic: [UInt8] = Array("RPL-END\n".utf8)
    /// Major version: a reader refuses files with a larger one. Version 2 changed the event
    /// and task encodings; version 1 files are still read.
    public static let majorVersion: UInt16 = 2
    /// Minor version: new optional block types or JSON fields; older readers ignore them.
    /// 2.1 added the metadata's `cpuLatencyRequests`.
    public static let minorVersion: UInt16 = 1
    public static let fileHeaderSize = 16
    public static let blockHeaderSize = 16
    public static let trailerSize = 16
    /// Blocks larger than this are refused as corrupt (a writer never makes them).
    public static let maximumBlockPayload = 64 << 20
}

/// Kinds of block. Types 128 and above are optional: a reader that does not know them skips them.
public enum BlockType: UInt8, Sendable {
    /// JSON `TraceMetadata` as known when recording started.
    case metadata = 1
    /// JSON array of `{"index": N, "task": TaskInfo}`: tasks first used by the next events chunk.
    case taskDefinitions = 2
    /// Delta-encoded events.
    case events = 3
    /// JSON `TraceMetadata` as known at the end (duration, lost events, …).
    case finalMetadata = 4
    /// JSON array of every `TaskInfo`, in index order, with what was learnt during recording.
    case taskTable = 5
    /// Binary chunk index; the trailer points at it.
    case index = 6
}

/// One entry of the footer index: where a chunk is and what time it covers.
public struct ChunkInfo: Equatable, Sendable {
    /// Byte offset of the chunk's block header in the file.
    public var offset: UInt64
    public var firstTimestamp: UInt64
    public var lastTimestamp: UInt64
    public var eventCount: UInt32
    /// Number of tasks defined once this chunk's events are decoded (upper bound of any index in it).
    public var taskCount: UInt32
}

struct TaskDefinition: Codable {
    var index: UInt32
    var task: TaskInfo
}

@inline(__always) func appendLE<T: FixedWidthInteger>(_ value: T, to bytes: inout [UInt8]) {
    withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
}

@inline(__always) func readLE<T: FixedWidthInteger>(_ bytes: UnsafeRawBufferPointer, _ offset: Int, as: T.Type) -> T {
    T(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: T.self))
}

/// Builds a block: 16-byte header (type, 3 reserved, payload length, payload CRC, header CRC)
/// followed by the payload.
func makeBlock(_ type: BlockType, payload: [UInt8]) -> [UInt8] {
    var block = makeBlockHeader(type, payloadLength: payload.count, payloadCRC: CRC32C.checksum(payload))
    block.append(contentsOf: payload)
    return block
}

/// The 16-byte header of a block whose payload has `payloadLength` bytes and CRC `payloadCRC`.
func makeBlockHeader(_ type: BlockType, payloadLength: Int, payloadCRC: UInt32) -> [UInt8] {
    var header: [UInt8] = []
    header.reserveCapacity(RPLFormat.blockHeaderSize + 20)
    header.append(type.rawValue)
    header.append(contentsOf: [0, 0, 0])
    appendLE(UInt32(payloadLength), to: &header)
    appendLE(payloadCRC, to: &header)
    let headerCRC = header.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[0..<12])) }
    appendLE(headerCRC, to: &header)
    return header
}

let jsonEncoder: JSONEncoder = {
    let e = JSONEncoder()
    e.outputFormatting = [.sortedKeys]
    return e
}()
