import Foundation
import QuantCore

/// A trainable LLaMA decoder: parameters plus one `LinearBackend` per block linear.
///
/// `forward` runs windows of `L` tokens (tokens ordered window by window) and keeps a tape of the
/// activations; `backward` walks it in reverse and adds every gradient into `Parameter.grad`.
/// Embedding, RMSNorm, attention (QKᵀ and softmax·V), lm_head and the loss run in `T` (f32 when
/// training); only the seven linears of each block go through their backend (a training quantizer).
public final class TrainableLlama<T: TrainScalar> {
    public let shape: ModelShape
    public let parameters: LlamaParameters<T>
    /// Per block: q, k, v, o, gate, up, down.
    public let linears: [[any LinearBackend<T>]]

    public init(parameters: LlamaParameters<T>, linears: [[any LinearBackend<T>]]) {
        precondition(linears.count == parameters.shape.layers && linears.allSatisfy { $0.count == 7 })
        self.shape = parameters.shape; self.parameters = parameters; self.linears = linears
    }

    /// Plain-loop backends (any precision): the gradient checks' model.
    public convenience init(referenceParameters p: LlamaParameters<T>) {
        self.init(parameters: p, linears: (0..<p.shape.layers).map { _ in (0..<7).map { _ in ReferenceLinear<T>() } })
    }

    /// What one block keeps for its backward.
    struct BlockTape {
        var hIn: [T] = [], n1: [T] = [], inv1: [T] = []
        var q: [T] = [], k: [T] = [], v: [T] = [], probs: [T] = [], attn: [T] = []
        var hMid: [T] = [], n2: [T] = [], inv2: [T] = []
        var gate: [T] = [], up: [T] = []
    }
    struct Tape {
        var tokens: [Int] = []
        var windowLength = 0
        var blocks: [BlockTape] = []
        var hLast: [T] = [], nF: [T] = [], invF: [T] = []
        var probs: [T] = []
        var targets: [Int] = []
    }
    private var tape = Tape()

    func attentionShape(tokens: Int, L: Int) -> Ops.AttentionShape {
        Ops.AttentionShape(windows: tokens / L, length: L, heads: shape.heads, kvHeads: shape.kvHeads, headDim: shape.headDim)
    }

    /// Logits (tokens × vocab) of `tokens` (whole windows of `L`). `backends` replaces the training
    /// backends (e.g. f32 layers to evaluate the master weights); the tape is kept for `backward`
    /// only with the training backends.
    @_specialize(where T == Float)
    public func logits(tokens: [Int], windowLength L: Int, step: Int, backends: [[any LinearBackend<T>]]? = nil,
                       keepTape: Bool = true) -> [T] {
        precondition(L > 0 && tokens.count % L == 0 && L <= shape.context, "tokens must be whole windows of at most the context")
        let s = shape, d = s.hidden, n = tokens.count
        let eps = T(s.normEps)
        let layers = backends ?? linears
        var t = Tape(tokens: tokens, windowLength: L)
        var h = Ops.embed(tokens, table: parameters.embedding.value, dim: d)
        for (i, b) in parameters.blocks.enumerated() {
            let lin = layers[i]
            var bt = BlockTape()
            bt.hIn = h
            (bt.n1, bt.inv1) = Ops.rmsNorm(h, gamma: b.attentionNorm.value, dim: d, eps: eps)
            func linear(_ j: Int, _ x: [T]) -> [T] {
                let w = b.linears[j]
                return lin[j].forward(x: x, w: w.value, outFeatures: w.rows, inFeatures: w.cols, step: step)
            }
            bt.q = linear(0, bt.n1); bt.k = linear(1, bt.n1); bt.v = linear(2, bt.n1)
            Ops.rope(&bt.q, heads: s.heads, headDim: s.headDim, windowLength: L, theta: s.ropeTheta, layout: s.ropeLayout)
            Ops.rope(&bt.k, heads: s.kvHeads, headDim: s.headDim, windowLength: L, theta: s.ropeTheta, layout: s.ropeLayout)
            (bt.attn, bt.probs) = Ops.attention(q: bt.q, k: bt.k, v: bt.v, shape: attentionShape(tokens: n, L: L))
            addInPlace(&h, linear(3, bt.attn))
            bt.hMid = h
            (bt.n2, bt.inv2) = Ops.rmsNorm(h, gamma: b.mlpNorm.value, dim: d, eps: eps)
            bt.gate = linear(4, bt.n2); bt.up = linear(5, bt.n2)
            addInPlace(&h, linear(6, Ops.swiglu(gate: bt.gate, up: bt.up)))
            t.blocks.append(bt)
        }
        t.hLast = h
        (t.nF, t.invF) = Ops.rmsNorm(h, gamma: parameters.finalNorm.value, dim: d, eps: eps)
        let head = parameters.head
        let z = DenseOps.timesTransposed(t.nF, head.value, m: n, n: head.rows, k: d)
        tape = keepTape && backends == nil ? t : Tape()
        return z
    }

