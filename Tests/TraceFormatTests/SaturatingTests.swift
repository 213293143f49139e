import Testing
import TraceFormat

/// The saturating conversions every verb uses on a damaged trace's numbers.
@Suite struct SaturatingTests {
    @Test func addingStopsAtTheMaximum() {
        #expect(UInt64(5).adding(saturating: 7) == 12)
        #expect((UInt64.max - 1).adding(saturating: 1) == .max)
        #expect(UInt64.max.adding(saturating: UInt64.max) == .max)
        // Signed: towards the side it overflows on.
        #expect((Int.max - 1).adding(saturating: 5) == .max)
        #expect((Int.min + 1).adding(saturating: -5) == .min)
        #expect(Int(-3).adding(saturating: 10) == 7)
    }

    @Test func nanosecondsFromADoubleClampAtBothEnds() {
        #expect(UInt64(saturatingNanoseconds: 1_500.7) == 1_500)
        #expect(UInt64(saturatingNanoseconds: -3) == 0)
        #expect(UInt64(saturatingNanoseconds: .nan) == 0)
        #expect(UInt64(saturatingNanoseconds: .infinity) == .max)
        // 2⁶⁴ and beyond saturate; the largest Double below 2⁶⁴ converts exactly.
        #expect(UInt64(saturatingNanoseconds: 0x1p64) == .max)
        #expect(UInt64(saturatingNanoseconds: 0x1p64.nextDown) == UInt64.max - 2047)
    }
}
