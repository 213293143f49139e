import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import TraceFormat

/// What a push did on the server.
public struct PushResult: Sendable, Equatable {
    /// The trace as the server indexed it.
    public var entry: CorpusEntry
    /// False when the server had the same bytes already.
    public var isNew: Bool
}

/// Talks to `replayctl corpus serve` over HTTP (Foundation's URLSession).
public struct CorpusClient: Sendable {
    /// Base URL of the server, e.g. `http://127.0.0.1:8080`.
    public let base: URL

    /// A client for `server` (`http://HOST:PORT`).
    /// - Throws: `CorpusError.invalidOption` when it is not an http(s) URL with a host.
    public init(server: String) throws {
        var text = server
        while text.hasSuffix("/") { text.removeLast() }
        guard let url = URL(string: text), let scheme = url.scheme, scheme == "http" || scheme == "https", url.host != nil else {
            throw CorpusError.invalidOption("invalid --server \"\(server)\": give a URL like http://127.0.0.1:8080")
        }
        base = url
    }

    /// Reads the first token of a token file (the same format as the server's).
    public static func token(fromFile path: String) throws -> String {
        let tokens = try CorpusTokens.load(path: path)
        return tokens.names.keys.sorted()[0]
    }

    /// `GET /traces` with `filter`.
    public func list(_ filter: CorpusFilter = CorpusFilter()) async throws -> [CorpusEntry] {
        var query = filter.tags.map { ("tag", $0) }
        if let kernel = filter.kernelPrefix { query.append(("kernel", kernel)) }
        let (status, data, url) = try await send("GET", "/traces", query: query)
        try check(status, data, url)
        return try decode([CorpusEntry].self, data, url)
    }

    /// `GET /traces/{id}`.
    public func entry(id: String) async throws -> CorpusEntry {
        let prefix = try CorpusStore.checkID(id)
        let (status, data, url) = try await send("GET", "/traces/\(prefix)")
        try check(status, data, url, id: id)
        return try decode(CorpusEntry.self, data, url)
    }

    /// `POST /traces` with the bytes of `file`.
    /// - Throws: `CorpusError.refused` (the server's reasons), `.unauthorized`, `.tooLarge`,
    ///   `.server`, `.unreachable`, `.io` when the file cannot be read.
    public func push(file: String, token: String, description: String = "", tags: [String] = []) async throws -> PushResult {
        guard let data = FileManager.default.contents(atPath: file) else {
            throw CorpusError.io(path: file, reason: FileManager.default.fileExists(atPath: file) ? "cannot read the file" : "no such file")
        }
        var query = [("filename", (file as NSString).lastPathComponent)]
        if !description.isEmpty { query.append(("description", description)) }
        query += tags.map { ("tag", $0) }
        let (status, reply, url) = try await send("POST", "/traces", query: query, body: data,
                                                  headers: ["Authorization": "Bearer \(token)", "Content-Type": "application/octet-stream"])
        if status == 422 {
            let reasons = (try? JSONDecoder().decode(ErrorBody.self, from: reply))?.reasons ?? [message(reply)]
            throw CorpusError.refused(source: "\(file) (at \(base.absoluteString))", reasons: reasons)
        }
        try check(status, reply, url)
        return PushResult(entry: try decode(CorpusEntry.self, reply, url), isNew: status == 201)
    }

    /// `GET /traces/{id}/file` into `output` (temporary name, fsync, rename), after checking
    /// that the bytes hash to the trace's id.
    /// - Returns: the number of bytes written.
    public func pull(id: String, to output: String) async throws -> UInt64 {
        let prefix = try CorpusStore.checkID(id)
        let fullID = prefix.count == 64 ? prefix : try await entry(id: prefix).id
        let (status, data, url) = try await send("GET", "/traces/\(fullID)/file")
        try check(status, data, url, id: id)
        var hasher = SHA256()
        hasher.update(data)
        let digest = hasher.finalizeHex()
        guard digest == fullID else { throw CorpusError.integrity(id: fullID, actual: digest) }
        let temporary = CorpusStore.siblingTemporaryPath(of: output)
        defer { unlink(temporary) }
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw CorpusError.io(path: output, reason: "cannot create: \(String(cString: strerror(errno)))") }
        do {
            defer { close(fd) }
            try CorpusStore.writeAll(fd, Array(data), path: output)
            guard fsync(fd) == 0 else { throw CorpusError.io(path: output, reason: "fsync failed: \(String(cString: strerror(errno)))") }
        }
        guard rename(temporary, output) == 0 else {
            throw CorpusError.io(path: output, reason: "cannot write: \(String(cString: strerror(errno)))")
        }
        return UInt64(data.count)
    }

    // MARK: HTTP

    private struct ErrorBody: Decodable {
        var error: String
        var reasons: [String]?
    }

    private func message(_ data: Data) -> String {
        (try? JSONDecoder().decode(ErrorBody.self, from: data))?.error ?? String(decoding: data.prefix(300), as: UTF8.self)
    }

    private func check(_ status: Int, _ data: Data, _ url: String, id: String? = nil) throws {
        switch status {
        case 200..<300: return
        case 401, 403: throw CorpusError.unauthorized("\(url): \(message(data))")
        case 404 where id != nil: throw CorpusError.notFound(id: id!)
        case 413: throw CorpusError.server(url: url, status: status, message: message(data))
        default: throw CorpusError.server(url: url, status: status, message: message(data))
        }
    }

    private func decode<T: Decodable>(_ type: T.Type, _ data: Data, _ url: String) throws -> T {
        do { return try JSONDecoder().decode(T.self, from: data) } catch {
            throw CorpusError.server(url: url, status: 200, message: "unexpected reply (\(data.count) bytes): \(error)")
        }
    }

    /// Percent-encodes a query component (only unreserved characters stay).
    private static func encode(_ text: String) -> String {
        let unreserved = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
        return text.addingPercentEncoding(withAllowedCharacters: unreserved) ?? text
    }

    private func send(_ method: String, _ path: String, query: [(String, String)] = [], body: Data? = nil,
                      headers: [String: String] = [:]) async throws -> (Int, Data, String) {
        let queryText = query.isEmpty ? "" : "?" + query.map { Self.encode($0.0) + "=" + Self.encode($0.1) }.joined(separator: "&")
        let urlText = base.absoluteString + path
        guard let url = URL(string: urlText + queryText) else { throw CorpusError.invalidOption("cannot build a URL from \(urlText)") }
        var request = URLRequest(url: url)
        request.httpMethod = method
        request.timeoutInterval = 120
        for (key, value) in headers { request.setValue(value, forHTTPHeaderField: key) }
        return try await withCheckedThrowingContinuation { continuation in
            let completion: @Sendable (Data?, URLResponse?, Error?) -> Void = { data, response, error in
                if let error {
                    continuation.resume(throwing: CorpusError.unreachable(url: urlText, reason: error.localizedDescription))
                } else if let http = response as? HTTPURLResponse {
                    continuation.resume(returning: (http.statusCode, data ?? Data(), urlText))
                } else {
                    continuation.resume(throwing: CorpusError.unreachable(url: urlText, reason: "no HTTP response"))
                }
            }
            let task = body.map { URLSession.shared.uploadTask(with: request, from: $0, completionHandler: completion) }
                ?? URLSession.shared.dataTask(with: request, completionHandler: completion)
            task.resume()
        }
    }
}
