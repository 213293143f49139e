import Foundation

/// Result of a two-sided Mann–Whitney U (Wilcoxon rank-sum) test.
public struct RankTestResult: Equatable, Sendable, Codable {
    /// U statistic of the first sample: the number of (a, b) pairs with a > b, ties counting ½.
    public var u: Double
    /// Two-sided p-value.
    public var pValue: Double
    /// True when `pValue` is exact (no ties, at most `MannWhitney.exactLimit` values per
    /// sample); false for the normal approximation with tie and continuity corrections.
    public var exact: Bool
    /// True when some values occur in both or within a sample more than once.
    public var hasTies: Bool
}

/// The Mann–Whitney U test, used on run-level figures (one number per replay run), not on
/// pooled samples: thousands of pooled samples make any run-to-run drift "significant".
public enum MannWhitney {
    /// Largest sample size for which the exact distribution of U is computed.
    public static let exactLimit = 50

    /// Two-sided test of whether values of `a` tend to be larger or smaller than values of
    /// `b`. Exact p-value (by counting rank arrangements) without ties and for samples of
    /// at most `exactLimit`; otherwise the normal approximation with the tie-corrected
    /// variance and a continuity correction (as R's `wilcox.test` does). Empty samples
    /// give p = 1.
    public static func test(_ a: [Double], _ b: [Double]) -> RankTestResult {
        let m = a.count, n = b.count
        guard m > 0, n > 0 else { return RankTestResult(u: 0, pValue: 1, exact: false, hasTies: false) }
        // Midranks of the pooled sample.
        var pooled = a.map { ($0, 0) } + b.map { ($0, 1) }
        pooled.sort { $0.0 < $1.0 }
        var rankSumA = 0.0
        var tieTerm = 0.0
        var i = 0
        while i < pooled.count {
            var j = i
            while j + 1 < pooled.count && pooled[j + 1].0 == pooled[i].0 { j += 1 }
            let rank = Double(i + j + 2) / 2      // ranks are 1-based: (i+1 … j+1)
            for k in i...j where pooled[k].1 == 0 { rankSumA += rank }
            let t = Double(j - i + 1)
            tieTerm += t * t * t - t
            i = j + 1
        }
        let u = rankSumA - Double(m * (m + 1)) / 2
        let hasTies = tieTerm > 0
        let mn = Double(m * n)
        if !hasTies && m <= exactLimit && n <= exactLimit {
            let distribution = exactDistribution(m: m, n: n)
            let total = distribution.reduce(0, +)
            let k = Int(u.rounded())
            let lower = distribution[...k].reduce(0, +) / total
            let upper = distribution[k...].reduce(0, +) / total
            return RankTestResult(u: u, pValue: min(1, 2 * min(lower, upper)), exact: true, hasTies: false)
        }
        let total = Double(m + n)
        let variance = mn / 12 * ((total + 1) - tieTerm / (total * (total - 1)))
        guard variance > 0 else { return RankTestResult(u: u, pValue: 1, exact: false, hasTies: hasTies) }
        let deviation = abs(u - mn / 2)
        let z = max(0, deviation - 0.5) / variance.squareRoot()
        let p = erfc(z / 2.0.squareRoot())            // two-sided: 2·(1 − Φ(z))
        return RankTestResult(u: u, pValue: min(1, p), exact: false, hasTies: hasTies)
    }

    /// P(U ≤ k) under the null hypothesis for samples of m and n distinct values.
    static func exactCumulative(m: Int, n: Int, upTo k: Int) -> Double {
        if k < 0 { return 0 }
        if k >= m * n { return 1 }
        let distribution = exactDistribution(m: m, n: n)
        return distribution.prefix(k + 1).reduce(0, +) / distribution.reduce(0, +)
    }

    /// Number of rank arrangements giving each U = 0 … m·n: the coefficients of the
    /// Gaussian binomial coefficient [m+n choose m](q) = ∏ₖ₌₁..ₘ (1 − q^(n+k)) / (1 − q^k).
    static func exactDistribution(m: Int, n: Int) -> [Double] {
        var c = [Double](repeating: 0, count: m * n + 1)
        c[0] = 1
        guard m > 0, n > 0 else { return c }
        c.withUnsafeMutableBufferPointer { c in
            for k in 1...m {
                let top = k * n   // degree of [n+k choose k]
                // × (1 − q^(n+k)), highest degree first so each term uses the old value.
                var u = top
                while u >= n + k { c[u] -= c[u - n - k]; u -= 1 }
                // ÷ (1 − q^k): a running sum with stride k.
                u = k
                while u <= top { c[u] += c[u - k]; u += 1 }
            }
        }
        return c
    }
}
