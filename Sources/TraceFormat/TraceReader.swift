import Foundation

/// Reads a `.rpl` file: metadata and task table at open, events streamed chunk by chunk.
///
/// A complete file is opened through its footer index. A file without a valid footer (a
/// recorder killed mid-way, a truncated copy) is scanned block by block: every intact chunk
/// is kept, and `damage` says what was lost and where.
public final class TraceReader {
    public let path: String
    public private(set) var metadata = TraceMetadata()
    /// Task table, index 0 the idle task.
    public private(set) var tasks: [TaskInfo] = [TaskInfo.idle]
    /// Events chunks in file order.
    public private(set) var chunks: [ChunkInfo] = []
    /// What could not be read at open (empty for an intact file).
    public private(set) var damage: [TraceDamage] = []
    /// True when the file has no valid footer: it was recovered by scanning.
    public private(set) var isRecovered = false
    /// Format version of the file.
    public private(set) var version: (major: UInt16, minor: UInt16) = (0, 0)
    /// Size of the file in bytes.
    public let fileSize: UInt64
    /// Where the bytes come from: a file descriptor read with `pread`, or memory (fuzzing).
    private enum Source {
        case file(Int32)
        case memory([UInt8])
    }
    private let source: Source
    /// Offset of the footer index block, when the file was opened through it.
    private var footerIndexOffset: UInt64?

    /// Total events in the readable chunks.
    public var eventCount: UInt64 { chunks.reduce(0) { $0 + UInt64($1.eventCount) } }

