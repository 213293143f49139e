import Foundation
import TestSupport
import Testing
@testable import Corpus
import TraceFormat

/// A real server on a free loopback port and the real client (URLSession). Only 127.0.0.1.
@Suite(.serialized) struct CorpusServerTests {
    static let token = "test-token-0123456789abcdef"
    static let tokens = CorpusTokens(names: [token: "tester"])

    @Test("push → list → pull gives identical bytes; a second push stores nothing")
    func roundTrip() async throws {
        let dir = try TemporaryDirectory()
        let store = try CorpusStore(directory: dir.file("corpus"))
        let server = try await RunningServer.start(CorpusServer(store: store, tokens: Self.tokens))
        defer { Task { await server.stop() } }
        let client = try CorpusClient(server: server.url + "/")
        let pushed = try await client.push(file: Samples.messaging, token: Self.token, description: "two groups & more", tags: ["sockets", "hackbench"])
        #expect(pushed.isNew)
        #expect(pushed.entry.id == (try SHA256.hexDigest(ofFile: Samples.messaging)))
        #expect(pushed.entry.contributor == "tester" && pushed.entry.description == "two groups & more")
        #expect(pushed.entry.tags == ["hackbench", "sockets"])
        let again = try await client.push(file: Samples.messaging, token: Self.token)
        #expect(!again.isNew && again.entry == pushed.entry)
        _ = try await client.push(file: Samples.periodic, token: Self.token, tags: ["timer"])

        let listed = try await client.list()
        #expect(listed.count == 2 && listed.contains(pushed.entry))
        #expect(try await client.list(CorpusFilter(tags: ["sockets"])) == [pushed.entry])
        #expect(try await client.list(CorpusFilter(kernelPrefix: "0.0")).isEmpty)
        #expect(try await client.entry(id: String(pushed.entry.id.prefix(8))) == pushed.entry)

        let out = dir.file("pulled.rpl")
        let bytes = try await client.pull(id: String(pushed.entry.id.prefix(10)), to: out)
        #expect(bytes == pushed.entry.bytes)
        #expect(try Samples.bytes(out) == Samples.bytes(Samples.messaging))
        await #expect(throws: CorpusError.notFound(id: String(repeating: "0", count: 64))) {
            _ = try await client.pull(id: String(repeating: "0", count: 64), to: dir.file("none.rpl"))
        }
        #expect(!FileManager.default.fileExists(atPath: dir.file("none.rpl")))

        let page = try RawHTTP.exchange(port: server.port, "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        #expect(page.status == 200)
        #expect(page.body.contains(String(pushed.entry.id.prefix(12))) && page.body.contains("two groups &amp; more"))
        #expect(page.body.contains("28458"))
    }

    @Test("bad uploads are refused with clear errors and nothing is stored")
    func refusesBadUploads() async throws {
        let dir = try TemporaryDirectory()
        let store = try CorpusStore(directory: dir.file("corpus"))
        let server = try await RunningServer.start(CorpusServer(store: store, tokens: Self.tokens, maxUploadBytes: 400_000))
        defer { Task { await server.stop() } }
        let client = try CorpusClient(server: server.url)

        for bad in try Samples.damagedCopies(in: dir) {
            do {
                _ = try await client.push(file: bad.path, token: Self.token)
                Issue.record("\(bad.name) was accepted")
            } catch let CorpusError.refused(_, reasons) {
                #expect(reasons.joined().contains(bad.expected), "\(bad.name): \(reasons)")
                #expect(!reasons.joined().contains("/tmp/upload-"), "the server's temporary path leaked: \(reasons)")
            }
        }
        // Oversized: pipe-pingpong.rpl is 494 614 bytes (format 2.0), the limit 400 000.
        do {
            _ = try await client.push(file: Samples.pipe, token: Self.token)
            Issue.record("an oversized upload was accepted")
        } catch {
            guard case let .server(_, status, message)? = error as? CorpusError else { throw error }
            #expect(status == 413 && message.contains("400000"), "\(message)")
        }
        // Oversized without a Content-Length (chunked): cut off while streaming.
        let chunked = try RawHTTP.exchange(
            port: server.port,
            "POST /traces HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer \(Self.token)\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
            body: Self.chunked(try Samples.bytes(Samples.pipe)))
        #expect(chunked.status == 413, "\(chunked)")
        // Tokens.
        await #expect(throws: CorpusError.unauthorized("\(server.url)/traces: unknown token — check --token-file against the server's token file")) {
            _ = try await client.push(file: Samples.periodic, token: "wrong-token-0123456789")
        }
        let missing = try RawHTTP.exchange(port: server.port, "POST /traces HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 4\r\nConnection: close\r\n\r\n", body: [1, 2, 3, 4])
        #expect(missing.status == 401 && missing.body.contains("bearer token is required"), "\(missing)")
        // Ids that try to leave the corpus.
        for path in ["/traces/..%2F..%2Fetc%2Fpasswd", "/traces/../../etc/passwd", "/traces/..%2Findex.sqlite/file",
                     "/traces/%2e%2e/file", "/traces/abc"] {
            let r = try RawHTTP.exchange(port: server.port, "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            #expect(r.status == 400 || r.status == 404, "\(path): \(r)")
            #expect(!r.body.contains("root:") && !r.body.contains("SQLite"), "\(path)")
        }
        // A file name with ../ only names the upload in messages.
        let sneaky = try RawHTTP.exchange(
            port: server.port,
            "POST /traces?filename=..%2F..%2Fevil.rpl HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer \(Self.token)\r\nContent-Length: 5\r\nConnection: close\r\n\r\n",
            body: Array("hello".utf8))
        #expect(sneaky.status == 422 && sneaky.body.contains("wrong magic") == false && sneaky.body.contains("not a replayctl trace"), "\(sneaky)")
        #expect(!FileManager.default.fileExists(atPath: dir.file("evil.rpl")) && !FileManager.default.fileExists(atPath: dir.file("corpus/evil.rpl")))

        #expect(try store.list().isEmpty)
        #expect(blobCount(store.directory) == 0)
        #expect(store.temporaryFiles().isEmpty)
        // Uploads disabled without tokens.
        let closed = try await RunningServer.start(CorpusServer(store: store, tokens: nil))
        defer { Task { await closed.stop() } }
        await #expect(throws: CorpusError.self) { _ = try await CorpusClient(server: closed.url).push(file: Samples.periodic, token: Self.token) }
        #expect(try store.list().isEmpty)
    }

