import XCTest
import QuantCore
import QuantKernels
import TestSupport

final class QuantizerTests: XCTestCase {
    func testValuesOnTheGridRoundTripExactly() {
        for bits in 2...8 {
            for symmetric in [true, false] {
                let grid = QuantGrid(bits: bits, symmetric: symmetric)
                let scale: Float = 0.125
                let zero: Int32 = symmetric ? 0 : (grid.qmax + 1) / 2
                // Every level, dequantized, quantizes back to itself. (A symmetric scale is
                // absmax/qmax, so the extra −2^(b−1) code only appears when values are clipped.)
                let lowest = symmetric ? -grid.qmax : grid.qmin
                let levels = (lowest...grid.qmax).map { grid.dequantize($0, scale: scale, zero: zero) }
                var w = Matrix(rows: 1, cols: levels.count, data: levels)
                let q = QuantizedWeight.roundToNearest(w, scheme: WeightScheme(bits: bits, granularity: .channel, symmetric: symmetric))
                XCTAssertEqual(q.dequantized().data, levels, "bits \(bits) symmetric \(symmetric)")
                w.data.withUnsafeMutableBufferPointer { Quantizer.fakeQuantize($0.baseAddress!, rows: 1, cols: levels.count, groupSize: levels.count, grid: grid) }
                XCTAssertEqual(w.data, levels)
            }
        }
    }

    func testErrorIsAtMostHalfAStepInsideTheRange() {
        let x = randomMatrix(16, 64, seed: 1)
        for bits in [2, 3, 4, 8] {
            for symmetric in [true, false] {
                let q = QuantizedWeight.roundToNearest(x, scheme: WeightScheme(bits: bits, granularity: .group(16), symmetric: symmetric))
                let d = q.dequantized()
                for r in 0..<16 { for c in 0..<64 {
                    let s = q.scales[r * 4 + c / 16]
                    XCTAssertLessThanOrEqual(abs(d[r, c] - x[r, c]), s / 2 * (1 + 1e-5) + (symmetric ? s : 0),
                                             "bits \(bits) sym \(symmetric) at \(r),\(c)")
                } }
            }
        }
    }

    func testSymmetricGridRangeAndScale() {
        let g = QuantGrid(bits: 4, symmetric: true)
        XCTAssertEqual(g.qmin, -8); XCTAssertEqual(g.qmax, 7)
        let (s, z) = g.parameters(min: -3.5, max: 2)
        XCTAssertEqual(s, 0.5); XCTAssertEqual(z, 0)
        XCTAssertEqual(g.quantize(100, scale: s, zero: z), 7)
        XCTAssertEqual(g.quantize(-100, scale: s, zero: z), -8)
        XCTAssertEqual(QuantGrid(bits: 8, symmetric: true).qmin, -128)
    }

    func testAsymmetricZeroPointAndLevels() {
        let g = QuantGrid(bits: 4, symmetric: false)
        XCTAssertEqual(g.qmin, 0); XCTAssertEqual(g.qmax, 15)
        let (s, z) = g.parameters(min: -1, max: 2)
        XCTAssertEqual(s, 0.2, accuracy: 1e-7)
        XCTAssertEqual(z, 5)   // round(1/0.2)
        XCTAssertEqual(g.dequantize(g.quantize(0, scale: s, zero: z), scale: s, zero: z), 0, "zero is exact")
        // A positive-only group still includes 0 in its range.
        let (s2, z2) = g.parameters(min: 1, max: 3)
        XCTAssertEqual(z2, 0); XCTAssertEqual(s2, 0.2, accuracy: 1e-7)
    }

    func testClipMultipliesTheRange() {
        let g = QuantGrid(bits: 8, symmetric: true, clip: 0.5)
        let (s, _) = g.parameters(min: -127, max: 127)
        XCTAssertEqual(s, 0.5)
    }

    func testRoundHalfToEven() {
        let g = QuantGrid(bits: 8, symmetric: true)
        XCTAssertEqual(g.quantize(2.5, scale: 1, zero: 0), 2)
        XCTAssertEqual(g.quantize(3.5, scale: 1, zero: 0), 4)
        XCTAssertEqual(g.quantize(-2.5, scale: 1, zero: 0), -2)
    }

    func testAllZeroGroupsNeverProduceNaN() {
        for symmetric in [true, false] {
            var x = Matrix(zeros: 3, 32)
            let q = QuantizedWeight.roundToNearest(x, scheme: WeightScheme(bits: 4, granularity: .group(8), symmetric: symmetric))
            XCTAssertFalse(q.dequantized().hasNonFinite)
            XCTAssertEqual(q.dequantized().data, x.data)
            ActivationScheme(bits: 4, granularity: .token, symmetric: symmetric).fakeQuantize(&x)
            XCTAssertEqual(x.data, [Float](repeating: 0, count: 96))
            ActivationScheme(bits: 4, granularity: .tensor, symmetric: symmetric).fakeQuantize(&x)
            XCTAssertFalse(x.hasNonFinite)
        }
    }

    func testPerTensorUsesOneScale() {
        let x = randomMatrix(4, 8, seed: 3)
        let q = QuantizedWeight.roundToNearest(x, scheme: WeightScheme(bits: 4, granularity: .tensor))
        XCTAssertEqual(Set(q.scales).count, 1)
    }

    func testRowScalingCommutesWithRowQuantization() {
        let x = randomMatrix(4, 16, seed: 5)
        var q = QuantizedWeight.roundToNearest(x, scheme: WeightScheme(bits: 4, symmetric: false))
        let f: [Float] = [0.5, 2, 3, 0.25]
        var scaled = x
        for r in 0..<4 { for c in 0..<16 { scaled[r, c] *= f[r] } }
        q.scaleRows(by: f)
        let direct = QuantizedWeight.roundToNearest(scaled, scheme: WeightScheme(bits: 4, symmetric: false))
        XCTAssertEqual(q.codes, direct.codes)
        XCTAssertLessThan(q.dequantized().relativeError(to: direct.dequantized()), 1e-6)
    }
}
