import Foundation
import Testing
@testable import Stats

/// The verdict rule on synthetic data with known truth (model in Synthetic.swift).
@Suite struct SoundnessTests {
    static let defaultRuns = 10

    /// Pools of synthetic runs, generated once: a trial draws its two sets of runs at
    /// random, without replacement, from a pool of 400 i.i.d. runs (a random split of
    /// independent runs is as good an A/A pair as fresh runs, and far cheaper in a debug build).
    final class Pool: @unchecked Sendable {
        let runs: [ReplayRun]
        init(model: SyntheticModel, seed: UInt64, size: Int = 400) {
            var g = SeededGenerator(seed: seed)
            runs = (0..<size).map { model.run(index: $0, generator: &g) }
        }
        func draw(_ count: Int, generator g: inout SeededGenerator, excluding used: inout Set<Int>) -> ReplayResults {
            var r = SyntheticModel().results(runs: 0, generator: &g)
            while r.runs.count < count {
                let i = g.nextIndex(below: runs.count)
                if used.insert(i).inserted { r.runs.append(runs[i]) }
            }
            return r
        }
    }

    static let model = SyntheticModel(samplesPerRun: 5000)
    static let basePool = Pool(model: model, seed: 1)
    static let worsePool = { var m = model; m.tailShift = 1.10; return Pool(model: m, seed: 2) }()
    static let betterPool = { var m = model; m.tailShift = 1 / 1.10; return Pool(model: m, seed: 3) }()

    static func pair(_ a: Pool, _ b: Pool, runs: Int, generator g: inout SeededGenerator) -> (ReplayResults, ReplayResults) {
        var used = Set<Int>()
        let x = a.draw(runs, generator: &g, excluding: &used)
        if a !== b { used = [] }
        return (x, b.draw(runs, generator: &g, excluding: &used))
    }

    static var fastOptions: ComparisonOptions {
        var o = ComparisonOptions()
        o.intervalOnlyWhenSignificant = true
        o.metrics = Array(ComparedMetric.primary).sorted { $0.rawValue < $1.rawValue }
        return o
    }

    /// A/A: both sets from the same model. The overall verdict (all primary metrics) must
    /// be no-difference in at least 95 % of 400 trials at α = 0.05.
    @Test func sameDistributionIsNoDifference() {
        var g = SeededGenerator(seed: 2024)
        let trials = 400
        var noDifference = 0, metricFalsePositives = 0, comparisons = 0
        var options = Self.fastOptions
        options.metrics = ComparedMetric.allCases
        for _ in 0..<trials {
            let (a, b) = Self.pair(Self.basePool, Self.basePool, runs: Self.defaultRuns, generator: &g)
            let c = Comparison.compare(base: a, other: b, baseLabel: "A", otherLabel: "A'", options: options)
            if c.verdict == .noDifference { noDifference += 1 }
            metricFalsePositives += c.metrics.filter { $0.verdict != .noDifference }.count
            comparisons += c.metrics.count
        }
        let rate = Double(noDifference) / Double(trials)
        print("A/A: overall no-difference in \(noDifference)/\(trials) = \(String(format: "%.1f", rate * 100)) %; "
              + "per-metric false positives \(metricFalsePositives)/\(comparisons)")
        #expect(rate >= 0.95)
        #expect(Double(metricFalsePositives) / Double(comparisons) <= 0.05)
    }

    /// A/B: the compared set's wakeup-latency tail (above p95) is 10 % slower, so p99 is
    /// +10 % and p50 unchanged. At the default 10 runs the p99 must be called worse, and
    /// the overall verdict worse, in at least 90 % of 200 trials; p50 must not be called worse.
    @Test func tenPercentWorseP99IsDetected() {
        var g = SeededGenerator(seed: 77)
        let trials = 200
        var p99Worse = 0, overallWorse = 0, p50Worse = 0
        for _ in 0..<trials {
            let (base, other) = Self.pair(Self.basePool, Self.worsePool, runs: Self.defaultRuns, generator: &g)
            let c = Comparison.compare(base: base, other: other, baseLabel: "A", otherLabel: "B", options: Self.fastOptions)
            if c.metrics.first(where: { $0.metric == ComparedMetric.wakeupP99.rawValue })?.verdict == .worse { p99Worse += 1 }
            if c.metrics.first(where: { $0.metric == ComparedMetric.wakeupP50.rawValue })?.verdict == .worse { p50Worse += 1 }
            if c.verdict == .worse { overallWorse += 1 }
        }
        print("A/B +10 % p99: p99 worse in \(p99Worse)/\(trials), overall worse in \(overallWorse)/\(trials), p50 worse in \(p50Worse)/\(trials)")
        #expect(Double(p99Worse) / Double(trials) >= 0.9)
        #expect(Double(overallWorse) / Double(trials) >= 0.9)
        #expect(Double(p50Worse) / Double(trials) <= 0.05)
    }

    /// The same +10 % shift, but 10 % better: the verdict is symmetric.
    @Test func tenPercentBetterP99IsDetected() {
        var g = SeededGenerator(seed: 78)
        var better = 0
        for _ in 0..<100 {
            let (base, other) = Self.pair(Self.basePool, Self.betterPool, runs: Self.defaultRuns, generator: &g)
            let c = Comparison.compare(base: base, other: other, baseLabel: "A", otherLabel: "B", options: Self.fastOptions)
            if c.verdict == .better { better += 1 }
        }
        print("A/B −10 % p99: overall better in \(better)/100")
        #expect(better >= 90, "better in \(better)/100")
    }

