import XCTest
@testable import QuantKernels
#if arch(x86_64)
import QuantKernelsAVX2
#endif

final class GemmTests: XCTestCase {
    func testMatchesReferenceOnRaggedShapes() {
        var rng = TestRNG(1)
        let shapes = [(1, 1, 1), (1, 7, 1), (5, 1, 3), (1, 33, 70), (3, 19, 17), (4, 5, 100), (2, 130, 203), (1, 65, 576), (5, 17, 33),
                      (7, 33, 1), (13, 47, 300), (37, 29, 513), (100, 70, 64), (150, 160, 260),
                      (9, 1100, 40)]   // more than 1024 columns: two resident column blocks, the last ragged
        forEachPath { path in
            for (m, n, k) in shapes {
                let x = rng.floats(m * k), w = rng.floats(n * k), b = rng.floats(n)
                let ref = Reference.gemm(x, w, m: m, n: n, k: k)
                let tol = 1e-5 * Float(k).squareRoot() + 1e-6
                assertClose(Gemm.multiply(x, w, m: m, n: n, k: k), ref, tol: tol, "\(path) \(m)×\(n)×\(k)")
                let yb = Gemm.multiply(x, w, m: m, n: n, k: k, bias: b)
                let refb = (0..<(m * n)).map { ref[$0] + b[$0 % n] }
                assertClose(yb, refb, tol: tol, "\(path) bias \(m)×\(n)×\(k)")
            }
        }
    }

    #if arch(x86_64)
    /// The AVX2 panel packer against the scalar one: widths 4, 8, 12 (the AVX-512 A panels) and 32,
    /// ragged row counts and depths, and the slack past the end that the 12-wide packing may touch.
    func testSIMDPackingMatchesScalar() throws {
        guard KernelDispatch.available.contains(.avx2) else { throw XCTSkip("no AVX2 here") }
        var rng = TestRNG(5)
        for width in [4, 8, 12, 32] { for count in [1, 5, 12, 13, 40] { for depth in [1, 7, 8, 19, 64] {
            let ld = depth + 3
            let src = rng.floats(count * ld)
            let panels = (count + width - 1) / width
            var ref = [Float](repeating: .nan, count: panels * width * depth + 8)
            var simd = ref
            src.withUnsafeBufferPointer { s in
                ref.withUnsafeMutableBufferPointer { Gemm.packPanels(s.baseAddress!, ld: ld, count: count, depth: depth, width: width, into: $0.baseAddress!) }
                simd.withUnsafeMutableBufferPointer { AVX2F32.pack(s.baseAddress!, ld, count, depth, width, $0.baseAddress!) }
            }
            let n = panels * width * depth
            XCTAssertEqual(Array(simd[..<n]), Array(ref[..<n]), "width \(width) count \(count) depth \(depth)")
        } } }
    }
    #endif

    /// Strided X, W and Y (the attention tiles' operands) against the contiguous product.
    func testStridedOperands() {
        var rng = TestRNG(8)
        forEachPath { path in
            for (m, n, k) in [(5, 7, 3), (64, 150, 64), (13, 64, 200)] {
                let lda = k + 5, ldw = k + 9, ldy = n + 2
                let xs = rng.floats(m * lda), ws = rng.floats(n * ldw)
                let x = (0..<m).flatMap { i in xs[(i * lda)..<(i * lda + k)] }, w = (0..<n).flatMap { j in ws[(j * ldw)..<(j * ldw + k)] }
                var y = [Float](repeating: .nan, count: m * ldy)
                xs.withUnsafeBufferPointer { xp in ws.withUnsafeBufferPointer { wp in y.withUnsafeMutableBufferPointer { yp in
                    Gemm.multiplyStrided(xp.baseAddress!, lda: lda, wp.baseAddress!, ldw: ldw, into: yp.baseAddress!, ldy: ldy, m: m, n: n, k: k, threads: 1)
                } } }
                let got = (0..<m).flatMap { i in y[(i * ldy)..<(i * ldy + n)] }
                assertClose(got, Reference.gemm(x, w, m: m, n: n, k: k), tol: 1e-5 * Float(k).squareRoot(), "\(path) \(m)×\(n)×\(k)")
                XCTAssertTrue((0..<m).allSatisfy { i in y[(i * ldy + n)..<(i * ldy + ldy)].allSatisfy(\.isNaN) }, "wrote past n")
            }
        }
    }

