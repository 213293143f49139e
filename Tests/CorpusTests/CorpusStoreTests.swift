import Foundation
import TestSupport
import Testing
@testable import Corpus
import TraceFormat

@Suite struct CorpusStoreTests {
    let contribution = Contribution(description: "messaging, two groups", tags: ["hackbench", "sockets"], contributor: "tester")

    @Test("adding a trace indexes what the trace says, under the SHA-256 of its bytes")
    func indexesMetadata() throws {
        let dir = try TemporaryDirectory()
        let store = try CorpusStore(directory: dir.file("corpus"))
        let result = try store.add(file: Samples.messaging, contribution: contribution)
        #expect(result.isNew)
        let reader = try TraceReader(path: Samples.messaging)
        let e = result.entry
        #expect(e.id == (try SHA256.hexDigest(ofFile: Samples.messaging)))
        #expect(e.bytes == reader.fileSize)
        #expect(e.kernelRelease == reader.metadata.kernelRelease && !e.kernelRelease.isEmpty)
        #expect(e.cpuModel == reader.metadata.cpuModel && e.cpuCount == reader.metadata.cpuCount)
        #expect(e.durationNanoseconds == reader.metadata.durationNanoseconds)
        #expect(e.taskCount == reader.tasks.count - 1)
        #expect(e.eventCount == 28458)
        #expect(e.lostEvents == reader.metadata.totalLostEvents)
        #expect(e.tags == ["hackbench", "sockets"] && e.contributor == "tester" && e.description == contribution.description)
        #expect(try store.entry(id: e.id) == e)
        #expect(try store.entry(id: String(e.id.prefix(8)).uppercased()) == e)
        #expect(try store.list() == [e])
        #expect(try Samples.bytes(store.blobPath(id: e.id)) == Samples.bytes(Samples.messaging))
    }

    @Test("the same trace added twice is stored once")
    func storesOnce() throws {
        let dir = try TemporaryDirectory()
        let store = try CorpusStore(directory: dir.file("corpus"))
        let first = try store.add(file: Samples.messaging, contribution: contribution)
        let copy = dir.file("renamed-copy.rpl")
        try FileManager.default.copyItem(atPath: Samples.messaging, toPath: copy)
        let second = try store.add(file: copy, contribution: Contribution(tags: ["other"], contributor: "someone else"))
        #expect(!second.isNew)
        #expect(second.entry == first.entry)
        #expect(try store.list().count == 1)
        #expect(blobCount(store.directory) == 1)
        #expect(store.temporaryFiles().isEmpty)
    }

