import XCTest
import QuantCore
import QuantKernels
import TrainingQuantization
import HadamardQuantizer

struct Data3 {
    var x: Matrix, w: Matrix, g: Matrix
    /// X with outlier channels, W small, G concentrated on every 7th token.
    init(n: Int, cin: Int, cout: Int, seed: UInt64 = 1) {
        var s = seed
        func rand() -> Float { s = s &* 6364136223846793005 &+ 1442695040888963407; return Float(Int64(bitPattern: s) >> 40) / Float(1 << 23) }
        x = Matrix(rows: n, cols: cin, data: (0..<(n * cin)).map { i in rand() * (i % cin == 3 ? 20 : 1) })
        w = Matrix(rows: cout, cols: cin, data: (0..<(cout * cin)).map { _ in rand() * 0.2 })
        g = Matrix(rows: n, cols: cout, data: (0..<(n * cout)).map { i in rand() * (i / cout % 7 == 0 ? 1 : 0.05) })
    }
}

func hq(_ options: [String: OptionValue]) throws -> HadamardQuantizer {
    var o = MethodOptions(defaultsOf: HadamardQuantizer.options)
    for (k, v) in options { o.values[k] = v }
    return try HadamardQuantizer(options: o)
}

final class HadamardQuantizerTests: XCTestCase {
    let id = LinearID(layer: 2, name: "mlp.down_proj")

    /// Forward and both gradients (and the step-size gradients) against a plain f64 reference of the
    /// same quantizer — dense Sylvester blocks, LSQ codes, bit split, the same keyed draws,
    /// dequantized products in f64 — for g ∈ {1, 16}, `lss: sample | skip_zero` and `backward: f32`,
    /// on every kernel path.
    func testMatchesF64Reference() throws {
        let (n, cin, cout) = (70, 64, 40)
        let d = Data3(n: n, cin: cin, cout: cout)
        for (g, backward, lss) in [(16, "bs_lss", "sample"), (16, "bs_lss", "skip_zero"), (1, "bs_lss", "sample"), (16, "f32", "sample")] {
            let ref = HQReference(d: d, g: g, seed: 5, step: 3, id: id, mode: backward == "f32" ? nil : LSSMode(rawValue: lss)!)
            for path in KernelDispatch.available {
                try KernelDispatch.with(path) {
                    let layer = try hq(["block_size": .string("\(g)"), "backward": .string(backward), "lss": .string(lss)])
                        .makeLinear(id: id, inFeatures: cin, outFeatures: cout, seed: 5)
                    let y = layer.forward(x: d.x, w: d.w, step: 3)
                    // f32 FWHT vs f64 dense Hadamard: the initial steps agree to the last bits.
                    XCTAssertEqual(layer.scalars[0], ref.s, accuracy: 1e-6 * ref.s); XCTAssertEqual(layer.scalars[1], ref.t, accuracy: 1e-6 * ref.t)
                    let (dx, dw) = layer.backward(g: d.g, step: 3)
                    let what = "g=\(g) \(backward) \(lss) \(path)"
                    XCTAssertLessThan(relErr(y.data, ref.y), 1e-5, what)
                    XCTAssertLessThan(relErr(dx.data, ref.dx), 1e-5, what)
                    XCTAssertLessThan(relErr(dw.data, ref.dw), 1e-5, what)
                    XCTAssertEqual(Double(layer.scalarGradients[0]), ref.ds, accuracy: 1e-4 * abs(ref.ds) + 1e-9, what)
                    XCTAssertEqual(Double(layer.scalarGradients[1]), ref.dt, accuracy: 1e-4 * abs(ref.dt) + 1e-9, what)
                    if backward == "bs_lss" { XCTAssertGreaterThan(layer.timing.integerRows, 0, what) }
                    if lss == "skip_zero" && backward == "bs_lss" { XCTAssertEqual(layer.timing.floatRows, 0, what) }
                    if lss == "sample" && backward == "bs_lss" { XCTAssertGreaterThan(layer.timing.floatRows, 0, what) }
                }
            }
        }
    }

