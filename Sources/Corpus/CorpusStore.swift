import Foundation
import GRDB
import TraceFormat

/// Which traces `CorpusStore.list(_:)` returns.
public struct CorpusFilter: Sendable, Equatable {
    /// Every one of these tags must be on the trace.
    public var tags: [String] = []
    /// Kernel release prefix (`6.18` matches `6.18.44-fc-v769`).
    public var kernelPrefix: String?

    /// A filter; with no argument, every trace.
    public init(tags: [String] = [], kernelPrefix: String? = nil) {
        self.tags = tags
        self.kernelPrefix = kernelPrefix
    }
}

/// What the contributor says about a trace being added.
public struct Contribution: Sendable, Equatable {
    /// Free text.
    public var description: String
    /// Tags (letters, digits and `._:/+-`, at most 64 characters each).
    public var tags: [String]
    /// Who adds it.
    public var contributor: String

    /// A contribution.
    public init(description: String = "", tags: [String] = [], contributor: String) {
        self.description = description
        self.tags = tags
        self.contributor = contributor
    }

    /// Checks the fields and returns them normalised (tags trimmed, sorted, unique).
    /// - Throws: `CorpusError.invalidOption` naming the bad tag or field.
    func normalized() throws -> Contribution {
        var result = self
        let allowed = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "._:/+-"))
        result.tags = try Array(Set(tags.map { tag -> String in
            let t = tag.trimmingCharacters(in: .whitespaces)
            guard !t.isEmpty, t.count <= 64, t.unicodeScalars.allSatisfy({ allowed.contains($0) && $0.isASCII }) else {
                throw CorpusError.invalidOption("invalid tag \"\(tag)\": use 1–64 ASCII letters, digits or ._:/+-")
            }
            return t
        })).sorted()
        guard description.count <= 4096 else {
            throw CorpusError.invalidOption("description of \(description.count) characters is too long (at most 4096)")
        }
        result.contributor = String(contributor.prefix(128))
        return result
    }
}

/// The result of adding a trace.
public struct AddResult: Sendable, Equatable {
    /// The trace as the index holds it.
    public var entry: CorpusEntry
    /// False when the same bytes were already in the corpus (nothing was stored).
    public var isNew: Bool
}

/// A corpus on disk: content-addressed blobs plus a SQLite index.
///
/// Layout of `directory`: `index.sqlite` (WAL mode), `blobs/ab/abcdef….rpl` (named by their
/// SHA-256, read-only), `tmp/` (files being admitted; never visible through the index),
/// `anonymize.salt` (created on first `--anonymize`).
///
/// A trace becomes visible only through the index, and the index row is inserted in the same
/// SQLite write transaction that renames the fsynced blob into place, so a crash leaves
/// either no entry or a complete one. Several processes may share a corpus: SQLite's write
/// lock serialises the renames and inserts.
public final class CorpusStore: Sendable {
    /// Root directory of the corpus.
    public let directory: String
    private let pool: DatabasePool
    private var databasePath: String { directory + "/index.sqlite" }

    /// `$XDG_DATA_HOME/replayctl/corpus`, or `~/.local/share/replayctl/corpus`.
    public static func defaultDirectory(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let xdg = environment["XDG_DATA_HOME"], xdg.hasPrefix("/") { return xdg + "/replayctl/corpus" }
        let home = environment["HOME"] ?? NSHomeDirectory()
        return home + "/.local/share/replayctl/corpus"
    }