    /// `Y = X·R` with R given K×N (`multiplyKN`) against the reference on Rᵀ, ragged panels.
    func testMultiplyKNMatchesReference() {
        var rng = TestRNG(9)
        forEachPath { path in
            for (m, n, k) in [(5, 7, 3), (64, 64, 64), (37, 70, 33), (130, 40, 300)] {
                let lda = k + 3, ldr = n + 5
                let xs = rng.floats(m * lda), rs = rng.floats(k * ldr)
                let x = (0..<m).flatMap { i in xs[(i * lda)..<(i * lda + k)] }
                let wT = (0..<n).flatMap { j in (0..<k).map { p in rs[p * ldr + j] } }   // N×K: W = Rᵀ
                var y = [Float](repeating: .nan, count: m * n)
                xs.withUnsafeBufferPointer { xp in rs.withUnsafeBufferPointer { rp in y.withUnsafeMutableBufferPointer { yp in
                    Gemm.multiplyKN(xp.baseAddress!, lda: lda, rp.baseAddress!, ldr: ldr, into: yp.baseAddress!, ldy: n, m: m, n: n, k: k, threads: 2)
                } } }
                assertClose(y, Reference.gemm(x, wT, m: m, n: n, k: k), tol: 1e-5 * Float(k).squareRoot(), "\(path) \(m)×\(n)×\(k)")
            }
        }
    }

    /// B packed once (`packB`) and used through a prefix of its columns and steps, as attention
    /// uses each window's K and V: bit for bit the products that pack B themselves.
    func testPackedOperandsEqualPackingPerProduct() {
        var rng = TestRNG(12)
        forEachPath { path in
            // (m, n, k) used of B packed with (columns, steps): two K slabs, more rows than one
            // row block, ragged panels, and prefixes of both.
            for (m, n, k, columns, steps) in [(5, 7, 3, 7, 3), (64, 150, 64, 512, 64), (150, 64, 300, 64, 512),
                                             (37, 33, 513, 40, 520), (12, 64, 257, 64, 257)] {
                let lda = k + 3, ldb = max(columns, steps) + 5, ldy = n + 2
                let x = rng.floats(m * lda), b = rng.floats(max(columns, steps) * ldb)
                let floats = Gemm.packedFloats(columns: columns, steps: steps)
                var packedT = [Float](repeating: .nan, count: floats), packedKN = packedT
                var want = [Float](repeating: .nan, count: m * ldy), got = want
                x.withUnsafeBufferPointer { xp in b.withUnsafeBufferPointer { bp in
                    let (xb, bb) = (xp.baseAddress!, bp.baseAddress!)
                    // Y = X·Wᵀ with W = rows of b (columns × steps).
                    packedT.withUnsafeMutableBufferPointer { pp in
                        let panels = Gemm.packB(transposed: bb, ld: ldb, n: columns, k: steps, into: pp.baseAddress!)
                        want.withUnsafeMutableBufferPointer { Gemm.multiplyStrided(xb, lda: lda, bb, ldw: ldb, into: $0.baseAddress!, ldy: ldy, m: m, n: n, k: k, threads: 1) }
                        got.withUnsafeMutableBufferPointer { Gemm.multiplyPacked(xb, lda: lda, panels, into: $0.baseAddress!, ldy: ldy, m: m, n: n, k: k) }
                    }
                    XCTAssertEqual(got.map(\.bitPattern), want.map(\.bitPattern), "\(path) X·Wᵀ \(m)×\(n)×\(k)")
                    // Y = X·R with R = b read as steps × columns.
                    packedKN.withUnsafeMutableBufferPointer { pp in
                        let panels = Gemm.packB(kn: bb, ld: ldb, k: steps, n: columns, into: pp.baseAddress!)
                        want.withUnsafeMutableBufferPointer { Gemm.multiplyKN(xb, lda: lda, bb, ldr: ldb, into: $0.baseAddress!, ldy: ldy, m: m, n: n, k: k, threads: 1) }
                        got.withUnsafeMutableBufferPointer { Gemm.multiplyPacked(xb, lda: lda, panels, into: $0.baseAddress!, ldy: ldy, m: m, n: n, k: k) }
                    }
                    XCTAssertEqual(got.map(\.bitPattern), want.map(\.bitPattern), "\(path) X·R \(m)×\(n)×\(k)")
                } }
                XCTAssertTrue((0..<m).allSatisfy { i in got[(i * ldy + n)..<(i * ldy + ldy)].allSatisfy(\.isNaN) }, "wrote past n")
            }
        }
    }

