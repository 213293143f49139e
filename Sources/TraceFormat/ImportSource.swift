import Foundation

/// The kinds of foreign recordings `replayctl import` reads, told apart by their magic.
public enum ImportSource: Sendable, Equatable {
    /// `perf.data` from `perf record`/`perf sched record`: magic `PERFILE2`.
    case perf
    /// `trace.dat` from `trace-cmd record`: magic `0x17 0x08 0x44 "tracing"`.
    case traceCmd

    /// Human name used in messages and metadata.
    public var name: String {
        switch self {
        case .perf: "perf.data"
        case .traceCmd: "trace-cmd trace.dat"
        }
    }

    static let perfMagic = Array("PERFILE2".utf8)
    static let traceCmdMagic: [UInt8] = [0x17, 0x08, 0x44] + Array("tracing".utf8)

    /// The kind of a file from its first bytes, or nil.
    public static func detect(magic bytes: [UInt8]) -> ImportSource? {
        if bytes.starts(with: perfMagic) { return .perf }
        if bytes.starts(with: traceCmdMagic) { return .traceCmd }
        return nil
    }

    /// The kind of the file at `path`.
    /// - Throws: `TraceError.io` when it cannot be read (reason "no such file" when missing),
    ///   `TraceError.notATrace`-like `ImportError.unknownFormat` when the magic is not one of ours.
    public static func detect(_ path: String) throws -> ImportSource {
        guard FileManager.default.fileExists(atPath: path) else { throw TraceError.io(path: path, reason: "no such file") }
        guard let handle = FileHandle(forReadingAtPath: path) else { throw TraceError.io(path: path, reason: "cannot open for reading") }
        defer { try? handle.close() }
        let bytes = [UInt8]((try? handle.read(upToCount: 16)) ?? Data())
        guard let kind = detect(magic: bytes) else { throw ImportError.unknownFormat(path: path, firstBytes: bytes) }
        return kind
    }
}

/// A foreign recording `replayctl import` cannot read.
public enum ImportError: Error, Equatable, CustomStringConvertible {
    /// The file's magic is neither perf.data's nor trace.dat's.
    case unknownFormat(path: String, firstBytes: [UInt8])

    public var description: String {
        switch self {
        case let .unknownFormat(path, bytes):
            let shown = bytes.prefix(8).map { String(format: "%02x", $0) }.joined(separator: " ")
            return "\(path): unknown format (first bytes \(shown.isEmpty ? "none: empty file" : shown)) — `import` reads perf.data "
                + "(magic PERFILE2, from `perf sched record`) and trace-cmd trace.dat (magic \\x17\\x08Dtracing, from `trace-cmd record`)"
        }
    }
}
