import XCTest
@testable import QuantKernels

/// `FusedRotationChain` (DuQuant's online `Λ⁻¹·R₁·P·R₂` in one pass) against the steps run one by
/// one (`RowOps`, bit for bit) and the scalar reference, on odd row counts (the decode path ≤ 4,
/// chunk edges at 128), block sizes 32/64/128, with and without the scale and permutation, shared
/// and per-block matrices, on every kernel path and thread count.
final class FusedRotationChainTests: XCTestCase {
    func chain(cols: Int, b: Int, scale: Bool, shared: Bool, permute: Bool, second: Bool = true, seed: UInt64) -> FusedRotationChain {
        var rng = TestRNG(seed)
        let n = shared ? 1 : cols / b, r = (3 / Float(b)).squareRoot()   // entries ±√(3/b): rows of about unit norm, like rotations
        var perm = Array(0..<cols)
        for i in stride(from: cols - 1, to: 0, by: -1) { perm.swapAt(i, rng.int(0...i)) }
        return FusedRotationChain(cols: cols, blockSize: b, scale: scale ? rng.floats(cols, 0.1, 4) : nil,
                                  first: (0..<n).map { _ in rng.floats(b * b, -r, r) }, permutation: permute ? perm : nil,
                                  second: second ? (0..<n).map { _ in rng.floats(b * b, -r, r) } : nil)!
    }

    func run(_ c: FusedRotationChain, _ x: [Float], rows: Int, threads: Int, fused: Bool = true) -> [Float] {
        var y = x
        y.withUnsafeMutableBufferPointer {
            if fused { c.apply($0.baseAddress!, rows: rows, threads: threads) } else { c.applySteps($0.baseAddress!, rows: rows, threads: threads) }
        }
        return y
    }

    func testBitIdenticalToStepsOnOddShapes() {
        var rng = TestRNG(1)
        for b in [32, 64, 128] {
            let cols = b == 32 ? 3 * b : 2 * b
            for rows in [1, 3, 4, 5, 127, 129, 300] {
                let x = rng.floats(rows * cols, -3, 3)
                for scale in [false, true] { for shared in [false, true] {
                    let c = chain(cols: cols, b: b, scale: scale, shared: shared, permute: true, seed: UInt64(rows * b))
                    let steps = run(c, x, rows: rows, threads: 1, fused: false)
                    let what = "b \(b) rows \(rows) scale \(scale) shared \(shared)"
                    let one = run(c, x, rows: rows, threads: 1), two = run(c, x, rows: rows, threads: 2)
                    XCTAssertEqual(one.map(\.bitPattern), steps.map(\.bitPattern), what)
                    XCTAssertEqual(two.map(\.bitPattern), one.map(\.bitPattern), "threads: " + what)
                } }
            }
        }
    }

    /// The partial chains: `[s]·R₁` alone, `R₁·R₂` without permutation.
    func testPartialChainsBitIdentical() {
        var rng = TestRNG(2)
        let b = 64, cols = 192
        for rows in [1, 4, 5, 200, 300] {
            let x = rng.floats(rows * cols)
            for (permute, second) in [(false, false), (false, true)] { for scale in [false, true] {
                let c = chain(cols: cols, b: b, scale: scale, shared: false, permute: permute, second: second, seed: 7)
                let steps = run(c, x, rows: rows, threads: 2, fused: false)
                for t in [1, 2] {
                    XCTAssertEqual(run(c, x, rows: rows, threads: t).map(\.bitPattern), steps.map(\.bitPattern),
                                   "rows \(rows) second \(second) scale \(scale) threads \(t)")
                }
            } }
        }
    }

    /// Every kernel path (SIMD and portable) against the scalar reference, and bit-identical to
    /// the steps on that path.
    func testEveryPathAgainstScalarReference() {
        var rng = TestRNG(3)
        for (rows, b) in [(1, 32), (4, 64), (5, 128), (129, 64), (300, 32)] {
            let cols = 3 * b
            let x = rng.floats(rows * cols)
            let c = chain(cols: cols, b: b, scale: true, shared: false, permute: true, seed: UInt64(rows))
            let reference = c.reference(x, rows: rows)
            forEachPath { path in
                let fused = run(c, x, rows: rows, threads: 2)
                assertClose(fused, reference, tol: 1e-5, "\(path) rows \(rows) b \(b)")
                XCTAssertEqual(fused.map(\.bitPattern), run(c, x, rows: rows, threads: 1, fused: false).map(\.bitPattern), "\(path)")
            }
        }
    }

    /// Block sizes that are not a multiple of any panel width (a user's `block_size: 3` or 20):
    /// R₁ᵀ's A panels end in a ragged tile and x's block is packed with a depth tail.
    func testOddBlockSizesBitIdentical() {
        var rng = TestRNG(4)
        for b in [3, 12, 20] {
            let cols = 3 * b
            for rows in [5, 130] {
                let x = rng.floats(rows * cols)
                let c = chain(cols: cols, b: b, scale: true, shared: false, permute: true, seed: UInt64(b))
                forEachPath { path in
                    let steps = run(c, x, rows: rows, threads: 1, fused: false)
                    for t in [1, 2] {
                        XCTAssertEqual(run(c, x, rows: rows, threads: t).map(\.bitPattern), steps.map(\.bitPattern),
                                       "\(path) b \(b) rows \(rows) threads \(t)")
                    }
                }
            }
        }
    }

    func testRejectsShapesItCannotFuse() {
        let r = [[Float]](repeating: [Float](repeating: 0, count: 16), count: 1)
        XCTAssertNil(FusedRotationChain(cols: 12, blockSize: 4, first: [[Float]](repeating: [Float](repeating: 0, count: 16), count: 2)))
        XCTAssertNil(FusedRotationChain(cols: 10, blockSize: 4, first: r))
        XCTAssertNil(FusedRotationChain(cols: 8, blockSize: 4, first: r, permutation: Array(0..<8)))   // P without R₂
        XCTAssertNil(FusedRotationChain(cols: 8, blockSize: 4, scale: [1, 2], first: r))
        XCTAssertNil(FusedRotationChain(cols: 512, blockSize: 512, first: [[Float]](repeating: [Float](repeating: 0, count: 512 * 512), count: 1)))
        XCTAssertNotNil(FusedRotationChain(cols: 8, blockSize: 4, first: r, permutation: Array(0..<8), second: r))
    }
}
