import Foundation

/// The result of `replayctl compare`: a base results file against one or more others,
/// rendered as a text table, Markdown, JSON (schema `replayctl-compare/1`) or HTML.
public struct ComparisonReport: Sendable {
    /// A results file and the label it is shown under.
    public struct Input: Sendable {
        /// Label (the file name as given).
        public var label: String
        public var results: ReplayResults

        /// A labelled results file.
        public init(label: String, results: ReplayResults) {
            self.label = label
            self.results = results
        }
    }

    public var base: Input
    public var others: [Input]
    public var options: ComparisonOptions
    /// One per entry of `others`, same order.
    public var comparisons: [SetComparison]

    /// Compares every other input with the base.
    /// - Throws: `ResultsError.differentTraces` when an input replayed another trace.
    public init(base: Input, others: [Input], options: ComparisonOptions = ComparisonOptions()) throws {
        for other in others {
            try ReplayResults.checkSameTrace(base: base.results, baseFile: base.label, other: other.results, otherFile: other.label)
        }
        self.base = base
        self.others = others
        self.options = options
        comparisons = others.map {
            Comparison.compare(base: base.results, other: $0.results, baseLabel: base.label, otherLabel: $0.label, options: options)
        }
    }

    // MARK: Formatting helpers

    /// A duration in nanoseconds with a readable unit: "850 ns", "4.21 µs", "12.5 ms", "1.204 s".
    public static func formatNanoseconds(_ value: Double?) -> String {
        guard let v = value else { return "-" }
        switch abs(v) {
        case ..<1000: return String(format: "%.0f ns", v)
        case ..<10_000: return String(format: "%.2f µs", v / 1e3)
        case ..<1_000_000: return String(format: "%.1f µs", v / 1e3)
        case ..<10_000_000: return String(format: "%.2f ms", v / 1e6)
        case ..<1_000_000_000: return String(format: "%.1f ms", v / 1e6)
        default: return String(format: "%.3f s", v / 1e9)
        }
    }

    /// A relative change as "+10.2%".
    public static func formatPercent(_ value: Double?) -> String {
        guard let v = value, v.isFinite else { return value == nil ? "-" : "∞" }
        return String(format: "%+.1f%%", v * 100)
    }

    static func formatInterval(_ ci: ConfidenceInterval?) -> String {
        guard let ci else { return "" }
        return "[\(formatPercent(ci.lower)), \(formatPercent(ci.upper))]"
    }

    static func marker(_ m: MetricComparison) -> String {
        switch m.verdict {
        case .worse: return "worse"
        case .better: return "better"
        case .noDifference: return m.significant ? "~" : ""
        }
    }

    /// One line per compared set: "other.json vs base.json: WORSE — wakeup latency p99 +10.2% [+7.0%, +13.1%]".
    public func verdictLines() -> [String] {
        comparisons.map { c in
            let deciding = c.metrics.filter { c.decidingMetrics.contains($0.metric) }
                .map { "\($0.label) \(Self.formatPercent($0.delta)) \(Self.formatInterval($0.deltaInterval))" }
            let word: String
            switch c.verdict {
            case .worse: word = "WORSE"
            case .better: word = "BETTER"
            case .noDifference: word = "NO DETECTABLE DIFFERENCE"
            }
            let runs = "(\(base.results.measuredRuns.count) vs \(others.first { $0.label == c.other }?.results.measuredRuns.count ?? 0) runs)"
            return "\(c.other) vs \(c.base): \(word) \(runs)" + (deciding.isEmpty ? "" : " — " + deciding.joined(separator: "; "))
        }
    }

    func describe(_ input: Input) -> String {
        let m = input.results.machine
        return "\(input.label): kernel \(m.kernelRelease), \(m.hostname), \(input.results.measuredRuns.count) measured runs"
            + (input.results.runs.count > input.results.measuredRuns.count ? " (+\(input.results.runs.count - input.results.measuredRuns.count) warmup)" : "")
    }

    /// Replay options that differ between the base and another input, one line each
    /// ("cpuLatencyQoS: on in a.json, off in b.json"): a difference the kernels did not make.
    public var optionDifferences: [String] {
        var lines: [String] = []
        for o in others {
            for key in Set(base.results.options.keys).union(o.results.options.keys).sorted()
            where base.results.options[key] != o.results.options[key] {
                lines.append("\(key): \(base.results.options[key] ?? "unset") in \(base.label), \(o.results.options[key] ?? "unset") in \(o.label)")
            }
        }
        return lines
    }

    // MARK: Text

