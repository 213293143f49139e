import Foundation
import TestSupport
import Testing
@testable import Corpus
import TraceFormat

@Suite struct AnonymizerTests {
    let anonymizer = Anonymizer(salt: Array("a test salt, not secret".utf8))

    @Test("anonymised traces keep every event, time and per-task figure; only names change",
          arguments: [Samples.periodic, Samples.messaging])
    func keepsStructure(sample: String) throws {
        let dir = try TemporaryDirectory()
        let output = dir.file("anon.rpl")
        try anonymizer.anonymize(input: sample, output: output)
        let original = try TraceReader(path: sample), anonymous = try TraceReader(path: output)
        #expect(anonymous.validate().isEmpty && !anonymous.isRecovered)

        // Events: identical apart from exec comms.
        let a = try original.allEvents(), b = try anonymous.allEvents()
        #expect(a.count == b.count)
        var execs = 0
        for (x, y) in zip(a, b) {
            if case let .exec(task, comm) = x.kind {
                execs += 1
                #expect(y.kind == .exec(task: task, comm: anonymizer.comm(comm)))
                #expect(x.timestamp == y.timestamp && x.cpu == y.cpu)
            } else {
                #expect(x == y)
            }
        }
        #expect(execs > 0)

        // The figures `info` prints, task by task in order.
        let s1 = try TraceSummary(reader: original), s2 = try TraceSummary(reader: anonymous)
        #expect(s1.eventCounts == s2.eventCounts && s1.totalEvents == s2.totalEvents)
        #expect(s1.tasks == s2.tasks)
        #expect(s1.inferredSwitchIns == s2.inferredSwitchIns)

        // Task table: same tasks, names replaced unless allowed.
        #expect(original.tasks.count == anonymous.tasks.count)
        var replaced = 0
        for (t, u) in zip(original.tasks, anonymous.tasks) {
            var expected = t
            expected.comm = anonymizer.comm(t.comm)
            #expect(u == expected)
            if Anonymizer.isAllowed(t.comm) { #expect(u.comm == t.comm) } else {
                replaced += 1
                #expect(u.comm.hasPrefix("t-") && u.comm.count <= 15)
            }
        }
        #expect(replaced > 0)

        // Metadata: timing and machine kept, host and command replaced.
        let m = original.metadata, n = anonymous.metadata
        #expect(n.durationNanoseconds == m.durationNanoseconds && n.startWallTimeNanoseconds == m.startWallTimeNanoseconds)
        #expect(n.firstTimestamp == m.firstTimestamp && n.lostEvents == m.lostEvents)
        #expect(n.kernelRelease == m.kernelRelease && n.cpuModel == m.cpuModel && n.cpuCount == m.cpuCount)
        #expect(n.hostname != m.hostname && n.hostname.hasPrefix("h-"))
        #expect(n.command.count == m.command.count && n.command.dropFirst().allSatisfy { $0.hasPrefix("a-") })

        // No replaced name survives anywhere in the file's bytes.
        let text = String(decoding: try Samples.bytes(output), as: UTF8.self)
        for t in original.tasks where !Anonymizer.isAllowed(t.comm) && t.comm.count >= 5 {
            #expect(!text.contains(t.comm), "\(t.comm) is still in the anonymised file")
        }
        for argument in m.command.dropFirst() { #expect(!text.contains(argument)) }
        if let line = m.extra["recorderCommandLine"] { #expect(!text.contains(line)) }
    }

    @Test("pseudonyms are stable for one salt and differ between salts")
    func stablePseudonyms() throws {
        let dir = try TemporaryDirectory()
        try anonymizer.anonymize(input: Samples.periodic, output: dir.file("a.rpl"))
        try anonymizer.anonymize(input: Samples.periodic, output: dir.file("b.rpl"))
        #expect(try Samples.bytes(dir.file("a.rpl")) == Samples.bytes(dir.file("b.rpl")))
        let other = Anonymizer(salt: Array("another salt".utf8))
        try other.anonymize(input: Samples.periodic, output: dir.file("c.rpl"))
        #expect(try Samples.bytes(dir.file("a.rpl")) != Samples.bytes(dir.file("c.rpl")))
        #expect(anonymizer.comm("FormatBenchmark") == anonymizer.comm("FormatBenchmark"))
        #expect(anonymizer.comm("FormatBenchmark") != other.comm("FormatBenchmark"))
        #expect(anonymizer.comm("alice-build") != anonymizer.comm("bob-build"))
        // An anonymised file says so in its metadata, so the index marks it wherever it is added.
        let store = try CorpusStore(directory: dir.file("corpus"))
        #expect(try store.add(file: dir.file("a.rpl"), contribution: Contribution(contributor: "t")).entry.anonymized)
        #expect(try !store.add(file: Samples.periodic, contribution: Contribution(contributor: "t")).entry.anonymized)
        for kept in ["bash", "python3", "perf", "kworker/1:2", "ksoftirqd/0", "cc1", "<idle>"] { #expect(anonymizer.comm(kept) == kept) }
    }

    @Test("`replayctl info --json` of the original and anonymised traces agrees apart from names")
    func infoAgrees() throws {
        guard replayctlExecutable() != nil else { Issue.record("replayctl not built"); return }
        let dir = try TemporaryDirectory()
        let r = try runReplayctl(["corpus", "add", Samples.messaging, "--anonymize", "--corpus", dir.file("c")])
        #expect(r.status == 0, "\(r)")
        let id = try CorpusStore(directory: dir.file("c")).list()[0].id
        _ = try runReplayctl(["corpus", "get", id, "-o", dir.file("anon.rpl"), "--corpus", dir.file("c")])
        func info(_ path: String) throws -> [String: Any] {
            let r = try runReplayctl(["info", "--json", path])
            var json = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
            json["file"] = nil
            json["fileBytes"] = nil
            json["bytesPerEvent"] = nil
            json["formatVersion"] = nil  // the copy is written in the current version
            var metadata = json["metadata"] as! [String: Any]
            for key in ["hostname", "command", "extra"] { metadata[key] = nil }
            json["metadata"] = metadata
            json["tasks"] = (json["tasks"] as! [[String: Any]]).map { task in
                var t = task
                t["comm"] = nil
                return t
            }
            return json
        }
        let a = try info(Samples.messaging), b = try info(dir.file("anon.rpl"))
        let canonical = { (x: [String: Any]) in try JSONSerialization.data(withJSONObject: x, options: [.sortedKeys]) }
        #expect(try canonical(a) == canonical(b))
        #expect(((a["tasks"] as? [Any])?.count ?? 0) > 50)
    }
}
