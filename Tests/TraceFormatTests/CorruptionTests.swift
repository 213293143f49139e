import Foundation
import Testing
@testable import TraceFormat

/// Damaged files: truncation anywhere, flipped bytes in every region, bad headers. The reader
/// must never crash, never trust a damaged chunk, and say what it lost and where.
@Suite struct CorruptionTests {
    /// A trace with several chunks and task definitions between them.
    static func sampleTrace(in dir: TemporaryDirectory, events: Int = 400, chunkEventLimit: Int = 50) throws -> WrittenTrace {
        var rng = SplitMix64(seed: 2024)
        var m = TraceMetadata()
        m.kernelRelease = "6.18.0"
        m.cpuCount = 8
        return try writeTrace(randomSteps(&rng, count: events, initialTasks: 4), to: dir.path("sample.rpl"),
                              metadata: m, chunkEventLimit: chunkEventLimit)
    }

    /// Events of the chunks that end at or before `length` bytes.
    static func completeChunkEvents(_ trace: WrittenTrace, before length: Int) -> [Event] {
        let blocks = blockOffsets(trace.bytes)
        var events: [Event] = []
        for chunk in trace.chunks {
            guard let block = blocks.first(where: { $0.offset == Int(chunk.offset) }) else { continue }
            if block.offset + RPLFormat.blockHeaderSize + block.length <= length { events += trace.events[chunk.events] }
        }
        return events
    }

    @Test("truncation at every block boundary keeps every complete chunk and reports the loss")
    func truncationAtEveryBlockBoundary() throws {
        let dir = try TemporaryDirectory()
        let trace = try Self.sampleTrace(in: dir)
        #expect(trace.chunks.count >= 8)
        let boundaries = blockOffsets(trace.bytes).map(\.offset).filter { $0 > RPLFormat.fileHeaderSize }
        for length in boundaries {
            let path = dir.path("cut-\(length).rpl")
            try writeBytes(trace.bytes.prefix(length), to: path)
            let reader = try TraceReader(path: path)
            #expect(reader.isRecovered)
            let expected = Self.completeChunkEvents(trace, before: length)
            let (events, errors) = readAll(reader)
            #expect(errors.isEmpty)
            #expect(events == expected, "cut at \(length)")
            #expect(reader.damage.count == 1)
            #expect(reader.damage.first?.offset == UInt64(length))
            #expect(reader.damage.first?.reason.contains("without its footer") == true)
        }
    }

    @Test("truncation inside a block keeps the chunks before it and says how many bytes were lost")
    func truncationInsideBlocks() throws {
        let dir = try TemporaryDirectory()
        let trace = try Self.sampleTrace(in: dir)
        let blocks = blockOffsets(trace.bytes)
        for block in blocks {
            // Inside the block header, just after it, in the middle and one byte short of the end.
            let end = block.offset + RPLFormat.blockHeaderSize + block.length
            for length in Set([block.offset + 1, block.offset + 15, block.offset + 16, block.offset + 16 + block.length / 2, end - 1]) {
                let path = dir.path("cut.rpl")
                try writeBytes(trace.bytes.prefix(length), to: path)
                let reader: TraceReader
                do {
                    reader = try TraceReader(path: path)
                } catch let error as TraceError {
                    // Only a file that never got past its first metadata block has nothing to show.
                    #expect(block.offset == RPLFormat.fileHeaderSize, "cut at \(length): \(error)")
                    guard case .empty = error else { Issue.record("wrong error \(error)"); continue }
                    continue
                }
                #expect(reader.isRecovered)
                let (events, errors) = readAll(reader)
                #expect(errors.isEmpty)
                #expect(events == Self.completeChunkEvents(trace, before: length), "cut at \(length)")
                #expect(reader.damage.count == 1, "cut at \(length): \(reader.damage)")
                #expect(reader.damage.last?.offset == UInt64(block.offset))
                #expect(reader.damage.last?.length == UInt64(length - block.offset))
                #expect(reader.damage.last?.reason.contains("truncated") == true)
            }
        }
    }

