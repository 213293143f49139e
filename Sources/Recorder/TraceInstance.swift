import CTraceFS
import Foundation

/// A private tracefs instance (`instances/<name>`) owned by one recording. The top-level
/// buffer is never touched. Destroyed by `destroy()` or, as a last resort, by `deinit`.
final class TraceInstance {
    /// Prefix of every instance this tool creates; the pid of the owner follows.
    static let namePrefix = "replayctl-"
    let name: String
    let tracingDirectory: String
    /// `<tracingDirectory>/instances/<name>`.
    let directory: String
    private(set) var pointer: OpaquePointer?

    /// Finds (mounting if needed) tracefs and returns its directory.
    /// - Throws: `RecorderError.tracefsUnavailable` or `.permission`.
    static func tracingDirectory() throws -> String {
        guard let dir = tracefs_tracing_dir() else {
            let code = errno
            if geteuid() != 0 { throw RecorderError.permission(what: "find or mount tracefs", reason: errnoText(code)) }
            throw RecorderError.tracefsUnavailable(reason: "libtracefs found no tracefs mount and could not mount one (\(errnoText(code)))")
        }
        let path = String(cString: dir)
        if access(path + "/instances", W_OK) != 0 {
            throw RecorderError.permission(what: "create tracefs instances in \(path)/instances", reason: errnoText())
        }
        return path
    }

    /// Creates `instances/<name>` with tracing off; fails if it exists.
    init(name: String) throws {
        self.name = name
        tracingDirectory = try Self.tracingDirectory()
        directory = "\(tracingDirectory)/instances/\(name)"
        if FileManager.default.fileExists(atPath: directory) {
            throw RecorderError.tracefs(operation: "tracefs_instance_create", path: directory, reason: "it already exists — another recorder of this process is using it")
        }
        guard let p = tracefs_instance_create(name) else {
            throw tracefsFailure("tracefs_instance_create", path: directory)
        }
        pointer = p
        // A new instance records at once; keep it quiet until everything is set up.
        _ = tracefs_trace_off(p)
    }

    deinit { destroy() }

    /// Writes `value` to the instance's `file`.
    func write(_ file: String, _ value: String) throws {
        guard let p = pointer else { throw RecorderError.invalidState("instance \(name) already destroyed") }
        if tracefs_instance_file_write(p, file, value) < 0 {
            throw tracefsFailure("writing `\(value)` to", path: "\(directory)/\(file)")
        }
    }

    /// Reads the instance's `file` (nil if it cannot).
    func read(_ file: String) -> String? { readSmallFile("\(directory)/\(file)") }

    /// Enables `<system>/<event>` in this instance (`tracefs_event_enable`).
    func enable(system: String, event: String) throws {
        guard let p = pointer else { throw RecorderError.invalidState("instance \(name) already destroyed") }
        if tracefs_event_enable(p, system, event) < 0 {
            throw tracefsFailure("tracefs_event_enable(\(system)/\(event))", path: directory)
        }
    }

    /// Sets the per-CPU ring-buffer size (kilobytes) of every CPU.
    func setBufferSize(kilobytes: Int) throws {
        guard let p = pointer else { throw RecorderError.invalidState("instance \(name) already destroyed") }
        if tracefs_instance_set_buffer_size(p, kilobytes, -1) < 0 {
            throw tracefsFailure("tracefs_instance_set_buffer_size(\(kilobytes) KiB)", path: directory)
        }
    }

    func traceOn() throws {
        guard let p = pointer, tracefs_trace_on(p) >= 0 else { throw tracefsFailure("tracefs_trace_on", path: directory) }
    }

    func traceOff() {
        if let p = pointer { _ = tracefs_trace_off(p) }
    }

    /// Opens `per_cpu/cpu<N>/trace_pipe_raw` with O_CLOEXEC so a spawned workload does not
    /// inherit it (libtracefs's own open lacks it, and the inherited fd makes the instance
    /// impossible to remove).
    func openRawPipe(cpu: Int) throws -> Int32 {
        guard let p = pointer else { throw RecorderError.invalidState("instance \(name) already destroyed") }
        let file = "per_cpu/cpu\(cpu)/trace_pipe_raw"
        let fd = tracefs_instance_file_open(p, file, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        if fd < 0 { throw tracefsFailure("tracefs_instance_file_open", path: "\(directory)/\(file)") }
        return fd
    }

    /// Lost events of `cpu` from `per_cpu/cpu<N>/stats`: overrun + commit overrun + dropped
    /// events (the true count; the kbuffer "missed events" flag under-counts). Nil if unreadable.
    func lostEvents(cpu: Int) -> UInt64? {
        guard let text = read("per_cpu/cpu\(cpu)/stats") else { return nil }
        var lost: UInt64 = 0
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 1)
            guard parts.count == 2 else { continue }
            let key = parts[0].trimmingCharacters(in: .whitespaces)
            if key == "overrun" || key == "commit overrun" || key == "dropped events" {
                lost += UInt64(parts[1].trimmingCharacters(in: .whitespaces)) ?? 0
            }
        }
        return lost
    }

    /// Size in bytes of one ring-buffer sub-buffer of this instance (what one read returns).
    func subbufferSize() -> Int {
        if let text = read("buffer_subbuf_size_kb"), let kb = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)), kb > 0 {
            return kb * 1024
        }
        return Int(getpagesize())
    }

    /// Turns tracing off and removes the instance. Idempotent; errors are returned, not thrown,
    /// because this runs on exit paths.
    @discardableResult
    func destroy() -> String? {
        guard let p = pointer else { return nil }
        pointer = nil
        _ = tracefs_trace_off(p)
        var failure: String?
        if tracefs_instance_destroy(p) < 0 {
            failure = "cannot remove tracefs instance \(directory): \(errnoText()) — remove it with `rmdir \(directory)`"
        }
        tracefs_instance_free(p)
        return failure
    }

    /// Removes instances named `<prefix><pid>…` whose pid is no longer running (left by a
    /// recorder killed with SIGKILL: they keep recording with their buffers allocated).
    /// Returns the names removed.
    static func reapStale() -> [String] {
        // POSIX basic regex: `+` is literal there.
        guard let list = tracefs_instances("^replayctl-[0-9][0-9]*") else { return [] }
        defer { tracefs_list_free(list) }
        var names: [String] = []
        var i = 0
        while let entry = list[i] {
            names.append(String(cString: entry))
            i += 1
        }
        var reaped: [String] = []
        for name in names {
            let digits = name.dropFirst(namePrefix.count).prefix { $0.isNumber }
            guard let pid = Int32(digits), pid != getpid() else { continue }
            if kill(pid, 0) == 0 || errno != ESRCH { continue }
            guard let p = tracefs_instance_alloc(nil, name) else { continue }
            _ = tracefs_trace_off(p)
            if tracefs_instance_destroy(p) == 0 { reaped.append(name) }
            tracefs_instance_free(p)
        }
        return reaped
    }
}
