import Foundation
import QuantCore
import QuantKernels

/// The forward and backward of every operation of a LLaMA block, llm.c style: plain loops over
/// row-major arrays, generic over the scalar so the gradient checks run the same code in Double.
///
/// Activations are `tokens × features` with tokens ordered window by window (`windows · L` rows);
/// attention is causal inside a window. Parallel loops give each work item whole rows (or whole
/// columns, or one attention head) and every item computes the same thing on any thread count, so
/// results are bit-identical however many threads run.
public enum Ops {
    /// Work below this many scalar operations runs on the calling thread.
    static let parallelThreshold = 1 << 15

    @inline(__always) static func threads(_ work: Int) -> Int? { work < parallelThreshold ? 1 : nil }

    // MARK: - Embedding

    /// `Y[t] = E[token_t]`; E is vocab × dim.
    @_specialize(where T == Float)
    public static func embed<T: TrainScalar>(_ tokens: [Int], table: [T], dim: Int) -> [T] {
        var y = [T](repeating: 0, count: tokens.count * dim)
        for (t, id) in tokens.enumerated() {
            precondition(id >= 0 && (id + 1) * dim <= table.count, "token \(id) outside the embedding table")
            for j in 0..<dim { y[t * dim + j] = table[id * dim + j] }
        }
        return y
    }

    /// `∂E[token_t] += ∂Y[t]`, tokens in order (so repeated tokens sum in a fixed order). Parallel
    /// over column slices: every slice sees every token.
    @_specialize(where T == Float)
    public static func embedBackward<T: TrainScalar>(_ tokens: [Int], dy: [T], dim: Int, into dTable: inout [T]) {
        let slices = min(dim, 16)
        dTable.withUnsafeMutableBufferPointer { dp in
            let out = UncheckedBox(dp.baseAddress!)
            Parallel.forEach(slices, threads: threads(tokens.count * dim)) { s in
                let lo = s * dim / slices, hi = (s + 1) * dim / slices
                for (t, id) in tokens.enumerated() { for j in lo..<hi { out.value[id * dim + j] += dy[t * dim + j] } }
            }
        }
    }

    // MARK: - RMSNorm

    /// `y = x · r · γ` per row, `r = 1/√(mean(x²) + ε)`. Returns y and r per row.
    @_specialize(where T == Float)
    public static func rmsNorm<T: TrainScalar>(_ x: [T], gamma: [T], dim: Int, eps: T) -> (y: [T], invRMS: [T]) {
        let rows = x.count / dim
        var y = [T](repeating: 0, count: x.count), inv = [T](repeating: 0, count: rows)
        y.withUnsafeMutableBufferPointer { yp in inv.withUnsafeMutableBufferPointer { ip in
            let out = UncheckedBox((yp.baseAddress!, ip.baseAddress!))
            Parallel.forEach(rows, threads: threads(x.count)) { r in
                var ss: T = 0
                for j in 0..<dim { let v = x[r * dim + j]; ss += v * v }
                let ir = 1 / (ss / T(dim) + eps).squareRoot()
                out.value.1[r] = ir
                for j in 0..<dim { out.value.0[r * dim + j] = x[r * dim + j] * ir * gamma[j] }
            }
        } }
        return (y, inv)
    }

    /// `∂x_j = r·γ_j·∂y_j − x_j·r³/d · Σ_k γ_k·∂y_k·x_k` per row; `∂γ_j = Σ_rows ∂y_j·x_j·r`
    /// (summed over rows in order, parallel over column slices).
    @_specialize(where T == Float)
    public static func rmsNormBackward<T: TrainScalar>(dy: [T], x: [T], gamma: [T], invRMS: [T], dim: Int) -> (dx: [T], dgamma: [T]) {
        let rows = x.count / dim
        var dx = [T](repeating: 0, count: x.count), dgamma = [T](repeating: 0, count: dim)
        dx.withUnsafeMutableBufferPointer { dp in
            let out = UncheckedBox(dp.baseAddress!)
            Parallel.forEach(rows, threads: threads(x.count)) { r in
                let ir = invRMS[r]
                var dot: T = 0
                for j in 0..<dim { dot += gamma[j] * dy[r * dim + j] * x[r * dim + j] }
                let c = dot * ir * ir * ir / T(dim)
                for j in 0..<dim { out.value[r * dim + j] = ir * gamma[j] * dy[r * dim + j] - c * x[r * dim + j] }
            }
        }
        let slices = min(dim, 16)
        dgamma.withUnsafeMutableBufferPointer { gp in
            let out = UncheckedBox(gp.baseAddress!)
            Parallel.forEach(slices, threads: threads(x.count)) { s in
                for j in (s * dim / slices)..<((s + 1) * dim / slices) {
                    var acc: T = 0
                    for r in 0..<rows { acc += dy[r * dim + j] * x[r * dim + j] * invRMS[r] }
                    out.value[j] = acc
                }
            }
        }
        return (dx, dgamma)
    }

