import Foundation

/// The outcome of comparing a set of runs with the base set. Lower latency and a shorter
/// makespan are better.
public enum Verdict: String, Sendable, Codable, CaseIterable {
    case better
    case worse
    case noDifference = "no-difference"
}

/// A figure compared between result sets, computed once per replay run.
public enum ComparedMetric: String, Sendable, Codable, CaseIterable {
    case wakeupP50 = "wakeup.p50"
    case wakeupP90 = "wakeup.p90"
    case wakeupP99 = "wakeup.p99"
    case wakeupP999 = "wakeup.p99.9"
    case wakeupMax = "wakeup.max"
    case sameCPUP50 = "wakeup-same-cpu.p50"
    case sameCPUP99 = "wakeup-same-cpu.p99"
    case crossCPUP50 = "wakeup-cross-cpu.p50"
    case crossCPUP99 = "wakeup-cross-cpu.p99"
    case timerP50 = "timer-overshoot.p50"
    case timerP99 = "timer-overshoot.p99"
    case timerMax = "timer-overshoot.max"
    case makespan = "makespan"

    /// Metrics whose verdicts decide the overall verdict. The others are shown and judged
    /// but are too noisy (maxima, p99.9 of a few thousand samples) or redundant (the
    /// same/cross-CPU split of the wakeup latency) to decide alone.
    public static let primary: Set<ComparedMetric> = [.wakeupP50, .wakeupP99, .timerP99, .makespan]

    /// True for a metric that takes part in the overall verdict.
    public var isPrimary: Bool { Self.primary.contains(self) }

    /// Row label in tables.
    public var label: String {
        switch self {
        case .wakeupP50: "wakeup latency p50"
        case .wakeupP90: "wakeup latency p90"
        case .wakeupP99: "wakeup latency p99"
        case .wakeupP999: "wakeup latency p99.9"
        case .wakeupMax: "wakeup latency max"
        case .sameCPUP50: "same-CPU wakeup p50"
        case .sameCPUP99: "same-CPU wakeup p99"
        case .crossCPUP50: "cross-CPU wakeup p50"
        case .crossCPUP99: "cross-CPU wakeup p99"
        case .timerP50: "timer overshoot p50"
        case .timerP99: "timer overshoot p99"
        case .timerMax: "timer overshoot max"
        case .makespan: "makespan"
        }
    }

    /// The run's figure in nanoseconds, or nil when the run has no sample for it (for
    /// example no timed sleeps).
    public func value(of run: ReplayRun) -> Double? {
        func pick(_ h: LatencyHistogram, _ p: Double) -> Double? { h.isEmpty ? nil : Double(h.percentile(p)) }
        switch self {
        case .wakeupP50: return pick(run.wakeupLatency, 50)
        case .wakeupP90: return pick(run.wakeupLatency, 90)
        case .wakeupP99: return pick(run.wakeupLatency, 99)
        case .wakeupP999: return pick(run.wakeupLatency, 99.9)
        case .wakeupMax: return pick(run.wakeupLatency, 100)
        case .sameCPUP50: return pick(run.wakeupLatencySameCPU, 50)
        case .sameCPUP99: return pick(run.wakeupLatencySameCPU, 99)
        case .crossCPUP50: return pick(run.wakeupLatencyCrossCPU, 50)
        case .crossCPUP99: return pick(run.wakeupLatencyCrossCPU, 99)
        case .timerP50: return pick(run.timerOvershoot, 50)
        case .timerP99: return pick(run.timerOvershoot, 99)
        case .timerMax: return pick(run.timerOvershoot, 100)
        case .makespan: return run.makespanNanoseconds > 0 ? Double(run.makespanNanoseconds) : nil
        }
    }
}

/// How `compare` decides. Defaults are documented in docs/compare.md.
public struct ComparisonOptions: Sendable, Equatable {
    /// Significance level of the rank test, and 1 − coverage of the confidence interval.
    public var alpha: Double = 0.05
    /// Smallest relative change (0.02 = 2 %) that can be called better or worse: a smaller
    /// change, however significant, is reported as no difference.
    public var minimumEffect: Double = 0.02
    /// Bootstrap resamples per metric.
    public var resamples: Int = 2000
    /// Seed of the bootstrap's random generator: the same inputs and seed give the same
    /// intervals.
    public var seed: UInt64 = 0x5EED
    /// Metrics compared, in table order.
    public var metrics: [ComparedMetric] = ComparedMetric.allCases
    /// Skip the bootstrap when the rank test is not significant. The verdict is the same
    /// (it needs a significant test), only `deltaInterval` is left out; simulations of
    /// thousands of comparisons use it to save time.
    public var intervalOnlyWhenSignificant = false

    /// The defaults: α 0.05, minimum effect 2 %, 2000 resamples.
    public init() {}
}