    /// Opens `path` and reads its metadata, task table and chunk index.
    /// - Throws: `TraceError` when the file cannot be read or is not a trace.
    public init(path: String) throws {
        self.path = path
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            let reason = errno == ENOENT ? "no such file" : "cannot open the file: \(String(cString: strerror(errno)))"
            throw TraceError.io(path: path, reason: reason)
        }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            close(fd)
            throw TraceError.io(path: path, reason: "cannot read the file size: \(String(cString: strerror(errno)))")
        }
        source = .file(fd)
        fileSize = UInt64(max(0, info.st_size))
        try openContents()
    }

    /// Reads a trace held in memory; `path` only names it in messages. Used by the fuzz target.
    init(path: String, contents: [UInt8]) throws {
        self.path = path
        source = .memory(contents)
        fileSize = UInt64(contents.count)
        try openContents()
    }

    private func openContents() throws {
        let header = try read(at: 0, count: min(RPLFormat.fileHeaderSize, Int(fileSize)))
        guard header.count >= 8, Array(header.prefix(8)) == RPLFormat.magic else {
            throw TraceError.notATrace(path: path, detail: header.count < 8 ? "only \(fileSize) bytes" : "wrong magic number")
        }
        guard header.count == RPLFormat.fileHeaderSize else {
            throw TraceError.empty(path: path, detail: "the file ends inside its header (\(fileSize) bytes): nothing was recorded")
        }
        let major = header.withUnsafeBytes { readLE($0, 8, as: UInt16.self) }
        let minor = header.withUnsafeBytes { readLE($0, 10, as: UInt16.self) }
        version = (major, minor)
        guard major <= RPLFormat.majorVersion, major > 0 else {
            throw TraceError.unsupportedVersion(path: path, major: major, minor: minor)
        }
        if !(try openThroughFooter()) {
            isRecovered = true
            try scan()
        }
    }

    deinit {
        if case let .file(fd) = source { close(fd) }
    }

    // MARK: Reading blocks

    /// Up to `count` bytes at `offset` (fewer at the end of the file).
    private func read(at offset: UInt64, count: Int) throws -> [UInt8] {
        guard offset < fileSize, count > 0 else { return [] }
        let wanted = Int(min(UInt64(count), fileSize - offset))
        switch source {
        case let .memory(bytes):
            return Array(bytes[Int(offset)..<Int(offset) + wanted])
        case let .file(fd):
            var failure: Int32 = 0
            let result = [UInt8](unsafeUninitializedCapacity: wanted) { buffer, initialized in
                var done = 0
                while done < wanted {
                    let n = pread(fd, buffer.baseAddress! + done, wanted - done, off_t(offset) + off_t(done))
                    if n > 0 {
                        done += n
                    } else if n == 0 {
                        break  // the file shrank since it was opened
                    } else if errno != EINTR {
                        failure = errno
                        break
                    }
                }
                initialized = done
            }
            if failure != 0 {
                throw TraceError.io(path: path, reason: "read failed at byte \(offset): \(String(cString: strerror(failure)))")
            }
            return result
        }
    }

    private struct BlockHeader {
        var type: UInt8
        var length: Int
        var payloadCRC: UInt32
    }

    /// Parses and checks a block header; nil when its checksum is wrong or it is implausible.
    private func parseHeader(_ bytes: [UInt8]) -> BlockHeader? {
        guard bytes.count >= RPLFormat.blockHeaderSize else { return nil }
        return bytes.withUnsafeBytes { raw -> BlockHeader? in
            let headerCRC = readLE(raw, 12, as: UInt32.self)
            guard CRC32C.checksum(UnsafeRawBufferPointer(rebasing: raw[0..<12])) == headerCRC else { return nil }
            let length = Int(readLE(raw, 4, as: UInt32.self))
            guard length <= RPLFormat.maximumBlockPayload else { return nil }
            return BlockHeader(type: raw[0], length: length, payloadCRC: readLE(raw, 8, as: UInt32.self))
        }
    }

    /// Reads the block at `offset`, checking both checksums.
    private func readBlock(at offset: UInt64, expecting type: BlockType? = nil) throws -> (type: UInt8, payload: [UInt8]) {
        guard offset <= fileSize, fileSize - offset >= UInt64(RPLFormat.blockHeaderSize) else {
            throw TraceError.corruptBlock(path: path, offset: offset, reason: "block header lies past the end of the file")
        }
        let headerBytes = try read(at: offset, count: RPLFormat.blockHeaderSize)
        guard let header = parseHeader(headerBytes) else {
            throw TraceError.corruptBlock(path: path, offset: offset, reason: "block header checksum mismatch")
        }
        if let type, header.type != type.rawValue {
            throw TraceError.corruptBlock(path: path, offset: offset, reason: "expected a block of type \(type.rawValue), found \(header.type)")
        }
        let start = offset + UInt64(RPLFormat.blockHeaderSize)
        guard fileSize - start >= UInt64(header.length) else {
            throw TraceError.corruptBlock(path: path, offset: offset, reason: "block of \(header.length) bytes runs past the end of the file")
        }
        let payload = try read(at: start, count: header.length)
        guard payload.count == header.length, CRC32C.checksum(payload) == header.payloadCRC else {
            throw TraceError.corruptBlock(path: path, offset: offset, reason: "payload checksum mismatch")
        }
        return (header.type, payload)
    }

    private func decodeJSON<T: Decodable>(_ type: T.Type, _ payload: [UInt8], at offset: UInt64) throws -> T {
        do {
            return try JSONDecoder().decode(T.self, from: Data(payload))
        } catch {
            throw TraceError.corruptBlock(path: path, offset: offset, reason: "bad JSON: \(error)")
        }
    }

    /// The task table of a task table block: JSON in version 1, binary rows since version 2.
    private func decodeTaskTable(_ payload: [UInt8], at offset: UInt64) throws -> [TaskInfo] {
        if version.major == 1 { return try decodeJSON([TaskInfo].self, payload, at: offset) }
        do { return try TaskBinary.decodeTasks(payload) } catch let failure as TaskBlockFailure {
            throw TraceError.corruptBlock(path: path, offset: offset, reason: "bad task table: \(failure.reason)")
        }
    }

    /// The definitions of a task definitions block: JSON in version 1, binary rows since version 2.
    private func decodeTaskDefinitions(_ payload: [UInt8], at offset: UInt64) throws -> [TaskDefinition] {
        if version.major == 1 { return try decodeJSON([TaskDefinition].self, payload, at: offset) }
        do { return try TaskBinary.decodeDefinitions(payload) } catch let failure as TaskBlockFailure {
            throw TraceError.corruptBlock(path: path, offset: offset, reason: "bad task definitions: \(failure.reason)")
        }
    }

    // MARK: Opening

    /// Opens a complete file through its trailer and index. Returns false when the file has
    /// no usable footer, so that the caller scans it instead.
    private func openThroughFooter() throws -> Bool {
        let minimum = UInt64(RPLFormat.fileHeaderSize + RPLFormat.trailerSize)
        guard fileSize >= minimum else { return false }
        let trailer = try read(at: fileSize - UInt64(RPLFormat.trailerSize), count: RPLFormat.trailerSize)
        guard trailer.count == RPLFormat.trailerSize, Array(trailer[8..<16]) == RPLFormat.endMagic else { return false }
        let indexOffset = trailer.withUnsafeBytes { readLE($0, 0, as: UInt64.self) }
        do {
            let (_, payload) = try readBlock(at: indexOffset, expecting: .index)
            guard payload.count >= 20 else { return false }
            let (metadataOffset, tableOffset, count) = payload.withUnsafeBytes {
                (readLE($0, 0, as: UInt64.self), readLE($0, 8, as: UInt64.self), Int(readLE($0, 16, as: UInt32.self)))
            }
            guard payload.count == 20 + count * 32 else { return false }
            var entries: [ChunkInfo] = []
            entries.reserveCapacity(count)
            payload.withUnsafeBytes { raw in
                for i in 0..<count {
                    let o = 20 + i * 32
                    entries.append(ChunkInfo(
                        offset: readLE(raw, o, as: UInt64.self),
                        firstTimestamp: readLE(raw, o + 8, as: UInt64.self),
                        lastTimestamp: readLE(raw, o + 16, as: UInt64.self),
                        eventCount: readLE(raw, o + 24, as: UInt32.self),
                        taskCount: readLE(raw, o + 28, as: UInt32.self)))
                }
            }
            let (_, metadataPayload) = try readBlock(at: metadataOffset, expecting: .finalMetadata)
            let (_, tablePayload) = try readBlock(at: tableOffset, expecting: .taskTable)
            let table = try decodeTaskTable(tablePayload, at: tableOffset)
            guard !table.isEmpty, entries.allSatisfy({ Int($0.taskCount) <= table.count && $0.offset < fileSize }) else { return false }
            metadata = try decodeJSON(TraceMetadata.self, metadataPayload, at: metadataOffset)
            tasks = table
            chunks = entries
            footerIndexOffset = indexOffset
            return true
        } catch {
            // A damaged footer: fall back to scanning, which reports what it finds.
            return false
        }
    }

    /// Walks the blocks from the start, keeping every intact one and recording the rest.
    private func scan() throws {
        var offset = UInt64(RPLFormat.fileHeaderSize)
        var sawMetadata = false
        var sawTrailer = false
        var truncated = false
        while offset < fileSize {
            let remaining = fileSize - offset
            if remaining < UInt64(RPLFormat.blockHeaderSize) {
                damage.append(TraceDamage(offset: offset, length: remaining, reason: "file truncated inside a block header"))
                truncated = true
                break
            }
            let headerBytes = try read(at: offset, count: RPLFormat.blockHeaderSize)
            guard let header = parseHeader(headerBytes) else {
                // The trailer of a complete file whose index could not be used ends here too.
                if remaining == UInt64(RPLFormat.trailerSize), Array(headerBytes[8..<16]) == RPLFormat.endMagic {
                    sawTrailer = true
                    break
                }
                let next = try resynchronize(after: offset)
                damage.append(TraceDamage(offset: offset, length: next - offset, reason: "unreadable block header"))
                offset = next
                continue
            }
            let blockEnd = offset + UInt64(RPLFormat.blockHeaderSize) + UInt64(header.length)
            if blockEnd > fileSize {
                damage.append(TraceDamage(offset: offset, length: remaining,
                                          reason: "file truncated inside a block of \(header.length) bytes (the writer was stopped before finishing it)"))
                truncated = true
                break
            }
            let payload = try read(at: offset + UInt64(RPLFormat.blockHeaderSize), count: header.length)
            guard CRC32C.checksum(payload) == header.payloadCRC else {
                damage.append(TraceDamage(offset: offset, length: blockEnd - offset,
                                          reason: header.type == BlockType.events.rawValue ? "events chunk fails its checksum" : "block of type \(header.type) fails its checksum"))
                offset = blockEnd
                continue
            }
            switch BlockType(rawValue: header.type) {
            case .metadata?, .finalMetadata?:
                if let m = try? decodeJSON(TraceMetadata.self, payload, at: offset) {
                    // Keep the final metadata when present; the first otherwise.
                    if header.type == BlockType.finalMetadata.rawValue || !sawMetadata { metadata = m }
                    sawMetadata = true
                } else {
                    damage.append(TraceDamage(offset: offset, length: blockEnd - offset, reason: "metadata is not valid JSON"))
                }
            case .taskDefinitions?:
                if let defs = try? decodeTaskDefinitions(payload, at: offset) {
                    for d in defs {
                        let i = Int(d.index)
                        // A gap is a lost definitions block; a huge one is a crafted or damaged
                        // file and would only allocate memory.
                        guard i > 0, i <= tasks.count + (1 << 16) else {
                            damage.append(TraceDamage(offset: offset, length: blockEnd - offset, reason: "task definition with implausible index \(i)"))
                            break
                        }
                        if i >= tasks.count {
                            tasks.append(contentsOf: repeatElement(TaskInfo(tid: -1, tgid: -1, comm: "<lost>"), count: i + 1 - tasks.count))
                        }
                        tasks[i] = d.task
                    }
                } else {
                    damage.append(TraceDamage(offset: offset, length: blockEnd - offset, reason: version.major == 1 ? "task definitions are not valid JSON" : "task definitions cannot be decoded"))
                }
            case .taskTable?:
                if let table = try? decodeTaskTable(payload, at: offset), table.count >= tasks.count { tasks = table }
            case .events?:
                if payload.count >= 20 {
                    payload.withUnsafeBytes { raw in
                        chunks.append(ChunkInfo(offset: offset, firstTimestamp: readLE(raw, 0, as: UInt64.self),
                                                lastTimestamp: readLE(raw, 8, as: UInt64.self),
                                                eventCount: readLE(raw, 16, as: UInt32.self), taskCount: UInt32(tasks.count)))
                    }
                } else {
                    damage.append(TraceDamage(offset: offset, length: blockEnd - offset, reason: "events chunk too short"))
                }
            case .index?, nil:
                break  // an unknown type ≥ 128 is optional; < 128 from a newer minor version is skipped too
            }
            offset = blockEnd
        }
        if !sawMetadata && chunks.isEmpty {
            let detail = damage.isEmpty ? "the file holds only its header: nothing was recorded"
                : "no readable block: \(damage.map(\.description).joined(separator: "; "))"
            throw TraceError.empty(path: path, detail: detail)
        }
        // Say why the footer was not used when no damage explains it already.
        if !truncated && !sawTrailer {
            damage.append(TraceDamage(offset: fileSize, length: 0,
                                      reason: "the file ends without its footer (the writer did not finish): events recorded after this point are missing"))
        } else if sawTrailer && damage.isEmpty {
            damage.append(TraceDamage(offset: fileSize - UInt64(RPLFormat.trailerSize), length: UInt64(RPLFormat.trailerSize),
                                      reason: "the trailer does not point at a valid index: the file was read by scanning its blocks"))
        }
        // Metadata from the start of a recording has no duration yet: take it from the events.
        if metadata.durationNanoseconds == 0, let first = chunks.first, let last = chunks.last {
            metadata.firstTimestamp = first.firstTimestamp
            metadata.lastTimestamp = last.lastTimestamp
            metadata.durationNanoseconds = last.lastTimestamp &- first.firstTimestamp
        }
    }

    /// Finds the next offset after `offset` where a valid block header starts (or the end).
    private func resynchronize(after offset: UInt64) throws -> UInt64 {
        var position = offset + 1
        let window = 1 << 16
        while position < fileSize {
            let bytes = try read(at: position, count: window + RPLFormat.blockHeaderSize)
            if bytes.count < RPLFormat.blockHeaderSize { break }
            for i in 0...(bytes.count - RPLFormat.blockHeaderSize) {
                let t = bytes[i]
                guard t >= 1 && t <= 6, bytes[i + 1] == 0, bytes[i + 2] == 0, bytes[i + 3] == 0 else { continue }
                if parseHeader(Array(bytes[i..<i + RPLFormat.blockHeaderSize])) != nil { return position + UInt64(i) }
            }
            position += UInt64(window)
        }
        return fileSize
    }

    // MARK: Events

    /// Calls `body` for every event in file (time) order, or only for those with
    /// `timeRange.contains(timestamp)`, found through the index.
    /// - Parameter skipDamaged: skip a chunk that fails its checks, and collect its error
    ///   in `skipped`, instead of throwing.
    /// - Throws: `TraceError.corruptChunk` for a damaged chunk unless `skipDamaged`.
    public func forEachEvent(
        in timeRange: ClosedRange<UInt64>? = nil, skipDamaged: Bool = false,
        skipped: ((TraceError) -> Void)? = nil, _ body: (Event) throws -> Void
    ) throws {
        var start = 0
        if let timeRange {
            // First chunk that can hold an event at or after the lower bound.
            var lo = 0, hi = chunks.count
            while lo < hi {
                let mid = (lo + hi) / 2
                if chunks[mid].lastTimestamp < timeRange.lowerBound { lo = mid + 1 } else { hi = mid }
            }
            start = lo
        }
        for number in start..<chunks.count {
            let chunk = chunks[number]
            if let timeRange, chunk.firstTimestamp > timeRange.upperBound { break }
            do {
                try decodeChunk(number) { event in
                    if let timeRange, !timeRange.contains(event.timestamp) { return }
                    try body(event)
                }
            } catch let error as TraceError where skipDamaged {
                skipped?(error)
            }
        }
    }

    /// Every event of the trace, in order.
    public func allEvents() throws -> [Event] {
        var events: [Event] = []
        events.reserveCapacity(Int(min(eventCount, 1 << 26)))
        try forEachEvent { events.append($0) }
        return events
    }

    /// Decodes chunk `number`, checking its block checksums and every field.
    public func decodeChunk(_ number: Int, _ body: (Event) throws -> Void) throws {
        let chunk = chunks[number]
        let payload: [UInt8]
        do {
            payload = try readBlock(at: chunk.offset, expecting: .events).payload
        } catch let TraceError.corruptBlock(_, offset, reason) {
            throw TraceError.corruptChunk(path: path, chunk: number, offset: offset, reason: reason)
        }
        guard payload.count >= 20 else {
            throw TraceError.corruptChunk(path: path, chunk: number, offset: chunk.offset, reason: "chunk shorter than its header")
        }
        let (first, count) = payload.withUnsafeBytes { (readLE($0, 0, as: UInt64.self), Int(readLE($0, 16, as: UInt32.self))) }
        do {
            try payload.withUnsafeBytes { raw in
                let events = UnsafeRawBufferPointer(rebasing: raw[20...])
                let taskCount = min(Int(chunk.taskCount), tasks.count)
                if version.major == 1 {
                    try EventDecoderV1.decode(events, firstTimestamp: first, count: count, taskCount: taskCount, body)
                } else {
                    try EventDecoder.decode(events, firstTimestamp: first, count: count, taskCount: taskCount, body)
                }
            }
        } catch let failure as DecodeFailure {
            throw TraceError.corruptChunk(path: path, chunk: number, offset: chunk.offset,
                                          reason: "event \(failure.eventNumber): \(failure.reason)")
        }
    }

    /// Checks every block's checksums and every chunk's events; returns the errors found
    /// (empty for a sound file).
    public func validate() -> [TraceError] {
        var errors: [TraceError] = []
        if let end = footerIndexOffset {
            // Blocks the footer does not point at (start metadata, task definitions) are
            // checked too, so that no damaged byte goes unnoticed.
            var offset = UInt64(RPLFormat.fileHeaderSize)
            let chunkOffsets = chunks.map(\.offset)
            while offset < end {
                guard let headerBytes = try? read(at: offset, count: RPLFormat.blockHeaderSize), let header = parseHeader(headerBytes) else {
                    // A damaged chunk header is reported below, by its chunk number.
                    if !chunkOffsets.contains(offset) {
                        errors.append(.corruptBlock(path: path, offset: offset, reason: "block header checksum mismatch"))
                    }
                    // Continue at the next chunk the index knows of.
                    guard let next = chunkOffsets.first(where: { $0 > offset }), next < end else { break }
                    offset = next
                    continue
                }
                let blockEnd = offset + UInt64(RPLFormat.blockHeaderSize) + UInt64(header.length)
                if header.type != BlockType.events.rawValue {
                    do {
                        let (_, payload) = try readBlock(at: offset)
                        if header.type == BlockType.metadata.rawValue { _ = try decodeJSON(TraceMetadata.self, payload, at: offset) }
                        if header.type == BlockType.taskDefinitions.rawValue { _ = try decodeTaskDefinitions(payload, at: offset) }
                    } catch let e as TraceError {
                        errors.append(e)
                    } catch {
                        errors.append(.corruptBlock(path: path, offset: offset, reason: "\(error)"))
                    }
                }
                offset = blockEnd
            }
        }
        for number in chunks.indices {
            do { try decodeChunk(number) { _ in } } catch let e as TraceError { errors.append(e) } catch {
                errors.append(.corruptChunk(path: path, chunk: number, offset: chunks[number].offset, reason: "\(error)"))
            }
        }
        return errors
    }
}
