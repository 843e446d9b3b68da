/// Architecture numbers of a LLaMA-family decoder.
public struct DecoderConfig: Sendable, Equatable {
    public enum RopeLayout: String, Sendable { case interleavedPairs = "interleaved pairs", rotateHalf = "rotate-half" }
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var layerCount: Int
    public var headCount: Int
    public var kvHeadCount: Int
    public var headDim: Int
    public var vocabSize: Int
    public var ropeTheta: Double
    public var rmsNormEps: Double
    public var ropeLayout: RopeLayout

    public init(hiddenSize: Int, intermediateSize: Int, layerCount: Int, headCount: Int, kvHeadCount: Int,
                headDim: Int? = nil, vocabSize: Int, ropeTheta: Double = 10000, rmsNormEps: Double = 1e-5,
                ropeLayout: RopeLayout = .rotateHalf) {
        self.hiddenSize = hiddenSize; self.intermediateSize = intermediateSize; self.layerCount = layerCount
        self.headCount = headCount; self.kvHeadCount = kvHeadCount; self.headDim = headDim ?? hiddenSize / headCount
        self.vocabSize = vocabSize; self.ropeTheta = ropeTheta; self.rmsNormEps = rmsNormEps; self.ropeLayout = ropeLayout
    }
}

/// One pre-norm decoder block: `h += o(attn(qkv(norm₁(h))))`, `h += down(silu(gate)·up(norm₂(h)))`.
public final class DecoderBlock {
    public let index: Int
    /// RMSNorm weights γ (length hidden).
    public var attentionNorm: [Float]
    public var mlpNorm: [Float]
    /// Members q_proj, k_proj, v_proj.
    public var qkv: Site
    /// Member o_proj.
    public var o: Site
    /// Members gate_proj, up_proj.
    public var gateUp: Site
    /// Member down_proj.
    public var down: Site
    /// Optional per-head, per-token quantization of Q, K, V after RoPE (attention-side quantization).
    public var attentionQuantization: AttentionQuantization?

    /// True when running `.quantized` differs from `.quantizedWeights`: some site quantizes its
    /// input activations, or attention quantizes Q/K/V.
    public var quantizesActivations: Bool {
        attentionQuantization != nil || sites.contains { $0.activationScheme.isQuantized }
    }

    public init(index: Int, attentionNorm: [Float], mlpNorm: [Float], qkv: Site, o: Site, gateUp: Site, down: Site) {
        self.index = index; self.attentionNorm = attentionNorm; self.mlpNorm = mlpNorm
        self.qkv = qkv; self.o = o; self.gateUp = gateUp; self.down = down
    }

    /// The sites in dependency order.
    public var sites: [Site] { [qkv, o, gateUp, down] }

    public func site(_ kind: SiteKind) -> Site {
        switch kind { case .qkv: return qkv; case .o: return o; case .gateUp: return gateUp; case .down: return down }
    }

    /// Canonical name of the norm or linear that produces a site's input, and whether a diagonal
    /// scale can be folded into it offline.
    public func producer(of kind: SiteKind) -> String { DecoderBlock.producer(of: kind, block: index) }

    public static func producer(of kind: SiteKind, block index: Int) -> String {
        switch kind {
        case .qkv: return "layers.\(index).input_layernorm"
        case .o: return "layers.\(index).self_attn.v_proj"
        case .gateUp: return "layers.\(index).post_attention_layernorm"
        case .down: return "layers.\(index).mlp.up_proj"
        }
    }

    public func copy() -> DecoderBlock {
        let b = DecoderBlock(index: index, attentionNorm: attentionNorm, mlpNorm: mlpNorm, qkv: qkv.copy(), o: o.copy(),
                             gateUp: gateUp.copy(), down: down.copy())
        b.attentionQuantization = attentionQuantization
        return b
    }
}

/// Quantization of the attention inputs Q, K, V after RoPE: per head and per token.
public struct AttentionQuantization: Sendable, Equatable {
    public var bits: Int
    public var symmetric: Bool
    public var clip: Double
    /// Quantize Q, K, V (each can be off).
    public var queries: Bool, keys: Bool, values: Bool
    /// Apply an orthonormal Hadamard over head_dim to Q and K first (QuaRot/DuQuant); QKᵀ is unchanged.
    public var hadamardOnHeadDim: Bool
    public init(bits: Int, symmetric: Bool = false, clip: Double = 1, queries: Bool = true, keys: Bool = true,
                values: Bool = true, hadamardOnHeadDim: Bool = false) {
        self.bits = bits; self.symmetric = symmetric; self.clip = clip
        self.queries = queries; self.keys = keys; self.values = values; self.hadamardOnHeadDim = hadamardOnHeadDim
    }
}

