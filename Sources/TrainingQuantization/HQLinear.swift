import Foundation
import QuantCore
import QuantKernels

/// The quantizers of "Training Transformers with 4-bit Integers" (Xi et al., 2023) on one linear
/// layer `Y = X·Wᵀ` (X: tokens×in, W: out×in, row-major).
///
/// Forward, Hadamard quantizer (HQ): `X_h = X·H`, `W_h = W·H` (`BlockHadamard`), per-tensor INT4
/// with learned step sizes s (input) and t (weight) (`PerTensor`, LSQ), `Y = s·t·(q_x·q_wᵀ)` on the
/// integer kernels. Backward, bit splitting + leverage-score sampling (BS + LSS): G splits into
/// INT4 halves (`BitSplit`), each gradient GEMM samples its 2N split rows (`LeverageSampling`),
/// rows kept with p = 1 run on the integer kernels (`∂X̂_h = Ĝ·Ŵ_h`, `∂Ŵ_h = Ĝᵀ·X̂_h`), rows kept
/// with p < 1 in f32; then LSQ's straight-through masks and step gradients, then `·H` undoes the
/// Hadamard. `forward: .float` or `backward: .float` switch either half off (for the ablations).
///
/// A token whose two split halves both take the integer path enters the gradient GEMMs as one 8-bit
/// code `14h + l`: exactly the paper's two INT4 GEMMs `14·(h·B) + l·B` in int32, in one pass.
/// Checkpoints: `scalars = [s, t]` and `state` (`block_size`, `lsq_initialized`) are all a layer
/// needs to continue bit-identically.
public final class HQLinear: TrainingLinear {
    public enum Forward: Sendable, Equatable {
        case float
        /// nil block size = `dynamic` (chosen on the first step, kept in `state["block_size"]`).
        case hq(blockSize: Int?)
    }
    public enum Backward: Sendable, Equatable {
        case float
        case bitSplit(LSSMode)
    }

    public let id: LinearID
    public let forwardKind: Forward, backwardKind: Backward
    public let inFeatures: Int, outFeatures: Int
    let seed: UInt64
    /// HQ: `[s, t]`, the input and weight step sizes (used as |s|, |t|, as the released code does).
    public var scalars: [Float]
    public private(set) var scalarGradients: [Float]
    /// `block_size` (HQ's g) and `lsq_initialized` (1 once the step sizes were initialised).
    public var state: [String: Int] = [:]
    public private(set) var timing = LinearTiming()
    /// The block-size search of the first step (g, ‖X̂−X‖·‖Ŵ−W‖), for reports.
    public private(set) var blockSearch: [(Int, Double)] = []

    /// What backward needs from the forward.
    private struct Saved {
        var x: [Float], w: [Float]          // X_h, W_h (or X, W for a float forward)
        var qx: IntCodes?, qw: IntCodes?    // HQ codes
        var tokens: Int
    }
    private var saved: Saved?
    private var hadamard: BlockHadamard?

    public init(id: LinearID, inFeatures: Int, outFeatures: Int, seed: UInt64, forward: Forward, backward: Backward) throws {
        self.id = id; self.inFeatures = inFeatures; self.outFeatures = outFeatures; self.seed = seed
        forwardKind = forward; backwardKind = backward
        if case .hq(let g?) = forward {
            guard g >= 1, g & (g - 1) == 0, inFeatures % g == 0 else {
                throw TrainingQuantizerError("\(id): Hadamard block size \(g) must be a power of two dividing in = \(inFeatures); "
                                             + "powers of two that do: \(BlockHadamard.searchSizes.filter { inFeatures % $0 == 0 }.map(String.init).joined(separator: ", ")), or `dynamic`")
            }
            state["block_size"] = g
        }
        let hq: Bool = { if case .hq = forward { return true }; return false }()
        scalars = hq ? [1, 1] : []
        scalarGradients = hq ? [0, 0] : []
    }

    public func zeroScalarGradients() { scalarGradients = scalarGradients.map { _ in 0 } }

    // MARK: forward