    @Test("truncation at every byte never crashes and never yields a wrong event")
    func truncationAtEveryByte() throws {
        let dir = try TemporaryDirectory()
        let trace = try Self.sampleTrace(in: dir, events: 120, chunkEventLimit: 20)
        let path = dir.path("cut.rpl")
        for length in 0..<trace.bytes.count {
            try writeBytes(trace.bytes.prefix(length), to: path)
            guard let reader = try? TraceReader(path: path) else { continue }
            let (events, errors) = readAll(reader)
            #expect(errors.isEmpty)
            #expect(events == Self.completeChunkEvents(trace, before: length), "cut at \(length)")
        }
    }

    /// Regions of the sample file, by the block type they fall in.
    static func region(of offset: Int, in bytes: [UInt8]) -> String {
        if offset < RPLFormat.fileHeaderSize { return "file header" }
        if offset >= bytes.count - RPLFormat.trailerSize { return "trailer" }
        for block in blockOffsets(bytes) where offset < block.offset + RPLFormat.blockHeaderSize + block.length {
            let part = offset < block.offset + RPLFormat.blockHeaderSize ? "header" : "payload"
            let name = switch BlockType(rawValue: block.type) {
            case .metadata?: "metadata"
            case .taskDefinitions?: "task definitions"
            case .events?: "events chunk"
            case .finalMetadata?: "final metadata"
            case .taskTable?: "task table"
            case .index?: "index"
            case nil: "unknown"
            }
            return "\(name) \(part)"
        }
        return "?"
    }

    @Test("a flipped byte anywhere is detected and no damaged chunk is trusted")
    func flippedByteAnywhereIsDetected() throws {
        let dir = try TemporaryDirectory()
        let trace = try Self.sampleTrace(in: dir, events: 60, chunkEventLimit: 20)
        let path = dir.path("flip.rpl")
        let eventsByOffset = Dictionary(uniqueKeysWithValues: trace.chunks.map { ($0.offset, Array(trace.events[$0.events])) })
        var regions = Set<String>()
        for offset in 0..<trace.bytes.count {
            for mask: UInt8 in [0xFF, 0x01, 0x80] {
                var bytes = trace.bytes
                bytes[offset] ^= mask
                try writeBytes(bytes, to: path)
                let region = Self.region(of: offset, in: trace.bytes)
                regions.insert(region)
                let reader: TraceReader
                do {
                    reader = try TraceReader(path: path)
                } catch let error as TraceError {
                    // Only the file header can make the whole file unreadable.
                    #expect(offset < RPLFormat.fileHeaderSize, "byte \(offset) (\(region)): \(error)")
                    #expect(!error.description.contains("\n"))
                    continue
                }
                // Every chunk either decodes to exactly what was written there, or is reported
                // with its own offset.
                var detected = reader.isRecovered || !reader.damage.isEmpty
                for number in reader.chunks.indices {
                    let chunk = reader.chunks[number]
                    var events: [Event] = []
                    do {
                        try reader.decodeChunk(number) { events.append($0) }
                        #expect(events == eventsByOffset[chunk.offset], "byte \(offset) (\(region)): chunk \(number) decoded wrong events")
                    } catch let TraceError.corruptChunk(_, chunkNumber, chunkOffset, _) {
                        detected = true
                        #expect(chunkNumber == number)
                        #expect(chunkOffset == chunk.offset)
                    }
                }
                if !reader.validate().isEmpty { detected = true }
                // The minor version and the reserved header bytes are not checked (by design:
                // a newer minor version must open); every other byte is covered by a checksum.
                if offset < 10 || offset >= 16 {
                    #expect(detected, "byte \(offset) (\(region)) ^ \(mask) went unnoticed")
                }
            }
        }
        for region in ["file header", "metadata payload", "task definitions header", "task definitions payload", "events chunk header",
                       "events chunk payload", "final metadata payload", "task table payload", "index header", "index payload", "trailer"] {
            #expect(regions.contains(region), "the sample has no \(region)")
        }
    }

