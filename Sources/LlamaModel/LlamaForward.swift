import Foundation
import QuantCore
import QuantKernels

/// The LLaMA-family forward pass in f32 (llm.c-style: plain, readable loops beside the kernels).
///
/// Hidden states are (windows·L) × hidden, row-major; attention is causal inside each window of
/// L tokens and never crosses windows. Every linear in a block goes through its `Site`; attention
/// and lm_head stay in float (lm_head is quantized only when an override says so).
public struct LlamaForward: DecoderRunner {
    public init() {}

    public func embed(_ model: DecoderModel, windows: [[Int]]) -> Matrix {
        let d = model.config.hiddenSize
        let tokens = windows.flatMap { $0 }
        return Profiler.measure("embedding") {
            var out = Matrix(zeros: tokens.count, d)
            for (t, id) in tokens.enumerated() {
                precondition(id >= 0 && id < model.embedding.rows, "token id \(id) outside the vocabulary (\(model.embedding.rows))")
                for j in 0..<d { out.data[t * d + j] = model.embedding.data[id * d + j] }
            }
            return out
        }
    }

    public func runBlock(_ block: DecoderBlock, config: DecoderConfig, hidden: Matrix, windowLength: Int, mode: ExecutionMode) -> Matrix {
        stepThroughBlock(block, config: config, hidden: hidden, windowLength: windowLength, mode: mode) { _, _ in }
    }

    public func stepThroughBlock(_ block: DecoderBlock, config: DecoderConfig, hidden: Matrix, windowLength: Int, mode: ExecutionMode,
                                 visit: (Site, Matrix) throws -> Void) rethrows -> Matrix {
        // `visit` may fold a new transform into the operation that produced the site's input (a
        // norm weight, up_proj's or v_proj's rows), which already ran: the block continues with the
        // input that operation now produces, i.e. the captured input with those transforms applied.
        func visited(_ site: Site, _ input: Matrix) throws -> Matrix {
            let before = site.transforms.count
            try visit(site, input)
            return site.applyingFoldedTransforms(to: input, addedSince: before)
        }
        return try LlamaForward.blockBody(block, config: config, hidden: hidden, mode: mode, visited: visited) { qkv in
            LlamaForward.prepareAttentionInputs(&qkv, block, config: config, windowLength: windowLength, startPosition: 0, mode: mode)
            return attention(config: config, qkv: qkv, windowLength: windowLength)
        }
    }

    /// The block, written once for every way of running attention: `h += o(attend(qkv(norm₁(h))))`,
    /// `h += down(silu(gate)·up(norm₂(h)))`. `attend` gets the raw q/k/v projections (tokens ×
    /// heads·headDim) and returns the concatenated head outputs; `visited(site, input)` sees each
    /// site's input and returns the input the block continues with.
    static func blockBody(_ block: DecoderBlock, config: DecoderConfig, hidden: Matrix, mode: ExecutionMode,
                          visited: (Site, Matrix) throws -> Matrix, attend: (inout [Matrix]) -> Matrix) rethrows -> Matrix {
        var h = hidden
        let attnIn = try visited(block.qkv, Profiler.measure("RMSNorm") { rmsNorm(h, block.attentionNorm, eps: config.rmsNormEps) })
        var qkv = block.qkv.forward(attnIn, mode: mode)
        let attn = try visited(block.o, attend(&qkv))
        let o = block.o.forward(attn, mode: mode)[0]
        Profiler.measure("residual add") { add(&h, o) }
        let mlpIn = try visited(block.gateUp, Profiler.measure("RMSNorm") { rmsNorm(h, block.mlpNorm, eps: config.rmsNormEps) })
        let gu = block.gateUp.forward(mlpIn, mode: mode)
        let act = try visited(block.down, Profiler.measure("SwiGLU") { swiglu(gu) })
        let down = block.down.forward(act, mode: mode)[0]
        Profiler.measure("residual add") { add(&h, down) }
        return h
    }

    /// RoPE on q and k (row t at position `startPosition + t % windowLength`), then the block's
    /// attention-input quantization when running quantized.
    static func prepareAttentionInputs(_ qkv: inout [Matrix], _ block: DecoderBlock, config c: DecoderConfig, windowLength L: Int,
                                       startPosition: Int, mode: ExecutionMode) {
        Profiler.measure("RoPE") {
            applyRope(&qkv[0], heads: c.headCount, headDim: c.headDim, windowLength: L, startPosition: startPosition,
                      theta: c.ropeTheta, layout: c.ropeLayout)
            applyRope(&qkv[1], heads: c.kvHeadCount, headDim: c.headDim, windowLength: L, startPosition: startPosition,
                      theta: c.ropeTheta, layout: c.ropeLayout)
        }
        if let aq = block.attentionQuantization, mode == .quantized {
            Profiler.measure("attention quantization") { quantizeAttentionInputs(&qkv, aq, headDim: c.headDim) }
        }
    }

