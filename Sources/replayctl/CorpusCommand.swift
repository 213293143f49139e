import ArgumentParser
import Corpus
import Foundation

/// `replayctl corpus …`: a local store of traces, its HTTP server and the client.
struct CorpusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "corpus",
        abstract: "Store, list, share and fetch traces: a local corpus, its server and client.",
        discussion: """
            The local corpus lives in $XDG_DATA_HOME/replayctl/corpus (~/.local/share/… by \
            default; --corpus DIR to choose). Traces are stored once by SHA-256 and indexed \
            with their metadata; an id prefix of 6+ hex digits is accepted. See docs/corpus.md.
            """,
        subcommands: [
            CorpusAdd.self, CorpusList.self, CorpusShow.self, CorpusGet.self, CorpusRemove.self, CorpusVerify.self,
            CorpusServe.self, CorpusPush.self, CorpusPull.self,
        ]
    )
}

/// `--corpus DIR`, shared by the local subcommands.
struct CorpusLocation: ParsableArguments {
    @Option(name: .customLong("corpus"), help: "Corpus directory (default: $XDG_DATA_HOME/replayctl/corpus).")
    var directory: String?

    func open() throws -> CorpusStore {
        try CorpusStore(directory: directory ?? CorpusStore.defaultDirectory())
    }
}

/// The user name recorded as contributor by default.
func defaultContributor() -> String {
    let environment = ProcessInfo.processInfo.environment
    return environment["USER"] ?? environment["LOGNAME"] ?? "unknown"
}

struct CorpusAdd: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "add",
        abstract: "Validate a trace and add it to the local corpus (stored once per content).",
        discussion: """
            Every block checksum and every event is checked first; a damaged or truncated file \
            is refused with the reason (exit 65) and nothing is stored. --anonymize stores a copy \
            whose host name, command line and task names are pseudonyms (docs/corpus.md lists \
            the names kept).
            """)

    @Argument(help: "The .rpl trace.") var file: String
    @Option(help: "Free-text description.") var description = ""
    @Option(name: .customLong("tag"), help: "A tag (repeatable).") var tags: [String] = []
    @Option(help: "Contributor name (default: $USER).") var contributor: String?
    @Flag(help: "Replace host name, command line and task names with stable pseudonyms.") var anonymize = false
    @OptionGroup var location: CorpusLocation

    func run() throws {
        try reportingErrors {
            let store = try location.open()
            let anonymizer = anonymize ? try Anonymizer.loadingSalt(at: store.directory + "/anonymize.salt") : nil
            let result = try store.add(file: file, contribution: Contribution(description: description, tags: tags,
                                                                             contributor: contributor ?? defaultContributor()),
                                       anonymizer: anonymizer)
            let e = result.entry
            if result.isNew {
                print("added \(e.id)\(e.anonymized ? " (anonymised)" : "")")
            } else {
                print("already in the corpus: \(e.id) (added \(e.addedAt)); nothing stored")
            }
            print("  \(summaryLine(e))")
        }
    }
}

struct CorpusList: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "List the traces of the local corpus, or of a server with --server.")

    @Option(name: .customLong("tag"), help: "Only traces with this tag (repeatable: all must match).") var tags: [String] = []
    @Option(help: "Only traces whose kernel release starts with this.") var kernel: String?
    @Flag(help: "Print JSON (an array of entries, docs/corpus.md).") var json = false
    @Option(help: "List a corpus server instead (http://127.0.0.1:8080).") var server: String?
    @OptionGroup var location: CorpusLocation

    func run() throws {
        try reportingErrors {
            let filter = CorpusFilter(tags: tags, kernelPrefix: kernel)
            let entries: [CorpusEntry]
            if let server {
                let client = try CorpusClient(server: server)
                entries = try runBlocking { try await client.list(filter) }
            } else {
                entries = try location.open().list(filter)
            }
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                print(String(decoding: try encoder.encode(entries), as: UTF8.self))
                return
            }
            if entries.isEmpty {
                print("no traces\(tags.isEmpty && kernel == nil ? "" : " match") — add one with `replayctl corpus add FILE.rpl`")
                return
            }
            print(pad("ID", 12, left: true) + " " + pad("ADDED", 21, left: true) + pad("KERNEL", 24, left: true) + pad("CPUS", 5)
                  + pad("DURATION", 10) + pad("TASKS", 7) + pad("EVENTS", 9) + pad("LOST", 6) + pad("SIZE", 10) + "  TAGS / DESCRIPTION")
            for e in entries {
                let notes = [e.tags.joined(separator: ","), e.description].filter { !$0.isEmpty }.joined(separator: " — ")
                var line = pad(String(e.id.prefix(12)), 12, left: true) + " " + pad(e.addedAt, 21, left: true)
                line += pad(String(e.kernelRelease.prefix(23)), 24, left: true) + pad("\(e.cpuCount)", 5)
                line += pad(formatSeconds(e.durationNanoseconds), 10) + pad("\(e.taskCount)", 7) + pad("\(e.eventCount)", 9)
                line += pad("\(e.lostEvents)", 6) + pad(formatBytes(e.bytes), 10) + "  " + notes
                print(line)
            }
        }
    }
}

