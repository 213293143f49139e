import Foundation

/// Streams a trace to a `.rpl` file with bounded memory: events are buffered into chunks of
/// at most `chunkEventLimit` events, each written with its checksum as soon as it is full, so
/// a writer killed mid-way leaves every complete chunk readable.
///
/// Not thread-safe: one writer per thread.
public final class TraceWriter {
    public let path: String
    private let handle: FileHandle
    private var offset: UInt64 = 0
    private var tasks: [TaskInfo] = [TaskInfo.idle]
    private var pendingDefinitions: [TaskDefinition] = []
    /// The chunk being filled. One struct, so that appending an event is one access to the
    /// class's storage (separate properties cost a dynamic exclusivity check each).
    private var chunk: ChunkBuilder
    private var index: [ChunkInfo] = []
    private let chunkEventLimit: Int
    private let chunkByteLimit: Int
    private var finished = false
    /// Events appended so far.
    public var eventCount: UInt64 { flushedEvents + UInt64(chunk.count) }
    private var flushedEvents: UInt64 = 0
    /// Bytes written to the file so far.
    public var bytesWritten: UInt64 { offset }
    /// Tasks defined so far, including the idle task at index 0.
    public var taskCount: Int { tasks.count }

    /// Creates (or replaces) `path` and writes the header and `metadata`.
    /// - Throws: `TraceError.io` when the file cannot be created.
    public init(path: String, metadata: TraceMetadata, chunkEventLimit: Int = 16384, chunkByteLimit: Int = 128 << 10) throws {
        self.path = path
        self.chunkEventLimit = max(1, chunkEventLimit)
        self.chunkByteLimit = max(64, chunkByteLimit)
        chunk = ChunkBuilder(capacity: self.chunkByteLimit + 64)
        guard FileManager.default.createFile(atPath: path, contents: nil),
              let handle = FileHandle(forWritingAtPath: path)
        else {
            throw TraceError.io(path: path, reason: "cannot create the file: \(String(cString: strerror(errno))) — check the directory exists and is writable")
        }
        self.handle = handle
        var header = RPLFormat.magic
        appendLE(RPLFormat.majorVersion, to: &header)
        appendLE(RPLFormat.minorVersion, to: &header)
        appendLE(UInt32(0), to: &header)
        try write(header)
        try write(makeBlock(.metadata, payload: Array(try jsonEncoder.encode(metadata))))
    }

    deinit { try? handle.close() }

    /// Adds a task to the table and returns its index. The idle task is index 0 already.
    public func addTask(_ task: TaskInfo) -> TaskIndex {
        let index = TaskIndex(rawValue: UInt32(tasks.count))
        tasks.append(task)
        pendingDefinitions.append(TaskDefinition(index: index.rawValue, task: task))
        return index
    }

    /// The table entry of `index` as it will be written in the footer.
    public func task(_ index: TaskIndex) -> TaskInfo { tasks[index.intValue] }

    /// Changes what the footer's task table says of `index` (policy learnt late, comm after exec).
    public func updateTask(_ index: TaskIndex, _ change: (inout TaskInfo) -> Void) {
        change(&tasks[index.intValue])
    }

    /// Appends one event. Events should come in time order; an event naming a task not yet
    /// added is a programming error and traps.
    public func append(_ event: Event) throws {
        if chunk.append(event, eventLimit: chunkEventLimit, byteLimit: chunkByteLimit) {
            try flush()
        }
    }

    /// Writes the events buffered so far as a chunk (with the task definitions it needs first).
    public func flush() throws {
        if !pendingDefinitions.isEmpty {
            try write(makeBlock(.taskDefinitions, payload: Array(try jsonEncoder.encode(pendingDefinitions))))
            pendingDefinitions.removeAll(keepingCapacity: true)
        }
        guard chunk.count > 0 else { return }
        // Block header and chunk header in one write, the encoded events (not copied) in another.
        var chunkHeader: [UInt8] = []
        chunkHeader.reserveCapacity(20)
        appendLE(chunk.first, to: &chunkHeader)
        appendLE(chunk.last, to: &chunkHeader)
        appendLE(chunk.count, to: &chunkHeader)
        let payloadCRC = chunk.encoder.bytes.withUnsafeBytes { CRC32C.update(CRC32C.checksum(chunkHeader), $0) }
        var head = makeBlockHeader(.events, payloadLength: 20 + chunk.encoder.bytes.count, payloadCRC: payloadCRC)
        head.append(contentsOf: chunkHeader)
        let chunkOffset = offset
        try write(head)
        try write(chunk.encoder.bytes)
        index.append(ChunkInfo(offset: chunkOffset, firstTimestamp: chunk.first, lastTimestamp: chunk.last,
                               eventCount: chunk.count, taskCount: UInt32(tasks.count)))
        flushedEvents += UInt64(chunk.count)
        chunk.reset()
    }

    /// Writes the last chunk, the final metadata, the task table, the index and the trailer,
    /// then closes the file. `metadata` replaces what the header said.
    public func finish(metadata: TraceMetadata) throws {
        guard !finished else { return }
        try flush()
        let metadataOffset = offset
        try write(makeBlock(.finalMetadata, payload: Array(try jsonEncoder.encode(metadata))))
        let tableOffset = offset
        try write(makeBlock(.taskTable, payload: Array(try jsonEncoder.encode(tasks))))
        var payload: [UInt8] = []
        appendLE(metadataOffset, to: &payload)
        appendLE(tableOffset, to: &payload)
        appendLE(UInt32(index.count), to: &payload)
        for c in index {
            appendLE(c.offset, to: &payload)
            appendLE(c.firstTimestamp, to: &payload)
            appendLE(c.lastTimestamp, to: &payload)
            appendLE(c.eventCount, to: &payload)
            appendLE(c.taskCount, to: &payload)
        }
        let indexOffset = offset
        try write(makeBlock(.index, payload: payload))
        var trailer: [UInt8] = []
        appendLE(indexOffset, to: &trailer)
        trailer.append(contentsOf: RPLFormat.endMagic)
        try write(trailer)
        do {
            try handle.synchronize()
            try handle.close()
        } catch {
            throw TraceError.io(path: path, reason: "cannot close the file: \(error)")
        }
        finished = true
    }

    private func write(_ bytes: [UInt8]) throws {
        do {
            try handle.write(contentsOf: bytes)
        } catch {
            throw TraceError.io(path: path, reason: "write failed at byte \(offset): \(error) — check free space")
        }
        offset += UInt64(bytes.count)
    }
}

/// The events chunk being filled: encoder, first and last timestamps, event count. Its
/// buffers are kept from one chunk to the next.
struct ChunkBuilder {
    var encoder: EventEncoder
    var first: UInt64 = 0
    var last: UInt64 = 0
    var count: UInt32 = 0

    init(capacity: Int) { encoder = EventEncoder(firstTimestamp: 0, capacity: capacity) }

    /// Encodes `event`; returns true when the chunk is full.
    @inline(__always) mutating func append(_ event: Event, eventLimit: Int, byteLimit: Int) -> Bool {
        if count == 0 {
            encoder.state.previousTimestamp = event.timestamp
            first = event.timestamp
        }
        encoder.encode(event)
        last = event.timestamp
        count += 1
        return Int(count) >= eventLimit || encoder.bytes.count >= byteLimit
    }

    /// Empties the chunk, keeping its buffers.
    mutating func reset() {
        count = 0
        encoder.bytes.removeAll(keepingCapacity: true)
        encoder.state.previousCPU = 0
        for i in encoder.state.current.indices { encoder.state.current[i] = UInt32.max }
    }
}
