/// Everything that can go wrong reading or writing a `.rpl` file. Each case names the file,
/// the place and, when there is one, the fix.
public enum TraceError: Error, Equatable, CustomStringConvertible {
    /// The file cannot be opened, read or written.
    case io(path: String, reason: String)
    /// The file does not start with the `.rpl` magic.
    case notATrace(path: String, detail: String)
    /// The file was written by a newer, incompatible replayctl.
    case unsupportedVersion(path: String, major: UInt16, minor: UInt16)
    /// A block's checksum or content is wrong.
    case corruptBlock(path: String, offset: UInt64, reason: String)
    /// An events chunk cannot be decoded.
    case corruptChunk(path: String, chunk: Int, offset: UInt64, reason: String)
    /// The file holds no usable data at all.
    case empty(path: String, detail: String)

    public var description: String {
        switch self {
        case let .io(path, reason):
            "\(path): \(reason)"
        case let .notATrace(path, detail):
            "\(path): not a replayctl trace (\(detail)) — record one with `replayctl record`, or convert perf/trace-cmd files with `replayctl import`"
        case let .unsupportedVersion(path, major, minor):
            "\(path): trace format version \(major).\(minor) is newer than this replayctl understands (\(RPLFormat.majorVersion).x) — upgrade replayctl"
        case let .corruptBlock(path, offset, reason):
            "\(path): corrupt block at byte \(offset): \(reason) — the file is damaged; `replayctl info --salvage` shows what can still be read"
        case let .corruptChunk(path, chunk, offset, reason):
            "\(path): events chunk \(chunk) at byte \(offset) is corrupt: \(reason) — its events are not trusted; `replayctl info --salvage` shows what can still be read"
        case let .empty(path, detail):
            "\(path): \(detail)"
        }
    }
}

/// A stretch of a file the reader could not use.
public struct TraceDamage: Equatable, Sendable, CustomStringConvertible {
    /// Byte offset where the damage starts.
    public var offset: UInt64
    /// Number of bytes lost.
    public var length: UInt64
    public var reason: String

    public var description: String { "bytes \(offset)..<\(offset + length) (\(length) bytes): \(reason)" }
}
