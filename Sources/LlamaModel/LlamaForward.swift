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
        LlamaForward.blockBody(block, config: config, hidden: hidden, mode: mode, visited: nil) { qkv in
            LlamaForward.prepareAttentionInputs(&qkv, block, config: config, windowLength: windowLength, startPosition: 0, mode: mode)
            return attention(config: config, qkv: qkv, windowLength: windowLength)
        }
    }

    public func stepThroughBlock(_ block: DecoderBlock, config: DecoderConfig, hidden: Matrix, windowLength: Int, mode: ExecutionMode,
                                 visit: (Site, Matrix) throws -> Void) rethrows -> Matrix {
        // `visit` may fold a new transform into the operation that produced the site's input (a
        // norm weight, up_proj's or v_proj's rows), which already ran: the block continues with the
        // input that operation now produces, i.e. the captured input with those transforms applied.
        try withoutActuallyEscaping(visit) { visit in
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
    }

    /// The block, written once for every way of running attention: `h += o(attend(qkv(norm₁(h))))`,
    /// `h += down(silu(gate)·up(norm₂(h)))`. `attend` gets the raw q/k/v projections (tokens ×
    /// heads·headDim) and returns the concatenated head outputs; `visited(site, input)` sees each
    /// site's input and returns the input the block continues with. Without a visitor, a site on
    /// the integer GEMM gets its input quantized row by row by its producer (`runSite`).
    static func blockBody(_ block: DecoderBlock, config: DecoderConfig, hidden: Matrix, mode: ExecutionMode,
                          visited: ((Site, Matrix) throws -> Matrix)?, attend: (inout [Matrix]) -> Matrix) rethrows -> Matrix {
        let m = hidden.rows, d = hidden.cols, eps = Float(config.rmsNormEps)
        var qkv = try hidden.data.withUnsafeBufferPointer { hp in
            try block.attentionNorm.withUnsafeBufferPointer { gp in
                let box = UncheckedBox((hp.baseAddress!, gp.baseAddress!))
                return try runSite(block.qkv, rows: m, cols: d, producer: "RMSNorm", mode: mode, visited: visited) { r, out in
                    let (h, g) = box.value
                    VectorMath.rmsNorm(h + r * d, g, out, d, eps: eps)
                }
            }
        }
        var attn = attend(&qkv)
        if visited != nil { attn = try visited!(block.o, attn) }
        let o = block.o.forward(consume attn, mode: mode)[0]   // in place: nothing else holds it
        // h = hidden + o (a new matrix: hidden is still the caller's), each row normed while in cache.
        var gu: [Matrix] = []
        var h = try Matrix(rows: m, cols: d) { sp in
            try hidden.data.withUnsafeBufferPointer { hp in try o.data.withUnsafeBufferPointer { op in
                try block.mlpNorm.withUnsafeBufferPointer { gp in
                    let box = UncheckedBox((sp, hp.baseAddress!, op.baseAddress!, gp.baseAddress!))
                    gu = try runSite(block.gateUp, rows: m, cols: d, producer: "residual add + RMSNorm", mode: mode, visited: visited) { r, out in
                        let (s, h, o, g) = box.value
                        VectorMath.add(h + r * d, o + r * d, into: s + r * d, d)
                        VectorMath.rmsNorm(s + r * d, g, out, d, eps: eps)
                    }
                }
            } }
        }
        let n = gu[1].cols
        let down = try gu[0].data.withUnsafeBufferPointer { gp in
            try gu[1].data.withUnsafeBufferPointer { up in
                let box = UncheckedBox((gp.baseAddress!, up.baseAddress!))
                return try runSite(block.down, rows: m, cols: n, producer: "SwiGLU", mode: mode, visited: visited) { r, out in
                    let (g, u) = box.value
                    VectorMath.siluMultiply(gate: g + r * n, up: u + r * n, into: out, n)
                }
            }
        }[0]
        Profiler.measure("residual add") { add(&h, down) }
        return h
    }

    /// Runs `site` on the input (rows × cols) whose row r `produce(r, out)` writes into `out`.
    /// Without a visitor, a site that runs on the integer GEMM straight from its input gets each
    /// row quantized as it is produced, so the f32 input is never stored; otherwise the input is
    /// built as a matrix (rows in parallel), shown to `visited`, and passed to `Site.forward`.
    /// The same f32 rows and codes either way, so the same bits.
    static func runSite(_ site: Site, rows: Int, cols: Int, producer: String, mode: ExecutionMode,
                        visited: ((Site, Matrix) throws -> Matrix)?,
                        produce: (Int, UnsafeMutablePointer<Float>) -> Void) rethrows -> [Matrix] {
        let threads = rows * cols < 1 << 15 ? 1 : Parallel.threadCount
        if visited == nil, let grid = site.integerInputGrid(mode) {
            let qa = Profiler.measure(producer + " + activation quantization") {
                QuantizedActivations(m: rows, k: cols, grid: grid, threads: threads) { r, scratch in
                    produce(r, scratch)
                    return UnsafePointer(scratch)
                }
            }
            return site.forward(quantized: qa)
        }
        let x = Profiler.measure(producer) {
            Matrix(rows: rows, cols: cols) { p in Parallel.forEach(rows, threads: threads) { r in produce(r, p + r * cols) } }
        }
        if visited != nil { return site.forward(try visited!(site, x), mode: mode) }
        return site.forward(consume x, mode: mode)   // no other holder: the online transforms run in place
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

    /// `x / sqrt(mean(x²) + eps) · γ`, per row (rows in parallel; `VectorMath.rmsNorm`).
    public static func rmsNorm(_ x: Matrix, _ gamma: [Float], eps: Double) -> Matrix {
        let d = x.cols
        precondition(gamma.count == d, "RMSNorm: \(gamma.count) weights for rows of \(d)")
        let out = Matrix(rows: x.rows, cols: d) { o in
            x.data.withUnsafeBufferPointer { xp in
                gamma.withUnsafeBufferPointer { g in
                    let box = UncheckedBox((o, xp.baseAddress!, g.baseAddress!))
                    Parallel.forEach(x.rows, threads: x.rows * d < 1 << 15 ? 1 : nil) { r in
                        let (o, xp, g) = box.value
                        VectorMath.rmsNorm(xp + r * d, g, o + r * d, d, eps: Float(eps))
                    }
                }
            }
        }
        return out
    }

    /// `h += y` (rows in parallel).
    static func add(_ h: inout Matrix, _ y: Matrix) {
        precondition(h.rows == y.rows && h.cols == y.cols)
        let d = h.cols
        h.data.withUnsafeMutableBufferPointer { hp in
            y.data.withUnsafeBufferPointer { yp in
                let box = UncheckedBox((hp.baseAddress!, yp.baseAddress!))
                Parallel.forEach(h.rows, threads: h.rows * d < 1 << 15 ? 1 : nil) { r in
                    let (h, y) = box.value
                    VectorMath.add(h + r * d, y + r * d, into: h + r * d, d)
                }
            }
        }
    }

    /// Self-attention of one block from its q/k/v projections: returns the concatenated head
    /// outputs (tokens × heads·headDim), the input of o_proj.
    /// q and k have RoPE (and any attention quantization) applied already.
    func attention(config c: DecoderConfig, qkv: [Matrix], windowLength L: Int) -> Matrix {
        Profiler.measure("attention (QKᵀ, softmax, PV)") { attentionCore(config: c, qkv: qkv, windowLength: L) }
    }

    /// Rows of queries per attention tile.
    nonisolated(unsafe) static var attentionTile = 64

    /// Causal attention in query tiles, flash-attention's work split without its online softmax:
    /// for window w, head h and the tile of query rows i0 ..< i1, `S = Q·K[0..<i1]ᵀ` (only the
    /// keys a row of the tile can see), `P = softmax(S/√d)` per row over j ≤ i, `O = P·V[0..<i1]`.
    /// K and V of each (window, KV head) are packed once as GEMM operands for every query head
    /// and tile that reads them. A work item is a (window, head) and a pair of tiles (t, T−1−t), so
    /// every item costs the same; the GEMMs inside run single-threaded. `attentionReference` is
    /// the plain version.
    private func attentionCore(config c: DecoderConfig, qkv: [Matrix], windowLength L: Int) -> Matrix {
        let hd = c.headDim, nh = c.headCount, nkv = c.kvHeadCount
        let tokens = qkv[0].rows
        precondition(L > 0 && tokens % L == 0, "tokens \(tokens) not a multiple of the window length \(L)")
        let q = qkv[0], k = qkv[1], v = qkv[2]
        let windows = tokens / L
        let scale = 1 / Float(hd).squareRoot()
        let group = nh / nkv
        let qs = q.cols, ks = k.cols, os = nh * hd
        let tile = LlamaForward.attentionTile, tiles = (L + tile - 1) / tile, pairs = (tiles + 1) / 2
        // Per (window, KV head): K as the B operand of Q·Kᵀ (hd steps), then V as that of P·V (L steps).
        let kFloats = Gemm.packedFloats(columns: L, steps: hd), vFloats = Gemm.packedFloats(columns: hd, steps: L)
        let packed = UnsafeMutablePointer<Float>.allocate(capacity: windows * nkv * (kFloats + vFloats))
        defer { packed.deallocate() }
        // Every (token, head) output row is written by its tile's P·V product.
        return Matrix(rows: tokens, cols: nh * hd) { op in
            q.data.withUnsafeBufferPointer { qp in k.data.withUnsafeBufferPointer { kp in v.data.withUnsafeBufferPointer { vp in
                let box = UncheckedBox((op, qp.baseAddress!, kp.baseAddress!, vp.baseAddress!, packed))
                Parallel.forEach(windows * nkv) { item in
                    let (_, _, kb, vb, packed) = box.value
                    let w = item / nkv, g = item % nkv, dst = packed + item * (kFloats + vFloats)
                    _ = Gemm.packB(transposed: kb + w * L * ks + g * hd, ld: ks, n: L, k: hd, into: dst)
                    _ = Gemm.packB(kn: vb + w * L * ks + g * hd, ld: ks, k: L, n: hd, into: dst + kFloats)
                }
                Parallel.forEach(windows * nh * pairs) { item in
                    let (ob, qb, _, _, packed) = box.value
                    let w = item / (nh * pairs), head = item / pairs % nh, pair = item % pairs, g = head / group
                    let operands = UnsafePointer(packed + (w * nkv + g) * (kFloats + vFloats))
                    let keys = Gemm.PackedPanels(base: operands, steps: hd)
                    let values = Gemm.PackedPanels(base: operands + kFloats, steps: L)
                    let buffer = UnsafeMutablePointer<Float>.allocate(capacity: tile * (L + 1))
                    defer { buffer.deallocate() }
                    let s = buffer, inv = buffer + tile * L
                    for t in pair == tiles - 1 - pair ? [pair] : [pair, tiles - 1 - pair] {
                        let i0 = t * tile, rows = min(tile, L - i0), visible = i0 + rows
                        let row0 = w * L + i0
                        // S = Q_tile·K[0..<visible]ᵀ (rows × visible, row stride `visible`).
                        Gemm.multiplyPacked(qb + row0 * qs + head * hd, lda: qs, keys, into: s, ldy: visible, m: rows, n: visible, k: hd,
                                            causal: .columns(offset: i0))
                        // Unnormalized P = e^(S/√d − max) with the future masked to 0 (Q·Kᵀ skipped some of it); 1/Σ per row.
                        for r in 0..<rows {
                            let sr = s + r * visible, seen = i0 + r + 1
                            inv[r] = 1 / VectorMath.exponentiateShifted(sr, seen, scale: scale)
                            (sr + seen).update(repeating: 0, count: visible - seen)
                        }
                        // O_tile = P·V[0..<visible], then each row by its 1/Σ.
                        let o = ob + row0 * os + head * hd
                        Gemm.multiplyPacked(s, lda: visible, values, into: o, ldy: os, m: rows, n: hd, k: visible,
                                            causal: .steps(offset: i0))
                        for r in 0..<rows { VectorMath.scale(o + r * os, hd, by: inv[r]) }
                    }
                }
            } } }
        }
    }

    /// Plain causal attention (one (window, head) at a time, full scores, scalar softmax) — the
    /// reference the tiled `attention` is tested against.
    static func attentionReference(config c: DecoderConfig, qkv: [Matrix], windowLength L: Int) -> Matrix {
        let hd = c.headDim, nh = c.headCount, group = nh / c.kvHeadCount
        let tokens = qkv[0].rows, scale = 1 / Float(hd).squareRoot()
        var out = Matrix(zeros: tokens, nh * hd)
        for w in 0..<(tokens / L) {
            for head in 0..<nh {
                let g = head / group
                for i in 0..<L {
                    let qi = (w * L + i) * qkv[0].cols + head * hd
                    var s = [Double](repeating: 0, count: i + 1)
                    for j in 0...i {
                        let kj = (w * L + j) * qkv[1].cols + g * hd
                        var dot = 0.0
                        for d in 0..<hd { dot += Double(qkv[0].data[qi + d]) * Double(qkv[1].data[kj + d]) }
                        s[j] = dot * Double(scale)
                    }
                    let mx = s.max()!
                    let e = s.map { Foundation.exp($0 - mx) }
                    let sum = e.reduce(0, +)
                    for d in 0..<hd {
                        var acc = 0.0
                        for j in 0...i { acc += e[j] / sum * Double(qkv[2].data[(w * L + j) * qkv[2].cols + g * hd + d]) }
                        out.data[(w * L + i) * nh * hd + head * hd + d] = Float(acc)
                    }
                }
            }
        }
        return out
    }

    /// Rotary position embedding on `x` (tokens × heads·headDim), position = `startPosition` + the
    /// token's index inside its window. `interleavedPairs` rotates (2i, 2i+1) — the layout of
    /// llama.cpp's GGUF files, whose converter permuted the q/k rows; `rotateHalf` rotates
    /// (i, i+headDim/2) — Hugging Face's.
    public static func applyRope(_ x: inout Matrix, heads: Int, headDim hd: Int, windowLength L: Int, startPosition: Int = 0,
                                 theta: Double, layout: DecoderConfig.RopeLayout) {
        let table = RopeTables.shared.table(theta: theta, headDim: hd, positions: startPosition + L)
        let cols = x.cols, rows = x.rows, interleaved = layout == .interleavedPairs
        let (cosT, sinT) = interleaved ? (table.pairCos, table.pairSin) : (table.halfCos, table.halfSin)
        x.data.withUnsafeMutableBufferPointer { xp in
            cosT.withUnsafeBufferPointer { cp in sinT.withUnsafeBufferPointer { sp in
                let box = UncheckedBox((xp.baseAddress!, cp.baseAddress!, sp.baseAddress!))
                Parallel.forEach(rows, threads: rows * cols < 1 << 15 ? 1 : Parallel.threadCount) { t in
                    let (x, c, s) = box.value
                    let p = startPosition + t % L
                    for h in 0..<heads {
                        rotate(x + t * cols + h * hd, cos: c + p * hd, sin: s + p * hd, headDim: hd, interleaved: interleaved)
                    }
                }
            } }
        }
    }

    /// One head's rotation `y = x∘C + partner(x)∘S` with the expanded tables (`RopeTables.Table`):
    /// the partner of element j is j ^ 1 (interleaved pairs) or j ± hd/2 (rotate-half), and S holds
    /// −sin on the first element of a pair and +sin on the second — the same f32 operations as
    /// `x₀·cos − x₁·sin`, `x₀·sin + x₁·cos`, so the same bits.
    @inline(__always)
    static func rotate(_ x: UnsafeMutablePointer<Float>, cos c: UnsafePointer<Float>, sin s: UnsafePointer<Float>,
                       headDim hd: Int, interleaved: Bool) {
        typealias V = SIMD16<Float>
        let raw = UnsafeMutableRawPointer(x), half = hd / 2
        @inline(__always) func load(_ p: UnsafePointer<Float>) -> V { UnsafeRawPointer(p).loadUnaligned(as: V.self) }
        if interleaved && hd % 16 == 0 {
            var j = 0
            while j < hd {
                let v = raw.loadUnaligned(fromByteOffset: 4 * j, as: V.self)
                // Swap neighbouring floats: rotate each 64-bit lane by 32 bits.
                let w = unsafeBitCast(v, to: SIMD8<UInt64>.self)
                let partner = unsafeBitCast((w &<< 32) | (w &>> 32), to: V.self)
                raw.storeBytes(of: v * load(c + j) + partner * load(s + j), toByteOffset: 4 * j, as: V.self)
                j += 16
            }
        } else if !interleaved && half % 16 == 0 {
            var j = 0
            while j < half {
                let lo = raw.loadUnaligned(fromByteOffset: 4 * j, as: V.self)
                let hi = raw.loadUnaligned(fromByteOffset: 4 * (j + half), as: V.self)
                raw.storeBytes(of: lo * load(c + j) + hi * load(s + j), toByteOffset: 4 * j, as: V.self)
                raw.storeBytes(of: hi * load(c + j + half) + lo * load(s + j + half), toByteOffset: 4 * (j + half), as: V.self)
                j += 16
            }
        } else {
            for i in 0..<half {
                let (a, b) = interleaved ? (2 * i, 2 * i + 1) : (i, i + half)
                let x0 = x[a], x1 = x[b]
                x[a] = x0 * c[a] + x1 * s[a]
                x[b] = x1 * c[b] + x0 * s[b]
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

/// cos and sin of every (position, frequency) RoPE uses: `θ^(−2i/d)·p` in Double, rounded to f32;
/// computed once per (θ, head_dim) and grown (doubling) when a longer position is asked for.
final class RopeTables: @unchecked Sendable {
    static let shared = RopeTables()

    /// `[position][headDim]` row-major, expanded per layout for `LlamaForward.rotate`: C holds
    /// cos θᵢp on both elements of pair i, S holds −sin θᵢp on the first and +sin θᵢp on the second
    /// (pairs (2i, 2i+1) in `pair…`, (i, i+hd/2) in `half…`).
    struct Table { var pairCos: [Float], pairSin: [Float], halfCos: [Float], halfSin: [Float], positions: Int }
    private struct Key: Hashable { var theta: Double, headDim: Int }
    private var tables: [Key: Table] = [:]
    private let lock = NSLock()

    /// A table of at least `positions` positions.
    func table(theta: Double, headDim hd: Int, positions: Int) -> Table {
        lock.lock(); defer { lock.unlock() }
        let key = Key(theta: theta, headDim: hd)
        if let t = tables[key], t.positions >= positions { return t }
        let count = max(positions, 2 * (tables[key]?.positions ?? 0), 1024), half = hd / 2
        var t = Table(pairCos: [Float](repeating: 0, count: count * hd), pairSin: [], halfCos: [], halfSin: [], positions: count)
        t.pairSin = t.pairCos; t.halfCos = t.pairCos; t.halfSin = t.pairCos
        for i in 0..<half {
            let freq = pow(theta, -Double(2 * i) / Double(hd))
            for p in 0..<count {
                let a = Double(p) * freq, c = Float(cos(a)), s = Float(sin(a)), row = p * hd
                t.pairCos[row + 2 * i] = c; t.pairCos[row + 2 * i + 1] = c
                t.pairSin[row + 2 * i] = -s; t.pairSin[row + 2 * i + 1] = s
                t.halfCos[row + i] = c; t.halfCos[row + i + half] = c
                t.halfSin[row + i] = -s; t.halfSin[row + i + half] = s
            }
        }
        tables[key] = t
        return t
    }
}
