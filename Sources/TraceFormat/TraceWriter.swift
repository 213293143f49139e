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
            let json = TaskJSON.isUsable ? TaskJSON.encode(definitions: pendingDefinitions) : Array(try jsonEncoder.encode(pendingDefinitions))
            try write(makeBlock(.taskDefinitions, payload: json))
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
        try write(makeBlock(.taskTable, payload: TaskJSON.isUsable ? TaskJSON.encode(tasks: tasks) : Array(try jsonEncoder.encode(tasks))))
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

/// Task rows as JSON, byte for byte what `jsonEncoder` (sorted keys) makes of them: a writer
/// encodes every task twice (definitions block, footer table), and `JSONEncoder` took ~10 µs
/// per task, on the recording's merging thread and at its end.
///
/// Checked once per process against `jsonEncoder` on a sample with every field set (and the
/// field count of `TaskInfo`); if `TaskInfo` changed, the writer keeps using `jsonEncoder`.
enum TaskJSON {
    static let isUsable: Bool = {
        guard Mirror(reflecting: TaskInfo.idle).children.count == 10 else { return false }
        let samples = [
            TaskInfo(tid: 12, tgid: -3, comm: "kworker/0:1 \"x\"\\\u{1}\u{8}\u{c}\t\n\r\u{7f}é✓😀", parent: TaskIndex(7),
                     policy: .fifo, nice: -20, realtimePriority: 99, affinity: [0, 3], isKernelThread: true, isRecorded: true),
            TaskInfo(tid: Int32.max, tgid: Int32.min, comm: "", affinity: []),
        ]
        let definitions = samples.enumerated().map { TaskDefinition(index: UInt32($0.offset), task: $0.element) }
        guard let a = try? jsonEncoder.encode(samples), let b = try? jsonEncoder.encode(definitions) else { return false }
        return Array(a) == encode(tasks: samples) && Array(b) == encode(definitions: definitions)
    }()

    static func encode(tasks: [TaskInfo]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(tasks.count * 128 + 2)
        out.append(UInt8(ascii: "["))
        for (i, t) in tasks.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            append(t, to: &out)
        }
        out.append(UInt8(ascii: "]"))
        return out
    }

    static func encode(definitions: [TaskDefinition]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(definitions.count * 144 + 2)
        out.append(UInt8(ascii: "["))
        for (i, d) in definitions.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            raw("{\"index\":", &out)
            integer(Int64(d.index), &out)
            raw(",\"task\":", &out)
            append(d.task, to: &out)
            out.append(UInt8(ascii: "}"))
        }
        out.append(UInt8(ascii: "]"))
        return out
    }

    /// One `TaskInfo` object: keys sorted, nil optionals left out (as the synthesized
    /// `Encodable` conformance and `.sortedKeys` do).
    static func append(_ t: TaskInfo, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "{"))
        if let affinity = t.affinity {
            raw("\"affinity\":[", &out)
            for (i, cpu) in affinity.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                integer(Int64(cpu), &out)
            }
            raw("],", &out)
        }
        raw("\"comm\":", &out)
        string(t.comm, &out)
        raw(t.isKernelThread ? ",\"isKernelThread\":true" : ",\"isKernelThread\":false", &out)
        raw(t.isRecorded ? ",\"isRecorded\":true" : ",\"isRecorded\":false", &out)
        if let nice = t.nice {
            raw(",\"nice\":", &out)
            integer(Int64(nice), &out)
        }
        if let parent = t.parent {
            raw(",\"parent\":", &out)
            integer(Int64(parent.rawValue), &out)
        }
        if let policy = t.policy {
            raw(",\"policy\":", &out)
            string(policy.rawValue, &out)
        }
        if let priority = t.realtimePriority {
            raw(",\"realtimePriority\":", &out)
            integer(Int64(priority), &out)
        }
        raw(",\"tgid\":", &out)
        integer(Int64(t.tgid), &out)
        raw(",\"tid\":", &out)
        integer(Int64(t.tid), &out)
        out.append(UInt8(ascii: "}"))
    }

    @inline(__always) private static func raw(_ text: StaticString, _ out: inout [UInt8]) {
        out.append(contentsOf: UnsafeBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }

    private static func integer(_ value: Int64, _ out: inout [UInt8]) {
        if value < 0 { out.append(UInt8(ascii: "-")) }
        var magnitude = value.magnitude
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes: room for 20 digits
        var n = 0
        withUnsafeMutableBytes(of: &digits) { d in
            repeat {
                d[n] = UInt8(ascii: "0") + UInt8(magnitude % 10)
                magnitude /= 10
                n += 1
            } while magnitude > 0
            while n > 0 {
                n -= 1
                out.append(d[n])
            }
        }
    }

    /// A JSON string as `JSONEncoder` writes it: `"` `\` `/` and control characters escaped
    /// (\b \t \n \f \r, else \u00XX), everything else as UTF-8.
    private static func string(_ text: String, _ out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        let hex: StaticString = "0123456789abcdef"
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): raw("\\\"", &out)
            case UInt8(ascii: "\\"): raw("\\\\", &out)
            case UInt8(ascii: "/"): raw("\\/", &out)
            case 0x08: raw("\\b", &out)
            case 0x09: raw("\\t", &out)
            case 0x0A: raw("\\n", &out)
            case 0x0C: raw("\\f", &out)
            case 0x0D: raw("\\r", &out)
            case 0..<0x20:
                raw("\\u00", &out)
                out.append(hex.utf8Start[Int(byte >> 4)])
                out.append(hex.utf8Start[Int(byte & 0xF)])
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}