/// A LLaMA-family decoder as the workbench sees it: embeddings, blocks of sites, final norm, lm_head.
/// Format-neutral: loaders fill it, the forward pass (module LlamaModel) runs it.
public final class DecoderModel {
    public var config: DecoderConfig
    /// vocab × hidden.
    public var embedding: Matrix
    public var blocks: [DecoderBlock]
    public var finalNorm: [Float]
    /// vocab × hidden; kept in float unless an override quantizes it.
    public var lmHead: Linear
    /// lm_head's input activations: not quantized unless an override names `lm_head` (then, with
    /// its weights at ≤ 8 bits, it runs on the integer GEMM like a site).
    public var lmHeadActivations = ActivationScheme()
    /// Where the weights came from and what "float" means for them (e.g. "Q4_1 weights dequantized to f32").
    public var provenance: String

    public init(config: DecoderConfig, embedding: Matrix, blocks: [DecoderBlock], finalNorm: [Float], lmHead: Linear, provenance: String) {
        self.config = config; self.embedding = embedding; self.blocks = blocks; self.finalNorm = finalNorm
        self.lmHead = lmHead; self.provenance = provenance
    }

    public var allSites: [Site] { blocks.flatMap { $0.sites } }
    public var allLinears: [Linear] { allSites.flatMap { $0.linears } + [lmHead] }

    /// A deep copy (weights are copy-on-write arrays, so this is cheap until a copy is modified).
    public func copy() -> DecoderModel {
        let m = DecoderModel(config: config, embedding: embedding, blocks: blocks.map { $0.copy() }, finalNorm: finalNorm,
                             lmHead: lmHead.copy(), provenance: provenance)
        m.lmHeadActivations = lmHeadActivations
        return m
    }

    /// Number of parameters in the blocks' linears, embeddings and lm_head.
    public var parameterCount: Int {
        embedding.data.count + allLinears.reduce(0) { $0 + $1.weight.data.count }
    }
}

extension DecoderModel {
    /// Model-level edit: divides the RMSNorm weight that feeds site `kind` of block `b` by `s`
    /// (a diagonal input scale folded offline: `norm(h)·γ/s`).
    public func foldScaleIntoNorm(block b: Int, site kind: SiteKind, scale s: [Float]) {
        let blk = blocks[b]
        switch kind {
        case .qkv: blk.attentionNorm = zip(blk.attentionNorm, s).map { $0 * $1 }
        case .gateUp: blk.mlpNorm = zip(blk.mlpNorm, s).map { $0 * $1 }
        default: preconditionFailure("no norm feeds \(kind)")
        }
    }

    /// Model-level edit (QuaRot): multiplies every RMSNorm weight γ into the linears it feeds
    /// (q/k/v, gate/up, lm_head) and sets γ = 1, so the residual stream can be rotated.
    public func foldNormWeightsIntoLinears() {
        func fold(_ gamma: [Float], into linears: [Linear]) {
            for l in linears {
                precondition(l.quantized == nil)
                for r in 0..<l.weight.rows { for c in 0..<l.weight.cols { l.weight.data[r * l.weight.cols + c] *= gamma[c] } }
            }
        }
        for b in blocks {
            fold(b.attentionNorm, into: b.qkv.linears); b.attentionNorm = [Float](repeating: 1, count: b.attentionNorm.count)
            fold(b.mlpNorm, into: b.gateUp.linears); b.mlpNorm = [Float](repeating: 1, count: b.mlpNorm.count)
        }
        fold(finalNorm, into: [lmHead]); finalNorm = [Float](repeating: 1, count: finalNorm.count)
    }

    /// Model-level edit (QuaRot): rotates the residual stream by an orthogonal `Q` (`h ← h·Q`).
    /// Embeddings become `E·Q`; every linear reading the stream (q/k/v, gate/up, lm_head) gets
    /// `W·Q`; every linear writing it (o, down) gets `Qᵀ·W`. Norm weights must be folded first
    /// (RMSNorm commutes with an orthogonal map only when γ = 1).
    public func rotateResidualStream(_ q: Transform) {
        q.applyToActivations(&embedding)
        for b in blocks {
            for l in b.qkv.linears + b.gateUp.linears { q.foldIntoWeights(&l.weight) }
            for l in b.o.linears + b.down.linears {
                // Output side: W' = Qᵀ·W ⇔ W'ᵀ = Wᵀ·Q, i.e. rotate the columns of Wᵀ.
                var wt = l.weight.transposed
                q.applyToActivations(&wt)
                l.weight = wt.transposed
                if let bias = l.bias {
                    var bm = Matrix(rows: 1, cols: bias.count, data: bias)
                    q.applyToActivations(&bm)
                    l.bias = bm.data
                }
            }
        }
        q.foldIntoWeights(&lmHead.weight)
    }
}
