import Foundation
import Testing
@testable import TraceFormat

/// Random event streams written and read back must come out identical: events, metadata and
/// task table, whatever the chunk limits.
@Suite struct RoundTripTests {
    static let seeds: [UInt64] = Array(1...12)

    @Test("random streams decode identically", arguments: seeds)
    func randomStreamsDecodeIdentically(seed: UInt64) throws {
        var rng = SplitMix64(seed: seed)
        let dir = try TemporaryDirectory()
        let steps = randomSteps(&rng, count: Int.random(in: 0...3000, using: &rng))
        let limits = [(1, 64), (2, 64), (3, 100), (7, 1 << 10), (100, 256), (16384, 128 << 10)]
        for (eventLimit, byteLimit) in limits {
            let start = randomMetadata(&rng)
            let final = randomMetadata(&rng)
            let path = dir.path("s\(seed)-\(eventLimit).rpl")
            let written = try writeTrace(steps, to: path, metadata: start, finalMetadata: final,
                                         chunkEventLimit: eventLimit, chunkByteLimit: byteLimit)
            let reader = try TraceReader(path: path)
            #expect(!reader.isRecovered, "seed \(seed) limit \(eventLimit)")
            #expect(reader.damage.isEmpty)
            #expect(reader.validate().isEmpty)
            #expect(reader.metadata == final)
            #expect(reader.tasks == written.tasks)
            #expect(reader.chunks.count == written.chunks.count)
            #expect(reader.eventCount == UInt64(written.events.count))
            let events = try reader.allEvents()
            #expect(events == written.events, "seed \(seed), chunk limit \(eventLimit)/\(byteLimit)")
            if eventLimit == 1 { #expect(reader.chunks.count == written.events.count) }
        }
    }

    @Test("every chunk decodes on its own")
    func everyChunkDecodesAlone() throws {
        var rng = SplitMix64(seed: 99)
        let dir = try TemporaryDirectory()
        let written = try writeTrace(randomSteps(&rng, count: 2000), to: dir.path("t.rpl"), metadata: TraceMetadata(), chunkEventLimit: 37)
        let reader = try TraceReader(path: written.path)
        #expect(reader.chunks.count == written.chunks.count)
        // Decode in reverse order: no state may leak from one chunk into the next.
        for number in reader.chunks.indices.reversed() {
            var events: [Event] = []
            try reader.decodeChunk(number) { events.append($0) }
            #expect(events == Array(written.events[written.chunks[number].events]))
            #expect(reader.chunks[number].offset == written.chunks[number].offset)
        }
    }

    @Test("an unfinished file still reads by scanning, and the task definitions stand in for the table")
    func unfinishedFileReadsByScanning() throws {
        var rng = SplitMix64(seed: 7)
        let dir = try TemporaryDirectory()
        let metadata = randomMetadata(&rng)
        let steps = randomSteps(&rng, count: 1500)
        let written = try writeTrace(steps, to: dir.path("u.rpl"), metadata: metadata, chunkEventLimit: 100, finish: false)
        let reader = try TraceReader(path: written.path)
        #expect(reader.isRecovered)
        #expect(try reader.allEvents() == written.events)
        // Without the footer only the tasks as first added are known (no later updates).
        #expect(reader.tasks.count == written.tasks.count)
        #expect(reader.metadata.kernelRelease == metadata.kernelRelease)
        #expect(reader.damage.count == 1, "the missing footer is reported: \(reader.damage)")
    }

    @Test("empty trace round-trips")
    func emptyTraceRoundTrips() throws {
        let dir = try TemporaryDirectory()
        var m = TraceMetadata()
        m.kernelRelease = "6.18.0"
        let written = try writeTrace([], to: dir.path("e.rpl"), metadata: m)
        let reader = try TraceReader(path: written.path)
        #expect(reader.chunks.isEmpty)
        #expect(reader.tasks == [TaskInfo.idle])
        #expect(reader.metadata == m)
        #expect(try reader.allEvents().isEmpty)
    }

    @Test("extreme field values round-trip")
    func extremeValuesRoundTrip() throws {
        let dir = try TemporaryDirectory()
        var steps: [TraceStep] = (0..<3).map { _ in .addTask(TaskInfo(tid: Int32.max, tgid: Int32.min, comm: "x")) }
        let t1 = TaskIndex(1), t3 = TaskIndex(3)
        let times: [UInt64] = [UInt64.max, 0, UInt64.max, 1 << 63, (1 << 63) - 1, 0, 0, UInt64.max - 1]
        for (i, t) in times.enumerated() {
            let cpu = CPU(rawValue: i % 2 == 0 ? UInt32.max : 0)
            steps.append(.event(Event(timestamp: t, cpu: cpu, kind: .runtime(task: t1, nanoseconds: UInt64.max))))
            steps.append(.event(Event(timestamp: t, cpu: cpu, kind: .migrate(task: t3, from: CPU(rawValue: UInt32.max), to: cpu))))
            steps.append(.event(Event(timestamp: t, cpu: cpu, kind: .waking(waker: nil, target: t3, targetCPU: CPU(rawValue: UInt32.max), context: .nmi))))
            steps.append(.event(Event(timestamp: t, cpu: cpu, kind: .switchTask(prev: t1, prevState: .other, next: t3))))
            steps.append(.event(Event(timestamp: t, cpu: cpu, kind: .waking(waker: t3, target: t1, targetCPU: cpu, context: .softIRQ))))
        }
        let written = try writeTrace(steps, to: dir.path("x.rpl"), metadata: TraceMetadata(), chunkEventLimit: 3)
        #expect(try TraceReader(path: written.path).allEvents() == written.events)
    }

    @Test("a long exec name is cut at 255 bytes on a character boundary")
    func longExecNameIsCutOnCharacterBoundary() throws {
        let dir = try TemporaryDirectory()
        let name = "ab" + String(repeating: "é", count: 200)  // 402 bytes; byte 255 falls inside an "é"
        let steps: [TraceStep] = [.addTask(TaskInfo(tid: 5, tgid: 5, comm: "a")),
                                  .event(Event(timestamp: 1, cpu: CPU(0), kind: .exec(task: TaskIndex(1), comm: name)))]
        let written = try writeTrace(steps, to: dir.path("n.rpl"), metadata: TraceMetadata())
        let events = try TraceReader(path: written.path).allEvents()
        guard case let .exec(_, comm)? = events.first?.kind else { Issue.record("no exec event"); return }
        #expect(comm.utf8.count == 254)
        #expect(name.hasPrefix(comm))
    }
}
