/// Everything that can go wrong storing, finding, serving or fetching corpus traces. Each case
/// says what failed, where, and the fix when there is one.
public enum CorpusError: Error, Equatable, CustomStringConvertible {
    /// A trace was refused at admission: `source` names the file (or upload), `reasons` say why.
    case refused(source: String, reasons: [String])
    /// A file or directory of the corpus (or given by the user) cannot be read or written.
    case io(path: String, reason: String)
    /// The SQLite index failed.
    case database(path: String, reason: String)
    /// No trace has this id (or id prefix).
    case notFound(id: String)
    /// The id is not (a prefix of) 64 lowercase hexadecimal digits.
    case invalidID(String)
    /// An id prefix matches several traces.
    case ambiguousID(prefix: String, matches: [String])
    /// An upload is larger than the server accepts.
    case tooLarge(bytes: UInt64, limit: UInt64)
    /// A token is missing, unknown or uploads are disabled.
    case unauthorized(String)
    /// A bad option value given by the user (server URL, listen address, token file).
    case invalidOption(String)
    /// The server could not be reached or did not answer.
    case unreachable(url: String, reason: String)
    /// The server answered with an error status.
    case server(url: String, status: Int, message: String)
    /// Downloaded bytes do not hash to the id that was asked for.
    case integrity(id: String, actual: String)

    public var description: String {
        switch self {
        case let .refused(source, reasons):
            "\(source): refused — not a sound replayctl trace: \(reasons.joined(separator: "; "))"
        case let .io(path, reason):
            "\(path): \(reason)"
        case let .database(path, reason):
            "\(path): corpus index error: \(reason)"
        case let .notFound(id):
            "no trace \(id) in the corpus — `replayctl corpus list` shows the ids"
        case let .invalidID(id):
            "invalid trace id \"\(id)\": an id is the SHA-256 of the file, 64 hexadecimal digits (a unique prefix of at least 6 is accepted)"
        case let .ambiguousID(prefix, matches):
            "trace id prefix \(prefix) matches \(matches.count) traces (\(matches.prefix(4).map { String($0.prefix(12)) }.joined(separator: ", "))) — give more digits"
        case let .tooLarge(bytes, limit):
            "upload of \(bytes) bytes exceeds the server's limit of \(limit) bytes — ask the operator to raise --max-upload-bytes"
        case let .unauthorized(reason):
            "not authorised: \(reason)"
        case let .invalidOption(reason):
            reason
        case let .unreachable(url, reason):
            "cannot reach \(url): \(reason) — check the URL and that `replayctl corpus serve` runs there"
        case let .server(url, status, message):
            "\(url): server answered \(status): \(message)"
        case let .integrity(id, actual):
            "downloaded trace does not match its id \(id) (its SHA-256 is \(actual)) — nothing was written; try again"
        }
    }
}
