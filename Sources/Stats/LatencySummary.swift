import Foundation

/// The figures a latency table shows, computed from a `LatencyHistogram`: count, mean,
/// standard deviation, minimum, p50, p90, p99, p99.9, p99.99 and maximum, all in
/// nanoseconds. Percentiles carry the histogram's bounded error (under 0.8 %); count,
/// mean, standard deviation, minimum and maximum are exact.
public struct LatencySummary: Equatable, Sendable, Codable {
    /// Number of samples.
    public var count: UInt64
    /// Mean (nanoseconds); 0 when there are no samples.
    public var mean: Double
    /// Population standard deviation (nanoseconds).
    public var standardDeviation: Double
    /// Smallest sample (nanoseconds); 0 when there are no samples.
    public var minimum: UInt64
    /// Median (nanoseconds).
    public var p50: UInt64
    /// 90th percentile (nanoseconds).
    public var p90: UInt64
    /// 99th percentile (nanoseconds).
    public var p99: UInt64
    /// 99.9th percentile (nanoseconds).
    public var p999: UInt64
    /// 99.99th percentile (nanoseconds).
    public var p9999: UInt64
    /// Largest sample (nanoseconds).
    public var maximum: UInt64

    /// Summarises `histogram`.
    public init(_ histogram: LatencyHistogram) {
        count = histogram.count
        mean = histogram.mean
        standardDeviation = histogram.standardDeviation
        minimum = histogram.isEmpty ? 0 : histogram.minimum
        p50 = histogram.percentile(50)
        p90 = histogram.percentile(90)
        p99 = histogram.percentile(99)
        p999 = histogram.percentile(99.9)
        p9999 = histogram.percentile(99.99)
        maximum = histogram.maximum
    }

    /// Summarises raw samples (nanoseconds).
    public init<S: Sequence>(samples: S) where S.Element == UInt64 {
        self.init(LatencyHistogram(samples))
    }
}

extension LatencyHistogram {
    /// Count, mean, standard deviation, min, p50 … p99.99, max of this distribution.
    public var summary: LatencySummary { LatencySummary(self) }

    /// Points of the cumulative distribution, one per non-empty bucket: the bucket's
    /// highest value (nanoseconds, clamped to the maximum) and the share of samples at or
    /// below it (0…1). Used to draw CDFs.
    public var cumulativeDistribution: [(value: UInt64, fraction: Double)] {
        guard count > 0 else { return [] }
        var points: [(value: UInt64, fraction: Double)] = []
        var seen: UInt64 = 0
        for (i, c) in counts.enumerated() where c > 0 {
            seen += c
            let top = Swift.min(Swift.max(Self.range(of: i).upperBound, minimum), maximum)
            points.append((top, Double(seen) / Double(count)))
        }
        return points
    }
}
