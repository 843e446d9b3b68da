import XCTest
import QuantKernels
@testable import TrainingQuantization

final class QuantizerPrimitivesTests: XCTestCase {
    /// Same key → same draw; any coordinate change → a different draw; draws look uniform.
    func testKeyedRandomIsAPureFunctionOfItsKey() {
        let id = LinearID(layer: 2, name: "mlp.up_proj")
        let r = KeyedRandom(seed: 7, step: 3, layer: id, stream: .splitRounding)
        XCTAssertEqual(r.uniform(row: 5, column: 9), KeyedRandom(seed: 7, step: 3, layer: id, stream: .splitRounding).uniform(row: 5, column: 9))
        XCTAssertNotEqual(r, KeyedRandom(seed: 7, step: 4, layer: id, stream: .splitRounding))
        XCTAssertNotEqual(r, KeyedRandom(seed: 7, step: 3, layer: LinearID(layer: 3, name: "mlp.up_proj"), stream: .splitRounding))
        XCTAssertNotEqual(r, KeyedRandom(seed: 7, step: 3, layer: id, stream: .sampleInputGradient))
        XCTAssertNotEqual(r.uniform(row: 5, column: 9), r.uniform(row: 9, column: 5))
        var mean = 0.0
        for i in 0..<100_000 { mean += Double(r.uniform(row: i / 100, column: i % 100)) }
        XCTAssertEqual(mean / 100_000, 0.5, accuracy: 0.005)
    }

    /// The kernels' block Hadamard is x·(I ⊗ H_g) with H_g the normalized Sylvester matrix, and its own inverse.
    func testBlockHadamardIsNormalizedSylvester() throws {
        var rng = TestRNG(3)
        for g in [1, 2, 8, 32, 128] {
            let cols = 256, rows = 3
            let x = (0..<(rows * cols)).map { _ in rng.normal() }
            var y = x
            let h = try BlockHadamard(blockSize: g)
            h.apply(&y, cols: cols)
            let s = sylvester(g)
            for r in 0..<rows { for b in 0..<(cols / g) { for j in 0..<g {
                var v = 0.0
                for i in 0..<g { v += Double(x[r * cols + b * g + i]) * s[i * g + j] }
                XCTAssertEqual(Double(y[r * cols + b * g + j]), v, accuracy: 1e-5)
            } } }
            h.apply(&y, cols: cols)
            for i in 0..<x.count { XCTAssertEqual(y[i], x[i], accuracy: 1e-5) }
        }
    }

    /// BS reconstructs G within its quantization error: |G − (14h + l)/σ| < 1/σ where |σG| ≤ 90 (the
    /// largest representable 14·6 + 6), and ≤ (|σG| − 90 + 1)/σ above; the halves stay in [−6, 6];
    /// stochastic rounding is unbiased where nothing clips (mean over keys).
    func testBitSplitReconstructsWithinItsErrorBound() {
        var rng = TestRNG(4)
        let (n, c) = (40, 24)
        let g = (0..<(n * c)).map { _ in rng.normal() * (rng.uniform() < 0.1 ? 8 : 1) }
        var meanErr = [Double](repeating: 0, count: g.count)
        let draws = 400
        for k in 0..<draws {
            let s = BitSplit(g, rows: n, cols: c, random: KeyedRandom(seed: 1, step: k, layer: LinearID(layer: 0, name: "x"), stream: .splitRounding))
            XCTAssertEqual(s.sigma, 98 / g.map { abs($0) }.max()!)
            XCTAssertTrue(s.high.allSatisfy { abs($0) <= 6 } && s.low.allSatisfy { abs($0) <= 6 })
            let rec = s.dequantized
            for i in 0..<g.count {
                let t = abs(g[i] * s.sigma)
                let bound = (max(1, t - 90 + 1)) / s.sigma
                XCTAssertLessThanOrEqual(abs(rec[i] - g[i]), bound * 1.0001)
                meanErr[i] += Double(rec[i] - g[i]) / Double(draws)
            }
        }
        let sigma = Double(98 / g.map { abs($0) }.max()!)
        for i in 0..<g.count {
            let t = Double(g[i]) * sigma
            let r = t - 14 * (t / 14).rounded(.toNearestOrEven)
            if abs(r) <= 5.5 && abs(t) <= 84 {   // the low half cannot clip: unbiased
                // Each draw's error has |e| < 1/σ, so the mean of 400 has sd < 0.5/(σ·20).
                XCTAssertLessThan(abs(meanErr[i]), 5 * 0.5 / (sigma * 20), "element \(i)")
            }
        }
    }

    /// The split's fast row loop equals the formulas written with `KeyedRandom.uniform` and
    /// `PerTensor.clampRound` (odd column count: the last draw is half a pair), with 1 and 2 threads.
    func testBitSplitFastLoopEqualsPlainFormulas() {
        var rng = TestRNG(8)
        let (n, c) = (300, 129)
        let g = (0..<(n * c)).map { _ in rng.normal() }
        let r = KeyedRandom(seed: 2, step: 5, layer: LinearID(layer: 1, name: "y"), stream: .splitRounding)
        for threads in [1, 2] {
            let s = BitSplit(g, rows: n, cols: c, random: r, threads: threads)
            let high = s.high, low = s.low
            for i in 0..<n { for j in 0..<c {
                let t = g[i * c + j] * s.sigma
                let h = PerTensor.clampRound(t / 14, -6, 6)
                let l = PerTensor.clampRound(t - 14 * h + (r.uniform(row: i, column: j) - 0.5), -6, 6)
                XCTAssertEqual(high[i * c + j], Int8(h)); XCTAssertEqual(low[i * c + j], Int8(l))
            } }
        }
    }

