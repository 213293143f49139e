import Foundation
import Testing
@testable import Stats

@Suite struct VerdictRuleTests {
    @Test func clearIncreaseIsWorseAndDecreaseIsBetter() {
        let base = [100.0, 102, 98, 101, 99, 100.5, 99.5, 101.5, 98.5, 100.2]
        let up = base.map { $0 * 1.2 }
        let c = Comparison.compare(metric: .wakeupP99, base: base, other: up)
        #expect(c.verdict == .worse)
        #expect(abs((c.delta ?? 0) - 0.2) < 1e-9)
        #expect(c.deltaInterval!.lower > 0.15 && c.deltaInterval!.upper < 0.25)
        #expect(c.rankTest!.exact && c.rankTest!.pValue < 0.001)
        #expect(Comparison.compare(metric: .wakeupP99, base: up, other: base).verdict == .better)
    }

    @Test func significantButTinyChangeIsNoDifference() {
        // 1 % higher in every run, almost no noise: significant, interval excludes 0, but
        // below the 2 % minimum effect.
        let base = (0..<10).map { 1000 + Double($0) * 0.1 }
        let other = base.map { $0 * 1.01 }
        let c = Comparison.compare(metric: .makespan, base: base, other: other)
        #expect(c.significant && c.deltaInterval!.excludesZero)
        #expect(c.verdict == .noDifference)
        #expect(c.note?.contains("minimum effect") == true)
        var loose = ComparisonOptions()
        loose.minimumEffect = 0.005
        #expect(Comparison.compare(metric: .makespan, base: base, other: other, options: loose).verdict == .worse)
    }

    @Test func threeRunsCanNeverBeJudged() {
        let c = Comparison.compare(metric: .wakeupP50, base: [1, 2, 3], other: [10, 20, 30])
        #expect(c.verdict == .noDifference && !c.significant)
        #expect(c.note?.contains("too few runs") == true)
    }

    @Test func fourRunsCannotPassHolmOverFourPrimaryMetrics() {
        // 4 against 4: smallest exact p = 2/70 ≈ 0.029 < 0.05 alone, but × 4 after Holm.
        var g = SeededGenerator(seed: 3)
        var slow = SyntheticModel(samplesPerRun: 300)
        slow.scale = 1.5
        let a = SyntheticModel(samplesPerRun: 300).results(runs: 4, generator: &g)
        let b = slow.results(runs: 4, generator: &g)
        let c = Comparison.compare(base: a, other: b, baseLabel: "a", otherLabel: "b")
        let p99 = c.metrics.first { $0.metric == "wakeup.p99" }!
        #expect(p99.rankTest!.pValue < 0.05 && !p99.significant && p99.verdict == .noDifference)
        #expect(p99.note?.contains("after Holm correction over 4 metrics") == true)
        #expect(c.verdict == .noDifference)
        var g2 = SeededGenerator(seed: 4)
        let c5 = Comparison.compare(base: SyntheticModel(samplesPerRun: 300).results(runs: 5, generator: &g2),
                                    other: slow.results(runs: 5, generator: &g2), baseLabel: "a", otherLabel: "b")
        #expect(c5.verdict == .worse)
    }

    @Test func missingSamplesAreReportedNotJudged() {
        let c = Comparison.compare(metric: .timerP99, base: [], other: [1, 2])
        #expect(c.verdict == .noDifference && c.rankTest == nil && c.note?.contains("no samples") == true)
    }

    @Test func holmAdjustmentMatchesHandComputation() {
        // p sorted: 0.01 (×3 = 0.03), 0.02 (×2 = 0.04), 0.04 (×1 = 0.04).
        #expect(Comparison.holmAdjusted([0.04, 0.01, 0.02]).map { ($0 * 1e6).rounded() / 1e6 } == [0.04, 0.03, 0.04])
        #expect(Comparison.holmAdjusted([0.5, 0.9]) == [1, 1])   // 0.9 is raised to the running maximum
    }

    @Test func overallVerdictRule() {
        func m(_ metric: ComparedMetric, _ v: Verdict) -> MetricComparison {
            MetricComparison(metric: metric.rawValue, label: metric.label, primary: metric.isPrimary, baseRuns: 10, otherRuns: 10,
                             significant: v != .noDifference, verdict: v)
        }
        #expect(Comparison.overallVerdict([m(.wakeupP50, .better), m(.wakeupP99, .worse)]).0 == .worse)
        #expect(Comparison.overallVerdict([m(.wakeupP50, .better), m(.wakeupP99, .noDifference)]).0 == .better)
        // A secondary metric alone does not decide.
        #expect(Comparison.overallVerdict([m(.wakeupMax, .worse), m(.wakeupP99, .noDifference)]).0 == .noDifference)
        #expect(Comparison.overallVerdict([m(.wakeupP50, .better), m(.wakeupP99, .worse)]).1 == ["wakeup.p99"])
    }