    // MARK: - RoPE

    /// Rotary position embedding in place on `x` (tokens × heads·headDim); position = index inside
    /// the window of `L` tokens. `interleavedPairs` rotates (2i, 2i+1), `rotateHalf` (i, i+hd/2);
    /// angle `p·θ^(−2i/hd)` (as `LlamaForward.applyRope`). `inverse` rotates by the negative angle —
    /// the backward, since a rotation's transpose is its inverse.
    @_specialize(where T == Float)
    public static func rope<T: TrainScalar>(_ x: inout [T], heads: Int, headDim hd: Int, windowLength L: Int, theta: Double,
                                            layout: DecoderConfig.RopeLayout, inverse: Bool = false) {
        let half = hd / 2
        var cosT = [T](repeating: 0, count: L * half), sinT = cosT
        for p in 0..<L {
            for i in 0..<half {
                let a = Double(p) * pow(theta, -Double(2 * i) / Double(hd))
                cosT[p * half + i] = T(cos(a)); sinT[p * half + i] = T(inverse ? -sin(a) : sin(a))
            }
        }
        let cols = heads * hd, rows = x.count / cols
        let work = x.count
        x.withUnsafeMutableBufferPointer { xp in
            let buf = UncheckedBox(xp.baseAddress!)
            Parallel.forEach(rows, threads: threads(work)) { t in
                let p = t % L
                for h in 0..<heads {
                    let base = t * cols + h * hd
                    for i in 0..<half {
                        let (a, b) = layout == .interleavedPairs ? (base + 2 * i, base + 2 * i + 1) : (base + i, base + i + half)
                        let x0 = buf.value[a], x1 = buf.value[b]
                        let c = cosT[p * half + i], s = sinT[p * half + i]
                        buf.value[a] = x0 * c - x1 * s
                        buf.value[b] = x0 * s + x1 * c
                    }
                }
            }
        }
    }

    // MARK: - Causal attention with grouped KV heads

    /// Shapes of one attention call.
    public struct AttentionShape: Sendable {
        public var windows: Int, length: Int, heads: Int, kvHeads: Int, headDim: Int
        public init(windows: Int, length: Int, heads: Int, kvHeads: Int, headDim: Int) {
            self.windows = windows; self.length = length; self.heads = heads; self.kvHeads = kvHeads; self.headDim = headDim
        }
        var group: Int { heads / kvHeads }
        var scale: Double { 1 / Double(headDim).squareRoot() }
    }

    /// Gathers head `h` of window `w` from `x` (tokens × heads·hd) into an L×hd array.
    @_specialize(where T == Float)
    static func gatherHead<T>(_ x: [T], window w: Int, head h: Int, heads: Int, L: Int, hd: Int) -> [T] {
        var out = [T](); out.reserveCapacity(L * hd)
        let cols = heads * hd
        for t in 0..<L { let base = (w * L + t) * cols + h * hd; out.append(contentsOf: x[base..<(base + hd)]) }
        return out
    }

    /// `O = softmax(Q·Kᵀ/√hd + causal mask)·V` per window and head; query head h reads KV head
    /// `h / (heads/kvHeads)`. q: tokens × heads·hd, k and v: tokens × kvHeads·hd. Returns O (tokens
    /// × heads·hd) and the probabilities P (windows·heads blocks of L×L, zero above the diagonal).
    @_specialize(where T == Float)
    public static func attention<T: TrainScalar>(q: [T], k: [T], v: [T], shape s: AttentionShape) -> (out: [T], probs: [T]) {
        let L = s.length, hd = s.headDim, nh = s.heads
        var out = [T](repeating: 0, count: s.windows * L * nh * hd)
        var probs = [T](repeating: 0, count: s.windows * nh * L * L)
        let scale = T(s.scale)
        out.withUnsafeMutableBufferPointer { op in probs.withUnsafeMutableBufferPointer { pp in
            let dst = UncheckedBox((op.baseAddress!, pp.baseAddress!))
            // One (window, head) per work item; the products inside run on one thread.
            Parallel.forEach(s.windows * nh, threads: threads(s.windows * nh * L * L * hd)) { item in
                let w = item / nh, h = item % nh, kvh = h / s.group
                let qh = gatherHead(q, window: w, head: h, heads: nh, L: L, hd: hd)
                let kh = gatherHead(k, window: w, head: kvh, heads: s.kvHeads, L: L, hd: hd)
                let vh = gatherHead(v, window: w, head: kvh, heads: s.kvHeads, L: L, hd: hd)
                var p = DenseOps.timesTransposed(qh, kh, m: L, n: L, k: hd, threads: 1)   // S = Q·Kᵀ
                for i in 0..<L {
                    let row = i * L
                    var mx = -T.infinity
                    for j in 0...i { p[row + j] *= scale; mx = max(mx, p[row + j]) }
                    var sum: T = 0
                    for j in 0...i { let e = T.exponential(p[row + j] - mx); p[row + j] = e; sum += e }
                    for j in 0...i { p[row + j] /= sum }
                    for j in (i + 1)..<L { p[row + j] = 0 }
                }
                let o = DenseOps.timesTransposed(p, DenseOps.transpose(vh, rows: L, cols: hd), m: L, n: hd, k: L, threads: 1)
                for t in 0..<L {
                    let base = (w * L + t) * nh * hd + h * hd
                    for d in 0..<hd { dst.value.0[base + d] = o[t * hd + d] }
                }
                let pb = item * L * L
                for i in 0..<(L * L) { dst.value.1[pb + i] = p[i] }
            }
        } }
        return (out, probs)
    }