    public func forward(x: Matrix, w: Matrix, step: Int) -> Matrix {
        precondition(x.cols == inFeatures && w.rows == outFeatures && w.cols == inFeatures, "\(id): shape mismatch")
        guard case .hq = forwardKind else {
            let t0 = DispatchTime.now()
            saved = Saved(x: x.data, w: w.data, qx: nil, qw: nil, tokens: x.rows)
            let y = x.timesTransposed(w)
            timing.floatGemm += seconds(since: t0)
            return y
        }
        var t0 = DispatchTime.now()
        let h = resolveHadamard(x: x, w: w)
        var xh = x.data, wh = w.data
        h.apply(&xh, cols: inFeatures); h.apply(&wh, cols: inFeatures)
        if state["lsq_initialized"] != 1 {
            scalars = [PerTensor.lsqInitialStep(xh, bits: 4), PerTensor.lsqInitialStep(wh, bits: 4)]
            state["lsq_initialized"] = 1
        }
        let (s, t) = steps
        let qx = PerTensor.quantize(xh, rows: x.rows, cols: inFeatures, step: s, bits: 4)
        let qw = PerTensor.quantize(wh, rows: outFeatures, cols: inFeatures, step: t, bits: 4)
        let a = IntProducts.activations(qx, rowScales: nil), b = IntProducts.weights(qw)
        saved = Saved(x: xh, w: wh, qx: qx, qw: qw, tokens: x.rows)
        timing.quantize += seconds(since: t0)
        t0 = DispatchTime.now()
        let y = IntGemm.multiply(a, b)
        timing.integerGemm += seconds(since: t0)
        return Matrix(rows: x.rows, cols: outFeatures, data: y)
    }

    /// |s|, |t| (never 0).
    var steps: (Float, Float) { (max(abs(scalars[0]), .leastNormalMagnitude), max(abs(scalars[1]), .leastNormalMagnitude)) }

    public func problem(restoring state: [String: Int], scalars: [Float]) -> String? {
        if scalars.count != 2 || scalars.contains(where: { !$0.isFinite }) { return "learned step sizes \(scalars): expected two finite values" }
        for key in state.keys where key != "block_size" && key != "lsq_initialized" { return "unknown state key '\(key)'" }
        if let g = state["block_size"], !(g >= 1 && g <= 1024 && g & (g - 1) == 0 && inFeatures % g == 0) {
            return "block_size \(g) is not a power of two ≤ 1024 dividing the input size \(inFeatures)"
        }
        if let i = state["lsq_initialized"], i != 0 && i != 1 { return "lsq_initialized \(i): expected 0 or 1" }
        return nil
    }

    /// The block Hadamard for this layer: `state["block_size"]`, or the `dynamic` search on this batch.
    private func resolveHadamard(x: Matrix, w: Matrix) -> BlockHadamard {
        if state["block_size"] == nil {
            // Only `dynamic` gets here; the search cannot fail (g = 1 always divides).
            let r = try! BlockHadamard.search(x: x.data, w: w.data, cols: inFeatures)
            state["block_size"] = r.blockSize
            blockSearch = r.errors
        }
        let g = state["block_size"]!
        if hadamard?.blockSize != g {
            precondition(g >= 1 && g & (g - 1) == 0 && inFeatures % g == 0, "\(id): state block_size \(g) does not divide \(inFeatures)")
            hadamard = try! BlockHadamard(blockSize: g)
        }
        return hadamard!
    }

    // MARK: backward

    public func backward(g: Matrix, step: Int) -> (dx: Matrix, dw: Matrix) {
        guard let sv = saved else { preconditionFailure("\(id): backward before forward") }
        precondition(g.rows == sv.tokens && g.cols == outFeatures, "\(id): gradient shape mismatch")
        let n = sv.tokens
        var dxh: [Float], dwh: [Float]
        switch backwardKind {
        case .float:
            let t0 = DispatchTime.now()
            let xhat = sv.qx?.dequantized ?? sv.x, what = sv.qw?.dequantized ?? sv.w
            timing.quantize += seconds(since: t0)
            let t1 = DispatchTime.now()
            dxh = Gemm.multiply(g.data, transpose(what, rows: outFeatures, cols: inFeatures), m: n, n: inFeatures, k: outFeatures)
            dwh = Gemm.multiply(transpose(g.data, rows: n, cols: outFeatures), transpose(xhat, rows: n, cols: inFeatures),
                                m: outFeatures, n: inFeatures, k: n)
            timing.floatGemm += seconds(since: t1)
        case .bitSplit(let mode):
            (dxh, dwh) = bitSplitBackward(g: g.data, sv: sv, mode: mode, step: step)
        }
        let t0 = DispatchTime.now()
        if case .hq = forwardKind {
            let (s, t) = steps
            scalarGradients[0] += PerTensor.lsqBackward(sv.x, step: s, bits: 4, upstream: &dxh)
            scalarGradients[1] += PerTensor.lsqBackward(sv.w, step: t, bits: 4, upstream: &dwh)
            hadamard!.apply(&dxh, cols: inFeatures); hadamard!.apply(&dwh, cols: inFeatures)
        }
        timing.quantize += seconds(since: t0)
        return (Matrix(rows: n, cols: inFeatures, data: dxh), Matrix(rows: outFeatures, cols: inFeatures, data: dwh))
    }

