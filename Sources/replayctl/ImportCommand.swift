import ArgumentParser
import Foundation
import TraceFormat

struct Import: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Convert a perf.data (perf sched record) or trace.dat (trace-cmd record) into a .rpl trace.",
        discussion: """
            The kind is detected from the file's magic: `PERFILE2` (perf.data) is read through \
            `perf script --ns -F comm,tid,pid,cpu,time,event,trace` (linux-perf), `\\x17\\x08Dtracing` \
            (trace.dat) through `trace-cmd report -l -R -t` (trace-cmd). trace-cmd's latency format \
            gives each wakeup's interrupt context; perf's text does not, so for perf a wakeup logged \
            while the idle task was current is taken as an interrupt. Missing tracepoints (no \
            sched_waking, no sched_stat_runtime, …) are reported and recorded in the trace's \
            metadata, not fatal. The recorded command's process tree is marked so `replay` selects \
            it by default. See docs/interop.md.
            """)

    @Argument(help: "A perf.data or trace.dat file.") var file: String
    @Option(name: .shortAndLong, help: "The .rpl trace to write.") var output: String

    func run() throws {
        try reportingErrors {
            let kind: ImportSource
            do { kind = try ImportSource.detect(file) } catch let error as ImportError {
                throw CommandError.data(error.description)
            }
            var metadata = TraceMetadata()
            metadata.extra["source"] = file
            metadata.extra["source.format"] = kind.name
            let counts: [String: Int]
            let eventCount: Int
            let taskCount: Int
            let skipped: Int
            let problems: [(line: Int, reason: String)]
            let notes: [String]
            switch kind {
            case .perf:
                var importer = PerfScriptImporter()
                let header = try? runTool("perf", ["script", "-i", file, "--header-only"]) { _ in }
                PerfScriptImporter.metadata(fromHeader: header ?? "", into: &metadata)
                _ = try runTool("perf", PerfScriptImporter.scriptArguments + ["-i", file]) { importer.parse(line: $0) }
                metadata.recorderVersion = "replayctl \(replayctlVersion) import of perf.data"
                metadata.clock = "perf"
                try requireEvents(importer.assembler)
                try importer.write(to: output, metadata: metadata, recordedTgids: importer.recordedRoots())
                (counts, eventCount, taskCount) = (importer.assembler.tracepointCounts, importer.events.count, importer.tasks.count - 1)
                (skipped, problems, notes) = (importer.skippedLines, importer.problems, importer.assembler.missingEventNotes)
            case .traceCmd:
                var importer = TraceCmdImporter()
                _ = try runTool("trace-cmd", TraceCmdImporter.reportArguments + ["-i", file]) { importer.parse(line: $0) }
                if let uname = try? runTool("trace-cmd", ["report", "--uname", "-i", file], { _ in }) {
                    // "Linux vm 6.18.44-fc-v769 x86_64" after a "cpus=N" line.
                    if let line = uname.split(separator: "\n").first(where: { $0.hasPrefix("Linux ") }) {
                        let parts = line.split(separator: " ")
                        if parts.count >= 4 {
                            metadata.hostname = String(parts[1])
                            metadata.kernelRelease = String(parts[2])
                            metadata.architecture = String(parts[3])
                        }
                    }
                }
                if let stat = try? runTool("trace-cmd", ["report", "--stat", "-i", file], { _ in }) { importer.applyStat(stat) }
                metadata.recorderVersion = "replayctl \(replayctlVersion) import of trace-cmd trace.dat"
                metadata.clock = "trace-cmd"
                try requireEvents(importer.assembler)
                try importer.write(to: output, metadata: metadata)
                (counts, eventCount, taskCount) = (importer.assembler.tracepointCounts, importer.events.count, importer.tasks.count - 1)
                (skipped, problems, notes) = (importer.assembler.skippedLines, importer.assembler.problems, importer.assembler.missingEventNotes)
            }
            printError("imported \(eventCount) events of \(taskCount) tasks from \(kind.name) into \(output)"
                       + (skipped > 0 ? "; \(skipped) lines skipped" : ""))
            printError("  tracepoints: " + counts.keys.sorted().map { "\($0) \(counts[$0]!)" }.joined(separator: ", "))
            for note in notes { printError("  missing: \(note)") }
            for p in problems.prefix(5) { printError("  line \(p.line): \(p.reason)") }
        }
    }

    private func requireEvents(_ assembler: SchedEventAssembler) throws {
        guard !assembler.events.isEmpty else {
            throw CommandError.data("\(file): no scheduler events — record with `perf sched record -- CMD` or "
                                    + "`trace-cmd record --no-filter -d -e sched:sched_switch -e sched:sched_waking … -- CMD`")
        }
    }

    /// Runs `tool arguments`, calling `line` for each stdout line as it arrives; returns the
    /// stdout text only when `line` is a no-op caller wanting it (small outputs).
    @discardableResult
    private func runTool(_ tool: String, _ arguments: [String], _ line: (Substring) -> Void) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [tool] + arguments
        let pipe = Pipe()
        let errorFile = FileManager.default.temporaryDirectory.appendingPathComponent("replayctl-import-\(getpid()).err")
        _ = FileManager.default.createFile(atPath: errorFile.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: errorFile) }
        process.standardOutput = pipe
        process.standardError = try FileHandle(forWritingTo: errorFile)
        process.standardInput = FileHandle.nullDevice
        do { try process.run() } catch {
            throw CommandError(message: "cannot run \(tool): \(error.localizedDescription) — install \(tool == "perf" ? "linux-perf" : tool)",
                               code: ExitStatus.software)
        }
        var pending = Data()
        var kept = ""
        let reader = pipe.fileHandleForReading
        while true {
            let chunk = reader.availableData
            if chunk.isEmpty { break }
            pending.append(chunk)
            if let last = pending.lastIndex(of: 0x0A) {
                let text = String(decoding: pending[pending.startIndex...last], as: UTF8.self)
                for l in text.split(separator: "\n") { line(l) }
                if kept.utf8.count < 1 << 20 { kept += text }
                pending = Data(pending[pending.index(after: last)...])
            }
        }
        if !pending.isEmpty {
            let text = String(decoding: pending, as: UTF8.self)
            line(Substring(text))
            kept += text
        }
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            let message = (try? String(contentsOf: errorFile, encoding: .utf8)) ?? ""
            throw CommandError.data("\(file): `\(tool) \(arguments.joined(separator: " "))` failed (exit \(process.terminationStatus)): \(message.prefix(400))")
        }
        return kept
    }
}
