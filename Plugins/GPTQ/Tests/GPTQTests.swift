import XCTest
import QuantCore
import QuantKernels
import LlamaModel
import GPTQ
import TestSupport

final class GPTQTests: XCTestCase {
    func gptq(_ options: [String: OptionValue] = [:]) throws -> GPTQ {
        var o = MethodOptions(defaultsOf: GPTQ.options)
        for (k, v) in options { o.values[k] = v }
        return try GPTQ(options: o)
    }

    /// A site with one linear W (out × in) and calibration inputs X.
    func run(_ method: GPTQ, w: Matrix, x: Matrix, scheme: WeightScheme) throws -> QuantizedWeight {
        let l = Linear(name: "layers.0.mlp.down_proj", weight: w, scheme: scheme)
        let site = Site(name: "layers.0.down", kind: .down, block: 0, linears: [l])
        let model = SyntheticModel.make(seed: 0)
        try method.apply(to: site, calibration: SiteCalibration(inputs: x, windowLength: x.rows),
                         context: MethodContext(model: model, block: model.blocks[0], seed: 0, log: { _ in }))
        return try XCTUnwrap(l.quantized)
    }

    /// Correlated inputs: a random mixing of a few latent factors plus noise.
    func correlatedInputs(_ n: Int, _ k: Int, seed: UInt64) -> Matrix {
        let z = randomMatrix(n, 8, seed: seed), mix = randomMatrix(k, 8, seed: seed + 1)
        var x = z.timesTransposed(mix)
        let noise = randomMatrix(n, k, seed: seed + 2, std: 0.1)
        for i in 0..<x.data.count { x.data[i] += noise.data[i] }
        return x
    }

    /// A NaN or ±inf calibration input shows on the Hessian's diagonal: GPTQ stops with a
    /// NumericalFault naming the site instead of quantizing with a NaN Hessian.
    func testNonFiniteInputsAreCaughtOnTheHessianDiagonal() throws {
        for bad in [Float.nan, .infinity, 1e30] {  // 1e30² overflows f32
            var x = correlatedInputs(64, 32, seed: 1)
            x[17, 9] = bad
            XCTAssertThrowsError(try run(try gptq(), w: randomMatrix(8, 32, seed: 2), x: x, scheme: WeightScheme(bits: 4))) { e in
                guard let f = e as? NumericalFault else { return XCTFail("expected a NumericalFault, got \(e)") }
                XCTAssertEqual(f.quantity, "Hessian")
                XCTAssertEqual(f.site, "layers.0.down")
                XCTAssertFalse(f.value.isFinite)
            }
        }
    }

    func testDiagonalHessianEqualsRTN() throws {
        // X with orthogonal, differently scaled columns: XᵀX is exactly diagonal.
        let k = 32, n = 64
        var x = Matrix(zeros: n, k)
        for j in 0..<k { x[2 * j, j] = Float(j + 1); x[2 * j + 1, j] = -Float(j + 1) }
        let w = randomMatrix(12, k, seed: 3)
        for scheme in [WeightScheme(bits: 4), WeightScheme(bits: 3, symmetric: false), WeightScheme(bits: 4, granularity: .group(8), symmetric: false)] {
            for actOrder in [false, true] {
                let opts: [String: OptionValue] = ["act_order": .bool(actOrder), "static_groups": .bool(actOrder)]
                let q = try run(try gptq(opts), w: w, x: x, scheme: scheme)
                let r = QuantizedWeight.roundToNearest(w, scheme: scheme)
                XCTAssertEqual(q.codes, r.codes, "\(scheme) act-order \(actOrder)")
                XCTAssertEqual(q.scales, r.scales)
            }
        }
    }

    func testGPTQBeatsRTNOnCorrelatedInputs() throws {
        let x = correlatedInputs(512, 64, seed: 5)
        let w = randomMatrix(48, 64, seed: 9)
        let reference = x.timesTransposed(w)
        for scheme in [WeightScheme(bits: 4), WeightScheme(bits: 4, symmetric: false), WeightScheme(bits: 3, granularity: .group(16), symmetric: false)] {
            let rtn = x.timesTransposed(QuantizedWeight.roundToNearest(w, scheme: scheme).dequantized()).relativeError(to: reference)
            for opts: [String: OptionValue] in [[:], ["act_order": .bool(true), "static_groups": .bool(true)], ["static_groups": .bool(true)], ["block_size": .int(16)]] {
                let q = try run(try gptq(opts), w: w, x: x, scheme: scheme)
                let e = x.timesTransposed(q.dequantized()).relativeError(to: reference)
                XCTAssertLessThan(e, rtn * 0.9, "\(scheme) \(opts): GPTQ \(e) vs RTN \(rtn)")
                XCTAssertTrue(q.codes.allSatisfy { $0 >= scheme.grid.qmin && $0 <= scheme.grid.qmax })
            }
        }
    }