    /// Opens (creating when needed) the corpus at `directory`, and removes temporary files
    /// left by processes that died mid-admission.
    /// - Throws: `CorpusError.io` or `.database` when the directory or index cannot be used.
    public init(directory: String) throws {
        self.directory = directory.hasSuffix("/") && directory.count > 1 ? String(directory.dropLast()) : directory
        for sub in ["", "/blobs", "/tmp"] {
            let path = self.directory + sub
            do {
                try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
            } catch {
                throw CorpusError.io(path: path, reason: "cannot create the corpus directory: \(error.localizedDescription) — choose another with --corpus")
            }
        }
        var configuration = Configuration()
        configuration.busyMode = .timeout(30)
        configuration.label = "corpus"
        do {
            pool = try DatabasePool(path: self.directory + "/index.sqlite", configuration: configuration)
            var migrator = DatabaseMigrator()
            migrator.registerMigration("v1") { db in
                try db.execute(sql: """
                    CREATE TABLE traces (
                        id TEXT PRIMARY KEY NOT NULL,
                        bytes INTEGER NOT NULL,
                        kernel TEXT NOT NULL, arch TEXT NOT NULL, hostname TEXT NOT NULL,
                        cpu_model TEXT NOT NULL, cpu_count INTEGER NOT NULL,
                        duration_ns INTEGER NOT NULL, tasks INTEGER NOT NULL, events INTEGER NOT NULL,
                        lost_events INTEGER NOT NULL, inferred INTEGER NOT NULL, start_wall_ns INTEGER NOT NULL,
                        command TEXT NOT NULL, recorder TEXT NOT NULL, format TEXT NOT NULL,
                        description TEXT NOT NULL, contributor TEXT NOT NULL, added_at TEXT NOT NULL,
                        anonymized INTEGER NOT NULL);
                    CREATE TABLE tags (
                        trace_id TEXT NOT NULL REFERENCES traces(id) ON DELETE CASCADE,
                        tag TEXT NOT NULL,
                        PRIMARY KEY (trace_id, tag));
                    CREATE INDEX tags_by_tag ON tags(tag);
                    CREATE INDEX traces_by_kernel ON traces(kernel);
                    """)
            }
            try migrator.migrate(pool)
        } catch let error as DatabaseError {
            throw CorpusError.database(path: self.directory + "/index.sqlite", reason: "\(error.message ?? error.description) — is the directory a replayctl corpus?")
        } catch {
            throw CorpusError.database(path: self.directory + "/index.sqlite", reason: "\(error)")
        }
        sweepTemporaryFiles()
    }

    // MARK: Temporary files

    /// A new path under `tmp/`, named with this process's id so that a later open can tell a
    /// leftover (its process is gone) from a file still being written.
    func temporaryPath(kind: String) -> String {
        "\(directory)/tmp/\(kind)-\(getpid())-\(UUID().uuidString).rpl"
    }

