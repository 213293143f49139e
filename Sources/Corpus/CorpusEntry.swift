import Foundation
import TraceFormat

/// One trace of the corpus: its identity, what the trace says about itself, and what the
/// contributor said about it. This is also the JSON of `GET /traces/{id}` and `list --json`
/// (keys are stable, documented in docs/corpus.md).
public struct CorpusEntry: Codable, Equatable, Sendable {
    /// SHA-256 of the file, 64 lowercase hex digits.
    public var id: String
    /// Size of the file in bytes.
    public var bytes: UInt64
    /// `uname -r` of the recording machine.
    public var kernelRelease: String
    /// `uname -m` of the recording machine.
    public var architecture: String
    /// Host name as recorded (a pseudonym for an anonymised trace).
    public var hostname: String
    /// CPU model name of the recording machine.
    public var cpuModel: String
    /// CPUs online during the recording.
    public var cpuCount: Int
    /// Length of the recording in nanoseconds (trace clock).
    public var durationNanoseconds: UInt64
    /// Tasks in the task table, the idle task excluded.
    public var taskCount: Int
    /// Events in the trace.
    public var eventCount: UInt64
    /// Events the kernel dropped while recording (all CPUs).
    public var lostEvents: UInt64
    /// Switch-ins the kernel did not log and the recorder inferred.
    public var inferredSwitchIns: UInt64
    /// Wall-clock start of the recording, nanoseconds since the Unix epoch (0: unknown).
    public var startWallTimeNanoseconds: UInt64
    /// The command that was recorded, joined with spaces.
    public var command: String
    /// Program and version that wrote the trace.
    public var recorderVersion: String
    /// `.rpl` format version, "major.minor".
    public var formatVersion: String
    /// Free text from the contributor.
    public var description: String
    /// Who added the trace (user name locally, token name on a server).
    public var contributor: String
    /// When the trace entered this corpus, ISO 8601 UTC.
    public var addedAt: String
    /// Tags, sorted.
    public var tags: [String]
    /// True when the trace was anonymised on the way in (`--anonymize`).
    public var anonymized: Bool

    /// The facts read from a trace file, with the contributor's fields left empty.
    init(id: String, facts: TraceFacts) {
        let m = facts.metadata
        self.id = id
        bytes = facts.bytes
        kernelRelease = m.kernelRelease
        architecture = m.architecture
        hostname = m.hostname
        cpuModel = m.cpuModel
        cpuCount = m.cpuCount
        durationNanoseconds = m.durationNanoseconds
        taskCount = facts.taskCount
        eventCount = facts.eventCount
        lostEvents = m.totalLostEvents
        inferredSwitchIns = m.inferredSwitchIns
        startWallTimeNanoseconds = m.startWallTimeNanoseconds
        command = m.command.joined(separator: " ")
        recorderVersion = m.recorderVersion
        formatVersion = facts.formatVersion
        description = ""
        contributor = ""
        addedAt = ""
        tags = []
        // Set by `Anonymizer`, so an anonymised trace pushed elsewhere still says so.
        anonymized = m.extra["anonymized"] != nil
    }
}

/// What admission learnt from a sound trace file.
struct TraceFacts {
    var metadata: TraceMetadata
    var taskCount: Int
    var eventCount: UInt64
    var formatVersion: String
    var bytes: UInt64
}

/// Admission control: a trace enters the corpus only when every block and every chunk reads.
enum TraceAdmission {
    /// Opens `path`, checks the footer, every block checksum and every event, and returns the
    /// trace's facts.
    /// - Parameter displayName: how the file is named in messages (an upload's temporary file
    ///   is named after what the user sent).
    /// - Throws: `CorpusError.refused` with every reason found.
    static func inspect(path: String, displayName: String) throws -> TraceFacts {
        func rename(_ text: String) -> String { text.replacingOccurrences(of: path, with: displayName) }
        let reader: TraceReader
        do {
            reader = try TraceReader(path: path)
        } catch let error as TraceError {
            throw CorpusError.refused(source: displayName, reasons: [rename(error.description)])
        }
        var reasons: [String] = []
        if reader.isRecovered || !reader.damage.isEmpty {
            reasons.append("the file has no valid footer (truncated, or the writer was stopped): only complete recordings are accepted")
            reasons += reader.damage.map { "lost \($0)" }
        }
        reasons += reader.validate().map { rename($0.description) }
        guard reasons.isEmpty else { throw CorpusError.refused(source: displayName, reasons: reasons) }
        return TraceFacts(metadata: reader.metadata, taskCount: max(0, reader.tasks.count - 1), eventCount: reader.eventCount,
                          formatVersion: "\(reader.version.major).\(reader.version.minor)", bytes: reader.fileSize)
    }
}