    func testBlockSizeOnlyChangesTheOrderOfArithmetic() throws {
        let x = correlatedInputs(256, 40, seed: 6), w = randomMatrix(8, 40, seed: 7)
        let a = try run(try gptq(["block_size": .int(128)]), w: w, x: x, scheme: WeightScheme(bits: 4))
        let b = try run(try gptq(["block_size": .int(7)]), w: w, x: x, scheme: WeightScheme(bits: 4))
        let mismatches = zip(a.codes, b.codes).filter { $0 != $1 }.count
        XCTAssertLessThanOrEqual(mismatches, 2, "lazy batching must not change the result beyond rounding ties")
    }

    func testOneAndTwoThreadsAreBitIdentical() throws {
        let x = correlatedInputs(256, 48, seed: 8), w = randomMatrix(40, 48, seed: 2)
        let saved = Parallel.threadCount
        defer { Parallel.threadCount = saved }
        Parallel.threadCount = 1
        let one = try run(try gptq(), w: w, x: x, scheme: WeightScheme(bits: 4))
        Parallel.threadCount = 2
        let two = try run(try gptq(), w: w, x: x, scheme: WeightScheme(bits: 4))
        XCTAssertEqual(one.codes, two.codes)
    }

    /// The blocked f64 factorization equals the plain one within rounding, on sizes that leave a
    /// ragged last panel, and 1 and 2 threads give the same bits.
    func testBlockedFactorMatchesReference() {
        for k in [5, 64, 150] {
            let x = correlatedInputs(400, k, seed: UInt64(k))
            var h = [Double](repeating: 0, count: k * k)
            let g = Gram.multiply(x.data, rows: x.rows, cols: k)
            for i in 0..<(k * k) { h[i] = Double(g[i]) / 400 }
            for i in 0..<k { h[i * k + i] += 0.01 }
            let fast = GPTQ.upperCholeskyOfInverse(h, k)!, ref = GPTQ.upperCholeskyOfInverseReference(h, k)!
            var worst = 0.0, scale = 0.0
            for i in 0..<(k * k) { worst = max(worst, abs(fast[i] - ref[i])); scale = max(scale, abs(ref[i])) }
            XCTAssertLessThan(worst, 1e-10 * scale, "k = \(k)")
            for i in 0..<k { for j in 0..<i { XCTAssertEqual(fast[i * k + j], 0) } }
            let saved = Parallel.threadCount
            defer { Parallel.threadCount = saved }
            Parallel.threadCount = 1
            let one = GPTQ.upperCholeskyOfInverse(h, k)!
            Parallel.threadCount = 2
            XCTAssertEqual(one, GPTQ.upperCholeskyOfInverse(h, k)!, "k = \(k)")
        }
        XCTAssertNil(GPTQ.upperCholeskyOfInverse([1, 2, 2, 1], 2))
    }

    /// The fast quantizer (one f64 GEMM per lazy batch) against the row-by-row reference with the
    /// same factor: the codes agree except for rare rounding ties, over every grouping option.
    func testFastQuantizeMatchesReference() throws {
        let k = 160, rows = 50
        let x = correlatedInputs(600, k, seed: 31), w = randomMatrix(rows, k, seed: 32)
        var h = Gram.multiply(x.data, rows: x.rows, cols: k).map { Double($0) / 600 }
        for i in 0..<k { h[i * k + i] += 0.01 * 1 }
        let order = (0..<k).sorted { h[$0 * k + $0] > h[$1 * k + $1] }
        for (scheme, actOrder, staticGroups, block) in [(WeightScheme(bits: 4), false, false, 128), (WeightScheme(bits: 4), true, false, 64),
                                                        (WeightScheme(bits: 3, granularity: .group(32), symmetric: false), false, false, 48),
                                                        (WeightScheme(bits: 4, granularity: .group(16)), true, true, 128),
                                                        (WeightScheme(bits: 4, granularity: .tensor), false, false, 100)] {
            let perm = actOrder ? order : Array(0..<k)
            var hp = [Double](repeating: 0, count: k * k)
            for i in 0..<k { for j in 0..<k { hp[i * k + j] = h[perm[i] * k + perm[j]] } }
            let u = GPTQ.upperCholeskyOfInverse(hp, k)!
            let dead = [Bool](repeating: false, count: k)
            let fast = GPTQ.quantize(w, scheme: scheme, u: u, perm: perm, dead: dead, blockSize: block, staticGroups: staticGroups)
            let ref = GPTQ.quantizeReference(w, scheme: scheme, u: u, perm: perm, dead: dead, blockSize: block, staticGroups: staticGroups)
            let mismatches = zip(fast.codes, ref.codes).filter { $0 != $1 }.count
            XCTAssertLessThanOrEqual(mismatches, 3, "\(scheme) act-order \(actOrder) block \(block): \(mismatches) of \(rows * k) codes differ")
            XCTAssertGreaterThan(zip(fast.scales, ref.scales).filter { $0 == $1 }.count, fast.scales.count * 9 / 10)
            let saved = Parallel.threadCount
            defer { Parallel.threadCount = saved }
            Parallel.threadCount = 1
            let one = GPTQ.quantize(w, scheme: scheme, u: u, perm: perm, dead: dead, blockSize: block, staticGroups: staticGroups)
            Parallel.threadCount = 2
            let two = GPTQ.quantize(w, scheme: scheme, u: u, perm: perm, dead: dead, blockSize: block, staticGroups: staticGroups)
            XCTAssertEqual(one.codes, two.codes)
            XCTAssertEqual(one.scales, two.scales)
        }
    }

