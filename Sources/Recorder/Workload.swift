import CTraceFS
import Foundation

/// The recorded command, started with posix_spawn in its own process group, with default
/// signal dispositions, an empty signal mask and only fds 0–2 inherited.
final class Workload {
    let pid: Int32
    let argv: [String]
    private(set) var exitStatus: Int32?

    init(argv: [String]) throws {
        self.argv = argv
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))
        posix_spawnattr_setpgroup(&attr, 0)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for sig in [SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGQUIT] { sigaddset(&defaults, sig) }
        posix_spawnattr_setsigdefault(&attr, &defaults)
        var mask = sigset_t()
        sigemptyset(&mask)
        posix_spawnattr_setsigmask(&attr, &mask)
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        replayctl_recorder_spawn_closefrom(&actions, 3)
        var cArgs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) }
        cArgs.append(nil)
        defer { for p in cArgs { free(p) } }
        var child: pid_t = 0
        let rc = posix_spawnp(&child, argv[0], &actions, &attr, cArgs, environ)
        guard rc == 0 else {
            throw RecorderError.cannotStartCommand(command: argv.joined(separator: " "), reason: errnoText(rc))
        }
        pid = child
    }

    /// Reaps the command if it has ended; returns its status (128 + signal when killed).
    @discardableResult
    func poll(block: Bool = false) -> Int32? {
        if let exitStatus { return exitStatus }
        var status: Int32 = 0
        while true {
            let rc = waitpid(pid, &status, block ? 0 : WNOHANG)
            if rc == pid { break }
            if rc < 0 && errno == EINTR { if block { continue } else { return nil } }
            return nil
        }
        let signal = status & 0x7F
        exitStatus = signal == 0 ? (status >> 8) & 0xFF : 128 + signal
        return exitStatus
    }

    /// Sends `signal` to the command's whole process group.
    func signalGroup(_ signal: Int32) { kill(-pid, signal) }
}