/// One metric of one compared set against the base.
public struct MetricComparison: Equatable, Sendable, Codable {
    /// Metric identifier (`ComparedMetric.rawValue`).
    public var metric: String
    /// Human label.
    public var label: String
    /// True when the metric takes part in the overall verdict.
    public var primary: Bool
    /// Runs with a figure for this metric, in the base and the compared set.
    public var baseRuns: Int
    public var otherRuns: Int
    /// Mean over runs of the run figure (nanoseconds); nil without runs.
    public var baseValue: Double?
    public var otherValue: Double?
    /// Run-to-run coefficient of variation (standard deviation / mean) of each set: the noise
    /// the verdict has to see through.
    public var baseVariation: Double?
    public var otherVariation: Double?
    /// Relative change of the mean, other / base − 1 (0.10 = 10 % higher = worse).
    public var delta: Double?
    /// Bootstrap confidence interval of `delta` (runs resampled).
    public var deltaInterval: ConfidenceInterval?
    /// Mann–Whitney U test on the run figures.
    public var rankTest: RankTestResult?
    /// The rank test's p-value after Holm's correction within the metric's family (primary
    /// metrics, other metrics); equal to the raw p-value for a metric compared alone.
    public var adjustedPValue: Double?
    /// True when `adjustedPValue` is below α.
    public var significant: Bool
    /// better, worse or no-difference for this metric.
    public var verdict: Verdict
    /// Why the verdict is no-difference when a change was seen, or why the metric could not
    /// be judged (too few runs, no samples).
    public var note: String?
}

/// A compared set against the base: every metric and the overall verdict.
public struct SetComparison: Equatable, Sendable, Codable {
    /// Label of the base set (its file name, usually).
    public var base: String
    /// Label of this set.
    public var other: String
    /// Overall verdict: worse if any primary metric is worse; better if at least one primary
    /// metric is better and none is worse; no-difference otherwise.
    public var verdict: Verdict
    /// Primary metrics that made the verdict (empty for no-difference).
    public var decidingMetrics: [String]
    /// Per metric, in table order.
    public var metrics: [MetricComparison]
}

/// Statistical comparison of replay results: run-level figures, rank test, bootstrap
/// interval and the verdict rule.
public enum Comparison {
    /// The verdict rule for one metric. A change is called better or worse only when all
    /// three hold: the rank test is significant (its p-value, after Holm's correction for
    /// the other metrics of the same family, is below α), the (1 − α) bootstrap interval
    /// of the relative change excludes 0, and the estimated change is at least
    /// `minimumEffect` in size.
    /// - Parameters:
    ///   - base: one figure per base run (nanoseconds).
    ///   - other: one figure per compared run.
    ///   - options: α, minimum effect, resamples. The p-value is not corrected for other
    ///     metrics; `compare(base:other:baseLabel:otherLabel:options:)` does that.
    ///   - seed: seed of the bootstrap generator.
    public static func compare(metric: ComparedMetric, base: [Double], other: [Double],
                               options: ComparisonOptions = ComparisonOptions(), seed: UInt64? = nil) -> MetricComparison {
        var result = prepare(metric: metric, base: base, other: other)
        judge(&result, base: base, other: other, adjustedPValue: result.rankTest?.pValue, familySize: 1, options: options, seed: seed ?? options.seed)
        return result
    }

    /// Run figures, means, variation, change and rank test; no verdict yet.
    static func prepare(metric: ComparedMetric, base: [Double], other: [Double]) -> MetricComparison {
        var result = MetricComparison(
            metric: metric.rawValue, label: metric.label, primary: metric.isPrimary,
            baseRuns: base.count, otherRuns: other.count,
            baseValue: base.isEmpty ? nil : Bootstrap.mean(base), otherValue: other.isEmpty ? nil : Bootstrap.mean(other),
            baseVariation: variation(base), otherVariation: variation(other),
            delta: nil, deltaInterval: nil, rankTest: nil, adjustedPValue: nil, significant: false, verdict: .noDifference, note: nil)
        guard base.count >= 2, other.count >= 2 else {
            result.note = base.isEmpty || other.isEmpty ? "no samples in the \(base.isEmpty ? "base" : "compared") runs"
                : "fewer than 2 runs with samples: cannot judge"
            return result
        }
        guard let baseMean = result.baseValue, let otherMean = result.otherValue, baseMean > 0 else {
            result.note = "base value is 0: no relative change"
            return result
        }
        result.delta = otherMean / baseMean - 1
        result.rankTest = MannWhitney.test(base, other)
        return result
    }

