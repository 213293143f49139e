import Foundation
import Synchronization

private let receivedSignalNumber = Atomic<Int32>(0)
private let forwardProcessGroup = Atomic<Int32>(0)

/// SIGINT / SIGTERM / SIGHUP handling for a recorder: the handler only notes the signal and
/// forwards it to the recorded command's process group; the recording then ends through the
/// normal path (drain, write the footer, destroy the instance).
public enum RecordingSignals {
    /// Installs the handlers (idempotent).
    public static func install() {
        // A parent may have left them blocked (or ignored); make sure they arrive.
        var unblock = sigset_t()
        sigemptyset(&unblock)
        for sig in [SIGINT, SIGTERM, SIGHUP] { sigaddset(&unblock, sig) }
        pthread_sigmask(SIG_UNBLOCK, &unblock, nil)
        for sig in [SIGINT, SIGTERM, SIGHUP] {
            var action = sigaction()
            action.__sigaction_handler.sa_handler = { sig in
                receivedSignalNumber.store(sig, ordering: .relaxed)
                let group = forwardProcessGroup.load(ordering: .relaxed)
                if group > 0 { kill(-group, sig) }
            }
            sigemptyset(&action.sa_mask)
            action.sa_flags = 0
            sigaction(sig, &action, nil)
        }
    }

    /// The last signal received (0: none).
    public static var received: Int32 { receivedSignalNumber.load(ordering: .relaxed) }

    /// Process group that receives forwarded signals (0: none).
    static func forward(to group: Int32) { forwardProcessGroup.store(group, ordering: .relaxed) }
}
