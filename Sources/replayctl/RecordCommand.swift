import ArgumentParser
import Foundation
import Recorder

struct Record: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Record scheduler events of a command, of running processes, or of the whole system.",
        discussion: """
            replayctl record -o FILE -- COMMAND [ARGS…]   records COMMAND's whole process tree and \
            returns its exit status.
            replayctl record -o FILE -p PID [-p PID…]     records running processes (and their threads \
            and children) until they exit, --duration ends, or Ctrl-C.
            replayctl record -o FILE -a --duration 10s    records every task.

            Events come from a private tracefs instance (replayctl-<pid>-<n>; the top-level buffer is \
            never changed) with the mono trace clock: sched_switch, sched_waking, sched_wakeup_new, \
            sched_process_fork/exec/exit, sched_migrate_task and sched_stat_runtime, and where the kernel \
            has them power/pm_qos_add/update/remove_request (the CPU latency QoS requests made through \
            /dev/cpu_dma_latency, kept in the trace's metadata for replay to reproduce). Needs root. \
            Ctrl-C or SIGTERM ends the recording cleanly (the signal is passed on to COMMAND). \
            Events the kernel drops are counted in the trace and reported.
            """)

    @Option(name: .shortAndLong, help: "The .rpl file to write.") var output: String = "trace.rpl"
    @Flag(name: .customShort("a"), help: "Record the whole system.") var allTasks = false
    @Option(name: .customShort("p"), parsing: .singleValue, help: "Record this running process (repeatable, or comma-separated).")
    var pid: [String] = []
    @Option(help: "Stop after this long (e.g. 10s, 500ms, 2m).") var duration: String?
    @Option(help: "Ring buffer per CPU (e.g. 4M, 512K; a plain number is KiB).") var bufferSize: String = "4M"
    @Flag(help: "Do not record sched_stat_runtime (smaller traces; CPU time of runs whose switch-in the kernel did not log becomes approximate).")
    var noRuntime = false
    @Flag(help: "Do not record the CPU latency QoS requests (power/pm_qos_*_request).") var noPmQos = false
    @Flag(name: .shortAndLong, help: "No progress line and no summary.") var quiet = false
    @Argument(parsing: .postTerminator, help: "The command to record (after --).") var command: [String] = []

    func validate() throws {
        let modes = (command.isEmpty ? 0 : 1) + (allTasks ? 1 : 0) + (pid.isEmpty ? 0 : 1)
        if modes != 1 {
            throw ValidationError("give exactly one of: -- COMMAND, -a, -p PID")
        }
        _ = try parsedPids()
        if let duration, Self.parseDuration(duration) == nil {
            throw ValidationError("cannot read the duration `\(duration)` — use e.g. 10s, 500ms, 2m")
        }
        if Self.parseSize(bufferSize) == nil {
            throw ValidationError("cannot read the buffer size `\(bufferSize)` — use e.g. 4M, 512K or a number of KiB")
        }
    }

    func parsedPids() throws -> [Int32] {
        try pid.flatMap { $0.split(separator: ",") }.map { text in
            guard let value = Int32(text.trimmingCharacters(in: .whitespaces)), value > 0 else {
                throw ValidationError("`\(text)` is not a process id")
            }
            return value
        }
    }

    static func parseDuration(_ text: String) -> UInt64? {
        let units: [(String, Double)] = [("ms", 1e6), ("us", 1e3), ("ns", 1), ("s", 1e9), ("m", 60e9), ("h", 3600e9)]
        for (suffix, scale) in units where text.hasSuffix(suffix) {
            guard let v = Double(text.dropLast(suffix.count)), v > 0 else { return nil }
            return UInt64(v * scale)
        }
        guard let v = Double(text), v > 0 else { return nil }
        return UInt64(v * 1e9)
    }

    static func parseSize(_ text: String) -> Int? {
        let upper = text.uppercased()
        let scales: [(String, Double)] = [("KIB", 1), ("MIB", 1024), ("GIB", 1048576), ("K", 1), ("M", 1024), ("G", 1048576)]
        for (suffix, scale) in scales where upper.hasSuffix(suffix) {
            guard let v = Double(upper.dropLast(suffix.count)), v > 0 else { return nil }
            return Int(v * scale)
        }
        return Int(text).flatMap { $0 > 0 ? $0 : nil }
    }

    func run() throws {
        let status: Int32 = try reportingErrors {
            let target: RecordingTarget = allTasks ? .system : (!pid.isEmpty ? .pids(try parsedPids()) : .command(command))
            var options = RecordingOptions(target: target, outputPath: output)
            options.bufferSizeKilobytes = Self.parseSize(bufferSize) ?? 4096
            options.recordRuntime = !noRuntime
            options.recordCPULatency = !noPmQos
            options.recorderVersion = "replayctl \(replayctlVersion)"
            options.recorderCommandLine = CommandLine.arguments
            RecordingSignals.install()
            let session = try RecordingSession(options: options)
            if !quiet, !session.reapedInstances.isEmpty {
                printError("replayctl: removed stale tracefs instances of dead recorders: \(session.reapedInstances.joined(separator: ", "))")
            }
            try session.start()
            let summary = try recordUntilDone(session, target: target)
            if !quiet { printSummary(summary) }
            return summary.exitStatus ?? 0
        }
        if status != 0 { throw ExitCode(status) }
    }

    private func recordUntilDone(_ session: RecordingSession, target: RecordingTarget) throws -> RecordingSummary {
        let limit = duration.flatMap(Self.parseDuration)
        let showProgress = !quiet && isatty(2) == 1
        var lastProgress: UInt64 = 0
        var lastEvents: UInt64 = 0
        var signalledAt: UInt64?
        while true {
            // The per-CPU stats files are read only when the line is shown (every 500 ms).
            let p = session.progress(countingLost: false)
            if case .command = target, session.workloadExitStatus() != nil { break }
            if case let .pids(pids) = target, pids.allSatisfy({ kill($0, 0) != 0 && errno == ESRCH }) { break }
            if let limit, p.elapsedNanoseconds >= limit {
                guard case .command = target else { break }
                if signalledAt == nil { session.signalWorkload(SIGTERM); signalledAt = p.elapsedNanoseconds }
            }
            if RecordingSignals.received != 0 {
                // The handler passed the signal on to the command; give it 2 s to exit so its
                // end is in the trace, then kill it.
                guard case .command = target else { break }
                if signalledAt == nil { signalledAt = p.elapsedNanoseconds }
            }
            if let s = signalledAt, p.elapsedNanoseconds > s + 2_000_000_000 {
                session.signalWorkload(SIGKILL)
            }
            if showProgress && p.elapsedNanoseconds >= lastProgress + 500_000_000 {
                let seconds = Double(p.elapsedNanoseconds - lastProgress) / 1e9
                let rate = lastProgress == 0 ? 0 : Double(p.events - lastEvents) / seconds
                let lostEvents = session.progress().lostEvents
                let lost = lostEvents > 0 ? "  LOST \(lostEvents)" : "  lost 0"
                let line = "\rrecording \(formatSeconds(p.elapsedNanoseconds))  \(p.events) events  \(Int(rate)) events/s\(lost)  \(formatBytes(p.fileBytes))   "
                _ = line.withCString { write(2, $0, strlen($0)) }
                lastProgress = p.elapsedNanoseconds
                lastEvents = p.events
            }
            usleep(5_000)  // the command's end is noticed within 5 ms (the recording's wall time includes it)
        }
        if showProgress { _ = "\r\u{1B}[K".withCString { write(2, $0, strlen($0)) } }
        return try session.stop()
    }

    private func printSummary(_ s: RecordingSummary) {
        let seconds = Double(s.durationNanoseconds) / 1e9
        printError("replayctl: recorded \(s.events) events in \(formatSeconds(s.durationNanoseconds)) to \(s.path) "
                   + "(\(formatBytes(s.fileBytes)), \(String(format: "%.2f", s.bytesPerEvent)) bytes/event); "
                   + "\(s.tasks) tasks, \(s.recordedTasks) recorded; \(s.inferredSwitchIns) switch-ins inferred")
        let readerShare = seconds > 0 ? 100 * Double(s.readerCPUNanoseconds) / 1e9 / seconds : 0
        printError("replayctl: readers used \(String(format: "%.3f", Double(s.readerCPUNanoseconds) / 1e9)) s of CPU "
                   + "(\(String(format: "%.1f", readerShare)) % of one core) for \(s.recordsDecoded) raw events")
        if s.totalLostEvents > 0 {
            let perCPU = s.lostEvents.enumerated().filter { $0.element > 0 }.map { "cpu\($0.offset) \($0.element)" }.joined(separator: ", ")
            printError("replayctl: WARNING: THE KERNEL DROPPED \(s.totalLostEvents) EVENTS (\(perCPU)) — the trace is incomplete; "
                       + "record again with a larger --buffer-size (now \(bufferSize) per CPU)")
        } else {
            printError("replayctl: lost 0 events")
        }
        if let calls = s.cpuLatencyCalls, calls > 0 {
            printError("replayctl: \(calls) CPU latency QoS calls (/dev/cpu_dma_latency) kept for replay; `replayctl info` shows them")
        }
        for w in s.warnings { printError("replayctl: warning: \(w)") }
        if let status = s.exitStatus, status != 0 { printError("replayctl: the command exited with status \(status)") }
    }
}
