import Foundation

/// Streams a trace to a `.rpl` file with bounded memory: events are buffered into chunks of
/// at most `chunkEventLimit` events, each written with its checksum as soon as it is full, so
/// a writer killed mid-way leaves every complete chunk readable.
///
/// Not thread-safe: one writer per thread.
///
/// `append` runs for every event a recorder writes, so the stored properties it touches opt
/// out of the runtime exclusivity check (`@exclusivity(unchecked)`): they are private, used by
/// one thread, and no method hands one of them `inout` to code that reaches it again. The chunk
/// is encoded straight into one buffer allocated with the writer, laid out as the block it
/// becomes (block header, chunk header, events), so a flush copies nothing.
public final class TraceWriter {
    public let path: String
    private let handle: FileHandle
    private var offset: UInt64 = 0
    private var tasks: [TaskInfo] = [TaskInfo.idle]
    private var pendingDefinitions: [TaskDefinition] = []
    /// Block header + chunk header + up to `chunkByteLimit + EventEncoder.maximumEventBytes` of events.
    private let chunkBuffer: UnsafeMutableRawPointer
    private static let chunkHeaderSize = 20
    private static let eventsOffset = RPLFormat.blockHeaderSize + chunkHeaderSize
    @exclusivity(unchecked) private var encoder: EventEncoder
    /// True while `encoder` holds a started chunk.
    @exclusivity(unchecked) private var chunkOpen = false
    @exclusivity(unchecked) private var chunkFirst: UInt64 = 0
    @exclusivity(unchecked) private var chunkLast: UInt64 = 0
    @exclusivity(unchecked) private var chunkCount: UInt32 = 0
    private var index: [ChunkInfo] = []
    private let chunkEventLimit: Int
    private let chunkByteLimit: Int
    private var finished = false
    @exclusivity(unchecked) private var appended: UInt64 = 0
    /// Events appended so far.
    public var eventCount: UInt64 { appended }
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
        chunkBuffer = UnsafeMutableRawPointer.allocate(
            byteCount: Self.eventsOffset + self.chunkByteLimit + EventEncoder.maximumEventBytes, alignment: 16)
        encoder = EventEncoder(firstTimestamp: 0, base: (chunkBuffer + Self.eventsOffset).assumingMemoryBound(to: UInt8.self))
        guard FileManager.default.createFile(atPath: path, contents: nil),
              let handle = FileHandle(forWritingAtPath: path)
        else {
            chunkBuffer.deallocate()
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

    deinit {
        try? handle.close()
        chunkBuffer.deallocate()
    }

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
        if !chunkOpen {
            encoder.reset(firstTimestamp: event.timestamp)
            chunkOpen = true
            chunkFirst = event.timestamp
            chunkCount = 0
        }
        // Room for this event: the chunk was flushed as soon as it reached chunkByteLimit.
        encoder.encode(event)
        chunkLast = event.timestamp
        chunkCount += 1
        appended += 1
        if Int(chunkCount) >= chunkEventLimit || encoder.count >= chunkByteLimit {
            try flush()
        }
    }

    /// Writes the events buffered so far as a chunk (with the task definitions it needs first).
    public func flush() throws {
        if !pendingDefinitions.isEmpty {
            try write(makeBlock(.taskDefinitions, payload: TaskBinary.encode(definitions: pendingDefinitions)))
            pendingDefinitions.removeAll(keepingCapacity: true)
        }
        guard chunkOpen, chunkCount > 0 else { return }
        // The same bytes as makeBlock(.events, payload: first, last, count, events), built in place.
        let payloadCount = Self.chunkHeaderSize + encoder.count
        let block = chunkBuffer
        let payload = block + RPLFormat.blockHeaderSize
        payload.storeBytes(of: chunkFirst.littleEndian, toByteOffset: 0, as: UInt64.self)
        payload.storeBytes(of: chunkLast.littleEndian, toByteOffset: 8, as: UInt64.self)
        payload.storeBytes(of: chunkCount.littleEndian, toByteOffset: 16, as: UInt32.self)
        block.storeBytes(of: BlockType.events.rawValue, toByteOffset: 0, as: UInt8.self)
        for i in 1..<4 { block.storeBytes(of: 0, toByteOffset: i, as: UInt8.self) }
        block.storeBytes(of: UInt32(payloadCount).littleEndian, toByteOffset: 4, as: UInt32.self)
        let payloadCRC = CRC32C.checksum(UnsafeRawBufferPointer(start: payload, count: payloadCount))
        block.storeBytes(of: payloadCRC.littleEndian, toByteOffset: 8, as: UInt32.self)
        let headerCRC = CRC32C.checksum(UnsafeRawBufferPointer(start: block, count: 12))
        block.storeBytes(of: headerCRC.littleEndian, toByteOffset: 12, as: UInt32.self)
        let chunkOffset = offset
        try write(UnsafeRawBufferPointer(start: block, count: RPLFormat.blockHeaderSize + payloadCount))
        index.append(ChunkInfo(offset: chunkOffset, firstTimestamp: chunkFirst, lastTimestamp: chunkLast,
                               eventCount: chunkCount, taskCount: UInt32(tasks.count)))
        chunkOpen = false
        chunkCount = 0
    }

    /// Writes the last chunk, the final metadata, the task table, the index and the trailer,
    /// then closes the file. `metadata` replaces what the header said.
    public func finish(metadata: TraceMetadata) throws {
        guard !finished else { return }
        try flush()
        let metadataOffset = offset
        try write(makeBlock(.finalMetadata, payload: Array(try jsonEncoder.encode(metadata))))
        let tableOffset = offset
        try write(makeBlock(.taskTable, payload: TaskBinary.encode(tasks: tasks)))
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
        try bytes.withUnsafeBytes { try write($0) }
    }

    private func write(_ bytes: UnsafeRawBufferPointer) throws {
        do {
            try handle.write(contentsOf: bytes)
        } catch {
            throw TraceError.io(path: path, reason: "write failed at byte \(offset): \(error) — check free space")
        }
        offset += UInt64(bytes.count)
    }
}
