import XCTest
@testable import QuantKernels

final class QuantizeTests: XCTestCase {
    func testFakeQuantizeBitIdenticalToScalar() { forEachPath { _ in check() } }

    func check() {
        var rng = TestRNG(5)
        for grid in [QuantGrid(bits: 4, symmetric: true), QuantGrid(bits: 4, symmetric: false), QuantGrid(bits: 8, symmetric: false),
                     QuantGrid(bits: 3, symmetric: true, clip: 0.8), QuantGrid(bits: 8, symmetric: true, clip: 0.6)] {
            for (rows, cols, gs) in [(3, 37, 37), (5, 64, 16), (2, 24, 8), (1, 1, 1), (4, 130, 13), (2, 300, 100), (2, 1024, 1024)] {
                var x = rng.floats(rows * cols, -3, 2)
                x[0] = 0; if x.count > 3 { x[3] = -0.0 }
                if rows > 1 { for j in 0..<gs { x[cols + j] = 0 } }   // an all-zero group
                var a = x, b = x
                a.withUnsafeMutableBufferPointer { Quantizer.fakeQuantize($0.baseAddress!, rows: rows, cols: cols, groupSize: gs, grid: grid) }
                b.withUnsafeMutableBufferPointer { Quantizer.fakeQuantizeReference($0.baseAddress!, rows: rows, cols: cols, groupSize: gs, grid: grid) }
                XCTAssertEqual(a.map(\.bitPattern), b.map(\.bitPattern), "\(grid) \(rows)×\(cols) g\(gs)")
                // quantize → dequantize equals fakeQuantize
                let q = x.withUnsafeBufferPointer { Quantizer.quantize($0.baseAddress!, rows: rows, cols: cols, groupSize: gs, grid: grid) }
                for i in 0..<(rows * cols) {
                    let g = (i / cols) * (cols / gs) + (i % cols) / gs
                    let s = q.scales[g], z = q.zeros[g]
                    XCTAssertEqual(q.codes[i], grid.quantize(x[i], scale: s, zero: z))
                    XCTAssertEqual(grid.dequantize(q.codes[i], scale: s, zero: z).bitPattern, b[i].bitPattern)
                }
            }
        }
    }

    func testTiesRoundToEven() {
        // 0.5, 1.5, 2.5, −0.5, −2.5 after scaling must go to 0, 2, 2, 0, −2.
        let grid = QuantGrid(bits: 8, symmetric: true)
        var x: [Float] = [0.5, 1.5, 2.5, -0.5, -2.5, 127, 3.5, -3.5]   // absmax 127 → scale 1
        x.withUnsafeMutableBufferPointer { Quantizer.fakeQuantize($0.baseAddress!, rows: 1, cols: 8, groupSize: 8, grid: grid) }
        XCTAssertEqual(x, [0, 2, 2, -0.0, -2, 127, 4, -4])
    }

    /// minMax reports NaN as (NaN, NaN) and ±inf as an infinite bound on every dispatch path and
    /// at every position (SIMD body and scalar tail), and is unchanged on finite data.
    func testMinMaxSeesNonFiniteValues() {
        for n in [1, 7, 8, 16, 23, 40] {
            for pos in Set([0, n / 2, n - 1]) {
                for bad in [Float.nan, .infinity, -.infinity] {
                    var x = (0..<n).map { Float($0) - 3 }
                    let finite = x.withUnsafeBufferPointer { Quantizer.minMax($0.baseAddress!, n) }
                    XCTAssertEqual(finite.0, -3); XCTAssertEqual(finite.1, Float(n - 4))
                    x[pos] = bad
                    let (lo, hi) = x.withUnsafeBufferPointer { Quantizer.minMax($0.baseAddress!, n) }
                    XCTAssertFalse(lo.isFinite && hi.isFinite, "n \(n) pos \(pos) \(bad): (\(lo), \(hi))")
                    if bad.isNaN { XCTAssertTrue(lo.isNaN && hi.isNaN) }
                }
            }
        }
    }

    /// Fake quantization turns a group holding NaN / ±inf into NaN (the reference does the same);
    /// other groups are untouched by it.
    func testFakeQuantizePoisonsNonFiniteGroups() {
        for bad in [Float.nan, .infinity] {
            var x = (0..<64).map { Float($0 % 13) / 7 - 1 }
            x[37] = bad
            var ref = x
            x.withUnsafeMutableBufferPointer { Quantizer.fakeQuantize($0.baseAddress!, rows: 2, cols: 32, groupSize: 16, grid: QuantGrid(bits: 4, symmetric: false)) }
            ref.withUnsafeMutableBufferPointer { Quantizer.fakeQuantizeReference($0.baseAddress!, rows: 2, cols: 32, groupSize: 16, grid: QuantGrid(bits: 4, symmetric: false)) }
            XCTAssertTrue(x[32..<48].allSatisfy(\.isNaN), "the group of index 37")
            XCTAssertTrue(x[0..<32].allSatisfy(\.isFinite) && x[48..<64].allSatisfy(\.isFinite))
            XCTAssertEqual(x.map(\.bitPattern), ref.map(\.bitPattern), "SIMD and reference agree bit for bit")
        }
    }
}