    /// The stored code 14h + l decodes to its halves for every pair in [−6, 6]².
    func testSplitCodeDecodes() {
        for h in -6...6 { for l in -6...6 {
            let d = BitSplit.decode(Int8(14 * h + l))
            XCTAssertEqual(Int(d.high), h); XCTAssertEqual(Int(d.low), l)
            XCTAssertEqual(Int(BitSplit.highPart[14 * h + l + 90]), 14 * h)
        } }
    }

    /// LSS probabilities: Σp = n/2, 0 ≤ p ≤ 1, p ∝ score below 1; skip_zero keeps exactly the non-zero rows.
    func testLeverageProbabilities() {
        let scores: [Double] = [100, 50, 1, 2, 3, 0, 4, 5, 6, 1]
        let p = LeverageSampling.probabilities(scores, mode: .sample)
        XCTAssertEqual(p.reduce(0, +), 5, accuracy: 1e-9)
        XCTAssertTrue(p.allSatisfy { $0 >= 0 && $0 <= 1 })
        XCTAssertEqual(p[0], 1); XCTAssertEqual(p[1], 1); XCTAssertEqual(p[5], 0)
        for i in 2..<10 where scores[i] > 0 { XCTAssertEqual(p[i] / scores[i], p[2] / scores[2], accuracy: 1e-12) }
        XCTAssertEqual(LeverageSampling.probabilities(scores, mode: .skipZero), scores.map { $0 > 0 ? 1 : 0 })
        XCTAssertEqual(LeverageSampling.probabilities([0, 0], mode: .sample), [0, 0])
    }

    /// LSS is unbiased: with the split fixed, the mean of Ĝ_sampled·W over many Bernoulli draws equals
    /// the unsampled split product within 5 standard errors (from the measured per-element variance).
    func testLeverageSamplingIsUnbiased() {
        var rng = TestRNG(5)
        let (n, c, k) = (48, 16, 12)
        // Gradients concentrated on a few tokens (as in training): 6 large rows, the rest small.
        let g = (0..<(n * c)).map { i in rng.normal() * (i / c % 8 == 0 ? 10 : 0.3) }
        let w = (0..<(k * c)).map { _ in rng.normal() }
        let split = BitSplit(g, rows: n, cols: c, random: KeyedRandom(seed: 9, step: 0, layer: LinearID(layer: 0, name: "x"), stream: .splitRounding))
        let p = LeverageSampling.probabilities(split.rowNorms(), mode: .sample)
        XCTAssertGreaterThan(p.filter { $0 > 0 && $0 < 1 }.count, 20, "the test must exercise fractional p")
        XCTAssertEqual(p.reduce(0, +), Double(n), accuracy: 1e-6)
        let exact = product(split.dequantized, w, n: n, c: c, k: k)
        var sum = [Double](repeating: 0, count: n * k), sq = sum
        let draws = 3000
        for d in 0..<draws {
            let keep = LeverageSampling.keep(p, random: KeyedRandom(seed: 9, step: d, layer: LinearID(layer: 0, name: "x"), stream: .sampleInputGradient))
            let y = product(SampledGradient(split: split, p: p, keep: keep).dense, w, n: n, c: c, k: k)
            for i in 0..<y.count { sum[i] += y[i]; sq[i] += y[i] * y[i] }
        }
        var worst = 0.0
        for i in 0..<exact.count {
            let mean = sum[i] / Double(draws), variance = max(0, sq[i] / Double(draws) - mean * mean)
            let se = (variance / Double(draws)).squareRoot()
            worst = max(worst, abs(mean - exact[i]) / max(se, 1e-9))
            XCTAssertLessThanOrEqual(abs(mean - exact[i]), 5 * se + 1e-5, "element \(i)")
        }
        XCTAssertGreaterThan(worst, 0, "sampling must actually vary")
    }

    /// LSQ pieces: init 2·mean|x|/√7; codes round half to even and clip to [−8, 7].
    func testPerTensorCodes() {
        XCTAssertEqual(PerTensor.lsqInitialStep([1, -3], bits: 4), Float(2 * 2 / 7.0.squareRoot() + 1e-10), accuracy: 1e-7)
        let q = PerTensor.quantize([0.5, 1.5, 2.5, -100, 100, -0.5], rows: 1, cols: 6, step: 1, bits: 4)
        XCTAssertEqual(q.codes, [0, 2, 2, -8, 7, 0])
        XCTAssertEqual(PerTensor.absmaxStep([0, 0], bits: 8), 1)
    }
}

/// Normalized Sylvester Hadamard matrix of size g (f64, row-major).
func sylvester(_ g: Int) -> [Double] {
    var h: [Double] = [1], n = 1
    while n < g {
        var next = [Double](repeating: 0, count: 4 * n * n)
        for i in 0..<n { for j in 0..<n {
            let v = h[i * n + j] / 2.0.squareRoot()
            next[i * 2 * n + j] = v; next[i * 2 * n + n + j] = v
            next[(n + i) * 2 * n + j] = v; next[(n + i) * 2 * n + n + j] = -v
        } }
        h = next; n *= 2
    }
    return h
}

/// `A·Bᵀ` in f64 (A: n×c, B: k×c).
func product(_ a: [Float], _ b: [Float], n: Int, c: Int, k: Int) -> [Double] {
    var y = [Double](repeating: 0, count: n * k)
    for i in 0..<n { for j in 0..<k { var s = 0.0; for p in 0..<c { s += Double(a[i * c + p]) * Double(b[j * c + p]) }; y[i * k + j] = s } }
    return y
}
