import Foundation

/// Everything that can go wrong while recording. Each case names what failed, where, the
/// errno text when there is one, and the fix when there is one.
public enum RecorderError: Error, Equatable, CustomStringConvertible {
    /// Not allowed to use tracefs or another kernel interface.
    case permission(what: String, reason: String)
    /// tracefs is not mounted and could not be mounted.
    case tracefsUnavailable(reason: String)
    /// A tracefs operation failed (`operation` names the libtracefs call or file).
    case tracefs(operation: String, path: String, reason: String)
    /// An event format file under `events/` cannot be used.
    case badEventFormat(path: String, reason: String)
    /// The command to record cannot be started.
    case cannotStartCommand(command: String, reason: String)
    /// A process given with `-p` does not exist.
    case noSuchProcess(pid: Int32)
    /// An option value is out of range.
    case invalidOption(String)
    /// The session was used out of order (stop before start, start twice).
    case invalidState(String)
    /// Writing the trace failed.
    case output(String)

    /// True for errors the user fixes by running with more privilege.
    public var isPermissionProblem: Bool {
        if case .permission = self { return true }
        return false
    }

    public var description: String {
        switch self {
        case let .permission(what, reason):
            "cannot \(what): \(reason) — run as root (tracefs needs CAP_SYS_ADMIN), e.g. `sudo replayctl record …`"
        case let .tracefsUnavailable(reason):
            "tracefs is not available: \(reason) — run as root, or mount it with `mount -t tracefs nodev /sys/kernel/tracing`"
        case let .tracefs(operation, path, reason):
            "\(operation) failed on \(path): \(reason)"
        case let .badEventFormat(path, reason):
            "cannot use the event format \(path): \(reason) — this kernel's sched events differ from what replayctl knows; please report it with the file attached"
        case let .cannotStartCommand(command, reason):
            "cannot start `\(command)`: \(reason) — check the command exists and is executable (PATH is searched)"
        case let .noSuchProcess(pid):
            "no process with pid \(pid) — check it with `ps -p \(pid)`"
        case let .invalidOption(text):
            text
        case let .invalidState(text):
            "recording session used out of order: \(text)"
        case let .output(text):
            text
        }
    }
}

/// Text of the current `errno`.
func errnoText(_ code: Int32 = errno) -> String {
    String(cString: strerror(code))
}

/// Turns a failed tracefs call into a `RecorderError`, classifying EACCES/EPERM as permission problems.
func tracefsFailure(_ operation: String, path: String, code: Int32 = errno) -> RecorderError {
    if code == EACCES || code == EPERM {
        return .permission(what: "\(operation) on \(path)", reason: errnoText(code))
    }
    return .tracefs(operation: operation, path: path, reason: code == 0 ? "failed" : errnoText(code))
}