    /// Causal products as attention's tiles run them: `.columns` computes every entry a row needs,
    /// `.steps` skips only steps where X is zero; both bit for bit the full product there.
    func testCausalPackedProductsSkipOnlyWhatIsNotNeeded() {
        /// X (m × k) times B packed by `pack` (n columns, k steps), without and with `causal`.
        func products(_ x: [Float], m: Int, k: Int, n: Int, _ causal: Gemm.Causal,
                      pack: (UnsafeMutablePointer<Float>) -> Gemm.PackedPanels) -> (full: [Float], causal: [Float]) {
            var packed = [Float](repeating: .nan, count: Gemm.packedFloats(columns: n, steps: k))
            var full = [Float](repeating: .nan, count: m * n), skipped = full
            x.withUnsafeBufferPointer { xp in packed.withUnsafeMutableBufferPointer { pp in
                let b = pack(pp.baseAddress!)
                full.withUnsafeMutableBufferPointer { Gemm.multiplyPacked(xp.baseAddress!, lda: k, b, into: $0.baseAddress!, ldy: n, m: m, n: n, k: k) }
                skipped.withUnsafeMutableBufferPointer { Gemm.multiplyPacked(xp.baseAddress!, lda: k, b, into: $0.baseAddress!, ldy: n, m: m, n: n, k: k, causal: causal) }
            } }
            return (full, skipped)
        }
        var rng = TestRNG(13)
        forEachPath { path in
            for (offset, m, width) in [(0, 64, 64), (64, 64, 128), (448, 64, 512), (10, 37, 47), (0, 5, 5), (300, 13, 313)] {
                // Q·Kᵀ: m × width scores from depth-24 rows; row r needs columns < offset + r + 1.
                let depth = 24, keys = rng.floats(width * depth)
                let scores = products(rng.floats(m * depth), m: m, k: depth, n: width, .columns(offset: offset)) { dst in
                    keys.withUnsafeBufferPointer { Gemm.packB(transposed: $0.baseAddress!, ld: depth, n: width, k: depth, into: dst) }
                }
                for r in 0..<m {
                    let needed = (r * width)..<(r * width + min(width, offset + r + 1))
                    XCTAssertEqual(scores.causal[needed].map(\.bitPattern), scores.full[needed].map(\.bitPattern), "\(path) columns row \(r)")
                }
                // Some entries past the diagonal were skipped (left NaN) when a micro-tile lies past it.
                if width - offset >= 64 { XCTAssertTrue(scores.causal.contains { $0.isNaN }, "\(path) nothing skipped") }
                // P·V: P (m × width) zero past each row's limit, V width × 40.
                var p = rng.floats(m * width, 0, 1)
                for r in 0..<m { for j in min(width, offset + r + 1)..<width { p[r * width + j] = 0 } }
                let n = 40, v = rng.floats(width * n)
                let out = products(p, m: m, k: width, n: n, .steps(offset: offset)) { dst in
                    v.withUnsafeBufferPointer { Gemm.packB(kn: $0.baseAddress!, ld: n, k: width, n: n, into: dst) }
                }
                XCTAssertEqual(out.causal.map(\.bitPattern), out.full.map(\.bitPattern), "\(path) steps offset \(offset) m \(m) width \(width)")
            }
        }
    }

