import ArgumentParser
import Foundation
import TraceFormat

struct Import: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Convert a perf.data from `perf sched record` into a .rpl trace.",
        discussion: """
            Runs `perf script --ns -F comm,tid,pid,cpu,time,event,trace` on the file (linux-perf \
            must be installed). perf's text has no interrupt flags: a wakeup logged while the idle \
            task was current is taken as an interrupt, any other as a task wakeup. The process \
            tree started by perf (its first exec'd child) is marked as the recorded command, so \
            `replay` selects it by default.
            """)

    @Argument(help: "A perf.data file.") var file: String
    @Option(name: .shortAndLong, help: "The .rpl trace to write.") var output: String

    func run() throws {
        try reportingErrors {
            guard let handle = FileHandle(forReadingAtPath: file) else {
                throw CommandError(message: "\(file): no such file", code: ExitStatus.noInput)
            }
            let magic = (try? handle.read(upToCount: 8)).map { [UInt8]($0 ?? Data()) } ?? []
            try? handle.close()
            guard magic == Array("PERFILE2".utf8) else {
                throw CommandError.data("\(file): not a perf.data file (no PERFILE2 magic) — record one with `perf sched record -- COMMAND`")
            }
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["perf", "script", "-i", file, "--ns", "-F", "comm,tid,pid,cpu,time,event,trace"]
            let pipe = Pipe()
            let errors = Pipe()
            process.standardOutput = pipe
            process.standardError = errors
            do { try process.run() } catch {
                throw CommandError(message: "cannot run perf: \(error.localizedDescription) — install linux-perf", code: ExitStatus.software)
            }
            var importer = PerfScriptImporter()
            var pending = Data()
            let reader = pipe.fileHandleForReading
            while true {
                let chunk = reader.availableData
                if chunk.isEmpty { break }
                pending.append(chunk)
                if let last = pending.lastIndex(of: 0x0A) {
                    let text = String(decoding: pending[pending.startIndex...last], as: UTF8.self)
                    for line in text.split(separator: "\n") { importer.parse(line: line) }
                    pending = Data(pending[pending.index(after: last)...])
                }
            }
            if !pending.isEmpty { importer.parse(line: Substring(String(decoding: pending, as: UTF8.self))) }
            process.waitUntilExit()
            guard process.terminationStatus == 0 else {
                let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
                throw CommandError.data("\(file): perf script failed (exit \(process.terminationStatus)): \(message.prefix(400))")
            }
            guard !importer.events.isEmpty else {
                throw CommandError.data("\(file): no scheduler events — record with `perf sched record`")
            }
            // The recorded command: perf forks it before tracing starts and it is named
            // "perf-exec" until it execs; a fork by perf itself also counts.
            var roots = Set<Int32>()
            var perfTids = Set<Int32>()
            for t in importer.tasks where t.comm == "perf" { perfTids.insert(t.tid) }
            for t in importer.tasks where t.comm == "perf-exec" { roots.insert(t.tid) }
            for e in importer.events {
                if case let .fork(parent, child) = e.kind, perfTids.contains(importer.tasks[parent.intValue].tid) {
                    roots.insert(importer.tasks[child.intValue].tid)
                }
            }
            var metadata = TraceMetadata()
            metadata.recorderVersion = "replayctl \(replayctlVersion) import of perf.data"
            metadata.clock = "perf"
            metadata.extra["source"] = file
            try importer.write(to: output, metadata: metadata, recordedTgids: roots)
            printError("imported \(importer.events.count) events of \(importer.tasks.count - 1) tasks into \(output)"
                       + (importer.skippedLines > 0 ? "; \(importer.skippedLines) lines skipped" : ""))
            for p in importer.problems.prefix(5) { printError("  line \(p.line): \(p.reason)") }
        }
    }
}
