import XCTest
import Foundation
@testable import QuantKernels

/// `VectorMath` against Foundation and the scalar loops of `VectorMathReference`.
final class VectorMathTests: XCTestCase {
    func ulps(_ a: Float, _ b: Float) -> Float { abs(a - b) / b.ulp }

    func testExpWithinTwoUlpOfFoundation() {
        var worst: Float = 0
        var x: Float = -87.3
        while x < 88.7 {
            let got = VectorMath.exp(x), want = Foundation.exp(x)
            if want >= Float.leastNormalMagnitude { worst = max(worst, ulps(got, want)) }
            x += 0.0137
        }
        XCTAssertLessThanOrEqual(worst, 2, "worst error in ulps")
        XCTAssertEqual(VectorMath.exp(0), 1)
        XCTAssertEqual(VectorMath.exp(-Float.infinity), 0)
        XCTAssertEqual(VectorMath.exp(-100), 0)
        XCTAssertEqual(VectorMath.exp(Float.infinity), .infinity)
        XCTAssertEqual(VectorMath.exp(100), .infinity)
        XCTAssertTrue(VectorMath.exp(Float.nan).isNaN)
    }

    /// A lane's value depends only on its input: the same x in any lane, any tail length.
    func testLanesIndependentOfPosition() {
        var rng = TestRNG(3)
        let x = rng.floats(37, -20, 20)
        var a = x, b = [Float](repeating: 0, count: 37)
        VectorMath.map(x, &a, 37) { VectorMath.exp($0) }
        for i in 0..<37 { b[i] = VectorMath.exp(x[i]) }
        XCTAssertEqual(a, b)
    }

    func testSiluMultiplyAgainstReference() {
        var rng = TestRNG(1)
        for n in [1, 15, 16, 17, 100] {
            let g = rng.floats(n, -12, 12), u = rng.floats(n)
            var got = u
            g.withUnsafeBufferPointer { gp in got.withUnsafeMutableBufferPointer { VectorMath.siluMultiply(gate: gp.baseAddress!, up: $0.baseAddress!, n) } }
            let want = zip(g, u).map { VectorMathReference.silu($0) * $1 }
            assertClose(got, want, tol: 1e-6, "n = \(n)")
        }
    }

    func testRMSNormAgainstReference() {
        var rng = TestRNG(2)
        for n in [3, 16, 576, 579] {
            let x = rng.floats(n, -4, 4), g = rng.floats(n)
            var got = [Float](repeating: 0, count: n)
            x.withUnsafeBufferPointer { xp in g.withUnsafeBufferPointer { gp in got.withUnsafeMutableBufferPointer {
                VectorMath.rmsNorm(xp.baseAddress!, gp.baseAddress!, $0.baseAddress!, n, eps: 1e-5)
            } } }
            assertClose(got, VectorMathReference.rmsNorm(x, g, eps: 1e-5), tol: 1e-5, "n = \(n)")
        }
    }

    func testSoftmaxAndLogSumExpAgainstReference() {
        var rng = TestRNG(4)
        for n in [1, 7, 16, 33, 513] {
            let x = rng.floats(n, -30, 30)
            var p = x
            let sum = VectorMath.exponentiateShifted(&p, n, scale: 0.125)
            VectorMath.scale(&p, n, by: 1 / sum)
            assertClose(p, VectorMathReference.softmax(x, scale: 0.125), tol: 1e-6, "n = \(n)")
            let mx = x.max()!
            let (m, finite) = VectorMath.maximumChecked(x, n)
            XCTAssertEqual(m, mx); XCTAssertTrue(finite)
            let want = x.reduce(0.0) { $0 + Foundation.exp(Double($1 - mx)) }
            XCTAssertEqual(VectorMath.sumExp(x, n, shift: mx), want, accuracy: want * 1e-6)
        }
        var bad = [Float](repeating: 1, count: 40)
        bad[33] = .nan
        XCTAssertFalse(VectorMath.maximumChecked(bad, 40).finite)
        bad[33] = -.infinity
        XCTAssertFalse(VectorMath.maximumChecked(bad, 40).finite)
    }

    func testAdd() {
        var rng = TestRNG(5)
        let x = rng.floats(35), y0 = rng.floats(35)
        var y = y0
        VectorMath.add(&y, x, 35)
        XCTAssertEqual(y, zip(y0, x).map { $0 + $1 })
    }
}
