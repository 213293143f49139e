import Foundation
import Testing
@testable import TraceFormat

/// The recordings in `traces/`: `convert` (TraceWriter.rewrite) keeps every event, task and
/// the metadata, and the committed files are in the current format.
@Suite struct SampleTraceTests {
    static let tracesDirectory = GoldenFileTests.goldenDirectory.deletingLastPathComponent()
    static let names = ["pipe-pingpong", "messaging", "periodic"]

    @Test("rewriting a sample trace keeps every event, task and the metadata", arguments: names)
    func rewriteKeepsEverything(name: String) throws {
        let original = try TraceReader(path: Self.tracesDirectory.appendingPathComponent("\(name).rpl").path)
        #expect(original.damage.isEmpty)
        let dir = try TemporaryDirectory()
        let count = try TraceWriter.rewrite(original, to: dir.path("\(name).rpl"))
        let copy = try TraceReader(path: dir.path("\(name).rpl"))
        #expect(copy.version.major == RPLFormat.majorVersion)
        #expect(copy.validate().isEmpty)
        #expect(count == original.eventCount)
        #expect(copy.tasks == original.tasks)
        #expect(copy.metadata == original.metadata)
        #expect(try copy.allEvents() == original.allEvents())
    }
}