    static func chunked(_ bytes: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        var offset = 0
        while offset < bytes.count {
            let n = min(16384, bytes.count - offset)
            out += Array((String(n, radix: 16) + "\r\n").utf8) + bytes[offset..<offset + n] + Array("\r\n".utf8)
            offset += n
        }
        return out + Array("0\r\n\r\n".utf8)
    }

    @Test("50 concurrent pushes of 10 distinct traces store exactly 10, consistently")
    func concurrentPushes() async throws {
        let dir = try TemporaryDirectory()
        // Ten distinct sound traces: the periodic sample anonymised with ten salts.
        let files = try (0..<10).map { i -> String in
            let path = dir.file("trace\(i).rpl")
            try Anonymizer(salt: Array("salt \(i)".utf8)).anonymize(input: Samples.periodic, output: path)
            return path
        }
        let store = try CorpusStore(directory: dir.file("corpus"))
        let server = try await RunningServer.start(CorpusServer(store: store, tokens: Self.tokens))
        defer { Task { await server.stop() } }
        let client = try CorpusClient(server: server.url)
        let started = Date()
        let results = try await withThrowingTaskGroup(of: PushResult.self) { group in
            for n in 0..<50 { group.addTask { try await client.push(file: files[n % 10], token: Self.token, tags: ["run\(n % 10)"]) } }
            return try await group.reduce(into: [PushResult]()) { $0.append($1) }
        }
        let seconds = Date().timeIntervalSince(started)
        #expect(results.count == 50)
        #expect(results.filter(\.isNew).count == 10)
        #expect(Set(results.map(\.entry.id)).count == 10)
        let expected = try Set(files.map { try SHA256.hexDigest(ofFile: $0) })
        #expect(Set(try await client.list().map(\.id)) == expected)
        #expect(try store.verify().isEmpty)
        #expect(blobCount(store.directory) == 10)
        #expect(store.temporaryFiles().isEmpty)
        let page = try RawHTTP.exchange(port: server.port, "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        #expect(page.status == 200 && page.body.contains("10 traces"))
        print("corpus: 50 concurrent pushes (10 distinct, 41 KiB each) took \(String(format: "%.2f", seconds)) s")
    }

    @Test("killing the server mid-upload leaves no partial entry")
    func killMidUpload() throws {
        guard let executable = replayctlExecutable() else { Issue.record("replayctl not built"); return }
        let dir = try TemporaryDirectory()
        let corpus = dir.file("corpus")
        try Samples.write(Array("\(Self.token) tester\n".utf8), to: dir.file("tokens"))
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = ["corpus", "serve", "--listen", "127.0.0.1:0", "--corpus", corpus, "--token-file", dir.file("tokens")]
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        try process.run()
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        // First line: "listening on http://127.0.0.1:PORT/ — …".
        var line: [UInt8] = []
        while let byte = try out.fileHandleForReading.read(upToCount: 1)?.first, byte != 10 { line.append(byte) }
        let text = String(decoding: line, as: UTF8.self)
        guard let portText = text.split(separator: ":").dropFirst(2).first?.split(separator: "/").first, let port = Int(portText) else {
            Issue.record("no port in \"\(text)\"")
            return
        }
        let trace = try Samples.bytes(Samples.pipe)
        let connection = try RawHTTP(port: port)
        defer { connection.close() }
        connection.send(Array("POST /traces HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer \(Self.token)\r\nContent-Length: \(trace.count)\r\n\r\n".utf8))
        connection.send(Array(trace[..<(trace.count / 2)]))
        // Wait until the server has written part of the upload to its temporary file.
        let tmp = corpus + "/tmp"
        var partial: UInt64 = 0
        for _ in 0..<200 where partial == 0 {
            for name in (try? FileManager.default.contentsOfDirectory(atPath: tmp)) ?? [] {
                partial = max(partial, ((try? FileManager.default.attributesOfItem(atPath: tmp + "/" + name))?[.size] as? NSNumber)?.uint64Value ?? 0)
            }
            usleep(20_000)
        }
        #expect(partial > 0, "the upload never reached the server's temporary file")
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        #expect(process.terminationReason == .uncaughtSignal)
        // Nothing visible: no blob, no row; the leftover is swept when the corpus is opened.
        #expect(blobCount(corpus) == 0)
        let store = try CorpusStore(directory: corpus)
        #expect(try store.list().isEmpty)
        #expect(try store.verify().isEmpty)
        #expect(store.temporaryFiles().isEmpty)
    }
}