    /// Mean next-token cross-entropy of `tokens` against `targets` (same length); keeps the tape.
    @_specialize(where T == Float)
    public func loss(tokens: [Int], targets: [Int], windowLength L: Int, step: Int, backends: [[any LinearBackend<T>]]? = nil) -> Double {
        tokenLosses(tokens: tokens, targets: targets, windowLength: L, step: step, backends: backends).reduce(0, +) / Double(targets.count)
    }

    /// Each token's NLL (natural log).
    @_specialize(where T == Float)
    public func tokenLosses(tokens: [Int], targets: [Int], windowLength L: Int, step: Int, backends: [[any LinearBackend<T>]]? = nil,
                            keepTape: Bool = true) -> [Double] {
        precondition(tokens.count == targets.count)
        let z = logits(tokens: tokens, windowLength: L, step: step, backends: backends, keepTape: keepTape)
        let (probs, losses) = Ops.crossEntropy(logits: z, targets: targets, vocab: shape.vocab)
        if keepTape && backends == nil { tape.probs = probs; tape.targets = targets }
        return losses
    }

    /// Adds ∂(mean loss)/∂parameter of the latest `loss` call (with the training backends) into
    /// every `Parameter.grad`. Call `zeroGrad` first for a fresh gradient.
    @_specialize(where T == Float)
    public func backward(step: Int) {
        let t = tape
        precondition(!t.probs.isEmpty, "backward needs a loss computed with the training backends")
        let s = shape, d = s.hidden, n = t.tokens.count, L = t.windowLength
        let p = parameters
        // Loss and lm_head: z = nF·Hᵀ.
        let dz = Ops.crossEntropyBackward(probs: t.probs, targets: t.targets, vocab: s.vocab, scale: T(1) / T(n))
        let head = p.head
        addInPlace(&head.grad, DenseOps.transposedTimes(dz, t.nF, m: head.rows, n: d, k: n))
        let dnF = DenseOps.times(dz, head.value, m: n, n: d, k: head.rows)
        let fin = Ops.rmsNormBackward(dy: dnF, x: t.hLast, gamma: p.finalNorm.value, invRMS: t.invF, dim: d)
        addInPlace(&p.finalNorm.grad, fin.dgamma)
        var dh = fin.dx
        for i in stride(from: s.layers - 1, through: 0, by: -1) {
            let b = p.blocks[i], bt = t.blocks[i], lin = linears[i]
            func linearBack(_ j: Int, _ g: [T]) -> [T] {
                let r = lin[j].backward(g: g, step: step)
                addInPlace(&b.linears[j].grad, r.dw)
                return r.dx
            }
            // MLP: h += down(silu(gate)·up) of n2 = norm₂(hMid).
            let dAct = linearBack(6, dh)
            let sw = Ops.swigluBackward(dy: dAct, gate: bt.gate, up: bt.up)
            var dn2 = linearBack(4, sw.dgate)
            addInPlace(&dn2, linearBack(5, sw.dup))
            let n2b = Ops.rmsNormBackward(dy: dn2, x: bt.hMid, gamma: b.mlpNorm.value, invRMS: bt.inv2, dim: d)
            addInPlace(&b.mlpNorm.grad, n2b.dgamma)
            addInPlace(&dh, n2b.dx)
            // Attention: h += o(attn(rope(q), rope(k), v)) of n1 = norm₁(hIn).
            let dAttn = linearBack(3, dh)
            var (dq, dk, dv) = Ops.attentionBackward(dout: dAttn, q: bt.q, k: bt.k, v: bt.v, probs: bt.probs,
                                                     shape: attentionShape(tokens: n, L: L))
            Ops.rope(&dq, heads: s.heads, headDim: s.headDim, windowLength: L, theta: s.ropeTheta, layout: s.ropeLayout, inverse: true)
            Ops.rope(&dk, heads: s.kvHeads, headDim: s.headDim, windowLength: L, theta: s.ropeTheta, layout: s.ropeLayout, inverse: true)
            var dn1 = linearBack(0, dq)
            addInPlace(&dn1, linearBack(1, dk))
            addInPlace(&dn1, linearBack(2, dv))
            let n1b = Ops.rmsNormBackward(dy: dn1, x: bt.hIn, gamma: b.attentionNorm.value, invRMS: bt.inv1, dim: d)
            addInPlace(&b.attentionNorm.grad, n1b.dgamma)
            addInPlace(&dh, n1b.dx)
        }
        Ops.embedBackward(t.tokens, dy: dh, dim: d, into: &p.embedding.grad)
    }

    @_specialize(where T == Float)
    public func zeroGrad() { for q in parameters.all { q.zeroGrad() } }

    /// Drops the saved activations (memory) — e.g. before a long evaluation.
    public func clearTape() { tape = Tape() }
}