    /// LSQ's step-size gradient against central finite differences. Convention (STE): with the
    /// rounding residual r = round(v₀) − v₀ frozen at the current step s₀, x̂(s) = s·(x/s + r) inside
    /// the grid and s·qmin / s·qmax outside; L(s) = Σ G ⊙ (X̂_h(s)·Ŵ_hᵀ); the layer's ∂L/∂s must
    /// equal dL/ds · 1/√(numel·7) (LSQ's gradient scale). Same for the weight step t.
    func testStepSizeGradientMatchesFiniteDifferences() throws {
        let (n, cin, cout) = (30, 32, 12)
        let d = Data3(n: n, cin: cin, cout: cout, seed: 9)
        let layer = try hq(["block_size": .string("8"), "backward": .string("f32")]).makeLinear(id: id, inFeatures: cin, outFeatures: cout, seed: 1)
        // A step small enough that some inputs clip (both branches of the formula are exercised).
        layer.state["lsq_initialized"] = 1
        layer.scalars = [0.09, 0.02]
        _ = layer.forward(x: d.x, w: d.w, step: 0)
        _ = layer.backward(g: d.g, step: 0)
        let h = sylvester(8)
        let xh = blockApply(d.x.data.map(Double.init), h, g: 8, cols: cin), wh = blockApply(d.w.data.map(Double.init), h, g: 8, cols: cin)
        func steFake(_ v: [Double], _ s0: Double, _ s: Double) -> [Double] {
            v.map { x in
                let v0 = Double(Float(x) * (1 / Float(s0)))
                if v0 < -8 { return -8 * s }
                if v0 > 7 { return 7 * s }
                return s * (x / s + (v0.rounded(.toNearestOrEven) - v0))
            }
        }
        func loss(_ xq: [Double], _ wq: [Double]) -> Double {
            var l = 0.0
            for i in 0..<n { for j in 0..<cout {
                var y = 0.0; for p in 0..<cin { y += xq[i * cin + p] * wq[j * cin + p] }
                l += Double(d.g[i, j]) * y
            } }
            return l
        }
        let s0 = 0.09, t0 = 0.02
        var clipped = 0
        for v in xh where abs(Float(v) / Float(s0)) > 7 { clipped += 1 }
        XCTAssertGreaterThan(clipped, 0)
        let eps = 1e-6
        let xq0 = steFake(xh, Float(s0).asDouble, Float(s0).asDouble), wq0 = steFake(wh, Float(t0).asDouble, Float(t0).asDouble)
        let ds = (loss(steFake(xh, Float(s0).asDouble, Float(s0).asDouble + eps), wq0) - loss(steFake(xh, Float(s0).asDouble, Float(s0).asDouble - eps), wq0)) / (2 * eps)
        let dt = (loss(xq0, steFake(wh, Float(t0).asDouble, Float(t0).asDouble + eps)) - loss(xq0, steFake(wh, Float(t0).asDouble, Float(t0).asDouble - eps))) / (2 * eps)
        XCTAssertEqual(Double(layer.scalarGradients[0]), ds / (Double(n * cin) * 7).squareRoot(), accuracy: 1e-3 * abs(ds / (Double(n * cin) * 7).squareRoot()))
        XCTAssertEqual(Double(layer.scalarGradients[1]), dt / (Double(cout * cin) * 7).squareRoot(), accuracy: 1e-3 * abs(dt / (Double(cout * cin) * 7).squareRoot()))
        // Gradients accumulate until zeroed.
        let first = layer.scalarGradients
        _ = layer.forward(x: d.x, w: d.w, step: 1); _ = layer.backward(g: d.g, step: 1)
        XCTAssertEqual(layer.scalarGradients[0], 2 * first[0], accuracy: 1e-6 * abs(first[0]))
        layer.zeroScalarGradients()
        XCTAssertEqual(layer.scalarGradients, [0, 0])
    }

