import Foundation
import Hummingbird
import TraceFormat

/// Upload tokens: `TOKEN [CONTRIBUTOR NAME]` per line, `#` comments. A token is at least 16
/// characters (`head -c 24 /dev/urandom | base64` makes a good one).
public struct CorpusTokens: Sendable, Equatable {
    /// Contributor name by token.
    public var names: [String: String]

    /// Tokens from `names` (token → contributor).
    public init(names: [String: String]) { self.names = names }

    /// Reads a token file.
    /// - Throws: `CorpusError.invalidOption` naming the file and line when it is unusable.
    public static func load(path: String) throws -> CorpusTokens {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CorpusError.invalidOption("\(path): cannot read the token file — create it with one line `TOKEN [NAME]`, e.g. `echo \"$(head -c 24 /dev/urandom | base64) alice\" > \(path)`")
        }
        var names: [String: String] = [:]
        for (number, line) in String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            let fields = trimmed.split(separator: " ", maxSplits: 1).map(String.init)
            guard fields[0].count >= 16, fields[0].allSatisfy({ $0.isASCII && !$0.isWhitespace }) else {
                throw CorpusError.invalidOption("\(path):\(number + 1): a token must be at least 16 printable ASCII characters")
            }
            names[fields[0]] = fields.count > 1 ? fields[1].trimmingCharacters(in: .whitespaces) : "token \(names.count + 1)"
        }
        guard !names.isEmpty else { throw CorpusError.invalidOption("\(path): no token in the file — add a line `TOKEN [NAME]`") }
        return CorpusTokens(names: names)
    }

    /// The contributor name of `token`, compared in constant time against every token.
    func contributor(for token: String) -> String? {
        let given = Array(token.utf8)
        var found: String?
        for (candidate, name) in names {
            let bytes = Array(candidate.utf8)
            var difference = UInt8(bytes.count == given.count ? 0 : 1)
            for i in 0..<bytes.count { difference |= bytes[i] ^ (i < given.count ? given[i] : 0) }
            if difference == 0 { found = name }
        }
        return found
    }
}

/// The corpus over HTTP (Hummingbird 2): `POST /traces`, `GET /traces`, `GET /traces/{id}`,
/// `GET /traces/{id}/file` and an HTML page at `GET /`. API in docs/corpus.md.
public struct CorpusServer: Sendable {
    /// The corpus served.
    public let store: CorpusStore
    /// Who may upload; nil disables uploads.
    public let tokens: CorpusTokens?
    /// Largest accepted upload in bytes.
    public let maxUploadBytes: UInt64

    /// A server for `store`.
    public init(store: CorpusStore, tokens: CorpusTokens?, maxUploadBytes: UInt64 = 64 << 20) {
        self.store = store
        self.tokens = tokens
        self.maxUploadBytes = maxUploadBytes
    }

    /// Serves until the task is cancelled or (with `handleSignals`) SIGINT/SIGTERM arrives.
    /// - Parameters:
    ///   - host: address to bind (`127.0.0.1`, `::1`, …).
    ///   - port: TCP port, 0 for any free one.
    ///   - onListening: called with the bound port once the server accepts connections.
    public func run(host: String, port: Int, handleSignals: Bool, onListening: @escaping @Sendable (Int) -> Void) async throws {
        let router = Router()
        router.get("/") { _, _ in try await self.page() }
        router.get("/traces") { request, _ in try await self.listTraces(request) }
        router.post("/traces") { request, _ in await self.upload(request) }
        router.get("/traces/{id}") { _, context in
            await self.respond { try self.json(self.store.entry(id: context.parameters.get("id") ?? "")) }
        }
        router.get("/traces/{id}/file") { _, context in await self.download(id: context.parameters.get("id") ?? "") }
        let app = Application(
            router: router,
            configuration: .init(address: .hostname(host, port: port), serverName: "replayctl-corpus"),
            onServerRunning: { channel in onListening(channel.localAddress?.port ?? port) })
        try await app.runService(gracefulShutdownSignals: handleSignals ? [.sigterm, .sigint] : [])
    }

    // MARK: Handlers

    private func listTraces(_ request: Request) async throws -> Response {
        let query = request.uri.queryParameters
        let filter = CorpusFilter(tags: query[values: "tag"].map(String.init), kernelPrefix: query["kernel"].map(String.init))
        return await respond { try json(try store.list(filter)) }
    }

    private func download(id: String) async -> Response {
        await respond {
            let entry = try store.entry(id: id)
            let path = store.blobPath(id: entry.id)
            guard let data = FileManager.default.contents(atPath: path) else {
                throw CorpusError.io(path: entry.id, reason: "the stored file cannot be read")
            }
            var headers = HTTPFields()
            headers[.contentType] = "application/octet-stream"
            headers[.contentDisposition] = "attachment; filename=\"\(entry.id).rpl\""
            return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
        }
    }

