import XCTest
@testable import QuantKernels

final class Gemm64Tests: XCTestCase {
    func doubles(_ rng: inout TestRNG, _ n: Int) -> [Double] { (0..<n).map { _ in Double(rng.float()) + Double(rng.float()) * 1e-7 } }

    /// Ragged shapes around every path's tile sizes and the 128-deep slab; both layouts of B.
    func testMatchesReferenceOnRaggedShapes() {
        var rng = TestRNG(21)
        let shapes = [(1, 1, 1), (3, 5, 2), (8, 24, 128), (9, 25, 129), (13, 47, 300), (64, 64, 64), (100, 800, 70), (37, 29, 513)]
        forEachPath { path in
            for (m, n, k) in shapes {
                let a = doubles(&rng, m * k), b = doubles(&rng, n * k)
                for layout in [Gemm64.BLayout.kByN, .nByK] {
                    let got = Gemm64.multiply(a, b, layout, m: m, n: n, k: k)
                    let want = Reference.gemm64(a, b, layout, m: m, n: n, k: k)
                    var worst = 0.0
                    for i in 0..<(m * n) { worst = max(worst, abs(got[i] - want[i])) }
                    XCTAssertLessThan(worst, 1e-13 * Double(k), "\(path) \(layout) \(m)×\(n)×\(k)")
                }
            }
        }
    }

    /// `C += alpha·A·B` on a strided part of a larger C, leaving the rest alone.
    func testAccumulatesIntoAStridedBlock() {
        var rng = TestRNG(22)
        forEachPath { path in
            let (m, n, k, ldc) = (11, 30, 40, 37)
            let a = doubles(&rng, m * k), b = doubles(&rng, k * n)
            let c0 = doubles(&rng, m * ldc)
            var c = c0
            a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in c.withUnsafeMutableBufferPointer { cp in
                Gemm64.multiplyAdd(ap.baseAddress!, lda: k, bp.baseAddress!, ldb: n, .kByN, into: cp.baseAddress! + 3, ldc: ldc,
                                   m: m, n: n, k: k, alpha: -1)
            } } }
            let ab = Reference.gemm64(a, b, .kByN, m: m, n: n, k: k)
            for i in 0..<m { for j in 0..<ldc {
                let want = j >= 3 && j < 3 + n ? c0[i * ldc + j] - ab[i * n + j - 3] : c0[i * ldc + j]
                XCTAssertEqual(c[i * ldc + j], want, accuracy: 1e-12, "\(path) (\(i), \(j))")
            } }
        }
    }

    func testThreadCountsBitIdentical() {
        var rng = TestRNG(23)
        forEachPath { path in
            for (m, n, k) in [(300, 40, 130), (20, 500, 260), (128, 128, 128)] {
                let a = doubles(&rng, m * k), b = doubles(&rng, n * k)
                for layout in [Gemm64.BLayout.kByN, .nByK] {
                    let one = Gemm64.multiply(a, b, layout, m: m, n: n, k: k, threads: 1)
                    XCTAssertEqual(one, Gemm64.multiply(a, b, layout, m: m, n: n, k: k, threads: 2), "\(path) \(layout)")
                    XCTAssertEqual(one, Gemm64.multiply(a, b, layout, m: m, n: n, k: k, threads: 3), "\(path) \(layout)")
                }
            }
        }
    }
}

extension Gemm64Tests {
    /// `fused: false`, one slab, C = 0: the plain loop `c += a·b` in index order, bit for bit.
    func testUnfusedEqualsThePlainLoopBitForBit() {
        var rng = TestRNG(24)
        forEachPath { path in
            for (m, n, k) in [(3, 5, 7), (64, 64, 64), (128, 128, 128), (9, 50, 100)] {
                let a = doubles(&rng, m * k), b = doubles(&rng, k * n)
                var want = [Double](repeating: 0, count: m * n)
                for i in 0..<m { for j in 0..<n { var s = 0.0; for p in 0..<k { s = s + a[i * k + p] * b[p * n + j] }; want[i * n + j] = s } }
                var c = [Double](repeating: 0, count: m * n)
                a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in c.withUnsafeMutableBufferPointer { cp in
                    Gemm64.multiplyAdd(ap.baseAddress!, lda: k, bp.baseAddress!, ldb: n, .kByN, into: cp.baseAddress!, ldc: n,
                                       m: m, n: n, k: k, fused: false)
                } } }
                XCTAssertEqual(c, want, "\(path) \(m)×\(n)×\(k)")
            }
        }
    }
}
