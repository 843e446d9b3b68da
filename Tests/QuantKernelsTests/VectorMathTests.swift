import XCTest
import Foundation
@testable import QuantKernels
import QuantKernelsVector

/// `VectorMath` on every kernel path against Foundation and the scalar loops of `VectorMathReference`.
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

    /// The softmax's exp for non-positive arguments gives `exp`'s bits: every 4,099th float from −0
    /// down to −inf (the subnormal results included), NaN, and the lower clamp's neighbours.
    func testExpNonPositiveIsExpBitForBit() {
        var xs: [Float] = [0, -0.0, -.infinity, .nan, Float(-87.33654), Float(-87.33654).nextUp, Float(-87.33654).nextDown, -126 * 0.6931472]
        var bits = (-Float(0)).bitPattern
        while bits < Float.infinity.bitPattern | 0x8000_0000 { xs.append(Float(bitPattern: bits)); bits += 4099 }
        var i = 0
        while i < xs.count {
            let n = min(16, xs.count - i)
            let v = VectorLanes.loadPartial(xs.withUnsafeBufferPointer { $0.baseAddress! } + i, n)
            let (got, want) = (VectorLanes.expNonPositive(v), VectorLanes.exp(v))
            for l in 0..<n where got[l].bitPattern != want[l].bitPattern {
                XCTFail("x = \(xs[i + l]): \(got[l]) ≠ \(want[l])"); return
            }
            i += n
        }
        // On every path the softmax's exponentials are `exp(x·scale − max)`, bit for bit.
        forEachPath { path in
            var rng = TestRNG(9)
            let x = rng.floats(53, -200, 40)
            var p = x
            _ = VectorMath.exponentiateShifted(&p, 53, scale: 0.7)
            let mx = x.max()! * 0.7
            XCTAssertEqual(p.map(\.bitPattern), x.map { VectorMath.exp($0 * 0.7 - mx).bitPattern }, "\(path)")
        }
    }

    /// The halving reduction gives `SIMD16.max()`'s value with the largest value in any lane, with
    /// infinities and with the largest value moved to each lane; `maximum` and `maximumChecked` over
    /// rows of every tail length match a plain loop on every path.
    func testHorizontalMaxEqualsLaneByLaneMax() {
        var rng = TestRNG(17)
        for trial in 0..<64 {
            var v = VectorLanes.Lanes(repeating: 0)
            for l in 0..<16 { v[l] = rng.float(-50, 50) }
            if trial % 4 == 1 { v[trial % 16] = .infinity }
            if trial % 4 == 2 { for l in 0..<16 { v[l] = -.infinity } }
            XCTAssertEqual(VectorLanes.horizontalMax(v), v.max(), "\(v)")
            for l in 0..<16 {
                var w = v; w[l] = 1e6
                XCTAssertEqual(VectorLanes.horizontalMax(w), trial % 4 == 1 && l != trial % 16 ? .infinity : 1e6, "lane \(l)")
            }
        }
        forEachPath { path in
            for n in 1...40 {
                let x = rng.floats(n, -9, 9)
                XCTAssertEqual(VectorMath.maximum(x, n), x.max()!, "\(path), n = \(n)")
                XCTAssertEqual(VectorMath.maximumChecked(x, n).max, x.max()!, "\(path), n = \(n)")
            }
        }
    }

    /// A lane's value depends only on its input: the same x in any lane, any tail length.
    func testLanesIndependentOfPosition() {
        var rng = TestRNG(3)
        let x = rng.floats(37, -20, 20)
        var a = x, b = [Float](repeating: 0, count: 37)
        VectorLanes.map(x, &a, 37) { VectorLanes.exp($0) }
        for i in 0..<37 { b[i] = VectorMath.exp(x[i]) }
        XCTAssertEqual(a, b)
    }

    func testSiluMultiplyAgainstReference() {
        forEachPath { path in
            var rng = TestRNG(1)
            for n in [1, 15, 16, 17, 100] {
                let g = rng.floats(n, -12, 12), u = rng.floats(n)
                var inPlace = u, separate = [Float](repeating: .nan, count: n)
                g.withUnsafeBufferPointer { gp in
                    inPlace.withUnsafeMutableBufferPointer { VectorMath.siluMultiply(gate: gp.baseAddress!, up: $0.baseAddress!, into: $0.baseAddress!, n) }
                    u.withUnsafeBufferPointer { up in separate.withUnsafeMutableBufferPointer {
                        VectorMath.siluMultiply(gate: gp.baseAddress!, up: up.baseAddress!, into: $0.baseAddress!, n)
                    } }
                }
                let want = zip(g, u).map { VectorMathReference.silu($0) * $1 }
                assertClose(inPlace, want, tol: 1e-6, "\(path) n = \(n)")
                XCTAssertEqual(separate.map(\.bitPattern), inPlace.map(\.bitPattern), "\(path) n = \(n): into another buffer")
            }
        }
    }

    func testRMSNormAgainstReference() {
        forEachPath { path in
            var rng = TestRNG(2)
            for n in [3, 16, 576, 579] {
                let x = rng.floats(n, -4, 4), g = rng.floats(n)
                var got = [Float](repeating: 0, count: n)
                x.withUnsafeBufferPointer { xp in g.withUnsafeBufferPointer { gp in got.withUnsafeMutableBufferPointer {
                    VectorMath.rmsNorm(xp.baseAddress!, gp.baseAddress!, $0.baseAddress!, n, eps: 1e-5)
                } } }
                assertClose(got, VectorMathReference.rmsNorm(x, g, eps: 1e-5), tol: 1e-5, "\(path) n = \(n)")
            }
        }
    }

    func testSoftmaxAndLogSumExpAgainstReference() {
        forEachPath { path in
            var rng = TestRNG(4)
            for n in [1, 7, 16, 33, 513] {
                let x = rng.floats(n, -30, 30)
                var p = x
                let sum = VectorMath.exponentiateShifted(&p, n, scale: 0.125)
                VectorMath.scale(&p, n, by: 1 / sum)
                assertClose(p, VectorMathReference.softmax(x, scale: 0.125), tol: 1e-6, "\(path) n = \(n)")
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
    }

    func testAdd() {
        forEachPath { path in
            var rng = TestRNG(5)
            let x = rng.floats(35), y0 = rng.floats(35)
            var y = y0, z = [Float](repeating: .nan, count: 35)
            y.withUnsafeMutableBufferPointer { VectorMath.add($0.baseAddress!, x, into: $0.baseAddress!, 35) }
            XCTAssertEqual(y, zip(y0, x).map { $0 + $1 }, "\(path)")
            VectorMath.add(y0, x, into: &z, 35)
            XCTAssertEqual(z, y, "\(path): into another buffer")
        }
    }

    func testDecoderAttentionKernelsAgainstReference() {
        forEachPath { path in
            var rng = TestRNG(6)
            for (depth, count) in [(64, 1), (64, 63), (64, 64), (64, 130), (7, 17), (128, 128), (200, 5)] {
                let q = rng.floats(depth), keys = rng.floats(count * depth)
                // Blocks of 16 positions, dimension-major; the slack past `count` holds garbage.
                let blocks = (count + 15) / 16
                var blocked = rng.floats(blocks * depth * 16, 100, 200)
                for j in 0..<count { for d in 0..<depth { blocked[(j / 16) * depth * 16 + d * 16 + j % 16] = keys[j * depth + d] } }
                var s = [Float](repeating: .nan, count: count + 1)
                q.withUnsafeBufferPointer { qp in blocked.withUnsafeBufferPointer { kp in s.withUnsafeMutableBufferPointer {
                    VectorMath.dotKeyBlocks(qp.baseAddress!, kp.baseAddress!, depth: depth, count: count, into: $0.baseAddress!)
                } } }
                XCTAssertTrue(s[count].isNaN, "wrote past count")
                assertClose(Array(s[..<count]), VectorMathReference.dots(q, keys: keys), tol: 1e-5, "\(path) dotKeyBlocks \(depth)×\(count)")
                let kt = keys
                let w = rng.floats(count)
                var out = [Float](repeating: .nan, count: depth)
                kt.withUnsafeBufferPointer { rp in w.withUnsafeBufferPointer { wp in out.withUnsafeMutableBufferPointer {
                    VectorMath.weightedRowSum(rp.baseAddress!, ld: depth, weights: wp.baseAddress!, count: count, width: depth, into: $0.baseAddress!)
                } } }
                assertClose(out, VectorMathReference.weightedRowSum(kt, weights: w, width: depth), tol: 1e-5, "weightedRowSum \(count)×\(depth)")
            }
        }
    }

    /// `weightedRowSum`'s 128-column sweep gives every output the same bits as the narrower
    /// loops (the same sum in the same order): 128 columns at once equal two 64-column halves
    /// and 16-column strips, on every path.
    func testWeightedRowSumWideSweepIsBitIdentical() {
        var rng = TestRNG(21)
        let n = 256, count = 130
        let rows = rng.floats(count * n), w = rng.floats(count)
        forEachPath { path in
            func sum(_ c0: Int, _ width: Int) -> [Float] {
                var out = [Float](repeating: 0, count: width)
                rows.withUnsafeBufferPointer { r in w.withUnsafeBufferPointer { wp in out.withUnsafeMutableBufferPointer {
                    VectorMath.weightedRowSum(r.baseAddress! + c0, ld: n, weights: wp.baseAddress!, count: count, width: width, into: $0.baseAddress!)
                } } }
                return out
            }
            let wide = sum(0, n)
            XCTAssertEqual(wide.map(\.bitPattern), stride(from: 0, to: n, by: 64).flatMap { sum($0, 64) }.map(\.bitPattern), "\(path) halves")
            XCTAssertEqual(wide.map(\.bitPattern), stride(from: 0, to: n, by: 16).flatMap { sum($0, 16) }.map(\.bitPattern), "\(path) strips")
        }
    }
}
