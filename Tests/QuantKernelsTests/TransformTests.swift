import XCTest
@testable import QuantKernels

final class TransformTests: XCTestCase {
    /// Every generated ±1 matrix satisfies H·Hᵀ = n·I exactly (in integers).
    func testConstructedMatricesAreHadamard() {
        var built: [Int] = []
        for k in [1, 2, 4, 8, 12, 20, 24, 28, 36, 40, 44, 48, 56, 60, 72, 84, 108, 120, 124, 140, 148, 164, 168, 180, 200, 228, 252] {
            guard let (h, name) = HadamardTransform.construct(k) else { XCTFail("no construction for \(k)"); continue }
            let q = h.map { Int($0) }
            XCTAssertTrue(q.allSatisfy { $0 == 1 || $0 == -1 }, "\(k) \(name)")
            for i in 0..<k { for j in 0..<k {
                var s = 0
                for c in 0..<k { s += q[i * k + c] * q[j * k + c] }
                if s != (i == j ? k : 0) { XCTFail("H·Hᵀ ≠ nI for \(k) (\(name)) at \(i),\(j)"); return }
            } }
            built.append(k)
        }
        XCTAssertNil(HadamardTransform.construct(52), "52 needs GF(25), not provided")
    }

    func testLLMSizes() throws {
        XCTAssertEqual(try HadamardTransform(size: 576).factor, 36)
        XCTAssertEqual(try HadamardTransform(size: 1536).factor, 12)
        XCTAssertEqual(try HadamardTransform(size: 18944).factor, 148)
        XCTAssertEqual(try HadamardTransform(size: 29568).factor, 924)       // Paley II q = 461
        XCTAssertThrowsError(try HadamardTransform(size: 29568, maxFactor: 172))
        XCTAssertThrowsError(try HadamardTransform(size: 13696)) { e in
            XCTAssertTrue("\(e)".contains("block-diagonal Hadamard (block_size: 128)"), "\(e)")
        }
    }

    func testFWHTMatchesScalar() {
        var rng = TestRNG(6)
        for n in [1, 2, 4, 8, 16, 64, 512] {
            var a = rng.floats(n), b = a
            a.withUnsafeMutableBufferPointer { HadamardTransform.fwht($0.baseAddress!, n) }
            b.withUnsafeMutableBufferPointer { HadamardTransform.fwhtReference($0.baseAddress!, n) }
            XCTAssertEqual(a, b, "n = \(n)")
        }
    }

    func testApplyMatchesDenseAndRoundTrips() throws {
        var rng = TestRNG(7)
        try forEachPath { path in
        for n in [1, 8, 12, 16, 24, 32, 40, 64, 96, 140, 148, 192, 240, 384, 512] {
            let h = try HadamardTransform(size: n)
            let rows = 3
            let x = rng.floats(rows * n)
            let m = h.denseMatrix()
            var ref = [Float](repeating: 0, count: rows * n)
            for r in 0..<rows { for i in 0..<n {
                var s: Float = 0
                for j in 0..<n { s += x[r * n + j] * m[i * n + j] }
                ref[r * n + i] = s
            } }
            var y = x
            y.withUnsafeMutableBufferPointer { h.apply($0.baseAddress!, rows: rows) }
            assertClose(y, ref, tol: 1e-5, "\(path) n = \(n)")
            y.withUnsafeMutableBufferPointer { h.apply($0.baseAddress!, rows: rows, transpose: true) }
            assertClose(y, x, tol: 1e-5, "\(path) round trip n = \(n)")
        }
        }
    }

    /// The SIMD row kernels (AVX2 for 2^m ≥ 8, AVX-512 for 2^m ≥ 16) do the portable kernel's
    /// arithmetic in the same order, so every path gives the same bits, both directions.
    func testEveryPathMatchesThePortableKernelExactly() throws {
        var rng = TestRNG(9)
        for n in [8, 16, 32, 48, 96, 192, 256, 384, 576, 1024, 1536] {   // 192, 384, 1536: the hard-coded Paley 12 kernel
            let h = try HadamardTransform(size: n)
            let x = rng.floats(5 * n)
            for transpose in [false, true] {
                var want = x
                KernelDispatch.with(.portable) { want.withUnsafeMutableBufferPointer { h.apply($0.baseAddress!, rows: 5, transpose: transpose) } }
                forEachPath { path in
                    var got = x
                    got.withUnsafeMutableBufferPointer { h.apply($0.baseAddress!, rows: 5, transpose: transpose) }
                    XCTAssertEqual(got, want, "\(path) n = \(n) (\(h.construction)) transpose \(transpose)")
                }
            }
        }
    }

    func testThreadsBitIdentical() throws {
        var rng = TestRNG(8)
        let h = try HadamardTransform(size: 1536)
        let x = rng.floats(37 * 1536)
        var a = x, b = x
        a.withUnsafeMutableBufferPointer { h.apply($0.baseAddress!, rows: 37, threads: 1) }
        b.withUnsafeMutableBufferPointer { h.apply($0.baseAddress!, rows: 37, threads: 2) }
        XCTAssertEqual(a, b)
    }

