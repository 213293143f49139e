import Foundation
import Testing
@testable import Corpus
import TraceFormat

/// A fresh temporary directory, removed when released.
final class TemporaryDirectory: @unchecked Sendable {
    let path: String
    init() throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("corpus-tests-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    func file(_ name: String) -> String { path + "/" + name }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// The committed sample traces.
enum Samples {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    static let messaging = root + "/traces/messaging.rpl"
    static let periodic = root + "/traces/periodic.rpl"
    static let pipe = root + "/traces/pipe-pingpong.rpl"

    static func bytes(_ path: String) throws -> [UInt8] { Array(try Data(contentsOf: URL(fileURLWithPath: path))) }

    static func write(_ bytes: [UInt8], to path: String) throws {
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }

    /// Damaged copies of `messaging.rpl`: name → path.
    static func damagedCopies(in directory: TemporaryDirectory) throws -> [(name: String, path: String, expected: String)] {
        let original = try bytes(messaging)
        var truncated = original
        truncated.removeLast(original.count / 3)
        var corrupted = original
        let chunk = try TraceReader(path: messaging).chunks[0]
        corrupted[Int(chunk.offset) + 16 + 500] ^= 0x5A
        var magic = original
        magic[1] ^= 0xFF
        let cases: [(String, [UInt8], String)] = [
            ("truncated.rpl", truncated, "no valid footer"),
            ("corrupted-chunk.rpl", corrupted, "events chunk 0"),
            ("wrong-magic.rpl", magic, "wrong magic number"),
            ("text.rpl", Array("hello, this is not a trace at all\n".utf8), "not a replayctl trace"),
            ("empty.rpl", [], "not a replayctl trace"),
        ]
        return try cases.map { name, content, expected in
            let path = directory.file(name)
            try write(content, to: path)
            return (name, path, expected)
        }
    }
}

/// Counts the blobs of a corpus directory (files under blobs/).
func blobCount(_ directory: String) -> Int {
    let blobs = directory + "/blobs"
    return ((try? FileManager.default.contentsOfDirectory(atPath: blobs)) ?? []).reduce(0) { count, sub in
        count + ((try? FileManager.default.contentsOfDirectory(atPath: blobs + "/" + sub)) ?? []).count
    }
}

/// A `CorpusServer` running in this process on a free loopback port.
final class RunningServer: @unchecked Sendable {
    let port: Int
    let task: Task<Void, Error>
    var url: String { "http://127.0.0.1:\(port)" }

    private init(port: Int, task: Task<Void, Error>) {
        self.port = port
        self.task = task
    }

    static func start(_ server: CorpusServer) async throws -> RunningServer {
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        let task = Task {
            try await server.run(host: "127.0.0.1", port: 0, handleSignals: false) { continuation.yield($0) }
        }
        for await port in ports { return RunningServer(port: port, task: task) }
        throw CorpusError.unreachable(url: "127.0.0.1", reason: "the server did not start")
    }

    func stop() async {
        task.cancel()
        _ = await task.result
    }
}

/// One HTTP/1.1 exchange over a plain socket to 127.0.0.1:`port`, so that tests can send
/// exactly the bytes they want (paths with `..`, partial bodies).
struct RawHTTP {
    let fd: Int32

    init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard result == 0 else { throw CorpusError.unreachable(url: "127.0.0.1:\(port)", reason: String(cString: strerror(errno))) }
    }

    func send(_ bytes: [UInt8]) {
        var done = 0
        while done < bytes.count {
            let n = bytes[done...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return }
            done += n
        }
    }

    /// Reads until the peer closes; returns the status code and body.
    func receive() -> (status: Int, body: String) {
        var all: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            all += buffer[0..<n]
        }
        let text = String(decoding: all, as: UTF8.self)
        let status = text.split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0
        let body = text.components(separatedBy: "\r\n\r\n").dropFirst().joined(separator: "\r\n\r\n")
        return (status, body)
    }

    func close() { Glibc.close(fd) }

    /// A whole request (with `Connection: close`) and its answer.
    static func exchange(port: Int, _ head: String, body: [UInt8] = []) throws -> (status: Int, body: String) {
        let connection = try RawHTTP(port: port)
        defer { connection.close() }
        connection.send(Array(head.utf8) + body)
        return connection.receive()
    }
}