    private func upload(_ request: Request) async -> Response {
        guard let tokens else {
            return error(.forbidden, "uploads are disabled on this server (start it with --token-file)")
        }
        guard let authorization = request.headers[.authorization], authorization.hasPrefix("Bearer ") else {
            var response = error(.unauthorized, "a bearer token is required: send `Authorization: Bearer TOKEN` (replayctl corpus push --token-file F)")
            response.headers[.wwwAuthenticate] = "Bearer"
            return response
        }
        guard let contributor = tokens.contributor(for: String(authorization.dropFirst("Bearer ".count))) else {
            return error(.unauthorized, "unknown token — check --token-file against the server's token file")
        }
        if let declared = request.headers[.contentLength].flatMap(UInt64.init), declared > maxUploadBytes {
            return error(HTTPResponse.Status(code: 413), CorpusError.tooLarge(bytes: declared, limit: maxUploadBytes).description)
        }
        let query = request.uri.queryParameters
        let name = query["filename"].map { String($0.prefix(200)) } ?? "upload"
        let contribution = Contribution(description: query["description"].map(String.init) ?? "",
                                        tags: query[values: "tag"].map(String.init), contributor: contributor)
        let temporary = store.temporaryPath(kind: "upload")
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return error(.internalServerError, "cannot store the upload: \(String(cString: strerror(errno)))") }
        var hasher = SHA256()
        var received: UInt64 = 0
        do {
            defer { close(fd) }
            for try await buffer in request.body {
                received += UInt64(buffer.readableBytes)
                if received > maxUploadBytes { throw CorpusError.tooLarge(bytes: received, limit: maxUploadBytes) }
                try buffer.withUnsafeReadableBytes { raw in
                    hasher.update(raw)
                    try CorpusStore.writeAll(fd, Array(raw), path: temporary)
                }
            }
        } catch let failure as CorpusError {
            unlink(temporary)
            return error(HTTPResponse.Status(code: 413), failure.description)
        } catch {
            unlink(temporary)
            return self.error(.badRequest, "the upload was interrupted after \(received) bytes: \(error)")
        }
        let digest = hasher.finalizeHex()
        let store = self.store
        return await respond {
            let result = try await offload {
                try store.admit(temporaryFile: temporary, displayName: "upload \(name)", sha256: digest,
                                contribution: contribution, anonymized: false)
            }
            var response = try json(result.entry)
            response.status = result.isNew ? .created : .ok
            return response
        }
    }

    // MARK: Responses

    /// Runs `body`, turning a `CorpusError` into its HTTP status with `{"error": …}`.
    private func respond(_ body: () async throws -> Response) async -> Response {
        do {
            return try await body()
        } catch let failure as CorpusError {
            switch failure {
            case let .refused(_, reasons):
                var response = error(HTTPResponse.Status(code: 422), failure.description)
                response.body = ResponseBody(byteBuffer: ByteBuffer(bytes: Self.errorJSON(failure.description, reasons: reasons)))
                return response
            case .notFound: return error(.notFound, failure.description)
            case .invalidID, .ambiguousID, .invalidOption: return error(.badRequest, failure.description)
            case .tooLarge: return error(HTTPResponse.Status(code: 413), failure.description)
            default: return error(.internalServerError, failure.description)
            }
        } catch {
            return self.error(.internalServerError, "\(error)")
        }
    }

    private static func errorJSON(_ message: String, reasons: [String]? = nil) -> Data {
        struct Body: Encodable {
            var error: String
            var reasons: [String]?
        }
        return (try? JSONEncoder().encode(Body(error: message, reasons: reasons))) ?? Data("{}".utf8)
    }

    private func error(_ status: HTTPResponse.Status, _ message: String) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: Self.errorJSON(message))))
    }

    private func json<T: Encodable>(_ value: T) throws -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: try encoder.encode(value))))
    }

    private func page() async throws -> Response {
        let entries = (try? store.list()) ?? []
        var headers = HTTPFields()
        headers[.contentType] = "text/html; charset=utf-8"
        return Response(status: .ok, headers: headers,
                        body: ResponseBody(byteBuffer: ByteBuffer(string: CorpusPage.html(entries: entries, uploadsEnabled: tokens != nil))))
    }
}

/// Runs blocking work (validation, hashing, SQLite) off the server's threads.
func offload<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        DispatchQueue.global().async { continuation.resume(with: Result { try body() }) }
    }
}