    @Test("damaged, truncated and foreign files are refused with the reason, and nothing is stored")
    func refusesBadFiles() throws {
        let dir = try TemporaryDirectory()
        let store = try CorpusStore(directory: dir.file("corpus"))
        for bad in try Samples.damagedCopies(in: dir) {
            do {
                _ = try store.add(file: bad.path, contribution: contribution)
                Issue.record("\(bad.name) was accepted")
            } catch let CorpusError.refused(source, reasons) {
                #expect(source == bad.path)
                #expect(reasons.joined().contains(bad.expected), "\(bad.name): \(reasons)")
                // Messages name the user's file, never the corpus's temporary copy.
                #expect(!reasons.joined().contains("/tmp/add-"), "\(reasons)")
            }
        }
        #expect(try store.list().isEmpty)
        #expect(blobCount(store.directory) == 0)
        #expect(store.temporaryFiles().isEmpty)
        #expect(throws: CorpusError.io(path: dir.file("missing.rpl"), reason: "no such file")) {
            try store.add(file: dir.file("missing.rpl"), contribution: contribution)
        }
    }

    @Test("list filters by every tag given and by kernel release prefix")
    func filters() throws {
        let dir = try TemporaryDirectory()
        let store = try CorpusStore(directory: dir.file("corpus"))
        let a = try store.add(file: Samples.messaging, contribution: Contribution(tags: ["sockets", "many-tasks"], contributor: "t")).entry
        let b = try store.add(file: Samples.periodic, contribution: Contribution(tags: ["timer"], contributor: "t")).entry
        #expect(try store.list().map(\.id) == [b.id, a.id])  // newest first
        #expect(try store.list(CorpusFilter(tags: ["sockets"])).map(\.id) == [a.id])
        #expect(try store.list(CorpusFilter(tags: ["sockets", "timer"])).isEmpty)
        #expect(try store.list(CorpusFilter(kernelPrefix: String(a.kernelRelease.prefix(4)))).count == 2)
        #expect(try store.list(CorpusFilter(kernelPrefix: "2.6")).isEmpty)
        #expect(throws: CorpusError.self) { try store.add(file: Samples.pipe, contribution: Contribution(tags: ["bad tag!"], contributor: "t")) }
    }

    @Test("get copies identical bytes out; rm removes the entry and its blob")
    func getAndRemove() throws {
        let dir = try TemporaryDirectory()
        let store = try CorpusStore(directory: dir.file("corpus"))
        let e = try store.add(file: Samples.periodic, contribution: contribution).entry
        let out = dir.file("out.rpl")
        _ = try store.export(id: String(e.id.prefix(10)), to: out)
        #expect(try Samples.bytes(out) == Samples.bytes(Samples.periodic))
        #expect(try store.remove(id: e.id) == e)
        #expect(try store.list().isEmpty)
        #expect(!FileManager.default.fileExists(atPath: store.blobPath(id: e.id)))
        #expect(throws: CorpusError.notFound(id: e.id)) { try store.entry(id: e.id) }
        #expect(try store.verify().isEmpty)
    }

    @Test("ids are hex only: paths and short prefixes are refused before touching the disk")
    func refusesBadIDs() throws {
        let dir = try TemporaryDirectory()
        let store = try CorpusStore(directory: dir.file("corpus"))
        for id in ["../../etc/passwd", "..", "abc", "zzzzzzzz", String(repeating: "a", count: 65), "4323f1/../"] {
            #expect(throws: CorpusError.invalidID(id)) { try store.entry(id: id) }
        }
    }

    @Test("verify notices a missing blob, a changed blob and a stray one")
    func verifyFindsProblems() throws {
        let dir = try TemporaryDirectory()
        let store = try CorpusStore(directory: dir.file("corpus"))
        let a = try store.add(file: Samples.periodic, contribution: contribution).entry
        let b = try store.add(file: Samples.messaging, contribution: contribution).entry
        #expect(try store.verify().isEmpty)
        unlink(store.blobPath(id: a.id))
        chmod(store.blobPath(id: b.id), 0o644)
        try Samples.write(Samples.bytes(Samples.messaging).dropLast(1) + [0], to: store.blobPath(id: b.id))
        try FileManager.default.createDirectory(atPath: store.directory + "/blobs/ff", withIntermediateDirectories: true)
        try Samples.write([1, 2, 3], to: store.directory + "/blobs/ff/" + String(repeating: "f", count: 64) + ".rpl")
        let problems = try store.verify()
        #expect(problems.count == 3, "\(problems)")
    }

    @Test("the default location follows XDG_DATA_HOME, else ~/.local/share")
    func defaultLocation() {
        #expect(CorpusStore.defaultDirectory(environment: ["XDG_DATA_HOME": "/x/data", "HOME": "/home/u"]) == "/x/data/replayctl/corpus")
        #expect(CorpusStore.defaultDirectory(environment: ["HOME": "/home/u"]) == "/home/u/.local/share/replayctl/corpus")
        #expect(CorpusStore.defaultDirectory(environment: ["XDG_DATA_HOME": "relative", "HOME": "/home/u"]) == "/home/u/.local/share/replayctl/corpus")
    }

    @Test("a temporary file left by a dead process is swept when the corpus is opened")
    func sweepsLeftovers() throws {
        let dir = try TemporaryDirectory()
        let store = try CorpusStore(directory: dir.file("corpus"))
        // pid 0x7ffffff0 does not exist (pid_max is far lower); our own pid's files stay.
        try Samples.write([1, 2, 3], to: store.directory + "/tmp/upload-2147483632-x.rpl")
        try Samples.write([1, 2, 3], to: store.directory + "/tmp/upload-\(getpid())-y.rpl")
        _ = try CorpusStore(directory: store.directory)
        #expect(store.temporaryFiles() == ["upload-\(getpid())-y.rpl"])
    }

    @Test("corpus add/list/show/get/rm through replayctl: exit codes and messages")
    func commandLine() throws {
        guard replayctlExecutable() != nil else { Issue.record("replayctl not built"); return }
        let dir = try TemporaryDirectory()
        let corpus = dir.file("corpus")
        var r = try runReplayctl(["corpus", "add", Samples.periodic, "--corpus", corpus, "--tag", "timer", "--description", "cyclictest"])
        #expect(r.status == 0 && r.stdout.hasPrefix("added "), "\(r)")
        r = try runReplayctl(["corpus", "add", Samples.periodic, "--corpus", corpus])
        #expect(r.status == 0 && r.stdout.hasPrefix("already in the corpus"), "\(r)")
        let damaged = try Samples.damagedCopies(in: dir)[1]
        r = try runReplayctl(["corpus", "add", damaged.path, "--corpus", corpus])
        #expect(r.status == 65 && r.stderr.contains("refused") && r.stderr.contains("events chunk 0"), "\(r)")
        r = try runReplayctl(["corpus", "list", "--corpus", corpus, "--json"])
        let entries = try JSONDecoder().decode([CorpusEntry].self, from: Data(r.stdout.utf8))
        #expect(entries.count == 1 && entries[0].tags == ["timer"])
        r = try runReplayctl(["corpus", "show", "../etc", "--corpus", corpus])
        #expect(r.status == 64, "\(r)")
        r = try runReplayctl(["corpus", "show", String(repeating: "0", count: 64), "--corpus", corpus])
        #expect(r.status == 66, "\(r)")
        r = try runReplayctl(["corpus", "get", String(entries[0].id.prefix(7)), "-o", dir.file("x.rpl"), "--corpus", corpus])
        #expect(r.status == 0, "\(r)")
        let copied = try Samples.bytes(dir.file("x.rpl"))
        #expect(copied == (try Samples.bytes(Samples.periodic)))
        r = try runReplayctl(["corpus", "rm", entries[0].id, "--corpus", corpus])
        #expect(r.status == 0)
        r = try runReplayctl(["corpus", "verify", "--corpus", corpus])
        #expect(r.status == 0 && r.stdout.contains("0 traces"), "\(r)")
    }
}