    /// On an activation with an outlier channel, HQ's quantization error ‖Q(X·H)·H − X‖ is far below
    /// plain per-tensor INT4's (LSQ-initialised or absmax RTN).
    func testHadamardLowersErrorOnOutliers() throws {
        let d = Data3(n: 64, cin: 128, cout: 8)
        func err(_ g: Int, absmax: Bool = false) throws -> Double {
            var v = d.x.data
            let h = try BlockHadamard(blockSize: g)
            h.apply(&v, cols: 128)
            let step = absmax ? PerTensor.absmaxStep(v, bits: 4) : PerTensor.lsqInitialStep(v, bits: 4)
            var back = PerTensor.quantize(v, rows: 64, cols: 128, step: step, bits: 4).dequantized
            h.apply(&back, cols: 128)
            return Matrix(rows: 64, cols: 128, data: back).relativeError(to: d.x)
        }
        let plainLSQ = try err(1), plainRTN = try err(1, absmax: true), hq32 = try err(32)
        XCTAssertLessThan(hq32, 0.7 * plainLSQ)
        XCTAssertLessThan(hq32, 0.7 * plainRTN)
    }

    /// State read from a checkpoint is checked before it is applied: a corrupt block size is an
    /// error message, never a trap in the next forward.
    func testCorruptCheckpointStateIsAProblemNotATrap() throws {
        let layer = try hq([:]).makeLinear(id: id, inFeatures: 96, outFeatures: 16, seed: 1)
        XCTAssertNil(layer.problem(restoring: ["block_size": 32, "lsq_initialized": 1], scalars: [0.1, 0.2]))
        for (state, scalars, expected) in [(["block_size": 64], [Float(0.1), 0.2], "block_size 64"),
                                           (["block_size": 3], [0.1, 0.2], "block_size 3"),
                                           (["lsq_initialized": 7], [0.1, 0.2], "lsq_initialized 7"),
                                           (["other": 1], [0.1, 0.2], "unknown state key"),
                                           ([:], [Float.nan, 0.2], "two finite values")] {
            let p = layer.problem(restoring: state, scalars: scalars)
            XCTAssertTrue(p?.contains(expected) == true, "\(state) \(scalars): \(p ?? "accepted")")
        }
    }

    /// `dynamic` keeps the block size with the smallest ‖X̂−X‖·‖Ŵ−W‖, recomputed here in f64 with dense
    /// Sylvester blocks over every power of two dividing `in`; the choice is kept in `state`.
    func testDynamicBlockSizePicksTheMinimiser() throws {
        let (n, cin, cout) = (48, 96, 16)
        let d = Data3(n: n, cin: cin, cout: cout, seed: 4)
        let layer = try hq([:]).makeLinear(id: id, inFeatures: cin, outFeatures: cout, seed: 1)
        XCTAssertNil(layer.state["block_size"])
        _ = layer.forward(x: d.x, w: d.w, step: 0)
        var best = (0, Double.infinity)
        for g in [1, 2, 4, 8, 16, 32] {
            let h = sylvester(g)
            func e(_ m: Matrix) -> Double {
                let v = blockApply(m.data.map(Double.init), h, g: g, cols: cin).map { Float($0) }
                let s = PerTensor.lsqInitialStep(v, bits: 4)
                let q = v.map { min(max(($0 * (1 / s)).rounded(.toNearestOrEven), -8), 7) * s }
                return zip(q, v).reduce(0.0) { $0 + Double($1.0 - $1.1) * Double($1.0 - $1.1) }.squareRoot()
            }
            let product = e(d.x) * e(d.w)
            if product < best.1 { best = (g, product) }
        }
        XCTAssertEqual(layer.state["block_size"], best.0)
        XCTAssertGreaterThan(best.0, 1, "the outlier channel makes a Hadamard worthwhile")
        // A new layer restored from state + scalars continues exactly (checkpoint/resume).
        let restored = try hq([:]).makeLinear(id: id, inFeatures: cin, outFeatures: cout, seed: 1)
        restored.state = layer.state; restored.scalars = [layer.scalars[0] * 1.1, layer.scalars[1]]
        layer.scalars = restored.scalars
        XCTAssertEqual(restored.forward(x: d.w.rows == 0 ? d.x : d.x, w: d.w, step: 7).data, layer.forward(x: d.x, w: d.w, step: 7).data)
        XCTAssertEqual(restored.backward(g: d.g, step: 7).dx.data, layer.backward(g: d.g, step: 7).dx.data)
    }