    /// Removes `tmp/` files whose writing process no longer exists.
    private func sweepTemporaryFiles() {
        let tmp = directory + "/tmp"
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: tmp) else { return }
        for name in names {
            let parts = name.split(separator: "-")
            guard parts.count >= 2, let pid = Int32(parts[1]) else { continue }
            if pid != getpid() && kill(pid, 0) != 0 && errno == ESRCH { unlink(tmp + "/" + name) }
        }
    }

    /// Files in `tmp/` right now (tests use it to see an upload in progress).
    public func temporaryFiles() -> [String] {
        (try? FileManager.default.contentsOfDirectory(atPath: directory + "/tmp")) ?? []
    }

    // MARK: Adding

    /// Adds the trace at `file` (copied, or anonymised when `anonymizer` is given), after
    /// validating every block and event.
    /// - Returns: the entry, and whether it was new (the same bytes are stored once).
    /// - Throws: `CorpusError.refused` for a damaged or foreign file (nothing is stored),
    ///   `.io`, `.database`, `.invalidOption` for a bad tag.
    public func add(file: String, contribution: Contribution, anonymizer: Anonymizer? = nil) throws -> AddResult {
        let contribution = try contribution.normalized()
        let temporary = temporaryPath(kind: "add")
        defer { unlink(temporary) }
        var digest: String?
        if let anonymizer {
            _ = try TraceAdmission.inspect(path: file, displayName: file)
            try anonymizer.anonymize(input: file, output: temporary)
        } else {
            digest = try Self.copy(file, to: temporary)
        }
        return try admit(temporaryFile: temporary, displayName: file, sha256: digest, contribution: contribution,
                         anonymized: anonymizer != nil)
    }

    /// Validates the file at `temporaryFile` (under `tmp/`) and moves it into the corpus.
    /// The temporary file is gone afterwards in every case.
    func admit(temporaryFile: String, displayName: String, sha256: String?, contribution: Contribution, anonymized: Bool) throws -> AddResult {
        defer { unlink(temporaryFile) }
        let contribution = try contribution.normalized()
        let facts = try TraceAdmission.inspect(path: temporaryFile, displayName: displayName)
        let id: String
        if let sha256 { id = sha256 } else {
            do { id = try SHA256.hexDigest(ofFile: temporaryFile) } catch {
                throw CorpusError.io(path: displayName, reason: "cannot hash the file: \(error)")
            }
        }
        try Self.makeReadOnlyAndSync(temporaryFile)
        var entry = CorpusEntry(id: id, facts: facts)
        entry.description = contribution.description
        entry.contributor = contribution.contributor
        entry.tags = contribution.tags
        entry.anonymized = entry.anonymized || anonymized
        entry.addedAt = ISO8601DateFormatter().string(from: Date())
        let blob = blobPath(id: id)
        let blobDirectory = (blob as NSString).deletingLastPathComponent
        return try withDatabase { () throws -> AddResult in
            try pool.writeWithoutTransaction { db in
                var result: AddResult?
                try db.inTransaction(.immediate) {
                    if let existing = try Self.fetchEntries(db, whereClause: "t.id = ?", arguments: [id]).first {
                        // Same bytes already indexed: store nothing (but repair a missing blob).
                        if !FileManager.default.fileExists(atPath: blob) { try Self.moveIntoPlace(temporaryFile, blob, blobDirectory) }
                        result = AddResult(entry: existing, isNew: false)
                        return .commit
                    }
                    try Self.moveIntoPlace(temporaryFile, blob, blobDirectory)
                    try db.execute(sql: """
                        INSERT INTO traces (id, bytes, kernel, arch, hostname, cpu_model, cpu_count, duration_ns, tasks, events,
                            lost_events, inferred, start_wall_ns, command, recorder, format, description, contributor, added_at, anonymized)
                        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                        """, arguments: [
                            entry.id, Int64(clamping: entry.bytes), entry.kernelRelease, entry.architecture, entry.hostname,
                            entry.cpuModel, entry.cpuCount, Int64(clamping: entry.durationNanoseconds), entry.taskCount,
                            Int64(clamping: entry.eventCount), Int64(clamping: entry.lostEvents), Int64(clamping: entry.inferredSwitchIns),
                            Int64(clamping: entry.startWallTimeNanoseconds), entry.command, entry.recorderVersion, entry.formatVersion,
                            entry.description, entry.contributor, entry.addedAt, entry.anonymized,
                        ])
                    for tag in entry.tags {
                        try db.execute(sql: "INSERT INTO tags (trace_id, tag) VALUES (?, ?)", arguments: [entry.id, tag])
                    }
                    result = AddResult(entry: entry, isNew: true)
                    return .commit
                }
                return result!
            }
        }
    }

    // MARK: Reading

    /// Traces matching `filter`, newest first.
    /// - Throws: `CorpusError.database`.
    public func list(_ filter: CorpusFilter = CorpusFilter()) throws -> [CorpusEntry] {
        var clauses: [String] = []
        var arguments: [any DatabaseValueConvertible] = []
        for tag in filter.tags {
            clauses.append("EXISTS (SELECT 1 FROM tags x WHERE x.trace_id = t.id AND x.tag = ?)")
            arguments.append(tag)
        }
        if let kernel = filter.kernelPrefix, !kernel.isEmpty {
            clauses.append("substr(t.kernel, 1, ?) = ?")
            arguments.append(kernel.count)
            arguments.append(kernel)
        }
        let clause = clauses.isEmpty ? "1" : clauses.joined(separator: " AND ")
        return try withDatabase {
            try pool.read { db in try Self.fetchEntries(db, whereClause: clause, arguments: StatementArguments(arguments)) }
        }
    }

    /// The entry whose id is `id` or starts with it (at least 6 hex digits).
    /// - Throws: `CorpusError.invalidID`, `.notFound`, `.ambiguousID`.
    public func entry(id: String) throws -> CorpusEntry {
        let prefix = try Self.checkID(id)
        let matches = try withDatabase {
            try pool.read { db in
                try Self.fetchEntries(db, whereClause: "substr(t.id, 1, ?) = ?", arguments: [prefix.count, prefix], limit: 5)
            }
        }
        if matches.isEmpty { throw CorpusError.notFound(id: id) }
        if matches.count > 1 { throw CorpusError.ambiguousID(prefix: prefix, matches: matches.map(\.id)) }
        return matches[0]
    }

    /// Where the blob of `id` lives (a full 64-digit id).
    public func blobPath(id: String) -> String {
        "\(directory)/blobs/\(id.prefix(2))/\(id).rpl"
    }

    /// Copies the trace `id` to `output` (temporary name, fsync, rename).
    /// - Returns: the entry copied.
    public func export(id: String, to output: String) throws -> CorpusEntry {
        let entry = try entry(id: id)
        let temporary = Self.siblingTemporaryPath(of: output)
        defer { unlink(temporary) }
        _ = try Self.copy(blobPath(id: entry.id), to: temporary)
        try Self.makeReadOnlyAndSync(temporary, mode: 0o644)
        guard rename(temporary, output) == 0 else {
            throw CorpusError.io(path: output, reason: "cannot write: \(String(cString: strerror(errno)))")
        }
        return entry
    }

    /// Removes trace `id` from the index and deletes its blob, in one write transaction.
    /// - Returns: the entry removed.
    public func remove(id: String) throws -> CorpusEntry {
        let entry = try entry(id: id)
        let blob = blobPath(id: entry.id)
        try withDatabase {
            try pool.writeWithoutTransaction { db in
                try db.inTransaction(.immediate) {
                    try db.execute(sql: "DELETE FROM traces WHERE id = ?", arguments: [entry.id])
                    if unlink(blob) != 0 && errno != ENOENT {
                        throw CorpusError.io(path: blob, reason: "cannot delete: \(String(cString: strerror(errno)))")
                    }
                    return .commit
                }
            }
        }
        return entry
    }

    /// Checks that every index row has its blob with the right size and hash, and that every
    /// blob is indexed. Returns the problems found (empty for a consistent corpus).
    /// - Parameter rehash: also recompute every blob's SHA-256 (reads every byte).
    public func verify(rehash: Bool = true) throws -> [String] {
        var problems: [String] = []
        let entries = try list()
        let known = Set(entries.map(\.id))
        for entry in entries {
            let blob = blobPath(id: entry.id)
            guard let attributes = try? FileManager.default.attributesOfItem(atPath: blob),
                  let size = (attributes[.size] as? NSNumber)?.uint64Value
            else {
                problems.append("\(entry.id): indexed but its blob \(blob) is missing")
                continue
            }
            if size != entry.bytes { problems.append("\(entry.id): blob has \(size) bytes, index says \(entry.bytes)") }
            if rehash, let digest = try? SHA256.hexDigest(ofFile: blob), digest != entry.id {
                problems.append("\(entry.id): blob's SHA-256 is \(digest)")
            }
        }
        let blobs = directory + "/blobs"
        for sub in (try? FileManager.default.contentsOfDirectory(atPath: blobs)) ?? [] {
            for name in (try? FileManager.default.contentsOfDirectory(atPath: blobs + "/" + sub)) ?? [] {
                let id = name.hasSuffix(".rpl") ? String(name.dropLast(4)) : name
                if !known.contains(id) { problems.append("\(blobs)/\(sub)/\(name): blob not in the index") }
            }
        }
        return problems
    }

    // MARK: Helpers

    /// Validates an id or id prefix: 6–64 hex digits, lower-cased.
    static func checkID(_ id: String) throws -> String {
        let lower = id.lowercased()
        guard (6...64).contains(lower.count), lower.unicodeScalars.allSatisfy({ ("0"..."9").contains($0) || ("a"..."f").contains($0) }) else {
            throw CorpusError.invalidID(id)
        }
        return lower
    }

    private func withDatabase<T>(_ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as CorpusError {
            throw error
        } catch let error as DatabaseError {
            throw CorpusError.database(path: databasePath, reason: error.message ?? error.description)
        } catch {
            throw CorpusError.database(path: databasePath, reason: "\(error)")
        }
    }

    private static func fetchEntries(_ db: Database, whereClause: String, arguments: StatementArguments, limit: Int? = nil) throws -> [CorpusEntry] {
        let rows = try Row.fetchAll(db, sql: """
            SELECT t.*, (SELECT group_concat(tag, char(10)) FROM (SELECT tag FROM tags WHERE trace_id = t.id ORDER BY tag)) AS tag_list
            FROM traces t WHERE \(whereClause) ORDER BY t.rowid DESC\(limit.map { " LIMIT \($0)" } ?? "")
            """, arguments: arguments)
        return rows.map { row in
            var facts = TraceFacts(metadata: TraceMetadata(), taskCount: row["tasks"], eventCount: UInt64(max(0, row["events"] as Int64)),
                                   formatVersion: row["format"], bytes: UInt64(max(0, row["bytes"] as Int64)))
            facts.metadata.kernelRelease = row["kernel"]
            facts.metadata.architecture = row["arch"]
            facts.metadata.hostname = row["hostname"]
            facts.metadata.cpuModel = row["cpu_model"]
            facts.metadata.cpuCount = row["cpu_count"]
            facts.metadata.durationNanoseconds = UInt64(max(0, row["duration_ns"] as Int64))
            facts.metadata.lostEvents = [UInt64(max(0, row["lost_events"] as Int64))]
            facts.metadata.inferredSwitchIns = UInt64(max(0, row["inferred"] as Int64))
            facts.metadata.startWallTimeNanoseconds = UInt64(max(0, row["start_wall_ns"] as Int64))
            facts.metadata.recorderVersion = row["recorder"]
            var entry = CorpusEntry(id: row["id"], facts: facts)
            entry.command = row["command"]
            entry.description = row["description"]
            entry.contributor = row["contributor"]
            entry.addedAt = row["added_at"]
            entry.anonymized = row["anonymized"]
            let tagList: String? = row["tag_list"]
            entry.tags = tagList.map { $0.split(separator: "\n").map(String.init) } ?? []
            return entry
        }
    }

    /// Renames the fsynced `temporary` to `blob` and makes the rename durable.
    private static func moveIntoPlace(_ temporary: String, _ blob: String, _ blobDirectory: String) throws {
        if mkdir(blobDirectory, 0o755) != 0 && errno != EEXIST {
            throw CorpusError.io(path: blobDirectory, reason: "cannot create: \(String(cString: strerror(errno)))")
        }
        guard rename(temporary, blob) == 0 else {
            throw CorpusError.io(path: blob, reason: "cannot move the trace into place: \(String(cString: strerror(errno)))")
        }
        syncDirectory(blobDirectory)
    }

    /// fsync of a directory, so that a rename in it survives a crash.
    static func syncDirectory(_ path: String) {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd >= 0 {
            fsync(fd)
            close(fd)
        }
    }

    /// A temporary name next to `path` (same file system, so that rename is atomic).
    static func siblingTemporaryPath(of path: String) -> String {
        let url = URL(fileURLWithPath: path)
        return url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).\(getpid()).part").path
    }

    /// Sets the mode of `path` and fsyncs it.
    static func makeReadOnlyAndSync(_ path: String, mode: mode_t = 0o444) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw CorpusError.io(path: path, reason: "cannot open: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        fchmod(fd, mode)
        guard fsync(fd) == 0 else { throw CorpusError.io(path: path, reason: "fsync failed: \(String(cString: strerror(errno)))") }
    }

    /// Copies `source` to `destination` (created), returning the SHA-256 of the bytes copied.
    static func copy(_ source: String, to destination: String) throws -> String {
        let input = open(source, O_RDONLY | O_CLOEXEC)
        guard input >= 0 else {
            throw CorpusError.io(path: source, reason: errno == ENOENT ? "no such file" : "cannot open: \(String(cString: strerror(errno)))")
        }
        defer { close(input) }
        let output = open(destination, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard output >= 0 else { throw CorpusError.io(path: destination, reason: "cannot create: \(String(cString: strerror(errno)))") }
        defer { close(output) }
        var hasher = SHA256()
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(input, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw CorpusError.io(path: source, reason: "read failed: \(String(cString: strerror(errno)))")
            }
            if n == 0 { break }
            hasher.update(buffer[0..<n])
            try writeAll(output, buffer[0..<n], path: destination)
        }
        return hasher.finalizeHex()
    }

    /// Writes every byte of `bytes` to `fd`.
    static func writeAll<C: ContiguousCollection>(_ fd: Int32, _ bytes: C, path: String) throws where C.Element == UInt8 {
        try bytes.withUnsafeBytes { raw in
            var done = 0
            while done < raw.count {
                let n = write(fd, raw.baseAddress! + done, raw.count - done)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw CorpusError.io(path: path, reason: "write failed: \(String(cString: strerror(errno))) — check free space")
                }
                done += n
            }
        }
    }
}

/// A collection whose bytes are contiguous in memory.
protocol ContiguousCollection: Collection where Element == UInt8 {
    func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R
}
extension ArraySlice: ContiguousCollection where Element == UInt8 {}
extension Array: ContiguousCollection where Element == UInt8 {}