    /// `(∂X̂_h, ∂Ŵ_h)` through BS + LSS.
    private func bitSplitBackward(g: [Float], sv: Saved, mode: LSSMode, step: Int) -> ([Float], [Float]) {
        let n = sv.tokens, cIn = inFeatures, cOut = outFeatures
        var t0 = DispatchTime.now()
        let split = BitSplit(g, rows: n, cols: cOut, random: KeyedRandom(seed: seed, step: step, layer: id, stream: .splitRounding))
        let norms = split.rowNorms()
        // ∂X: scores are the split rows' norms; ∂W: ‖g_r‖·‖x̂_r‖.
        let px = LeverageSampling.probabilities(norms, mode: mode)
        let kx = LeverageSampling.keep(px, random: KeyedRandom(seed: seed, step: step, layer: id, stream: .sampleInputGradient))
        let xNorms = rowNorms(sv.qx, float: sv.x, rows: n, cols: cIn)
        let pw = LeverageSampling.probabilities((0..<(2 * n)).map { norms[$0] * xNorms[$0 % n] }, mode: mode)
        let kw = LeverageSampling.keep(pw, random: KeyedRandom(seed: seed, step: step, layer: id, stream: .sampleWeightGradient))
        let gx = SampledGradient(split: split, p: px, keep: kx)
        // skip_zero usually keeps the same rows for both GEMMs: build once.
        let gw = kx == kw && px == pw ? gx : SampledGradient(split: split, p: pw, keep: kw)
        timing.quantize += seconds(since: t0)

        var dxh = [Float](repeating: 0, count: n * cIn)
        var dwh = [Float](repeating: 0, count: cOut * cIn)
        if let qx = sv.qx, let qw = sv.qw {
            // Integer parts. ∂X̂_h[i] = Ĝ_i·Ŵ_h: A = codes (tokens × out), B = q_wᵀ (in × out).
            if gx.integer.rows > 0 {
                t0 = DispatchTime.now()
                let a = IntProducts.activations(gx.integer), b = IntProducts.weights(kMajor: qw)
                timing.quantize += seconds(since: t0)
                t0 = DispatchTime.now()
                if gx.integerTokens.count == n {
                    dxh.withUnsafeMutableBufferPointer { IntGemm.multiply(a, b, into: $0.baseAddress!) }
                } else {
                    let y = IntGemm.multiply(a, b)
                    scatter(y, rows: gx.integerTokens, cols: cIn, into: &dxh, add: false)
                }
                timing.integerGemm += seconds(since: t0)
            }
            // ∂Ŵ_h = Ĝᵀ·X̂_h over the integer tokens T: A = codesᵀ (out × T), B = q_x[T]ᵀ (in × T).
            if gw.integer.rows > 0 {
                t0 = DispatchTime.now()
                let a = IntProducts.activationsTransposed(gw.integer)
                let b = IntProducts.weights(kMajor: qx, rows: gw.integerTokens)
                timing.quantize += seconds(since: t0)
                t0 = DispatchTime.now()
                dwh = IntGemm.multiply(a, b)
                timing.integerGemm += seconds(since: t0)
            }
            timing.integerRows += gx.integerRowCount + gw.integerRowCount
            floatParts(gx, gw, xhat: { qx.dequantized }, what: { qw.dequantized }, n: n, dxh: &dxh, dwh: &dwh)
        } else {
            // Float forward: every kept row multiplies the float operands in f32.
            t0 = DispatchTime.now()
            let denseX = gx.dense, denseW = gw.dense
            timing.quantize += seconds(since: t0)
            t0 = DispatchTime.now()
            dxh = Gemm.multiply(denseX, transpose(sv.w, rows: cOut, cols: cIn), m: n, n: cIn, k: cOut)
            dwh = Gemm.multiply(transpose(denseW, rows: n, cols: cOut), transpose(sv.x, rows: n, cols: cIn), m: cOut, n: cIn, k: n)
            timing.floatGemm += seconds(since: t0)
            timing.floatRows += gx.integerRowCount + gx.floatRowCount + gw.integerRowCount + gw.floatRowCount
        }
        return (dxh, dwh)
    }