    /// Same seed → identical bits with 1 and 2 threads (draws are keyed by step, layer and row).
    func testSameBitsOnOneAndTwoThreads() throws {
        let (n, cin, cout) = (512, 128, 192)
        let d = Data3(n: n, cin: cin, cout: cout, seed: 2)
        func run(_ threads: Int) throws -> [[Float]] {
            let saved = Parallel.threadCount
            Parallel.threadCount = threads
            defer { Parallel.threadCount = saved }
            let layer = try hq(["lss": .string("sample")]).makeLinear(id: id, inFeatures: cin, outFeatures: cout, seed: 8)
            let y = layer.forward(x: d.x, w: d.w, step: 5)
            let (dx, dw) = layer.backward(g: d.g, step: 5)
            return [y.data, dx.data, dw.data, layer.scalarGradients]
        }
        let one = try run(1), two = try run(2)
        for i in 0..<one.count { XCTAssertTrue(one[i].elementsEqual(two[i]) { $0.bitPattern == $1.bitPattern }, "output \(i)") }
    }

    func testBadOptions() throws {
        XCTAssertThrowsError(try hq(["block_size": .string("48")]))
        XCTAssertThrowsError(try hq(["block_size": .string("64")]).makeLinear(id: id, inFeatures: 96, outFeatures: 8, seed: 0)) { e in
            XCTAssertTrue("\(e)".contains("does not divide") || "\(e)".contains("dividing"), "\(e)")
        }
        XCTAssertTrue(try hq([:]).planDescription.contains("g=dynamic"))
    }
}

extension Float { var asDouble: Double { Double(self) } }

func relErr(_ a: [Float], _ b: [Double]) -> Double {
    var num = 0.0, den = 0.0
    for i in 0..<b.count { num += (Double(a[i]) - b[i]) * (Double(a[i]) - b[i]); den += b[i] * b[i] }
    return (num / max(den, 1e-30)).squareRoot()
}

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

/// x·(I ⊗ H) in f64 (x: rows × cols).
func blockApply(_ x: [Double], _ h: [Double], g: Int, cols: Int) -> [Double] {
    var y = [Double](repeating: 0, count: x.count)
    for r in 0..<(x.count / cols) { for b in 0..<(cols / g) { for j in 0..<g {
        var s = 0.0
        for i in 0..<g { s += x[r * cols + b * g + i] * h[i * g + j] }
        y[r * cols + b * g + j] = s
    } } }
    return y
}

/// The f64 reference of HQ (+ BS + LSS): quantization decisions by the quantizer's formulas in f32
/// (codes, split, draws: `KeyedRandom`, `LeverageSampling`), products in f64 on dequantized values.
struct HQReference {
    var y: [Double], dx: [Double], dw: [Double], ds: Double, dt: Double, s: Float, t: Float