struct CorpusShow: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "show", abstract: "Show one trace's index entry.")

    @Argument(help: "Trace id (or a unique prefix of 6+ hex digits).") var id: String
    @Flag(help: "Print JSON.") var json = false
    @OptionGroup var location: CorpusLocation

    func run() throws {
        try reportingErrors {
            let store = try location.open()
            let e = try store.entry(id: id)
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                print(String(decoding: try encoder.encode(e), as: UTF8.self))
                return
            }
            let start = e.startWallTimeNanoseconds > 0
                ? ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: Double(e.startWallTimeNanoseconds) / 1e9)) : "unknown"
            let rows: [(String, String)] = [
                ("id", e.id), ("file", store.blobPath(id: e.id)), ("size", "\(formatBytes(e.bytes)) (\(e.bytes) bytes)"),
                ("description", e.description), ("tags", e.tags.joined(separator: ", ")), ("contributor", e.contributor),
                ("added", e.addedAt), ("anonymised", e.anonymized ? "yes" : "no"), ("recorded", start), ("host", e.hostname),
                ("kernel", "\(e.kernelRelease) \(e.architecture)"), ("cpus", "\(e.cpuCount) (\(e.cpuModel))"),
                ("command", e.command), ("recorder", e.recorderVersion), ("format", e.formatVersion),
                ("duration", formatSeconds(e.durationNanoseconds)), ("tasks", "\(e.taskCount)"), ("events", "\(e.eventCount)"),
                ("lost", "\(e.lostEvents) events"), ("inferred", "\(e.inferredSwitchIns) switch-ins"),
            ]
            for (key, value) in rows { print(pad(key + ":", 13, left: true) + value) }
        }
    }
}

struct CorpusGet: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "get", abstract: "Copy a trace out of the local corpus.")

    @Argument(help: "Trace id (or a unique prefix).") var id: String
    @Option(name: .shortAndLong, help: "Output file.") var output: String
    @OptionGroup var location: CorpusLocation

    func run() throws {
        try reportingErrors {
            let e = try location.open().export(id: id, to: output)
            print("wrote \(output) (\(e.bytes) bytes, \(e.id))")
        }
    }
}

struct CorpusRemove: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "rm", abstract: "Remove a trace from the local corpus.")

    @Argument(help: "Trace id (or a unique prefix).") var id: String
    @OptionGroup var location: CorpusLocation

    func run() throws {
        try reportingErrors {
            let e = try location.open().remove(id: id)
            print("removed \(e.id)")
        }
    }
}

struct CorpusVerify: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check that every indexed trace has its blob with the right size and SHA-256, and every blob is indexed.")

    @OptionGroup var location: CorpusLocation

    func run() throws {
        try reportingErrors {
            let store = try location.open()
            let problems = try store.verify()
            for p in problems { print(p) }
            if !problems.isEmpty { throw CommandError.data("\(problems.count) problem(s) in \(store.directory)") }
            print("ok: \(try store.list().count) traces, index and blobs agree")
        }
    }
}

/// One line of key figures.
func summaryLine(_ e: CorpusEntry) -> String {
    "kernel \(e.kernelRelease.isEmpty ? "?" : e.kernelRelease), \(e.cpuCount) CPUs, \(formatSeconds(e.durationNanoseconds)), "
        + "\(e.taskCount) tasks, \(e.eventCount) events, \(e.lostEvents) lost, \(formatBytes(e.bytes))"
}

/// Exit codes of corpus errors (sysexits.h).
extension CorpusError {
    var exitStatus: Int32 {
        switch self {
        case .refused, .integrity: ExitStatus.dataError
        case let .io(_, reason) where reason == "no such file": ExitStatus.noInput
        case .io, .database: ExitStatus.ioError
        case .notFound: ExitStatus.noInput
        case .invalidID, .ambiguousID, .invalidOption: ExitStatus.usage
        case .tooLarge: ExitStatus.dataError
        case .unauthorized: ExitStatus.noPermission
        case .unreachable: 69  // EX_UNAVAILABLE
        case .server: 76  // EX_PROTOCOL
        }
    }
}