    /// Applies the verdict rule given the (family-adjusted) p-value.
    static func judge(_ result: inout MetricComparison, base: [Double], other: [Double], adjustedPValue: Double?,
                      familySize: Int, options: ComparisonOptions, seed: UInt64) {
        guard let delta = result.delta, let test = result.rankTest, let p = adjustedPValue else { return }
        result.adjustedPValue = p
        result.significant = p < options.alpha
        if result.significant || !options.intervalOnlyWhenSignificant {
            var generator = SeededGenerator(seed: seed)
            result.deltaInterval = Bootstrap.relativeDifference(base: base, other: other, level: 1 - options.alpha,
                                                               resamples: options.resamples, generator: &generator)
        }
        let intervalExcludesZero = result.deltaInterval?.excludesZero ?? false
        let bigEnough = abs(delta) >= options.minimumEffect
        if result.significant && intervalExcludesZero && bigEnough {
            result.verdict = delta > 0 ? .worse : .better
            return
        }
        // The smallest two-sided p-value the exact test can give is 2 / C(m+n, m).
        let smallestP = 2 / binomial(base.count + other.count, base.count) * Double(familySize)
        if smallestP >= options.alpha {
            result.note = "too few runs: with \(base.count) and \(other.count) runs the rank test cannot reach p < \(options.alpha)"
                + (familySize > 1 ? " after Holm correction over \(familySize) metrics" : "") + "; use more runs (docs/compare.md)"
        } else if result.significant || intervalExcludesZero {
            var reasons: [String] = []
            if !result.significant {
                reasons.append(p == test.pValue ? String(format: "rank test p = %.3f", p)
                               : String(format: "rank test p = %.3f (%.3f after Holm correction)", test.pValue, p))
            }
            if result.deltaInterval != nil && !intervalExcludesZero { reasons.append("interval includes 0") }
            if !bigEnough { reasons.append(String(format: "change below the %g %% minimum effect", options.minimumEffect * 100)) }
            result.note = reasons.joined(separator: "; ")
        }
    }

    /// Holm's step-down adjustment: adjusted p-values controlling the family-wise error rate.
    public static func holmAdjusted(_ pValues: [Double]) -> [Double] {
        let order = pValues.indices.sorted { pValues[$0] < pValues[$1] }
        var adjusted = [Double](repeating: 1, count: pValues.count)
        var running = 0.0
        for (rank, i) in order.enumerated() {
            running = max(running, min(1, Double(pValues.count - rank) * pValues[i]))
            adjusted[i] = running
        }
        return adjusted
    }

    /// Compares every metric of `other` with `base`, using measured (non-warmup) runs.
    /// P-values are Holm-corrected within two families, the primary metrics and the
    /// others, so that the chance of calling any primary metric (hence the whole set)
    /// better or worse when nothing changed stays at most α.
    public static func compare(base: ReplayResults, other: ReplayResults, baseLabel: String, otherLabel: String,
                               options: ComparisonOptions = ComparisonOptions()) -> SetComparison {
        let baseRuns = base.measuredRuns, otherRuns = other.measuredRuns
        var metrics: [MetricComparison] = []
        var values: [([Double], [Double])] = []
        for metric in options.metrics {
            let a = baseRuns.compactMap { metric.value(of: $0) }
            let b = otherRuns.compactMap { metric.value(of: $0) }
            values.append((a, b))
            metrics.append(prepare(metric: metric, base: a, other: b))
        }
        var adjusted = [Double?](repeating: nil, count: metrics.count)
        for family in [true, false] {
            let members = metrics.indices.filter { metrics[$0].primary == family && metrics[$0].rankTest != nil }
            let p = holmAdjusted(members.map { metrics[$0].rankTest!.pValue })
            for (k, i) in members.enumerated() { adjusted[i] = p[k] }
        }
        for (k, metric) in options.metrics.enumerated() {
            // Each metric gets its own stream, reproducible whatever metrics are selected.
            let seed = options.seed &+ UInt64(ComparedMetric.allCases.firstIndex(of: metric) ?? k) &* 0x9E37_79B9
            let familySize = metrics.filter { $0.primary == metrics[k].primary && $0.rankTest != nil }.count
            judge(&metrics[k], base: values[k].0, other: values[k].1, adjustedPValue: adjusted[k], familySize: familySize, options: options, seed: seed)
        }
        let (verdict, deciding) = overallVerdict(metrics)
        return SetComparison(base: baseLabel, other: otherLabel, verdict: verdict, decidingMetrics: deciding, metrics: metrics)
    }

    /// The overall rule: worse if any primary metric is worse; better if some primary
    /// metric is better and none worse; otherwise no-difference.
    public static func overallVerdict(_ metrics: [MetricComparison]) -> (Verdict, [String]) {
        let primary = metrics.filter(\.primary)
        let worse = primary.filter { $0.verdict == .worse }.map(\.metric)
        if !worse.isEmpty { return (.worse, worse) }
        let better = primary.filter { $0.verdict == .better }.map(\.metric)
        if !better.isEmpty { return (.better, better) }
        return (.noDifference, [])
    }

    /// C(n, k) as a Double.
    static func binomial(_ n: Int, _ k: Int) -> Double {
        var r = 1.0
        for i in 0..<min(k, n - k) { r = r * Double(n - i) / Double(i + 1) }
        return r
    }

    /// Sample standard deviation / mean, nil below 2 values or for a zero mean.
    public static func variation(_ values: [Double]) -> Double? {
        guard values.count >= 2 else { return nil }
        let m = Bootstrap.mean(values)
        guard m != 0 else { return nil }
        let ss = values.reduce(0) { $0 + ($1 - m) * ($1 - m) }
        return (ss / Double(values.count - 1)).squareRoot() / abs(m)
    }
}