    init(d: Data3, g: Int, seed: UInt64, step: Int, id: LinearID, mode: LSSMode?) {
        let (n, cin, cout) = (d.x.rows, d.x.cols, d.w.rows)
        let h = sylvester(g)
        let xh = blockApply(d.x.data.map(Double.init), h, g: g, cols: cin).map { Float($0) }
        let wh = blockApply(d.w.data.map(Double.init), h, g: g, cols: cin).map { Float($0) }
        func lsqInit(_ v: [Float]) -> Float {
            var sum = 0.0
            for e in v { sum += Double(abs(e)) }
            let mean: Double = sum / Double(v.count)
            return Float(2 * mean / 7.0.squareRoot() + 1e-10)
        }
        s = lsqInit(xh); t = lsqInit(wh)
        let (s, t) = (s, t)
        let qx = xh.map { min(max(($0 * (1 / s)).rounded(.toNearestOrEven), -8), 7) }
        let qw = wh.map { min(max(($0 * (1 / t)).rounded(.toNearestOrEven), -8), 7) }
        let xq = qx.map { Double($0) * Double(s) }, wq = qw.map { Double($0) * Double(t) }
        y = [Double](repeating: 0, count: n * cout)
        for i in 0..<n { for j in 0..<cout { for p in 0..<cin { y[i * cout + j] += xq[i * cin + p] * wq[j * cin + p] } } }
        // Output gradient as each gradient GEMM sees it.
        var gx = d.g.data.map(Double.init), gw = gx
        if let mode {
            let m = d.g.data.map { abs($0) }.max()!
            let sigma = 98 / m
            let r = KeyedRandom(seed: seed, step: step, layer: id, stream: .splitRounding)
            var hi = [Float](repeating: 0, count: n * cout), lo = hi
            for i in 0..<n { for c in 0..<cout {
                let tt = d.g[i, c] * sigma
                hi[i * cout + c] = min(max((tt / 14).rounded(.toNearestOrEven), -6), 6)
                lo[i * cout + c] = min(max((tt - 14 * hi[i * cout + c] + (r.uniform(row: i, column: c) - 0.5)).rounded(.toNearestOrEven), -6), 6)
            } }
            var norms = [Double](repeating: 0, count: 2 * n)
            for i in 0..<n {
                var sh = 0.0, sl = 0.0
                for c in 0..<cout { sh += Double(hi[i * cout + c]) * Double(hi[i * cout + c]); sl += Double(lo[i * cout + c]) * Double(lo[i * cout + c]) }
                norms[i] = sh.squareRoot() * Double(14 / sigma)
                norms[n + i] = sl.squareRoot() * Double(1 / sigma)
            }
            var xn = [Double](repeating: 0, count: n)
            for i in 0..<n {
                var sx = 0.0
                for c in 0..<cin { sx += Double(qx[i * cin + c]) * Double(qx[i * cin + c]) }
                xn[i] = sx.squareRoot() * Double(s)
            }
            func sampled(_ scores: [Double], _ stream: KeyedRandom.Stream) -> [Double] {
                let p = LeverageSampling.probabilities(scores, mode: mode)
                let keep = LeverageSampling.keep(p, random: KeyedRandom(seed: seed, step: step, layer: id, stream: stream))
                var out = [Double](repeating: 0, count: n * cout)
                for i in 0..<n { for c in 0..<cout {
                    if keep[i] { out[i * cout + c] += Double(14 * hi[i * cout + c]) / Double(sigma) / p[i] }
                    if keep[n + i] { out[i * cout + c] += Double(lo[i * cout + c]) / Double(sigma) / p[n + i] }
                } }
                return out
            }
            gx = sampled(norms, .sampleInputGradient)
            gw = sampled((0..<(2 * n)).map { norms[$0] * xn[$0 % n] }, .sampleWeightGradient)
        }
        var dxh = [Double](repeating: 0, count: n * cin), dwh = [Double](repeating: 0, count: cout * cin)
        for i in 0..<n { for j in 0..<cout { for p in 0..<cin {
            dxh[i * cin + p] += gx[i * cout + j] * wq[j * cin + p]
            dwh[j * cin + p] += gw[i * cout + j] * xq[i * cin + p]
        } } }
        // LSQ: masks and step gradients, then undo H.
        func lsq(_ v: [Float], _ step: Float, _ up: inout [Double]) -> Double {
            var acc = 0.0
            for i in 0..<v.count {
                let q = v[i] * (1 / step)
                if q < -8 { acc += -8 * up[i]; up[i] = 0 } else if q > 7 { acc += 7 * up[i]; up[i] = 0 }
                else { acc += Double(q.rounded(.toNearestOrEven) - q) * up[i] }
            }
            return acc / (Double(v.count) * 7).squareRoot()
        }
        ds = lsq(xh, s, &dxh); dt = lsq(wh, t, &dwh)
        dx = blockApply(dxh, h, g: g, cols: cin); dw = blockApply(dwh, h, g: g, cols: cin)
    }
}