    /// Why run-level: the same A/A data judged by a rank test on pooled samples (every
    /// latency sample of every run) calls a difference far more often than α, because
    /// runs drift. The run-level rule does not.
    @Test func pooledSamplesWouldBeAntiConservative() {
        var g = SeededGenerator(seed: 99)
        var pooledSignificant = 0, runLevelCalled = 0
        let trials = 20
        for _ in 0..<trials {
            let (a, b) = Self.pair(Self.basePool, Self.basePool, runs: Self.defaultRuns, generator: &g)
            func pooled(_ r: ReplayResults) -> [Double] {
                r.runs.flatMap { run in run.wakeupLatency.counts.enumerated().flatMap { i, c in
                    repeatElement(Double(LatencyHistogram.range(of: i).lowerBound), count: Int(c)) } }
            }
            if MannWhitney.test(pooled(a), pooled(b)).pValue < 0.05 { pooledSignificant += 1 }
            let c = Comparison.compare(metric: .wakeupP50, base: a.runs.map { ComparedMetric.wakeupP50.value(of: $0)! },
                                       other: b.runs.map { ComparedMetric.wakeupP50.value(of: $0)! })
            if c.verdict != .noDifference { runLevelCalled += 1 }
        }
        print("A/A, pooled-sample rank test significant in \(pooledSignificant)/\(trials); run-level p50 verdict not no-difference in \(runLevelCalled)/\(trials)")
        #expect(Double(pooledSignificant) / Double(trials) > 0.3)
        #expect(runLevelCalled <= 2)
    }

    /// Prints the power-vs-runs table of docs/compare.md: for each number of runs per set and
    /// each true change of the wakeup-latency p99 (tail above p95 slower by that factor), the
    /// share of trials whose p99 verdict is "worse", through the full rule (primary family,
    /// Holm correction). The 0 column is the false-positive rate (p99 verdict not
    /// no-difference) and, in brackets, the overall A/A false-positive rate.
    /// Runs only with REPLAYCTL_POWER_TABLE=<trials> (scripts/power-table.sh, release build).
    @Test(.enabled(if: ProcessInfo.processInfo.environment["REPLAYCTL_POWER_TABLE"] != nil))
    func powerTable() {
        let trials = Int(ProcessInfo.processInfo.environment["REPLAYCTL_POWER_TABLE"] ?? "") ?? 200
        let runCounts = [3, 4, 5, 6, 8, 10, 15, 20]
        let effects = [0.0, 0.02, 0.05, 0.10, 0.20]
        let maxRuns = runCounts.max()!
        var hits = [[Int]](repeating: [Int](repeating: 0, count: effects.count), count: runCounts.count)
        var overallFalse = [Int](repeating: 0, count: runCounts.count)
        var g = SeededGenerator(seed: 31337)
        var p99s: [Double] = []
        for _ in 0..<trials {
            let trialSeed = g.next()
            var ga = SeededGenerator(seed: trialSeed)
            let base = Self.model.results(runs: maxRuns, generator: &ga)
            p99s.append(contentsOf: base.runs.map { ComparedMetric.wakeupP99.value(of: $0)! })
            for (e, effect) in effects.enumerated() {
                // The same seed for every effect: the compared runs differ only by the shift.
                var gb = SeededGenerator(seed: trialSeed ^ 0xB)
                var model = Self.model
                model.tailShift = 1 + effect
                let other = model.results(runs: maxRuns, generator: &gb)
                for (k, n) in runCounts.enumerated() {
                    var a = base, b = other
                    a.runs = Array(a.runs.prefix(n))
                    b.runs = Array(b.runs.prefix(n))
                    let c = Comparison.compare(base: a, other: b, baseLabel: "A", otherLabel: "B", options: Self.fastOptions)
                    let p99 = c.metrics.first { $0.metric == ComparedMetric.wakeupP99.rawValue }!
                    if e == 0 {
                        if p99.verdict != .noDifference { hits[k][e] += 1 }
                        if c.verdict != .noDifference { overallFalse[k] += 1 }
                    } else if p99.verdict == .worse {
                        hits[k][e] += 1
                    }
                }
            }
        }
        let cv = Comparison.variation(p99s) ?? 0
        func share(_ n: Int) -> String { String(format: "%.2f", Double(n) / Double(trials)) }
        var table = "| runs per set | A/A: p99 (overall) called different | " + effects.dropFirst().map { String(format: "p99 +%.0f %%", $0 * 100) }.joined(separator: " | ") + " |\n"
        table += "|---|" + effects.map { _ in "---" }.joined(separator: "|") + "|\n"
        for (k, n) in runCounts.enumerated() {
            table += "| \(n) | \(share(hits[k][0])) (\(share(overallFalse[k]))) | " + hits[k].dropFirst().map(share).joined(separator: " | ") + " |\n"
        }
        print("POWER TABLE (\(trials) trials per cell; \(Self.model.samplesPerRun) wakeups per run; run-to-run CV of p99 in the model \(String(format: "%.1f", cv * 100)) %)\n" + table)
        #expect(hits.last![3] >= hits.first![3])
    }
}
