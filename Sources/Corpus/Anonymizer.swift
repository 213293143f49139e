import Foundation
import TraceFormat

/// Rewrites a trace with its names replaced by stable pseudonyms: host name, command line,
/// task comms (task table and exec events) and free-text metadata. Timestamps, CPUs, task
/// indices, tids, event order and every other field are copied unchanged, so anything
/// computed from the events (`info`, replay) gives the same figures.
///
/// A pseudonym is a prefix of SHA-256(salt ‖ kind ‖ name): the same name gives the same
/// pseudonym in every trace anonymised with the same salt, and without the salt a pseudonym
/// cannot be checked against guessed names.
public struct Anonymizer: Sendable {
    /// Program names kept as they are: common shells, interpreters, build and benchmark
    /// tools, and the kernel's own threads. Documented in docs/corpus.md.
    public static let allowedNames: Set<String> = [
        "<idle>", "swapper", "init", "systemd", "kthreadd",
        "sh", "bash", "dash", "zsh", "fish", "busybox", "env", "sleep", "cat", "grep", "sed", "awk", "tee", "xargs",
        "python", "python3", "perl", "ruby", "node", "java", "lua",
        "make", "gmake", "ninja", "cmake", "cc", "c++", "gcc", "g++", "cc1", "cc1plus", "clang", "clang++", "ld", "ld.gold",
        "ld.lld", "as", "collect2", "rustc", "cargo", "go", "swift", "swift-frontend", "swiftc", "git",
        "perf", "trace-cmd", "replayctl", "sched-messaging", "sched-pipe", "hackbench", "cyclictest", "rt-app", "stress-ng",
        "schbench", "fio", "sysbench", "kcompactd0", "kswapd0", "khugepaged", "oom_reaper", "rcu_sched", "rcu_preempt",
        "sshd", "cron", "journal-offline", "systemd-journal", "systemd-udevd", "dbus-daemon",
    ]

    /// Name prefixes kept as they are (per-CPU and per-device kernel threads).
    public static let allowedPrefixes: [String] = [
        "kworker/", "ksoftirqd/", "migration/", "cpuhp/", "rcu_", "idle_inject/", "irq/", "watchdog/", "kthreadd",
        "jbd2/", "ext4-", "xfs", "scsi_", "nvme", "stress-ng", "perf-exec",
    ]

    /// Metadata `extra` keys whose values describe the recording, not the user, and are kept.
    public static let keptExtraKeys: Set<String> = [
        "scope", "events", "bufferSizeKilobytesPerCPU", "reorderedEvents", "wakeContext", "pids", "instance",
        "unattributedCPULatencyRequests",
    ]

    private let salt: [UInt8]

    /// An anonymizer using `salt` (keep it secret: with it, pseudonyms can be checked against guesses).
    public init(salt: [UInt8]) { self.salt = salt }

    /// Reads the salt at `path`, creating it (32 random bytes, mode 0600) when missing.
    /// - Throws: `CorpusError.io` when it can be neither read nor created.
    public static func loadingSalt(at path: String) throws -> Anonymizer {
        if let data = FileManager.default.contents(atPath: path), data.count >= 16 { return Anonymizer(salt: Array(data)) }
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) }
        let temporary = path + ".\(getpid()).part"
        guard FileManager.default.createFile(atPath: temporary, contents: Data(bytes), attributes: [.posixPermissions: 0o600]),
              link(temporary, path) == 0 || errno == EEXIST
        else {
            unlink(temporary)
            throw CorpusError.io(path: path, reason: "cannot create the anonymisation salt: \(String(cString: strerror(errno)))")
        }
        unlink(temporary)
        // Another process may have created it first: use whatever won.
        guard let data = FileManager.default.contents(atPath: path), data.count >= 16 else {
            throw CorpusError.io(path: path, reason: "cannot read the anonymisation salt")
        }
        return Anonymizer(salt: Array(data))
    }

    /// True when `name` is kept as it is.
    public static func isAllowed(_ name: String) -> Bool {
        allowedNames.contains(name) || allowedPrefixes.contains { name.hasPrefix($0) }
    }

    /// The pseudonym of `name` of the given kind (`t` task comm, `h` host, `a` argument, `x` extra value).
    public func pseudonym(_ name: String, kind: String) -> String {
        var hasher = SHA256()
        hasher.update(salt)
        hasher.update(Array(kind.utf8))
        hasher.update([0])
        hasher.update(Array(name.utf8))
        return kind + "-" + hasher.finalizeHex().prefix(kind == "t" ? 10 : 12)
    }

    /// The comm a task gets: kept when allowed, else a pseudonym (12 characters, within the
    /// kernel's 15).
    public func comm(_ name: String) -> String {
        Self.isAllowed(name) ? name : pseudonym(name, kind: "t")
    }

    /// The metadata with its names replaced.
    public func metadata(_ original: TraceMetadata) -> TraceMetadata {
        var m = original
        if !m.hostname.isEmpty { m.hostname = pseudonym(m.hostname, kind: "h") }
        m.command = original.command.enumerated().map { position, argument in
            // The program keeps its name when it is a well-known one; every argument (paths,
            // user names, host names) becomes a pseudonym.
            let base = (argument as NSString).lastPathComponent
            return position == 0 && Self.isAllowed(base) ? base : pseudonym(argument, kind: "a")
        }
        m.extra = Dictionary(uniqueKeysWithValues: original.extra.map { key, value in
            (key, Self.keptExtraKeys.contains(key) ? value : pseudonym(value, kind: "x"))
        })
        m.extra["anonymized"] = "names replaced by pseudonyms (replayctl corpus --anonymize)"
        return m
    }

    /// Writes to `output` the trace at `input` with its names replaced.
    /// - Throws: `TraceError` wrapped in `CorpusError.refused` when `input` cannot be read in
    ///   full, `CorpusError.io` when `output` cannot be written.
    public func anonymize(input: String, output: String) throws {
        do {
            let reader = try TraceReader(path: input)
            let metadata = metadata(reader.metadata)
            let writer = try TraceWriter(path: output, metadata: metadata)
            for task in reader.tasks.dropFirst() {
                var t = task
                t.comm = comm(task.comm)
                _ = writer.addTask(t)
            }
            try reader.forEachEvent { event in
                var e = event
                if case let .exec(task, name) = event.kind { e.kind = .exec(task: task, comm: comm(name)) }
                try writer.append(e)
            }
            try writer.finish(metadata: metadata)
        } catch let error as TraceError {
            if case let .io(path, reason) = error, path == output { throw CorpusError.io(path: output, reason: reason) }
            throw CorpusError.refused(source: input, reasons: [error.description])
        }
    }
}
