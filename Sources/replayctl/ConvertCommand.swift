import ArgumentParser
import Foundation
import TraceFormat

struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Re-encode a .rpl trace in this replayctl's format version.",
        discussion: """
            Reads every event, task and the metadata of TRACE (any version this replayctl reads) \
            and writes them to OUTPUT in the current version, which is smaller. Task indices, \
            event order and every field are kept; the task rows and metadata are the trace's \
            final ones. A trace with a damaged chunk is refused.
            """)

    @Argument(help: "A .rpl trace.") var trace: String
    @Option(name: .shortAndLong, help: "The .rpl trace to write (not TRACE itself).") var output: String

    func run() throws {
        try reportingErrors {
            guard URL(fileURLWithPath: trace).standardized.path != URL(fileURLWithPath: output).standardized.path else {
                throw CommandError.usage("the output must be another file than \(trace)")
            }
            let reader = try TraceReader(path: trace)
            let events = try TraceWriter.rewrite(reader, to: output)
            let size = (try? FileManager.default.attributesOfItem(atPath: output)[.size] as? UInt64) ?? 0
            printError(String(format: "wrote %@: %llu events, format %d.%d → %d.%d, %llu → %llu bytes (%.2f bytes/event)",
                              output, events, Int(reader.version.major), Int(reader.version.minor),
                              Int(RPLFormat.majorVersion), Int(RPLFormat.minorVersion), reader.fileSize, size,
                              Double(size) / Double(max(1, events))))
        }
    }
}