    func testRowOps() {
        var rng = TestRNG(9)
        let rows = 9, cols = 40, b = 8
        let x = rng.floats(rows * cols)
        let s = rng.floats(cols)
        var y = x
        y.withUnsafeMutableBufferPointer { RowOps.scaleColumns($0.baseAddress!, rows: rows, cols: cols, by: s) }
        XCTAssertEqual(y, (0..<(rows * cols)).map { x[$0] * s[$0 % cols] })
        let perm = (0..<cols).reversed().map { $0 }
        y = x
        y.withUnsafeMutableBufferPointer { RowOps.permuteColumns($0.baseAddress!, rows: rows, cols: cols, perm: perm) }
        XCTAssertEqual(y, (0..<(rows * cols)).map { x[($0 / cols) * cols + perm[$0 % cols]] })
        for shared in [true, false] { for tr in [false, true] {
            let blocks = (0..<(shared ? 1 : cols / b)).map { _ in rng.floats(b * b) }
            y = x
            y.withUnsafeMutableBufferPointer { RowOps.blockMultiply($0.baseAddress!, rows: rows, cols: cols, blockSize: b, blocks: blocks, transposeBlocks: tr) }
            assertClose(y, RowOps.blockMultiplyReference(x, rows: rows, cols: cols, blockSize: b, blocks: blocks, transposeBlocks: tr),
                        tol: 1e-5, "shared \(shared) transpose \(tr)")
        } }
    }

    /// Several row chunks: 1 and 2 threads give the same bits; a row multiplied on its own (a
    /// decode step, the unpacked small-row path) agrees with the batch (a prefill) up to f32
    /// summation order, both ways (`x·R` and `x·Rᵀ`).
    func testBlockMultiplyIsIndependentOfThreadsAndBatch() {
        var rng = TestRNG(11)
        let rows = 101, cols = 192, b = 64
        let x = rng.floats(rows * cols)
        let blocks = (0..<(cols / b)).map { _ in rng.floats(b * b) }
        var one = x, two = x
        one.withUnsafeMutableBufferPointer { RowOps.blockMultiply($0.baseAddress!, rows: rows, cols: cols, blockSize: b, blocks: blocks, threads: 1) }
        two.withUnsafeMutableBufferPointer { RowOps.blockMultiply($0.baseAddress!, rows: rows, cols: cols, blockSize: b, blocks: blocks, threads: 2) }
        XCTAssertEqual(one, two)
        assertClose(one, RowOps.blockMultiplyReference(x, rows: rows, cols: cols, blockSize: b, blocks: blocks), tol: 1e-5, "chunks")
        for tr in [false, true] {
            var batch = x
            batch.withUnsafeMutableBufferPointer { RowOps.blockMultiply($0.baseAddress!, rows: rows, cols: cols, blockSize: b, blocks: blocks, transposeBlocks: tr) }
            for r in [0, 40, 100] {
                var row = Array(x[(r * cols)..<((r + 1) * cols)])
                row.withUnsafeMutableBufferPointer { RowOps.blockMultiply($0.baseAddress!, rows: 1, cols: cols, blockSize: b, blocks: blocks, transposeBlocks: tr) }
                assertClose(row, Array(batch[(r * cols)..<((r + 1) * cols)]), tol: 1e-5, "row \(r) transpose \(tr)")
                XCTAssertNotEqual(row, Array(x[(r * cols)..<((r + 1) * cols)]))
            }
        }
    }
}

final class FusedTests: XCTestCase {
    func testHadamardThenFakeQuantizeIsBitIdentical() throws {
        var rng = TestRNG(10)
        let h = try HadamardTransform(size: 576)
        let grid = QuantGrid(bits: 4, symmetric: false)
        let x = rng.floats(50 * 576)
        forEachPath { _ in
            var a = x, b = x
            a.withUnsafeMutableBufferPointer { h.apply($0.baseAddress!, rows: 50, thenFakeQuantize: (groupSize: 64, grid: grid)) }
            b.withUnsafeMutableBufferPointer {
                h.apply($0.baseAddress!, rows: 50)
                Quantizer.fakeQuantizeReference($0.baseAddress!, rows: 50, cols: 576, groupSize: 64, grid: grid)
            }
            XCTAssertEqual(a.map(\.bitPattern), b.map(\.bitPattern))
        }
    }

    func testQuantizeThreadsBitIdentical() {
        var rng = TestRNG(11)
        let x = rng.floats(300 * 256)
        let g = QuantGrid(bits: 8, symmetric: false)
        let q1 = x.withUnsafeBufferPointer { Quantizer.quantize($0.baseAddress!, rows: 300, cols: 256, groupSize: 128, grid: g, threads: 1) }
        let q2 = x.withUnsafeBufferPointer { Quantizer.quantize($0.baseAddress!, rows: 300, cols: 256, groupSize: 128, grid: g, threads: 2) }
        XCTAssertEqual(q1.codes, q2.codes); XCTAssertEqual(q1.scales, q2.scales); XCTAssertEqual(q1.zeros, q2.zeros)
    }
}