    /// The terminal table, in the spirit of mmtests' compare-kernels.
    public func text() -> String {
        var lines: [String] = []
        let trace = base.results.trace
        lines.append("trace \(trace.path) (sha256 \(trace.sha256.prefix(12))…), recorded on \(trace.recordedKernel)")
        lines.append("base  \(describe(base))")
        for (k, o) in others.enumerated() { lines.append("[\(k + 1)]   \(describe(o))") }
        for d in optionDifferences { lines.append("WARNING: replayed with different options: \(d)") }
        lines.append("")
        var header = pad("metric", 24, left: true) + pad("base", 12)
        for k in others.indices { header += pad("[\(k + 1)]", 12) + pad("delta", 9) + "  " + pad("95% CI of delta", 20, left: true) + pad("", 7, left: true) }
        lines.append(header)
        for (row, metric) in options.metrics.enumerated() {
            let first = comparisons.first?.metrics[row]
            var line = pad((first?.label ?? metric.label) + (metric.isPrimary ? " *" : ""), 24, left: true)
            line += pad(Self.formatNanoseconds(first?.baseValue), 12)
            for c in comparisons {
                let m = c.metrics[row]
                line += pad(Self.formatNanoseconds(m.otherValue), 12) + pad(Self.formatPercent(m.delta), 9) + "  "
                line += pad(Self.formatInterval(m.deltaInterval), 20, left: true) + pad(Self.marker(m), 7, left: true)
            }
            lines.append(line.trimmingCharacters(in: .whitespaces))
        }
        lines.append("")
        lines.append("values: mean over runs of each run's figure; * primary metric (decides the verdict); delta: [n]/base − 1, lower is better;")
        lines.append(String(format: "worse/better: Mann–Whitney p < %g after Holm correction, %g%% CI of the delta excludes 0, |delta| ≥ %g%%; ~ significant but not both other conditions",
                            options.alpha, (1 - options.alpha) * 100, options.minimumEffect * 100))
        lines.append("")
        lines.append(contentsOf: verdictLines())
        return lines.joined(separator: "\n")
    }

    // MARK: Markdown

    /// The same as `text()` as a Markdown table, for mailing lists and pull requests.
    public func markdown() -> String {
        var out = "### replayctl compare: \(base.results.trace.path)\n\n"
        out += "- base: \(describe(base))\n"
        for (k, o) in others.enumerated() { out += "- [\(k + 1)] \(describe(o))\n" }
        for d in optionDifferences { out += "- **replayed with different options**: \(d)\n" }
        out += "\n| metric | base |" + others.indices.map { " [\($0 + 1)] | delta | 95% CI | verdict |" }.joined() + "\n"
        out += "|---|---:|" + others.indices.map { _ in "---:|---:|---|---|" }.joined() + "\n"
        for (row, metric) in options.metrics.enumerated() {
            let first = comparisons.first?.metrics[row]
            out += "| \(metric.label)\(metric.isPrimary ? " **(primary)**" : "") | \(Self.formatNanoseconds(first?.baseValue)) |"
            for c in comparisons {
                let m = c.metrics[row]
                let word = m.verdict == .noDifference ? (m.significant ? "~" : "") : "**\(m.verdict.rawValue)**"
                out += " \(Self.formatNanoseconds(m.otherValue)) | \(Self.formatPercent(m.delta)) | \(Self.formatInterval(m.deltaInterval)) | \(word) |"
            }
            out += "\n"
        }
        out += "\n" + verdictLines().map { "**\($0)**" }.joined(separator: "\n\n") + "\n"
        out += String(format: "\n<sub>Mann–Whitney U on per-run figures (Holm-corrected), %g%% bootstrap CI over runs, minimum effect %g%%; lower is better.</sub>\n",
                      (1 - options.alpha) * 100, options.minimumEffect * 100)
        return out
    }

    // MARK: JSON

    /// `compare --json`, schema `replayctl-compare/1` (docs/compare.md).
    public struct JSONForm: Codable, Sendable {
        public struct Set: Codable, Sendable {
            public var file: String
            public var kernel: String
            public var hostname: String
            public var measuredRuns: Int
            public var warmupRuns: Int
        }
        public struct Compared: Codable, Sendable {
            public var file: String
            public var kernel: String
            public var hostname: String
            public var measuredRuns: Int
            public var warmupRuns: Int
            public var verdict: Verdict
            public var decidingMetrics: [String]
            public var metrics: [MetricComparison]
        }
        public var schema = "replayctl-compare/1"
        public var trace: TraceIdentity
        public var alpha: Double
        public var minimumEffect: Double
        public var bootstrapResamples: Int
        public var primaryMetrics: [String]
        public var base: Set
        public var compared: [Compared]
    }

    /// The JSON form's value.
    public var jsonForm: JSONForm {
        func set(_ i: Input) -> JSONForm.Set {
            JSONForm.Set(file: i.label, kernel: i.results.machine.kernelRelease, hostname: i.results.machine.hostname,
                         measuredRuns: i.results.measuredRuns.count, warmupRuns: i.results.runs.count - i.results.measuredRuns.count)
        }
        return JSONForm(
            trace: base.results.trace, alpha: options.alpha, minimumEffect: options.minimumEffect, bootstrapResamples: options.resamples,
            primaryMetrics: options.metrics.filter(\.isPrimary).map(\.rawValue), base: set(base),
            compared: zip(others, comparisons).map { o, c in
                let s = set(o)
                return JSONForm.Compared(file: s.file, kernel: s.kernel, hostname: s.hostname, measuredRuns: s.measuredRuns,
                                         warmupRuns: s.warmupRuns, verdict: c.verdict, decidingMetrics: c.decidingMetrics, metrics: c.metrics)
            })
    }

    /// `compare --json` text.
    public func json() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return String(decoding: try encoder.encode(jsonForm), as: UTF8.self)
    }
}

func pad(_ s: String, _ width: Int, left: Bool = false) -> String {
    if s.count >= width { return left ? s + " " : " " + s }
    let fill = String(repeating: " ", count: width - s.count)
    return left ? s + fill : fill + s
}
