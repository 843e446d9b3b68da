import XCTest
import Foundation
import QuantCore
@testable import LlamaModel

/// The vectorized RoPE against the plain pairwise rotation: the same bits for both layouts.
final class RopeTests: XCTestCase {
    /// `x₀·cos − x₁·sin`, `x₀·sin + x₁·cos` on each pair, angle `p·θ^(−2i/hd)` in Double rounded to f32.
    func reference(_ x: Matrix, heads: Int, headDim hd: Int, windowLength L: Int, start: Int, theta: Double,
                   interleaved: Bool) -> [Float] {
        var y = x.data
        let half = hd / 2
        for t in 0..<x.rows {
            let p = start + t % L
            for h in 0..<heads {
                for i in 0..<half {
                    let a = Double(p) * pow(theta, -Double(2 * i) / Double(hd)), c = Float(cos(a)), s = Float(sin(a))
                    let base = t * x.cols + h * hd
                    let (j0, j1) = interleaved ? (base + 2 * i, base + 2 * i + 1) : (base + i, base + i + half)
                    let x0 = x.data[j0], x1 = x.data[j1]
                    y[j0] = x0 * c - x1 * s
                    y[j1] = x0 * s + x1 * c
                }
            }
        }
        return y
    }

    func testRopeEqualsPairwiseRotationBitForBit() {
        var state: UInt64 = 7
        for (hd, heads, rows) in [(64, 9, 300), (64, 3, 5), (32, 2, 40), (16, 2, 9), (24, 3, 11)] {
            for interleaved in [true, false] {
                let data = (0..<(rows * heads * hd)).map { _ -> Float in
                    state = state &* 6364136223846793005 &+ 1442695040888963407
                    return Float(Int64(bitPattern: state) >> 40) / Float(1 << 22)
                }
                let x = Matrix(rows: rows, cols: heads * hd, data: data)
                for (L, start) in [(rows, 0), (7, 3)] {
                    var y = x
                    LlamaForward.applyRope(&y, heads: heads, headDim: hd, windowLength: L, startPosition: start, theta: 10000,
                                           layout: interleaved ? .interleavedPairs : .rotateHalf)
                    let want = reference(x, heads: heads, headDim: hd, windowLength: L, start: start, theta: 10000, interleaved: interleaved)
                    XCTAssertEqual(y.data.map(\.bitPattern), want.map(\.bitPattern), "hd \(hd), interleaved \(interleaved), L \(L)")
                }
            }
        }
    }
}