    /// Backward of `attention`: from ∂O, the saved P and the inputs, returns (∂Q, ∂K, ∂V).
    /// `∂V = Pᵀ·∂O`, `∂P = ∂O·Vᵀ`, `∂S = P ⊙ (∂P − rowsum(P ⊙ ∂P))`, `∂Q = ∂S·K/√hd`,
    /// `∂K = ∂Sᵀ·Q/√hd`. One (window, KV head) per work item: it owns its ∂K, ∂V slices and sums
    /// the heads of its group in order.
    @_specialize(where T == Float)
    public static func attentionBackward<T: TrainScalar>(dout: [T], q: [T], k: [T], v: [T], probs: [T],
                                                         shape s: AttentionShape) -> (dq: [T], dk: [T], dv: [T]) {
        let L = s.length, hd = s.headDim, nh = s.heads, nkv = s.kvHeads
        var dq = [T](repeating: 0, count: q.count), dk = [T](repeating: 0, count: k.count), dv = [T](repeating: 0, count: v.count)
        let scale = T(s.scale)
        dq.withUnsafeMutableBufferPointer { qp in dk.withUnsafeMutableBufferPointer { kp in dv.withUnsafeMutableBufferPointer { vp in
            let dst = UncheckedBox((qp.baseAddress!, kp.baseAddress!, vp.baseAddress!))
            Parallel.forEach(s.windows * nkv, threads: threads(s.windows * nh * L * L * hd)) { item in
                let w = item / nkv, kvh = item % nkv
                let kh = gatherHead(k, window: w, head: kvh, heads: nkv, L: L, hd: hd)
                let vh = gatherHead(v, window: w, head: kvh, heads: nkv, L: L, hd: hd)
                let khT = DenseOps.transpose(kh, rows: L, cols: hd)
                var dkAcc = [T](repeating: 0, count: L * hd), dvAcc = dkAcc
                for h in (kvh * s.group)..<((kvh + 1) * s.group) {
                    let qh = gatherHead(q, window: w, head: h, heads: nh, L: L, hd: hd)
                    let doh = gatherHead(dout, window: w, head: h, heads: nh, L: L, hd: hd)
                    let pb = (w * nh + h) * L * L
                    let p = Array(probs[pb..<(pb + L * L)])
                    let pT = DenseOps.transpose(p, rows: L, cols: L)
                    // ∂V += Pᵀ·∂O
                    addInPlace(&dvAcc, DenseOps.timesTransposed(pT, DenseOps.transpose(doh, rows: L, cols: hd), m: L, n: hd, k: L, threads: 1))
                    // ∂P = ∂O·Vᵀ, then the softmax backward (row by row, causal part only).
                    var ds = DenseOps.timesTransposed(doh, vh, m: L, n: L, k: hd, threads: 1)
                    for i in 0..<L {
                        let row = i * L
                        var dot: T = 0
                        for j in 0...i { dot += p[row + j] * ds[row + j] }
                        for j in 0...i { ds[row + j] = p[row + j] * (ds[row + j] - dot) * scale }
                        for j in (i + 1)..<L { ds[row + j] = 0 }
                    }
                    // ∂Q = ∂S·K, ∂K += ∂Sᵀ·Q (the 1/√hd is already in ∂S).
                    let dqh = DenseOps.timesTransposed(ds, khT, m: L, n: hd, k: L, threads: 1)
                    addInPlace(&dkAcc, DenseOps.timesTransposed(DenseOps.transpose(ds, rows: L, cols: L),
                                                                DenseOps.transpose(qh, rows: L, cols: hd), m: L, n: hd, k: L, threads: 1))
                    for t in 0..<L {
                        let base = (w * L + t) * nh * hd + h * hd
                        for d in 0..<hd { dst.value.0[base + d] = dqh[t * hd + d] }
                    }
                }
                for t in 0..<L {
                    let base = (w * L + t) * nkv * hd + kvh * hd
                    for d in 0..<hd { dst.value.1[base + d] = dkAcc[t * hd + d]; dst.value.2[base + d] = dvAcc[t * hd + d] }
                }
            }
        } } }
        return (dq, dk, dv)
    }