    /// The input of site `kind` of `block` (before the site's online transforms).
    public func siteInput(_ block: DecoderBlock, config: DecoderConfig, hidden: Matrix, windowLength: Int,
                          site kind: SiteKind, mode: ExecutionMode) -> Matrix {
        var captured: Matrix?
        _ = stepThroughBlock(block, config: config, hidden: hidden, windowLength: windowLength, mode: mode) { site, x in
            if site.kind == kind { captured = x }
        }
        return captured!
    }

    public func logits(_ model: DecoderModel, windows: [[Int]], mode: ExecutionMode) -> Matrix {
        LlamaForward.lmHead(model, finalHidden(model, windows: windows, mode: mode), mode: mode)
    }

    /// `h·lm_headᵀ` (tokens × vocab), in the arithmetic a site with lm_head's schemes would use.
    public static func lmHead(_ model: DecoderModel, _ h: Matrix, mode: ExecutionMode) -> Matrix {
        Site.multiply(h, [model.lmHead], activations: model.lmHeadActivations, mode: mode, component: "lm_head")[0]
    }

    /// Hidden states after the final RMSNorm (tokens × hidden); multiply by lm_headᵀ for logits.
    public func finalHidden(_ model: DecoderModel, windows: [[Int]], mode: ExecutionMode) -> Matrix {
        let l = windows.first?.count ?? 0
        var h = embed(model, windows: windows)
        for b in model.blocks { h = runBlock(b, config: model.config, hidden: h, windowLength: l, mode: mode) }
        return Profiler.measure("RMSNorm") { LlamaForward.rmsNorm(h, model.finalNorm, eps: model.config.rmsNormEps) }
    }

    // MARK: - Pieces

    /// `x / sqrt(mean(x²) + eps) · γ`, per row.
    public static func rmsNorm(_ x: Matrix, _ gamma: [Float], eps: Double) -> Matrix {
        var out = x
        let d = x.cols
        out.data.withUnsafeMutableBufferPointer { o in
            x.data.withUnsafeBufferPointer { xp in
                gamma.withUnsafeBufferPointer { g in
                    for r in 0..<x.rows {
                        var ss: Float = 0
                        for j in 0..<d { let v = xp[r * d + j]; ss += v * v }
                        let inv = 1 / (ss / Float(d) + Float(eps)).squareRoot()
                        for j in 0..<d { o[r * d + j] = xp[r * d + j] * inv * g[j] }
                    }
                }
            }
        }
        return out
    }

    /// `silu(gate) ⊙ up`.
    static func swiglu(_ gu: [Matrix]) -> Matrix {
        var out = gu[1]
        let g = gu[0].data
        for i in 0..<out.data.count {
            let x = g[i]
            out.data[i] *= x / (1 + exp(-x))
        }
        return out
    }

    static func add(_ h: inout Matrix, _ y: Matrix) {
        for i in 0..<h.data.count { h.data[i] += y.data[i] }
    }

    /// Self-attention of one block from its q/k/v projections: returns the concatenated head
    /// outputs (tokens × heads·headDim), the input of o_proj.
    /// q and k have RoPE (and any attention quantization) applied already.
    func attention(config c: DecoderConfig, qkv: [Matrix], windowLength L: Int) -> Matrix {
        Profiler.measure("attention (QKᵀ, softmax, PV)") { attentionCore(config: c, qkv: qkv, windowLength: L) }
    }

