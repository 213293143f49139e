import Foundation
import TestSupport
import Testing
@testable import TraceFormat

/// `replayctl info` on good and damaged traces, run as a process: exit codes and messages.
/// `swift test` builds the executable next to the test bundle.
@Suite struct InfoCommandTests {
    static func run(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        try runReplayctl(arguments)
    }

    @Test("info on a damaged chunk exits 65 with the chunk's offset; --salvage reads the rest")
    func damagedChunkExits65() throws {
        let dir = try TemporaryDirectory()
        // The golden content (realistic CPUs and times) with 6 events a chunk.
        let trace = try GoldenFileTests.writeGolden(to: dir.path("golden.rpl"))
        var bytes = trace.bytes
        let victim = trace.chunks[1]
        bytes[Int(victim.offset) + RPLFormat.blockHeaderSize + 22] ^= 0x10
        let path = dir.path("damaged.rpl")
        try writeBytes(bytes, to: path)

        let failed = try Self.run(["info", path])
        #expect(failed.status == 65)
        #expect(failed.stderr.contains("events chunk 1 at byte \(victim.offset) is corrupt"), "\(failed.stderr)")
        #expect(failed.stderr.split(separator: "\n").count == 1)

        let salvaged = try Self.run(["info", "--salvage", "--json", path])
        #expect(salvaged.status == 0, "\(salvaged.stderr)")
        let json = try JSONSerialization.jsonObject(with: Data(salvaged.stdout.utf8)) as? [String: Any]
        let events = json?["events"] as? [String: Any]
        #expect(events?["total"] as? Int == trace.events.count - victim.events.count)
        #expect((json?["damage"] as? [String])?.count == 1)
    }

    @Test("info on a file that is not a trace exits 65; a missing file exits 66")
    func badFilesExitWithDataError() throws {
        let dir = try TemporaryDirectory()
        let path = dir.path("text.rpl")
        try writeBytes(Array("not a trace\n".utf8), to: path)
        let result = try Self.run(["info", path])
        #expect(result.status == 65)
        #expect(result.stderr.contains("not a replayctl trace"))
        #expect(try Self.run(["info", dir.path("missing.rpl")]).status == 66)
    }

    @Test("info --json on the golden trace has the documented keys")
    func jsonHasDocumentedKeys() throws {
        let result = try Self.run(["info", "--json", GoldenFileTests.smallPath])
        #expect(result.status == 0)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        let events = try #require(json["events"] as? [String: Any])
        for key in ["total", "switch", "waking", "wakeupNew", "fork", "exec", "exit", "migrate"] {
            #expect(events[key] is Int, "events.\(key)")
        }
        #expect(events["total"] as? Int == GoldenTrace.events.count)
        #expect(json["lostEvents"] as? Int == 3)
        #expect(json["durationNanoseconds"] as? Int == Int(GoldenTrace.finalMetadata.durationNanoseconds))
        let tasks = try #require(json["tasks"] as? [[String: Any]])
        #expect(tasks.count == 4)
        for task in tasks {
            for key in ["tid", "tgid", "comm", "cpuNanoseconds", "sleeps", "wakeups", "preemptions"] { #expect(task[key] != nil, "tasks[].\(key)") }
        }
    }
}