struct CorpusServe: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve the corpus over HTTP: upload with a bearer token, list, fetch, and an HTML page at /.",
        discussion: """
            Without --token-file uploads are refused (403). The token file holds one `TOKEN \
            [NAME]` per line; NAME is recorded as the contributor. Stops on SIGINT/SIGTERM. \
            --listen 127.0.0.1:0 picks a free port; the first line printed gives the URL.
            """)

    @Option(help: "Address and port to listen on (HOST:PORT, [::1]:PORT).") var listen = "127.0.0.1:8080"
    @Option(help: "File of upload tokens (one `TOKEN [NAME]` per line).") var tokenFile: String?
    @Option(help: "Largest accepted upload in bytes.") var maxUploadBytes: UInt64 = 64 << 20
    @OptionGroup var location: CorpusLocation

    func run() throws {
        try reportingErrors {
            let (host, port) = try parseListen(listen)
            let store = try location.open()
            let tokens = try tokenFile.map { try CorpusTokens.load(path: $0) }
            let server = CorpusServer(store: store, tokens: tokens, maxUploadBytes: maxUploadBytes)
            let count = try store.list().count
            let uploads = tokens.map { "uploads enabled for \($0.names.count) token\($0.names.count == 1 ? "" : "s")" } ?? "uploads disabled (no --token-file)"
            try runBlocking {
                try await server.run(host: host, port: port, handleSignals: true) { bound in
                    let shown = host.contains(":") ? "[\(host)]" : host
                    // Written straight to fd 1: the first line must reach a pipe at once.
                    let line = "listening on http://\(shown):\(bound)/ — corpus \(store.directory), \(count) traces, \(uploads)\n"
                    FileHandle.standardOutput.write(Data(line.utf8))
                }
            }
        }
    }

    func parseListen(_ text: String) throws -> (String, Int) {
        var host = "", portText = ""
        if text.hasPrefix("["), let close = text.firstIndex(of: "]") {
            host = String(text[text.index(after: text.startIndex)..<close])
            portText = String(text[close...].dropFirst(2))
        } else if let colon = text.lastIndex(of: ":") {
            host = String(text[..<colon])
            portText = String(text[text.index(after: colon)...])
        }
        guard !host.isEmpty, let port = Int(portText), (0...65535).contains(port) else {
            throw CorpusError.invalidOption("invalid --listen \"\(text)\": give HOST:PORT, e.g. 127.0.0.1:8080 or [::1]:8080")
        }
        return (host, port)
    }
}

struct CorpusPush: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "push", abstract: "Upload a trace to a corpus server (validated there; stored once per content).")

    @Argument(help: "The .rpl trace.") var file: String
    @Option(help: "Server URL, e.g. http://127.0.0.1:8080.") var server: String
    @Option(help: "File holding the upload token (its first `TOKEN` line).") var tokenFile: String
    @Option(help: "Free-text description.") var description = ""
    @Option(name: .customLong("tag"), help: "A tag (repeatable).") var tags: [String] = []

    func run() throws {
        try reportingErrors {
            let client = try CorpusClient(server: server)
            let token = try CorpusClient.token(fromFile: tokenFile)
            let (file, description, tags) = (file, description, tags)
            let result = try runBlocking { try await client.push(file: file, token: token, description: description, tags: tags) }
            print(result.isNew ? "pushed \(result.entry.id)" : "already on the server: \(result.entry.id); nothing stored")
            print("  \(summaryLine(result.entry))")
        }
    }
}

struct CorpusPull: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pull", abstract: "Download a trace from a corpus server (checked against its SHA-256).")

    @Argument(help: "Trace id (or a unique prefix).") var id: String
    @Option(help: "Server URL, e.g. http://127.0.0.1:8080.") var server: String
    @Option(name: .shortAndLong, help: "Output file.") var output: String

    func run() throws {
        try reportingErrors {
            let client = try CorpusClient(server: server)
            let (id, output) = (id, output)
            let bytes = try runBlocking { try await client.pull(id: id, to: output) }
            print("wrote \(output) (\(bytes) bytes, SHA-256 checked)")
        }
    }
}

/// Holds the outcome of async work for a synchronous command.
private final class ResultBox<T>: @unchecked Sendable {
    var result: Result<T, Error>?
}

/// Runs async work from a synchronous command (the main thread waits; the work runs on the
/// concurrency pool).
func runBlocking<T>(_ body: @escaping @Sendable () async throws -> T) throws -> T {
    let box = ResultBox<T>()
    let done = DispatchSemaphore(value: 0)
    Task {
        do { box.result = .success(try await body()) } catch { box.result = .failure(error) }
        done.signal()
    }
    done.wait()
    return try box.result!.get()
}