    private func attentionCore(config c: DecoderConfig, qkv: [Matrix], windowLength L: Int) -> Matrix {
        let hd = c.headDim, nh = c.headCount, nkv = c.kvHeadCount
        let tokens = qkv[0].rows
        precondition(L > 0 && tokens % L == 0, "tokens \(tokens) not a multiple of the window length \(L)")
        let q = qkv[0], k = qkv[1], v = qkv[2]
        var out = Matrix(zeros: tokens, nh * hd)
        let windows = tokens / L
        let scale = 1 / Float(hd).squareRoot()
        let group = nh / nkv
        let qs = q.cols, ks = k.cols
        out.data.withUnsafeMutableBufferPointer { op in
            let outBox = UncheckedBox(op.baseAddress!)
            q.data.withUnsafeBufferPointer { qp in k.data.withUnsafeBufferPointer { kp in v.data.withUnsafeBufferPointer { vp in
                let box = UncheckedBox((qp.baseAddress!, kp.baseAddress!, vp.baseAddress!))
                // One (window, head) per work item; the GEMMs inside run single-threaded.
                Parallel.forEach(windows * nh) { item in
                    let (qb, kb, vb) = box.value
                    let w = item / nh, head = item % nh, kvh = head / group
                    // Gather this head's Q (L×hd), K (L×hd) and Vᵀ (hd×L) contiguously.
                    var qh = [Float](repeating: 0, count: L * hd), kh = qh, vt = qh
                    for t in 0..<L {
                        let qrow = qb + (w * L + t) * qs + head * hd
                        let krow = kb + (w * L + t) * ks + kvh * hd
                        let vrow = vb + (w * L + t) * ks + kvh * hd
                        for d in 0..<hd {
                            qh[t * hd + d] = qrow[d] * scale
                            kh[t * hd + d] = krow[d]
                            vt[d * L + t] = vrow[d]
                        }
                    }
                    // S = Q·Kᵀ/√d (L×L), causal softmax per row, O = P·V.
                    var scores = Gemm.multiply(qh, kh, m: L, n: L, k: hd, threads: 1)
                    for i in 0..<L {
                        let row = i * L
                        var mx = -Float.infinity
                        for j in 0...i { mx = max(mx, scores[row + j]) }
                        var sum: Float = 0
                        for j in 0...i { let e = exp(scores[row + j] - mx); scores[row + j] = e; sum += e }
                        let inv = 1 / sum
                        for j in 0...i { scores[row + j] *= inv }
                        for j in (i + 1)..<L { scores[row + j] = 0 }
                    }
                    let o = Gemm.multiply(scores, vt, m: L, n: hd, k: L, threads: 1)
                    for t in 0..<L {
                        let dst = outBox.value + (w * L + t) * (nh * hd) + head * hd
                        for d in 0..<hd { dst[d] = o[t * hd + d] }
                    }
                }
            } } }
        }
        return out
    }

    /// Rotary position embedding on `x` (tokens × heads·headDim), position = `startPosition` + the
    /// token's index inside its window. `interleavedPairs` rotates (2i, 2i+1) — the layout of
    /// llama.cpp's GGUF files, whose converter permuted the q/k rows; `rotateHalf` rotates
    /// (i, i+headDim/2) — Hugging Face's.
    public static func applyRope(_ x: inout Matrix, heads: Int, headDim hd: Int, windowLength L: Int, startPosition: Int = 0,
                                 theta: Double, layout: DecoderConfig.RopeLayout) {
        let half = hd / 2
        var cosT = [Float](repeating: 0, count: L * half), sinT = cosT
        for p in 0..<L {
            for i in 0..<half {
                let freq = pow(theta, -Double(2 * i) / Double(hd))
                let a = Double(startPosition + p) * freq
                cosT[p * half + i] = Float(cos(a)); sinT[p * half + i] = Float(sin(a))
            }
        }
        let cols = x.cols
        for t in 0..<x.rows {
            let p = t % L
            for h in 0..<heads {
                let base = t * cols + h * hd
                for i in 0..<half {
                    let (a, b) = layout == .interleavedPairs ? (base + 2 * i, base + 2 * i + 1) : (base + i, base + i + half)
                    let x0 = x.data[a], x1 = x.data[b]
                    let c = cosT[p * half + i], s = sinT[p * half + i]
                    x.data[a] = x0 * c - x1 * s
                    x.data[b] = x0 * s + x1 * c
                }
            }
        }
    }

    /// Per-head, per-token fake quantization of Q, K, V (optionally after a Hadamard on head_dim
    /// for Q and K, which leaves QKᵀ unchanged).
    static func quantizeAttentionInputs(_ qkv: inout [Matrix], _ aq: AttentionQuantization, headDim hd: Int) {
        let grid = QuantGrid(bits: aq.bits, symmetric: aq.symmetric, clip: Float(aq.clip))
        for (i, on) in [aq.queries, aq.keys, aq.values].enumerated() {
            var m = qkv[i]
            let rows = m.rows * (m.cols / hd)
            m.data.withUnsafeMutableBufferPointer { p in
                if aq.hadamardOnHeadDim && i < 2 { try! HadamardTransform.cached(size: hd).apply(p.baseAddress!, rows: rows) }
                if on { Quantizer.fakeQuantize(p.baseAddress!, rows: rows, cols: hd, groupSize: hd, grid: grid) }
            }
            qkv[i] = m
        }
    }
}