    @Test func warmupRunsAreIgnored() {
        var g = SeededGenerator(seed: 5)
        let model = SyntheticModel(samplesPerRun: 500)
        var a = model.results(runs: 6, generator: &g, warmups: 2)
        let b = model.results(runs: 6, generator: &g)
        // Make the warmups absurdly slow: they must not change the outcome.
        for i in 0..<2 { a.runs[i].makespanNanoseconds *= 100 }
        let c = Comparison.compare(base: a, other: b, baseLabel: "a", otherLabel: "b")
        let makespan = c.metrics.first { $0.metric == "makespan" }!
        #expect(makespan.baseRuns == 6 && abs(makespan.delta!) < 0.1)
    }
}

extension MetricComparison {
    init(metric: String, label: String, primary: Bool, baseRuns: Int, otherRuns: Int, significant: Bool, verdict: Verdict) {
        self.init(metric: metric, label: label, primary: primary, baseRuns: baseRuns, otherRuns: otherRuns, baseValue: 1, otherValue: 1,
                  baseVariation: nil, otherVariation: nil, delta: 0, deltaInterval: nil, rankTest: nil, adjustedPValue: nil,
                  significant: significant, verdict: verdict, note: nil)
    }
}

@Suite struct ResultsFileTests {
    static func encoded(_ r: ReplayResults) throws -> Data {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        return try e.encode(r)
    }

    static func sample() -> ReplayResults {
        var g = SeededGenerator(seed: 9)
        return SyntheticModel(samplesPerRun: 100).results(runs: 2, generator: &g, tasks: 2)
    }

    @Test func roundTripsThroughJSON() throws {
        let r = Self.sample()
        #expect(try ReplayResults.decode(Self.encoded(r), file: "r.json") == r)
    }

    @Test func rejectsNonJSONNamingTheFile() {
        #expect(throws: ResultsError.self) { try ReplayResults.decode(Data("hello".utf8), file: "x.json") }
        do { _ = try ReplayResults.decode(Data("hello".utf8), file: "x.json") } catch {
            #expect("\(error)".hasPrefix("x.json: not a JSON results file"))
        }
    }

    @Test func rejectsWrongSchema() throws {
        var object = try JSONSerialization.jsonObject(with: Self.encoded(Self.sample())) as! [String: Any]
        object["schema"] = "replayctl-results/9"
        let data = try JSONSerialization.data(withJSONObject: object)
        #expect(throws: ResultsError.wrongSchema(file: "new.json", found: "replayctl-results/9")) {
            try ReplayResults.decode(data, file: "new.json")
        }
        object.removeValue(forKey: "schema")
        #expect(throws: ResultsError.wrongSchema(file: "new.json", found: nil)) {
            try ReplayResults.decode(try JSONSerialization.data(withJSONObject: object), file: "new.json")
        }
    }

    @Test func namesTheMissingOrBadField() throws {
        var object = try JSONSerialization.jsonObject(with: Self.encoded(Self.sample())) as! [String: Any]
        var runs = object["runs"] as! [[String: Any]]
        runs[1].removeValue(forKey: "makespanNanoseconds")
        object["runs"] = runs
        #expect(throws: ResultsError.missingField(file: "r.json", field: "runs[1].makespanNanoseconds")) {
            try ReplayResults.decode(try JSONSerialization.data(withJSONObject: object), file: "r.json")
        }
        runs[1]["makespanNanoseconds"] = "soon"
        object["runs"] = runs
        do {
            _ = try ReplayResults.decode(try JSONSerialization.data(withJSONObject: object), file: "r.json")
            Issue.record("accepted a string makespan")
        } catch let ResultsError.badField(file, field, detail) {
            #expect(file == "r.json" && field == "runs[1].makespanNanoseconds" && detail.contains("integer"))
        }
        // A histogram whose count disagrees with its buckets.
        runs = (try JSONSerialization.jsonObject(with: Self.encoded(Self.sample())) as! [String: Any])["runs"] as! [[String: Any]]
        var h = runs[0]["wakeupLatency"] as! [String: Any]
        h["count"] = 5
        runs[0]["wakeupLatency"] = h
        object["runs"] = runs
        do {
            _ = try ReplayResults.decode(try JSONSerialization.data(withJSONObject: object), file: "r.json")
            Issue.record("accepted an inconsistent histogram")
        } catch let ResultsError.badField(_, field, _) {
            #expect(field == "runs[0].wakeupLatency.count")
        }
    }

    @Test func rejectsResultsWithOnlyWarmups() throws {
        var r = Self.sample()
        for i in r.runs.indices { r.runs[i].warmup = true }
        #expect(throws: ResultsError.noMeasuredRuns(file: "w.json")) { try ReplayResults.decode(Self.encoded(r), file: "w.json") }
    }

    @Test func refusesDifferentTraces() {
        var g = SeededGenerator(seed: 1)
        let a = SyntheticModel(samplesPerRun: 100).results(runs: 4, generator: &g)
        let b = SyntheticModel(samplesPerRun: 100).results(runs: 4, generator: &g, sha: String(repeating: "cd", count: 32))
        #expect(throws: ResultsError.self) {
            try ComparisonReport(base: .init(label: "a.json", results: a), others: [.init(label: "b.json", results: b)])
        }
        let message = ResultsError.differentTraces(base: "a.json", baseSHA256: a.trace.sha256, other: "b.json", otherSHA256: b.trace.sha256).description
        #expect(message.contains("b.json and a.json are results of different traces"))
    }

    @Test func warnsWhenTheReplaysUsedDifferentOptions() throws {
        var g = SeededGenerator(seed: 2)
        var a = SyntheticModel(samplesPerRun: 100).results(runs: 5, generator: &g)
        var b = SyntheticModel(samplesPerRun: 100).results(runs: 5, generator: &g)
        a.options["cpuLatencyQoS"] = "on"
        b.options["cpuLatencyQoS"] = "off"
        let report = try ComparisonReport(base: .init(label: "a.json", results: a), others: [.init(label: "b.json", results: b)])
        #expect(report.optionDifferences == ["cpuLatencyQoS: on in a.json, off in b.json"])
        #expect(report.text().contains("WARNING: replayed with different options: cpuLatencyQoS: on in a.json, off in b.json"))
        b.options["cpuLatencyQoS"] = "on"
        let same = try ComparisonReport(base: .init(label: "a.json", results: a), others: [.init(label: "b.json", results: b)])
        #expect(same.optionDifferences.isEmpty)
        #expect(!same.text().contains("WARNING"))
    }
}

