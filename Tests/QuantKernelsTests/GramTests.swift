import XCTest
@testable import QuantKernels

final class GramTests: XCTestCase {
    /// Shapes across the panel widths (ragged k), several reduction slabs (n > 256) and k ≤ 4.
    let shapes = [(1, 1), (3, 2), (7, 5), (40, 13), (300, 33), (513, 47), (1000, 70), (64, 150)]

    func transposed(_ x: [Float], _ n: Int, _ k: Int) -> [Float] {
        var t = [Float](repeating: 0, count: n * k)
        for r in 0..<n { for c in 0..<k { t[c * n + r] = x[r * k + c] } }
        return t
    }

    func testMatchesReferenceAndIsSymmetric() {
        var rng = TestRNG(11)
        forEachPath { path in
            for (n, k) in shapes {
                let x = rng.floats(n * k)
                let g = Gram.multiply(x, rows: n, cols: k)
                assertClose(g, Reference.gram(x, rows: n, cols: k), tol: 1e-5 * Float(n).squareRoot() + 1e-6, "\(path) \(n)×\(k)")
                for i in 0..<k { for j in 0..<i { XCTAssertEqual(g[i * k + j], g[j * k + i], "\(path) \(n)×\(k) (\(i), \(j))") } }
            }
        }
    }

    /// One triangle plus the mirror is the full f32 GEMM `Xᵀ·(Xᵀ)ᵀ`, bit for bit (k > 4: the packed path).
    func testEqualsTheFullGemmBitForBit() {
        var rng = TestRNG(12)
        forEachPath { path in
            for (n, k) in shapes where k > 4 {
                let x = rng.floats(n * k)
                let xt = transposed(x, n, k)
                XCTAssertEqual(Gram.multiply(x, rows: n, cols: k), Gemm.multiply(xt, xt, m: k, n: k, k: n), "\(path) \(n)×\(k)")
            }
        }
    }

    func testThreadCountsBitIdentical() {
        var rng = TestRNG(13)
        forEachPath { path in
            for (n, k) in [(700, 150), (300, 333)] {
                let x = rng.floats(n * k)
                let one = Gram.multiply(x, rows: n, cols: k, threads: 1)
                XCTAssertEqual(one, Gram.multiply(x, rows: n, cols: k, threads: 2), "\(path)")
                XCTAssertEqual(one, Gram.multiply(x, rows: n, cols: k, threads: 3), "\(path)")
            }
        }
    }

    func testNoRows() {
        XCTAssertEqual(Gram.multiply([], rows: 0, cols: 3), [Float](repeating: 0, count: 9))
    }
}
