import XCTest
@testable import QuantKernels

final class WeightOnlyGemmTests: XCTestCase {
    /// Quantizes a random N×K matrix and packs it for the integer GEMM.
    func packed(_ rng: inout TestRNG, n: Int, k: Int, groupSize: Int, grid: QuantGrid)
        -> (codes: [Int32], scales: [Float], zeros: [Int32], packed: PackedIntWeights) {
        let w = rng.floats(n * k)
        let q = w.withUnsafeBufferPointer { Quantizer.quantize($0.baseAddress!, rows: n, cols: k, groupSize: groupSize, grid: grid) }
        return (q.codes, q.scales, q.zeros,
                IntGemm.packWeights(codes: q.codes, scales: q.scales, zeros: q.zeros, n: n, k: k, groupSize: groupSize, grid: grid))
    }

    /// Asserts `|y − ref| ≤ (K + 4)·ε·Σ_p |x_p·ŵ_p| + ε·|ref|` per output: the bound on f32 summation in
    /// any order (with or without FMA, the group scale applied after its sum) around the exact value.
    func assertWithinSummationOrder(_ y: [Float], _ ref: [Float], x: [Float], dequantized w: [Float], m: Int, n: Int, k: Int,
                                    _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(y.count, ref.count, what, file: file, line: line)
        let eps = Double(Float.ulpOfOne)
        var worst = 0.0
        for i in 0..<m { for j in 0..<n {
            var mag = 0.0
            for p in 0..<k { mag += abs(Double(x[i * k + p]) * Double(w[j * k + p])) }
            let err = abs(Double(y[i * n + j]) - Double(ref[i * n + j]))
            let bound = Double(k + 4) * eps * mag + eps * abs(Double(ref[i * n + j]))
            worst = max(worst, err / max(bound, .leastNormalMagnitude))
        } }
        XCTAssertLessThanOrEqual(worst, 1, "\(what): error / bound", file: file, line: line)
    }

    /// Every path, int8/int4, symmetric/asymmetric (and a 6-bit grid stored as bytes), per channel and
    /// groups of 32/64/128, small M (1…4, the GEMV) and large M (odd), N not a multiple of 16, K = 576,
    /// 1536 and a K that is not a multiple of 8 (per channel only).
    func testMatchesReferenceOnEveryPath() {
        var rng = TestRNG(21)
        let grids = [QuantGrid(bits: 8, symmetric: true), QuantGrid(bits: 8, symmetric: false),
                     QuantGrid(bits: 4, symmetric: true), QuantGrid(bits: 4, symmetric: false, clip: 0.9),
                     QuantGrid(bits: 6, symmetric: false)]
        let cases: [(ms: [Int], n: Int, k: Int, groupSizes: [Int])] = [
            ([1, 2, 3, 4, 5, 37], 40, 576, [576, 32, 64]),
            ([1, 3, 4, 19], 33, 1536, [1536, 128]),
            ([1, 2, 13], 70, 99, [99]),
            ([4, 131], 300, 96, [96, 32]),
        ]
        for c in cases { for gs in c.groupSizes { for grid in grids {
            let (codes, scales, zeros, pw) = packed(&rng, n: c.n, k: c.k, groupSize: gs, grid: grid)
            let deq = pw.dequantized()
            let refW = Reference.weightOnlyGemm([Float](repeating: 1, count: c.k), m: 1, codes: codes, scales: scales,
                                                zeros: zeros, n: c.n, k: c.k, groupSize: gs)
            // The packed panels read back exactly the grid's dequantized weights.
            for j in 0..<c.n {
                for p in 0..<c.k {
                    let g = j * (c.k / gs) + p / gs
                    if deq[j * c.k + p] != grid.dequantize(codes[j * c.k + p], scale: scales[g], zero: zeros[g]) {
                        XCTFail("dequantized \(grid) g\(gs) [\(j), \(p)]"); break
                    }
                }
            }
            XCTAssertEqual(refW.count, c.n)
            for m in c.ms {
                let x = rng.floats(m * c.k, -2, 2), bias = rng.floats(c.n)
                let ref = Reference.weightOnlyGemm(x, m: m, codes: codes, scales: scales, zeros: zeros, n: c.n, k: c.k,
                                                   groupSize: gs, bias: bias)
                forEachPath { path in
                    let what = "\(path) \(m)×\(c.n)×\(c.k) g\(gs) \(grid)"
                    let y = WeightOnlyGemm.multiply(x, m: m, pw, bias: bias)
                    assertWithinSummationOrder(y, ref, x: x, dequantized: deq, m: m, n: c.n, k: c.k, what)
                    if m > 4 {
                        // Large M runs the f32 GEMM's own blocking and micro-kernels on the same values.
                        XCTAssertEqual(y, Gemm.multiply(x, deq, m: m, n: c.n, k: c.k, bias: bias), what)
                    }
                }
            }
        } } }
    }

