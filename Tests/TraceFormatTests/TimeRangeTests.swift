import Foundation
import Testing
@testable import TraceFormat

/// Random access by time through the footer index.
@Suite struct TimeRangeTests {
    /// A time-ordered stream of 3 000 events in chunks of 50, with runs of equal timestamps.
    static func orderedTrace(in dir: TemporaryDirectory) throws -> WrittenTrace {
        var rng = SplitMix64(seed: 5)
        var steps: [TraceStep] = (1...6).map { .addTask(TaskInfo(tid: Int32(100 + $0), tgid: 100, comm: "t\($0)")) }
        var t: UInt64 = 1_000_000
        for _ in 0..<3000 {
            t += Int.random(in: 0..<4, using: &rng) == 0 ? 0 : UInt64.random(in: 1...3000, using: &rng)
            let cpu = CPU(Int.random(in: 0...3, using: &rng))
            steps.append(.event(Event(timestamp: t, cpu: cpu, kind: .migrate(task: TaskIndex(Int.random(in: 1...6, using: &rng)), from: cpu, to: CPU(0)))))
        }
        return try writeTrace(steps, to: dir.path("ordered.rpl"), metadata: TraceMetadata(), chunkEventLimit: 50)
    }

    @Test("a time range yields exactly the events inside it, in order")
    func timeRangeYieldsExactlyTheEventsInside() throws {
        let dir = try TemporaryDirectory()
        let trace = try Self.orderedTrace(in: dir)
        let reader = try TraceReader(path: trace.path)
        let first = trace.events.first!.timestamp, last = trace.events.last!.timestamp
        var rng = SplitMix64(seed: 6)
        var ranges: [ClosedRange<UInt64>] = [0...UInt64.max, 0...first, last...UInt64.max, 0...(first - 1), (last + 1)...UInt64.max, first...last]
        // Bounds exactly on events (including on runs of equal timestamps and chunk edges) and between them.
        for _ in 0..<200 {
            let a = trace.events.randomElement(using: &rng)!.timestamp &+ UInt64.random(in: 0...1, using: &rng)
            let b = trace.events.randomElement(using: &rng)!.timestamp
            ranges.append(min(a, b)...max(a, b))
        }
        for chunk in trace.chunks { ranges.append(trace.events[chunk.events.lowerBound].timestamp...trace.events[chunk.events.upperBound - 1].timestamp) }
        for range in ranges {
            var got: [Event] = []
            try reader.forEachEvent(in: range) { got.append($0) }
            #expect(got == trace.events.filter { range.contains($0.timestamp) }, "range \(range)")
        }
    }

    @Test("a time range decodes only the chunks it overlaps")
    func timeRangeDecodesOnlyOverlappingChunks() throws {
        let dir = try TemporaryDirectory()
        let trace = try Self.orderedTrace(in: dir)
        // Damage chunks 10 and 40; ranges that stay away from them must still read without error.
        var bytes = trace.bytes
        for victim in [10, 40] { bytes[Int(trace.chunks[victim].offset) + RPLFormat.blockHeaderSize + 24] ^= 0xFF }
        let path = dir.path("damaged.rpl")
        try writeBytes(bytes, to: path)
        let reader = try TraceReader(path: path)
        func span(_ chunk: Int) -> ClosedRange<UInt64> {
            trace.events[trace.chunks[chunk].events.lowerBound].timestamp...trace.events[trace.chunks[chunk].events.upperBound - 1].timestamp
        }
        // Chunks 20–30, strictly inside (neighbouring chunks may share a boundary timestamp).
        let inside = (span(20).lowerBound + 1)...(span(30).upperBound - 1)
        var got: [Event] = []
        try reader.forEachEvent(in: inside) { got.append($0) }
        #expect(got == trace.events.filter { inside.contains($0.timestamp) })
        #expect(!got.isEmpty)
        // A range touching chunk 10 reports it.
        let touching = span(10).lowerBound...span(10).lowerBound
        #expect(throws: TraceError.self) { try reader.forEachEvent(in: touching) { _ in } }
        var skipped: [TraceError] = []
        try reader.forEachEvent(in: 0...UInt64.max, skipDamaged: true, skipped: { skipped.append($0) }) { _ in }
        #expect(skipped.count == 2)
    }
}
