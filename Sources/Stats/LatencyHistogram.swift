import Foundation

/// A latency distribution in nanoseconds with bounded relative error (HdrHistogram-style
/// log-linear buckets: exact below 256 ns, then 128 buckets per power of two, so any
/// percentile is within 0.8 % of the true sample). Exact count, min, max, sum.
public struct LatencyHistogram: Equatable, Sendable, Codable {
    static let subBucketBits = 8
    static let subBucketCount = 1 << subBucketBits      // 256
    static let subBucketHalf = subBucketCount / 2       // 128

    /// Dense counts by bucket index.
    public private(set) var counts: [UInt64] = []
    public private(set) var count: UInt64 = 0
    public private(set) var minimum: UInt64 = .max
    public private(set) var maximum: UInt64 = 0
    /// Sum of samples (nanoseconds), and of their squares, for mean and standard deviation.
    public private(set) var sum: Double = 0
    public private(set) var sumOfSquares: Double = 0

    public init() {}

    public init<S: Sequence>(_ samples: S) where S.Element == UInt64 {
        for s in samples { record(s) }
    }

    @inline(__always) static func bucket(of value: UInt64) -> Int {
        if value < UInt64(subBucketCount) { return Int(value) }
        let msb = 63 - value.leadingZeroBitCount          // ≥ 8
        let shift = msb - (subBucketBits - 1)              // ≥ 1
        let mantissa = Int(value >> UInt64(shift))         // 128…255
        return subBucketCount + (shift - 1) * subBucketHalf + (mantissa - subBucketHalf)
    }

    /// Lowest and highest value that fall in bucket `index`.
    static func range(of index: Int) -> ClosedRange<UInt64> {
        if index < subBucketCount { return UInt64(index)...UInt64(index) }
        let shift = (index - subBucketCount) / subBucketHalf + 1
        let mantissa = UInt64((index - subBucketCount) % subBucketHalf + subBucketHalf)
        let low = mantissa << UInt64(shift)
        return low...(low + (UInt64(1) << UInt64(shift)) - 1)
    }

    /// Adds one sample.
    public mutating func record(_ value: UInt64, count n: UInt64 = 1) {
        let b = Self.bucket(of: value)
        if b >= counts.count { counts.append(contentsOf: repeatElement(0, count: b + 1 - counts.count)) }
        counts[b] += n
        count += n
        minimum = Swift.min(minimum, value)
        maximum = Swift.max(maximum, value)
        let v = Double(value)
        sum += v * Double(n)
        sumOfSquares += v * v * Double(n)
    }

    /// Adds every sample of `other`.
    public mutating func merge(_ other: LatencyHistogram) {
        guard other.count > 0 else { return }
        if other.counts.count > counts.count { counts.append(contentsOf: repeatElement(0, count: other.counts.count - counts.count)) }
        for (i, c) in other.counts.enumerated() where c > 0 { counts[i] += c }
        count += other.count
        minimum = Swift.min(minimum, other.minimum)
        maximum = Swift.max(maximum, other.maximum)
        sum += other.sum
        sumOfSquares += other.sumOfSquares
    }

    public var isEmpty: Bool { count == 0 }
    public var mean: Double { count > 0 ? sum / Double(count) : 0 }
    public var standardDeviation: Double {
        guard count > 1 else { return 0 }
        let m = mean
        return (Swift.max(0, sumOfSquares / Double(count) - m * m)).squareRoot()
    }

    /// The value at `percentile` (0…100): the smallest value such that at least that share of
    /// samples is ≤ it, reported as the middle of its bucket and clamped to [min, max].
    public func percentile(_ percentile: Double) -> UInt64 {
        guard count > 0 else { return 0 }
        if percentile <= 0 { return minimum }
        if percentile >= 100 { return maximum }
        let rank = Swift.max(UInt64((percentile / 100 * Double(count)).rounded(.up)), 1)
        let index: Int? = counts.withUnsafeBufferPointer { buckets in
            var seen: UInt64 = 0
            for i in 0..<buckets.count {
                seen += buckets[i]
                if seen >= rank { return i }
            }
            return nil
        }
        guard let index else { return maximum }
        let r = Self.range(of: index)
        let mid = r.lowerBound + (r.upperBound - r.lowerBound) / 2
        return Swift.min(Swift.max(mid, minimum), maximum)
    }

    // Sparse JSON form: {"count", "min", "max", "sum", "sumOfSquares", "buckets": [[index, count], …]}
    enum CodingKeys: String, CodingKey { case count, min, max, sum, sumOfSquares, buckets }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let pairs = try c.decode([[UInt64]].self, forKey: .buckets)
        for p in pairs {
            guard p.count == 2, p[0] < 16384 else {
                throw DecodingError.dataCorruptedError(forKey: .buckets, in: c, debugDescription: "bucket entries are [index < 16384, count]")
            }
            let i = Int(p[0])
            if i >= counts.count { counts.append(contentsOf: repeatElement(0, count: i + 1 - counts.count)) }
            counts[i] += p[1]
        }
        count = try c.decode(UInt64.self, forKey: .count)
        guard count == counts.reduce(0, +) else {
            throw DecodingError.dataCorruptedError(forKey: .count, in: c, debugDescription: "count does not match the buckets")
        }
        minimum = count > 0 ? try c.decode(UInt64.self, forKey: .min) : .max
        maximum = try c.decode(UInt64.self, forKey: .max)
        sum = try c.decode(Double.self, forKey: .sum)
        sumOfSquares = try c.decode(Double.self, forKey: .sumOfSquares)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(count, forKey: .count)
        try c.encode(count > 0 ? minimum : 0, forKey: .min)
        try c.encode(maximum, forKey: .max)
        try c.encode(sum, forKey: .sum)
        try c.encode(sumOfSquares, forKey: .sumOfSquares)
        try c.encode(counts.enumerated().filter { $0.element > 0 }.map { [UInt64($0.offset), $0.element] }, forKey: .buckets)
    }
}
