import Foundation

/// A two-sided confidence interval.
public struct ConfidenceInterval: Equatable, Sendable, Codable {
    /// Lower bound.
    public var lower: Double
    /// Upper bound.
    public var upper: Double
    /// Coverage, e.g. 0.95.
    public var level: Double

    /// An interval [lower, upper] at `level`.
    public init(lower: Double, upper: Double, level: Double) {
        self.lower = lower
        self.upper = upper
        self.level = level
    }

    /// True when 0 lies outside the interval.
    public var excludesZero: Bool { lower > 0 || upper < 0 }
}

/// Percentile-bootstrap confidence intervals over run-level figures (one number per run).
///
/// Each set's runs are resampled with replacement (the run is the unit: samples within one
/// run share that run's conditions and are not independent), the mean is computed on both
/// resamples, and the interval is read from the quantiles of the resampled differences.
public enum Bootstrap {
    /// Arithmetic mean of `values` (0 for none).
    public static func mean(_ values: [Double]) -> Double {
        values.isEmpty ? 0 : values.reduce(0, +) / Double(values.count)
    }

    /// Confidence interval of the relative difference of means, `mean(other) / mean(base) − 1`,
    /// resampling the runs of each set with replacement.
    /// - Parameters:
    ///   - base: run-level figures of the base set (one per run).
    ///   - other: run-level figures of the compared set.
    ///   - level: coverage, 0.95 for a 95 % interval.
    ///   - resamples: number of bootstrap resamples.
    ///   - generator: the random source; seed it for reproducible intervals.
    /// - Returns: nil when either set is empty.
    public static func relativeDifference(base: [Double], other: [Double], level: Double = 0.95, resamples: Int = 2000,
                                          generator: inout SeededGenerator) -> ConfidenceInterval? {
        guard !base.isEmpty, !other.isEmpty, resamples > 0 else { return nil }
        var deltas = [Double](repeating: 0, count: resamples)
        let m = base.count, n = other.count
        base.withUnsafeBufferPointer { a in
            other.withUnsafeBufferPointer { b in
                for r in 0..<resamples {
                    var sa = 0.0, sb = 0.0
                    for _ in 0..<m { sa += a[generator.nextIndex(below: m)] }
                    for _ in 0..<n { sb += b[generator.nextIndex(below: n)] }
                    sa /= Double(m)
                    sb /= Double(n)
                    // A resample whose base mean is 0 has no relative difference; count it as
                    // "no change" only if the other is 0 too, else as an unbounded increase.
                    deltas[r] = sa != 0 ? sb / sa - 1 : (sb == 0 ? 0 : .infinity)
                }
            }
        }
        deltas.sort()
        let tail = (1 - level) / 2
        return ConfidenceInterval(lower: quantile(sorted: deltas, tail), upper: quantile(sorted: deltas, 1 - tail), level: level)
    }

    /// Quantile `q` (0…1) of sorted values, linear interpolation between order statistics.
    public static func quantile(sorted values: [Double], _ q: Double) -> Double {
        guard !values.isEmpty else { return .nan }
        let position = q * Double(values.count - 1)
        let low = Int(position.rounded(.down)), high = Int(position.rounded(.up))
        if low == high || values[high] == values[low] { return values[low] }
        return values[low] + (values[high] - values[low]) * (position - Double(low))
    }
}
