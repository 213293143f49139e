import ArgumentParser
import Foundation

/// Version written into traces and results.
let replayctlVersion = "0.1.0"

@main
struct ReplayCtl: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replayctl",
        abstract: "Record real workloads' scheduling, replay them on another kernel, and compare.",
        version: replayctlVersion,
        subcommands: [
            Info.self,
            Replay.self,
            Fidelity.self,
            Import.self,
            Export.self,
            Convert.self,
            Compare.self,
            Record.self,
            Latency.self,
            CorpusCommand.self,
        ]
    )
}