    /// Large enough that the Hessian, the factorization and the lazy-update GEMMs all split over
    /// threads: 1 and 2 threads give the same codes and scales.
    func testThreadCountsBitIdenticalAtSizesThatSplit() throws {
        let x = correlatedInputs(1024, 256, seed: 41), w = randomMatrix(300, 256, seed: 42)
        let saved = Parallel.threadCount
        defer { Parallel.threadCount = saved }
        for scheme in [WeightScheme(bits: 4), WeightScheme(bits: 4, granularity: .group(64), symmetric: false)] {
            Parallel.threadCount = 1
            let one = try run(try gptq(), w: w, x: x, scheme: scheme)
            Parallel.threadCount = 2
            let two = try run(try gptq(), w: w, x: x, scheme: scheme)
            XCTAssertEqual(one.codes, two.codes, "\(scheme)")
            XCTAssertEqual(one.scales, two.scales, "\(scheme)")
        }
    }

    func testActOrderWithDynamicGroupsIsRejectedInPlan() throws {
        let site = Site(name: "layers.0.down", kind: .down, block: 0,
                        linears: [Linear(name: "d", weight: randomMatrix(4, 32, seed: 1), scheme: WeightScheme(bits: 4, granularity: .group(8)))])
        XCTAssertThrowsError(try gptq(["act_order": .bool(true)]).plan(site: site, config: SyntheticModel.config)) {
            XCTAssertTrue("\($0)".contains("static_groups: true"), "\($0)")
        }
    }

    func testCholeskyDetectsIndefiniteMatrices() {
        XCTAssertNil(GPTQ.cholesky([1, 2, 2, 1], 2))
        XCTAssertNil(GPTQ.upperCholeskyOfInverse([0, 0, 0, 0], 2))
        let u = GPTQ.upperCholeskyOfInverse([4, 2, 2, 3], 2)!
        // UᵀU = H⁻¹ = [[3, −2], [−2, 4]] / 8
        XCTAssertEqual(u[0] * u[0], 3.0 / 8, accuracy: 1e-12)
        XCTAssertEqual(u[0] * u[1], -2.0 / 8, accuracy: 1e-12)
        XCTAssertEqual(u[1] * u[1] + u[3] * u[3], 4.0 / 8, accuracy: 1e-12)
        XCTAssertEqual(u[2], 0)
    }

    /// UᵀU·H = I on a random, ill-conditioned positive-definite matrix larger than the SIMD width.
    func testUpperFactorOfTheInverseOnARandomHessian() {
        let k = 45
        let x = randomMatrix(200, k, seed: 11)
        var h = [Double](repeating: 0, count: k * k)
        for r in 0..<x.rows { for i in 0..<k { for j in 0..<k { h[i * k + j] += Double(x[r, i]) * Double(x[r, j]) * (j == 3 ? 1e3 : 1) * (i == 3 ? 1e3 : 1) } } }
        for i in 0..<k { h[i * k + i] += 1e-3 }
        let u = GPTQ.upperCholeskyOfInverse(h, k)!
        var worst = 0.0
        for i in 0..<k {
            for j in 0..<i { XCTAssertEqual(u[i * k + j], 0) }
            XCTAssertGreaterThan(u[i * k + i], 0)
            for j in 0..<k {
                // (UᵀU·H)_ij = Σ_p U_pi · (U·H)_pj
                var s = 0.0
                for p in 0..<k {
                    var uh = 0.0
                    for q in 0..<k { uh += u[p * k + q] * h[q * k + j] }
                    s += u[p * k + i] * uh
                }
                worst = max(worst, abs(s - (i == j ? 1 : 0)))
            }
        }
        XCTAssertLessThan(worst, 1e-8)
        let l = GPTQ.cholesky(h, k)!
        for i in 0..<k { for j in 0...i {
            var s = 0.0
            for p in 0...j { s += l[i * k + p] * l[j * k + p] }
            XCTAssertEqual(s, h[i * k + j], accuracy: 1e-9 * abs(h[i * k + i]))
        } }
    }

    func testPipelineRunsGPTQOnTheSyntheticModel() throws {
        let model = SyntheticModel.make(seed: 0)
        _ = try model.assignSchemes(QuantScheme(weights: WeightScheme(bits: 4), activations: ActivationScheme(bits: 8)), overrides: [])
        let r = try Pipeline(methods: [try gptq()], propagation: .floatActivations)
            .run(model: model, calibration: SyntheticModel.tokens(seed: 1, windows: 2, length: 32), runner: LlamaForward())
        XCTAssertTrue(r.sites.allSatisfy { $0.relativeOutputError.isFinite && $0.relativeOutputError < 0.5 })
        XCTAssertTrue(model.allSites.allSatisfy { $0.linears.allSatisfy { $0.quantized?.producedBy == "gptq" } })
    }
}
