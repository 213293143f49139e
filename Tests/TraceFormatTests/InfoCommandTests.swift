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

    @Test("info shows the CPU latency requests briefly, and a malformed list as a warning")
    func showsCPULatencyRequests() throws {
        let dir = try TemporaryDirectory()
        var m = GoldenTrace.finalMetadata
        let ping = TaskIndex(1)
        let t0 = m.firstTimestamp
        m.cpuLatencyRequests = [
            CPULatencyRequest(timestamp: t0 + 2_000_000, action: .add, request: 1, task: ping, tid: 4242, valueMicroseconds: -1),
            CPULatencyRequest(timestamp: t0 + 2_000_100, action: .update, request: 1, task: ping, tid: 4242, valueMicroseconds: 0),
            CPULatencyRequest(timestamp: t0 + 952_500_000, action: .remove, request: 1, task: ping, tid: 4242, valueMicroseconds: -1),
        ]
        let trace = try writeTrace(GoldenTrace.steps, to: dir.path("qos.rpl"), metadata: GoldenTrace.startMetadata, finalMetadata: m)
        let text = try Self.run(["info", trace.path])
        #expect(text.status == 0)
        #expect(text.stdout.contains("cpu QoS:    3 calls on 1 CPU latency requests by ping 4242; held 0 µs +2.0–+952.5 ms"), "\(text.stdout)")
        let result = try Self.run(["info", "--json", trace.path])
        let json = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        let qos = try #require(json["cpuLatencyQoS"] as? [String: Any])
        #expect(qos["calls"] as? Int == 3 && qos["requests"] as? Int == 1)
        let holds = try #require(qos["holds"] as? [[String: Any]])
        #expect(holds.count == 1)
        #expect(holds.first?["valueMicroseconds"] as? Int == 0)
        #expect(holds.first?["startOffsetNanoseconds"] as? Int == 2_000_100)
        #expect(holds.first?["endOffsetNanoseconds"] as? Int == 952_500_000)
        #expect(holds.first?["tids"] as? [Int] == [4242])
        #expect((json["warnings"] as? [String])?.isEmpty == true)
        // A malformed list: the trace still reads, without requests, and says why.
        let bad = dir.path("bad.rpl")
        try writeBytes(try patchingFinalMetadata(trace.bytes, replacing: "\"remove\"", with: "\"delete\""), to: bad)
        let badText = try Self.run(["info", bad])
        #expect(badText.status == 0)
        #expect(badText.stdout.contains("cpu QoS:    unreadable, ignored"))
        #expect(badText.stdout.contains("WARNING:    metadata field cpuLatencyRequests is malformed (cpuLatencyRequests[2].action:"), "\(badText.stdout)")
        let badJSON = try #require(try JSONSerialization.jsonObject(with: Data(try Self.run(["info", "--json", bad]).stdout.utf8)) as? [String: Any])
        #expect((badJSON["warnings"] as? [String])?.count == 1)
        #expect(badJSON["cpuLatencyQoS"] == nil)
        // The golden trace predates the field: not recorded, no object.
        let golden = try Self.run(["info", GoldenFileTests.smallPath])
        #expect(golden.stdout.contains("cpu QoS:    not recorded"))
        #expect(try Self.run(["info", "--json", GoldenFileTests.smallPath]).stdout.contains("cpuLatencyQoS") == false)
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