@Suite struct ReportTests {
    static func report() throws -> ComparisonReport {
        var g = SeededGenerator(seed: 123)
        let model = SyntheticModel(samplesPerRun: 3000)
        var worse = model
        worse.scale = 1.25
        let a = model.results(runs: 10, generator: &g, tasks: 5)
        let same = model.results(runs: 10, generator: &g, tasks: 5)
        let slow = worse.results(runs: 10, generator: &g, tasks: 5)
        return try ComparisonReport(base: .init(label: "base.json", results: a),
                                    others: [.init(label: "same.json", results: same), .init(label: "slow.json", results: slow)])
    }

    @Test func verdictsOfAKnownDifference() throws {
        let r = try Self.report()
        #expect(r.comparisons[0].verdict == .noDifference)
        #expect(r.comparisons[1].verdict == .worse)
        #expect(Set(r.comparisons[1].decidingMetrics) == Set(ComparedMetric.primary.map(\.rawValue)))
        let lines = r.verdictLines()
        #expect(lines[0].hasPrefix("same.json vs base.json: NO DETECTABLE DIFFERENCE"))
        #expect(lines[1].hasPrefix("slow.json vs base.json: WORSE"))
    }

    @Test func jsonCarriesVerdictWords() throws {
        let r = try Self.report()
        let object = try JSONSerialization.jsonObject(with: Data(r.json().utf8)) as! [String: Any]
        #expect(object["schema"] as? String == "replayctl-compare/1")
        let compared = object["compared"] as! [[String: Any]]
        #expect(compared.map { $0["verdict"] as? String } == ["no-difference", "worse"])
        let metrics = compared[1]["metrics"] as! [[String: Any]]
        #expect(metrics.count == ComparedMetric.allCases.count)
        #expect(metrics.first { $0["metric"] as? String == "wakeup.p99" }?["verdict"] as? String == "worse")
        #expect(metrics.allSatisfy { ["better", "worse", "no-difference"].contains($0["verdict"] as? String ?? "") })
    }

    @Test func textAndMarkdownTablesHaveEveryMetric() throws {
        let r = try Self.report()
        let text = r.text(), md = r.markdown()
        for m in ComparedMetric.allCases {
            #expect(text.contains(m.label))
            #expect(md.contains("| \(m.label)"))
        }
        let makespanRow = text.split(separator: "\n").first { $0.hasPrefix("makespan") }.map(String.init) ?? ""
        #expect(makespanRow.contains("+25.") && makespanRow.hasSuffix("worse"))
    }

    @Test func htmlIsSelfContained() throws {
        let html = try Self.report().html()
        #expect(html.hasPrefix("<!DOCTYPE html>"))
        #expect(!html.contains("http://") || html.components(separatedBy: "http://").dropFirst().allSatisfy { $0.hasPrefix("www.w3.org/2000/svg") })
        #expect(!html.contains("https://") && !html.contains("<script"))
        #expect(html.components(separatedBy: "<svg").count - 1 == 9)   // 4 kinds × (CDF + tail) + task bars
        #expect(html.contains("worker-4 (1004)"))
    }

    /// Writes example results files for scripts/render-compare-html.sh (not a check).
    @Test(.enabled(if: ProcessInfo.processInfo.environment["REPLAYCTL_WRITE_FIXTURES"] != nil))
    func writeExampleFiles() throws {
        let dir = ProcessInfo.processInfo.environment["REPLAYCTL_WRITE_FIXTURES"]!
        let r = try Self.report()
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        for input in [r.base] + r.others {
            try e.encode(input.results).write(to: URL(fileURLWithPath: dir).appendingPathComponent(input.label))
        }
    }
}