    // MARK: - SwiGLU

    @_specialize(where T == Float)
    @inline(__always) static func sigmoid<T: TrainScalar>(_ x: T) -> T { 1 / (1 + T.exponential(-x)) }

    /// `silu(gate) ⊙ up`, `silu(g) = g·σ(g)`.
    @_specialize(where T == Float)
    public static func swiglu<T: TrainScalar>(gate: [T], up: [T]) -> [T] {
        precondition(gate.count == up.count)
        var y = [T](repeating: 0, count: up.count)
        forEachSlice(y.count, writing: &y) { lo, hi, out in
            for i in lo..<hi { let g = gate[i]; out[i] = g * sigmoid(g) * up[i] }
        }
        return y
    }

    /// `∂up = ∂y·silu(g)`, `∂gate = ∂y·up·σ(g)·(1 + g·(1 − σ(g)))`.
    @_specialize(where T == Float)
    public static func swigluBackward<T: TrainScalar>(dy: [T], gate: [T], up: [T]) -> (dgate: [T], dup: [T]) {
        var dg = [T](repeating: 0, count: dy.count), du = dg
        du.withUnsafeMutableBufferPointer { up2 in
            let duOut = UncheckedBox(up2.baseAddress!)
            forEachSlice(dy.count, writing: &dg) { lo, hi, out in
                for i in lo..<hi {
                    let g = gate[i], sg = sigmoid(g)
                    duOut.value[i] = dy[i] * g * sg
                    out[i] = dy[i] * up[i] * sg * (1 + g * (1 - sg))
                }
            }
        }
        return (dg, du)
    }

    /// Runs `body(lo, hi, pointer to y)` over fixed slices of `0..<count` in parallel.
    @_specialize(where T == Float)
    static func forEachSlice<T>(_ count: Int, writing y: inout [T], _ body: (Int, Int, UnsafeMutablePointer<T>) -> Void) {
        let slices = max(1, min(64, count / 4096))
        y.withUnsafeMutableBufferPointer { yp in
            guard let base = yp.baseAddress else { return }
            let out = UncheckedBox(base)
            Parallel.forEach(slices, threads: slices == 1 ? 1 : nil) { s in body(s * count / slices, (s + 1) * count / slices, out.value) }
        }
    }

    // MARK: - Cross-entropy

    /// Row-wise softmax of `logits` (rows × vocab) and the negative log-likelihood of each row's
    /// target, `logsumexp(z) − z_target` (accumulated in Double).
    @_specialize(where T == Float)
    public static func crossEntropy<T: TrainScalar>(logits: [T], targets: [Int], vocab: Int) -> (probs: [T], losses: [Double]) {
        let rows = targets.count
        precondition(logits.count == rows * vocab)
        var probs = [T](repeating: 0, count: logits.count)
        var losses = [Double](repeating: 0, count: rows)
        probs.withUnsafeMutableBufferPointer { pp in losses.withUnsafeMutableBufferPointer { lp in
            let out = UncheckedBox((pp.baseAddress!, lp.baseAddress!))
            Parallel.forEach(rows, threads: threads(logits.count)) { r in
                let base = r * vocab
                var mx = -T.infinity
                for j in 0..<vocab { mx = max(mx, logits[base + j]) }
                var sum: T = 0
                for j in 0..<vocab { let e = T.exponential(logits[base + j] - mx); out.value.0[base + j] = e; sum += e }
                for j in 0..<vocab { out.value.0[base + j] /= sum }
                precondition(targets[r] >= 0 && targets[r] < vocab, "target \(targets[r]) outside the vocabulary")
                out.value.1[r] = Double(mx) + log(Double(sum)) - Double(logits[base + targets[r]])
            }
        } }
        return (probs, losses)
    }

    /// ∂(scale · Σ rows' NLL)/∂logits = scale·(softmax − onehot(target)).
    @_specialize(where T == Float)
    public static func crossEntropyBackward<T: TrainScalar>(probs: [T], targets: [Int], vocab: Int, scale: T) -> [T] {
        var d = probs
        let rows = targets.count
        d.withUnsafeMutableBufferPointer { dp in
            let out = UncheckedBox(dp.baseAddress!)
            Parallel.forEach(rows, threads: threads(probs.count)) { r in
                for j in 0..<vocab { out.value[r * vocab + j] *= scale }
                out.value[r * vocab + targets[r]] -= scale
            }
        }
        return d
    }
}