    /// Weights packed K-major (the gradient GEMMs' operand) run the same.
    func testKMajorPackedWeights() {
        var rng = TestRNG(22)
        let (n, k) = (37, 200)
        let grid = QuantGrid(bits: 4, symmetric: true)
        let codes = (0..<(n * k)).map { _ in Int32(rng.int(-8...7)) }
        let scales = rng.floats(n, 0.01, 0.1)
        var kMajor = [Int8](repeating: 0, count: k * n)
        for j in 0..<n { for p in 0..<k { kMajor[p * n + j] = Int8(codes[j * k + p]) } }
        let pw = kMajor.withUnsafeBufferPointer { PackedIntWeights(kMajor: $0.baseAddress!, ld: n, n: n, k: k, scales: scales, grid: grid) }
        let deq = pw.dequantized()
        for m in [1, 3, 9] {
            let x = rng.floats(m * k)
            let ref = Reference.weightOnlyGemm(x, m: m, codes: codes, scales: scales, zeros: [Int32](repeating: 0, count: n),
                                               n: n, k: k, groupSize: k)
            forEachPath { path in
                assertWithinSummationOrder(WeightOnlyGemm.multiply(x, m: m, pw), ref, x: x, dequantized: deq, m: m, n: n, k: k,
                                           "\(path) K-major m \(m)")
            }
        }
    }

    func testThreadsBitIdentical() {
        var rng = TestRNG(23)
        for (n, k, gs, grid) in [(300, 576, 32, QuantGrid(bits: 4, symmetric: false)),
                                 (170, 1536, 1536, QuantGrid(bits: 8, symmetric: true))] {
            let pw = packed(&rng, n: n, k: k, groupSize: gs, grid: grid).packed
            for m in [1, 2, 3, 4, 64, 301] {
                let x = rng.floats(m * k)
                forEachPath { path in
                    let y1 = WeightOnlyGemm.multiply(x, m: m, pw, threads: 1)
                    XCTAssertEqual(y1, WeightOnlyGemm.multiply(x, m: m, pw, threads: 2), "\(path) m \(m) \(grid)")
                    XCTAssertEqual(y1, WeightOnlyGemm.multiply(x, m: m, pw, threads: 3), "\(path) m \(m) \(grid)")
                }
            }
        }
    }

    /// NaN in a token poisons only that token's outputs; a NaN scale only its column; empty shapes work.
    func testNonFiniteAndEmpty() {
        var rng = TestRNG(24)
        let (n, k) = (20, 64)
        let grid = QuantGrid(bits: 4, symmetric: true)
        var w = rng.floats(n * k)
        w[3 * k + 5] = .nan
        let q = w.withUnsafeBufferPointer { Quantizer.quantize($0.baseAddress!, rows: n, cols: k, groupSize: 32, grid: grid) }
        let pw = IntGemm.packWeights(codes: q.codes, scales: q.scales, zeros: q.zeros, n: n, k: k, groupSize: 32, grid: grid)
        for m in [2, 7] {
            var x = rng.floats(m * k)
            x[1 * k + 10] = .nan
            forEachPath { path in
                let y = WeightOnlyGemm.multiply(x, m: m, pw)
                for i in 0..<m { for j in 0..<n {
                    XCTAssertEqual(y[i * n + j].isNaN, i == 1 || j == 3, "\(path) m \(m) [\(i), \(j)]")
                } }
            }
        }
        XCTAssertEqual(WeightOnlyGemm.multiply([], m: 0, pw).count, 0)
        let empty = IntGemm.packWeights(codes: [], scales: [], zeros: [], n: 3, k: 0, groupSize: 8, grid: grid)
        XCTAssertEqual(WeightOnlyGemm.multiply([], m: 2, empty, bias: [1, 2, 3]), [1, 2, 3, 1, 2, 3])
    }
}