    @Test("a damaged chunk in a complete file is reported with its offset and skipped on request")
    func damagedChunkIsReportedWithOffset() throws {
        let dir = try TemporaryDirectory()
        let trace = try Self.sampleTrace(in: dir)
        let victim = trace.chunks[3]
        var bytes = trace.bytes
        bytes[Int(victim.offset) + RPLFormat.blockHeaderSize + 25] ^= 0x40
        let path = dir.path("damaged.rpl")
        try writeBytes(bytes, to: path)
        let reader = try TraceReader(path: path)
        #expect(!reader.isRecovered)
        #expect(throws: TraceError.self) { try reader.allEvents() }
        do {
            try reader.forEachEvent { _ in }
            Issue.record("a damaged chunk was read without error")
        } catch let error as TraceError {
            #expect(error.description.contains("events chunk 3 at byte \(victim.offset) is corrupt"))
            #expect(error.description.contains("--salvage"))
        }
        let (events, errors) = readAll(reader)
        #expect(errors.count == 1)
        var expected = trace.events
        expected.removeSubrange(victim.events)
        #expect(events == expected)
        #expect(reader.validate().count == 1)
    }

    @Test("a damaged chunk in an unfinished file is listed as damage and the rest is read")
    func damagedChunkInUnfinishedFile() throws {
        let dir = try TemporaryDirectory()
        let trace = try Self.sampleTrace(in: dir)
        let victim = trace.chunks[2]
        let indexBlock = try #require(blockOffsets(trace.bytes).first { $0.type == BlockType.finalMetadata.rawValue })
        var bytes = Array(trace.bytes.prefix(indexBlock.offset))
        bytes[Int(victim.offset) + RPLFormat.blockHeaderSize + 30] ^= 0x01
        let path = dir.path("damaged.rpl")
        try writeBytes(bytes, to: path)
        let reader = try TraceReader(path: path)
        #expect(reader.isRecovered)
        #expect(reader.damage.contains { $0.offset == victim.offset && $0.reason.contains("checksum") })
        var expected = trace.events
        expected.removeSubrange(victim.events)
        #expect(readAll(reader).events == expected)
    }

    @Test("garbage inside the file is skipped by resynchronising on the next block")
    func resynchronisesAfterGarbage() throws {
        let dir = try TemporaryDirectory()
        let trace = try Self.sampleTrace(in: dir)
        let victim = trace.chunks[4]
        let finalBlock = try #require(blockOffsets(trace.bytes).first { $0.type == BlockType.finalMetadata.rawValue })
        var bytes = Array(trace.bytes.prefix(finalBlock.offset))
        // Overwrite the chunk's header and first payload bytes with garbage.
        for i in 0..<40 { bytes[Int(victim.offset) + i] = UInt8(truncatingIfNeeded: i &* 37 &+ 11) }
        let path = dir.path("garbage.rpl")
        try writeBytes(bytes, to: path)
        let reader = try TraceReader(path: path)
        #expect(reader.damage.first?.offset == victim.offset)
        #expect(reader.damage.first?.reason == "unreadable block header")
        var expected = trace.events
        expected.removeSubrange(victim.events)
        #expect(readAll(reader).events == expected)
    }