    /// The f32 parts (rows kept with p < 1), added into `dxh`, `dwh`.
    private func floatParts(_ gx: SampledGradient, _ gw: SampledGradient, xhat: () -> [Float], what: () -> [Float], n: Int,
                            dxh: inout [Float], dwh: inout [Float]) {
        let cIn = inFeatures, cOut = outFeatures
        timing.floatRows += gx.floatRowCount + gw.floatRowCount
        if !gx.floatTokens.isEmpty {
            var t0 = DispatchTime.now()
            let wT = transpose(what(), rows: cOut, cols: cIn)
            timing.quantize += seconds(since: t0)
            t0 = DispatchTime.now()
            let y = Gemm.multiply(gx.float, wT, m: gx.floatTokens.count, n: cIn, k: cOut)
            scatter(y, rows: gx.floatTokens, cols: cIn, into: &dxh, add: true)
            timing.floatGemm += seconds(since: t0)
        }
        if !gw.floatTokens.isEmpty {
            var t0 = DispatchTime.now()
            let xAll = xhat()
            let tf = gw.floatTokens.count
            var xf = [Float](repeating: 0, count: tf * cIn)
            for (o, i) in gw.floatTokens.enumerated() { for j in 0..<cIn { xf[o * cIn + j] = xAll[i * cIn + j] } }
            let gT = transpose(gw.float, rows: tf, cols: cOut), xT = transpose(xf, rows: tf, cols: cIn)
            timing.quantize += seconds(since: t0)
            t0 = DispatchTime.now()
            let y = Gemm.multiply(gT, xT, m: cOut, n: cIn, k: tf)
            dwh.withUnsafeMutableBufferPointer { d in y.withUnsafeBufferPointer { s in for i in 0..<s.count { d[i] += s[i] } } }
            timing.floatGemm += seconds(since: t0)
        }
    }

    /// ‖x̂_i‖ per token (of the quantized input when there is one), f64.
    private func rowNorms(_ q: IntCodes?, float: [Float], rows: Int, cols: Int) -> [Double] {
        var out = [Double](repeating: 0, count: rows)
        out.withUnsafeMutableBufferPointer { ob in
            let o = ob.baseAddress!
            if let q {
                q.codes.withUnsafeBufferPointer { cb in
                    let c = cb.baseAddress!
                    Parallel.forEach(rows, threads: rows * cols >= 1 << 16 ? nil : 1) { i in
                        var s: Int32 = 0   // ≤ 64·cols: exact
                        for j in 0..<cols { let v = Int32(c[i * cols + j]); s &+= v &* v }
                        o[i] = Double(s).squareRoot() * Double(q.scale)
                    }
                }
            } else {
                float.withUnsafeBufferPointer { fb in
                    let f = fb.baseAddress!
                    for i in 0..<rows {
                        var s = 0.0
                        for j in 0..<cols { let v = Double(f[i * cols + j]); s += v * v }
                        o[i] = s.squareRoot()
                    }
                }
            }
        }
        return out
    }
}

/// Row o of `y` (rows.count × cols) into row rows[o] of `out` (overwrite or add).
func scatter(_ y: [Float], rows: [Int], cols: Int, into out: inout [Float], add: Bool) {
    y.withUnsafeBufferPointer { yb in out.withUnsafeMutableBufferPointer { ob in
        let s = yb.baseAddress!, d = ob.baseAddress!
        for (o, i) in rows.enumerated() {
            if add { for j in 0..<cols { d[i * cols + j] += s[o * cols + j] } }
            else { (d + i * cols).update(from: s + o * cols, count: cols) }
        }
    } }
}

/// `x` (rows × cols, row-major) transposed.
func transpose(_ x: [Float], rows: Int, cols: Int) -> [Float] {
    var t = [Float](repeating: 0, count: x.count)
    x.withUnsafeBufferPointer { src in t.withUnsafeMutableBufferPointer { dst in
        let s = src.baseAddress!, d = dst.baseAddress!
        for i0 in stride(from: 0, to: rows, by: 32) { for j0 in stride(from: 0, to: cols, by: 32) {
            for i in i0..<min(rows, i0 + 32) { for j in j0..<min(cols, j0 + 32) { d[j * rows + i] = s[i * cols + j] } }
        } }
    } }
    return t
}

/// A training quantizer's configuration error (bad option, block size that does not divide).
public struct TrainingQuantizerError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
