import ArgumentParser
import Foundation
import Stats

struct Compare: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compare replay results of one trace: is each other set better or worse than the base?",
        discussion: """
            Each FILE is written by `replayctl replay --output FILE.json` (schema in \
            docs/results-json.md); all must be replays of the same trace (exit 65 otherwise). \
            For every metric the table shows the base value, each other value, the change, its \
            95 % bootstrap confidence interval over runs, and the verdict; a plain verdict line \
            per compared set follows. A metric is worse or better only when the Mann–Whitney \
            test on per-run figures is significant after Holm correction, the interval excludes \
            0 and the change is at least --min-effect. Method and formats: docs/compare.md.
            """)

    @Argument(help: "The base results file.") var base: String
    @Argument(help: "Results to compare with the base.") var others: [String] = []
    @Flag(help: "Print JSON (schema replayctl-compare/1) for scripts.") var json = false
    @Flag(help: "Print a Markdown table.") var markdown = false
    @Option(help: "Also write a self-contained HTML report with CDFs and per-task bars.") var html: String?
    @Option(help: "Significance level.") var alpha = 0.05
    @Option(name: .customLong("min-effect"), help: "Smallest change called better or worse, in percent.") var minEffect = 2.0
    @Option(help: "Bootstrap resamples per metric.") var resamples = 2000
    @Option(help: "Seed of the bootstrap (same seed, same intervals).") var seed: UInt64 = 0x5EED

    func validate() throws {
        guard !others.isEmpty else { throw ValidationError("give at least one results file to compare with the base") }
        guard alpha > 0, alpha < 0.5 else { throw ValidationError("--alpha must be in (0, 0.5), e.g. 0.05") }
        guard minEffect >= 0, minEffect < 100 else { throw ValidationError("--min-effect is a percentage in [0, 100), e.g. 2") }
        guard resamples >= 100 else { throw ValidationError("--resamples must be at least 100 (default 2000)") }
        guard !(json && markdown) else { throw ValidationError("choose one of --json and --markdown") }
    }

    func run() throws {
        try reportingErrors {
            do {
                let baseInput = try Self.load(base)
                let otherInputs = try others.map(Self.load)
                var options = ComparisonOptions()
                options.alpha = alpha
                options.minimumEffect = minEffect / 100
                options.resamples = resamples
                options.seed = seed
                let report = try ComparisonReport(base: baseInput, others: otherInputs, options: options)
                if json {
                    print(try report.json())
                } else if markdown {
                    print(report.markdown(), terminator: "")
                } else {
                    print(report.text())
                }
                if let html {
                    do {
                        try Data(report.html().utf8).write(to: URL(fileURLWithPath: html))
                    } catch {
                        throw CommandError(message: "\(html): cannot write the HTML report: \(error.localizedDescription)", code: ExitStatus.ioError)
                    }
                    if !json { printError("wrote \(html)") }
                }
            } catch let error as ResultsError {
                let code: Int32
                if case let .io(_, reason) = error, reason == "no such file" { code = ExitStatus.noInput } else { code = ExitStatus.dataError }
                throw CommandError(message: error.description, code: code)
            }
        }
    }

    static func load(_ path: String) throws -> ComparisonReport.Input {
        guard FileManager.default.fileExists(atPath: path) else { throw ResultsError.io(file: path, reason: "no such file") }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ResultsError.io(file: path, reason: "cannot read the file (permission?)")
        }
        return ComparisonReport.Input(label: path, results: try ReplayResults.decode(data, file: path))
    }
}