    @Test("an unknown optional block type is skipped")
    func unknownOptionalBlockIsSkipped() throws {
        let dir = try TemporaryDirectory()
        let trace = try Self.sampleTrace(in: dir)
        let finalBlock = try #require(blockOffsets(trace.bytes).first { $0.type == BlockType.finalMetadata.rawValue })
        let second = Int(trace.chunks[1].offset)
        // Splice a well-formed block of type 200 between chunks 0 and 1 of an unfinished file.
        var block = makeBlock(.index, payload: Array("future data".utf8))
        block[0] = 200
        let headerCRC = block.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[0..<12])) }
        withUnsafeBytes(of: headerCRC.littleEndian) { for i in 0..<4 { block[12 + i] = $0[i] } }
        let bytes = Array(trace.bytes[..<second]) + block + Array(trace.bytes[second..<finalBlock.offset])
        let path = dir.path("future.rpl")
        try writeBytes(bytes, to: path)
        let reader = try TraceReader(path: path)
        #expect(readAll(reader).events == trace.events)
        #expect(reader.damage.count == 1, "only the missing footer: \(reader.damage)")
    }

    @Test("a well-formed block defining an absurd task index is reported, not allocated")
    func absurdTaskDefinitionIsReported() throws {
        let dir = try TemporaryDirectory()
        let trace = try Self.sampleTrace(in: dir)
        let finalBlock = try #require(blockOffsets(trace.bytes).first { $0.type == BlockType.finalMetadata.rawValue })
        let definitions = [TaskDefinition(index: 16_000_000, task: TaskInfo(tid: 1, tgid: 1, comm: "x"))]
        let block = makeBlock(.taskDefinitions, payload: TaskBinary.encode(definitions: definitions))
        let bytes = Array(trace.bytes[..<finalBlock.offset]) + block
        let path = dir.path("absurd.rpl")
        try writeBytes(bytes, to: path)
        let reader = try TraceReader(path: path)
        #expect(reader.tasks.count == trace.tasks.count)
        #expect(reader.damage.contains { $0.offset == UInt64(finalBlock.offset) && $0.reason.contains("implausible index 16000000") })
        #expect(readAll(reader).events == trace.events)
    }

    // MARK: Bad headers

    static func openError(_ bytes: [UInt8]) throws -> TraceError? {
        let dir = try TemporaryDirectory()
        let path = dir.path("bad.rpl")
        try writeBytes(bytes, to: path)
        do {
            _ = try TraceReader(path: path)
            return nil
        } catch let error as TraceError {
            #expect(!error.description.contains("\n"), "one line: \(error)")
            #expect(error.description.hasPrefix(path), "names the file: \(error)")
            return error
        }
    }

    @Test("an empty file is not a trace")
    func emptyFileIsNotATrace() throws {
        let error = try Self.openError([])
        guard case let .notATrace(_, detail)? = error else { Issue.record("got \(String(describing: error))"); return }
        #expect(detail == "only 0 bytes")
    }

    @Test("a 5-byte file is not a trace")
    func fiveByteFileIsNotATrace() throws {
        let error = try Self.openError(Array(RPLFormat.magic.prefix(5)))
        guard case let .notATrace(_, detail)? = error else { Issue.record("got \(String(describing: error))"); return }
        #expect(detail == "only 5 bytes")
    }

    @Test("a wrong magic number is refused")
    func wrongMagicIsRefused() throws {
        let dir = try TemporaryDirectory()
        let trace = try Self.sampleTrace(in: dir)
        var bytes = trace.bytes
        bytes[1] = UInt8(ascii: "X")
        guard case let .notATrace(_, detail)? = try Self.openError(bytes) else { Issue.record("accepted"); return }
        #expect(detail == "wrong magic number")
        // A text file, and a file cut inside its header.
        guard case .notATrace? = try Self.openError(Array("hello, world\n".utf8)) else { Issue.record("accepted text"); return }
        guard case .empty? = try Self.openError(Array(trace.bytes.prefix(12))) else { Issue.record("accepted a cut header"); return }
        guard case .empty? = try Self.openError(Array(trace.bytes.prefix(16))) else { Issue.record("accepted a bare header"); return }
    }

    @Test("a future major version is refused and a future minor version is read")
    func futureVersions() throws {
        let dir = try TemporaryDirectory()
        let trace = try Self.sampleTrace(in: dir)
        var bytes = trace.bytes
        bytes[8] = UInt8(RPLFormat.majorVersion + 1)
        guard case let .unsupportedVersion(_, major, minor)? = try Self.openError(bytes) else { Issue.record("accepted"); return }
        #expect(major == RPLFormat.majorVersion + 1)
        #expect(minor == RPLFormat.minorVersion)
        bytes[8] = 0
        guard case .unsupportedVersion? = try Self.openError(bytes) else { Issue.record("accepted version 0"); return }
        bytes = trace.bytes
        bytes[10] = 9  // minor version 9
        let path = dir.path("minor.rpl")
        try writeBytes(bytes, to: path)
        let reader = try TraceReader(path: path)
        #expect(reader.version.minor == 9)
        #expect(try reader.allEvents() == trace.events)
    }

    @Test("a missing file is an I/O error naming it")
    func missingFile() {
        #expect(throws: TraceError.io(path: "/nonexistent/x.rpl", reason: "no such file")) {
            _ = try TraceReader(path: "/nonexistent/x.rpl")
        }
    }
}