    /// A ragged last tile of rows (fewer than a micro-kernel's rows, e.g. the AVX-512 path's
    /// 4-row kernel) computes each row with the same operations as a full tile: the same bits.
    func testRaggedRowTilesGiveTheSameBits() {
        var rng = TestRNG(14)
        forEachPath { path in
            for (n, k) in [(32, 64), (70, 300), (64, 513)] {
                let x = rng.floats(24 * k), w = rng.floats(n * k)
                var all = [Float](repeating: .nan, count: 24 * n)
                x.withUnsafeBufferPointer { xp in w.withUnsafeBufferPointer { wp in
                    all.withUnsafeMutableBufferPointer { Gemm.multiplyStrided(xp.baseAddress!, lda: k, wp.baseAddress!, into: $0.baseAddress!, ldy: n, m: 24, n: n, k: k, threads: 1) }
                    for m in [1, 3, 4, 5, 8, 13] {
                        var part = [Float](repeating: .nan, count: m * n)
                        part.withUnsafeMutableBufferPointer { Gemm.multiplyStrided(xp.baseAddress!, lda: k, wp.baseAddress!, into: $0.baseAddress!, ldy: n, m: m, n: n, k: k, threads: 1) }
                        XCTAssertEqual(part.map(\.bitPattern), all[..<(m * n)].map(\.bitPattern), "\(path) \(m) of 24 rows, \(n)×\(k)")
                    }
                } }
            }
        }
    }

    func testEmptyAndZeroDepth() {
        XCTAssertEqual(Gemm.multiply([], [Float](repeating: 1, count: 6), m: 0, n: 3, k: 2).count, 0)
        XCTAssertEqual(Gemm.multiply([], [], m: 2, n: 3, k: 0, bias: [1, 2, 3]), [1, 2, 3, 1, 2, 3])
    }

    func testThreadsBitIdentical() {
        var rng = TestRNG(2)
        forEachPath { path in
            for (m, n, k) in [(2, 300, 257), (64, 200, 300), (301, 37, 65)] {
                let x = rng.floats(m * k), w = rng.floats(n * k)
                let y1 = Gemm.multiply(x, w, m: m, n: n, k: k, threads: 1)
                let y2 = Gemm.multiply(x, w, m: m, n: n, k: k, threads: 2)
                let y3 = Gemm.multiply(x, w, m: m, n: n, k: k, threads: 3)
                XCTAssertEqual(y1, y2, "\(path) \(m)×\(n)×\(k)"); XCTAssertEqual(y1, y3, "\(path) \(m)×\(n)×\(k)")
            }
        }
    }
}

final class GemmUnfusedTests: XCTestCase {
    /// Without fused multiply-add and within one slab (k ≤ 256), the GEMM is the plain f32 loop bit
    /// for bit, on every path and thread count; strided X and Y.
    func testEqualsThePlainLoopBitForBit() {
        var rng = TestRNG(31)
        forEachPath { path in
            for (m, n, k) in [(1, 1, 1), (5, 7, 3), (13, 33, 64), (512, 64, 64), (100, 128, 128), (40, 50, 256)] {
                let x = rng.floats(m * k), w = rng.floats(n * k)
                let want = Reference.gemmUnfused(x, w, m: m, n: n, k: k)
                for threads in [1, 2] {
                    // X rows stride k + 3, Y rows stride n + 2.
                    var xs = [Float](repeating: .nan, count: m * (k + 3))
                    for i in 0..<m { for p in 0..<k { xs[i * (k + 3) + p] = x[i * k + p] } }
                    var y = [Float](repeating: .nan, count: m * (n + 2))
                    xs.withUnsafeBufferPointer { xp in w.withUnsafeBufferPointer { wp in y.withUnsafeMutableBufferPointer { yp in
                        Gemm.multiplyStridedUnfused(xp.baseAddress!, lda: k + 3, wp.baseAddress!, into: yp.baseAddress!, ldy: n + 2,
                                                    m: m, n: n, k: k, threads: threads)
                    } } }
                    for i in 0..<m { XCTAssertEqual(Array(y[(i * (n + 2))..<(i * (n + 2) + n)]), Array(want[(i * n)..<(i * n + n)]),
                                                    "\(path) \(m)×\(n)×\(k) threads \(threads) row \(i)") }
                }
            }
        }
    }
}
