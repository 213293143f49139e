import Foundation

/// /proc facts about forked children, taken by the reader that decoded the fork (within a
/// poll interval of it, while the child most likely still lives and before its tid can be
/// reused) and handed to the merging thread, which would otherwise read /proc a second time
/// much later.
///
/// Thread-safe. Entries are taken (removed) by the merger when it converts the fork record.
final class TaskSnapshots: @unchecked Sendable {
    private let lock = NSLock()
    private struct Key: Hashable {
        var tid: Int32
        var timestamp: UInt64
    }

    /// Per fork (child tid and fork time): what /proc said (nil inside when the child was gone).
    private var byFork: [Key: ProcTaskInfo?] = [:]

    /// Stores the snapshot of child `tid` forked at `timestamp` (nil when /proc had nothing).
    func put(_ tid: Int32, forkedAt timestamp: UInt64, _ info: ProcTaskInfo?) {
        lock.lock()
        byFork[Key(tid: tid, timestamp: timestamp)] = .some(info)
        lock.unlock()
    }

    /// Removes and returns the snapshot of the fork of `tid` at `timestamp`: `.some(nil)` when
    /// the child was gone, `nil` when no snapshot was taken.
    func take(_ tid: Int32, forkedAt timestamp: UInt64) -> ProcTaskInfo?? {
        lock.lock()
        defer { lock.unlock() }
        return byFork.removeValue(forKey: Key(tid: tid, timestamp: timestamp))
    }

    /// Snapshots not taken yet.
    var count: Int { lock.withLock { byFork.count } }
}
