extension FixedWidthInteger {
    /// Adds, stopping at `max` (or `min`) instead of trapping: the timestamps of a damaged or
    /// crafted trace can be anything, and no verb may crash on it.
    @inlinable public func adding(saturating other: Self) -> Self {
        let (sum, overflow) = addingReportingOverflow(other)
        return overflow ? (other > 0 ? .max : .min) : sum
    }
}

extension UInt64 {
    /// Nanoseconds from a Double, 0 below zero (or NaN) and `UInt64.max` beyond it.
    @inlinable public init(saturatingNanoseconds d: Double) {
        self = d.isNaN || d <= 0 ? 0 : d >= 0x1p64 ? .max : UInt64(d)  // 2⁶⁴, exact as a Double
    }
}
