import Foundation
import QuantCore

/// The architecture of a trainable LLaMA-family decoder.
public struct ModelShape: Equatable, Sendable, CustomStringConvertible {
    public var layers: Int
    public var hidden: Int
    public var heads: Int
    public var kvHeads: Int
    public var headDim: Int
    /// SwiGLU inner width.
    public var ffn: Int
    /// Longest window (RoPE positions 0..<context).
    public var context: Int
    public var vocab: Int
    /// lm_head shares the embedding matrix.
    public var tied: Bool
    public var ropeTheta: Double
    public var normEps: Double
    public var ropeLayout: DecoderConfig.RopeLayout

    public init(layers: Int, hidden: Int, heads: Int, kvHeads: Int, headDim: Int? = nil, ffn: Int, context: Int, vocab: Int = 256,
                tied: Bool = true, ropeTheta: Double = 10000, normEps: Double = 1e-5, ropeLayout: DecoderConfig.RopeLayout = .rotateHalf) {
        self.layers = layers; self.hidden = hidden; self.heads = heads; self.kvHeads = kvHeads
        self.headDim = headDim ?? (heads > 0 ? hidden / heads : 0)
        self.ffn = ffn; self.context = context; self.vocab = vocab; self.tied = tied
        self.ropeTheta = ropeTheta; self.normEps = normEps; self.ropeLayout = ropeLayout
    }

    /// Why this shape cannot be built, or nil.
    public var problem: String? {
        if layers < 1 || hidden < 1 || heads < 1 || kvHeads < 1 || ffn < 1 || context < 2 || vocab < 2 { return "every size must be positive (context ≥ 2, vocab ≥ 2)" }
        if heads % kvHeads != 0 { return "heads (\(heads)) must be a multiple of kv_heads (\(kvHeads))" }
        if headDim < 2 || headDim % 2 != 0 { return "the head size (\(headDim)) must be even for RoPE" }
        return nil
    }

    public var qWidth: Int { heads * headDim }
    public var kvWidth: Int { kvHeads * headDim }

    /// The linear layers of one block: canonical name, out, in.
    public var blockLinears: [(name: String, out: Int, in: Int)] {
        [("self_attn.q_proj", qWidth, hidden), ("self_attn.k_proj", kvWidth, hidden), ("self_attn.v_proj", kvWidth, hidden),
         ("self_attn.o_proj", hidden, qWidth), ("mlp.gate_proj", ffn, hidden), ("mlp.up_proj", ffn, hidden),
         ("mlp.down_proj", hidden, ffn)]
    }

    public var parameterCount: Int {
        let block = 2 * hidden + blockLinears.reduce(0) { $0 + $1.out * $1.in }
        return vocab * hidden * (tied ? 1 : 2) + layers * block + hidden
    }

    /// Weights of the linear layers (the part a training quantizer handles).
    public var linearParameterCount: Int { layers * blockLinears.reduce(0) { $0 + $1.out * $1.in } }

    public var description: String {
        "\(layers) layers, hidden \(hidden), \(heads) heads (\(kvHeads) KV, head size \(headDim)), FFN \(ffn), context \(context), vocab \(vocab), \(tied ? "tied" : "untied") lm_head"
    }
}

/// One trainable tensor: value, gradient, and whether AdamW decays it.
public final class Parameter<T: TrainScalar> {
    public let name: String
    public let rows: Int, cols: Int
    public var value: [T]
    public var grad: [T]
    /// Weight decay applies to matrices (linears, embedding, lm_head), not to RMSNorm weights.
    public let decays: Bool

    public init(name: String, rows: Int, cols: Int, value: [T], decays: Bool) {
        precondition(value.count == rows * cols)
        self.name = name; self.rows = rows; self.cols = cols; self.value = value; self.decays = decays
        grad = [T](repeating: 0, count: value.count)
    }

    /// All-zero bytes are +0 in IEEE binary floating point.
    public func zeroGrad() { grad.withUnsafeMutableBytes { $0.initializeMemory(as: UInt8.self, repeating: 0) } }
}

/// The parameters of one decoder block.
public final class BlockParameters<T: TrainScalar> {
    public let attentionNorm: Parameter<T>, mlpNorm: Parameter<T>
    /// q, k, v, o, gate, up, down — the order of `ModelShape.blockLinears`.
    public let linears: [Parameter<T>]
    init(attentionNorm: Parameter<T>, mlpNorm: Parameter<T>, linears: [Parameter<T>]) {
        self.attentionNorm = attentionNorm; self.mlpNorm = mlpNorm; self.linears = linears
    }
}

/// A LLaMA decoder's parameters in a fixed order (`all`): the order of checkpoints and the optimizer.
public final class LlamaParameters<T: TrainScalar> {
    public let shape: ModelShape
    /// vocab × hidden.
    public let embedding: Parameter<T>
    public let blocks: [BlockParameters<T>]
    public let finalNorm: Parameter<T>
    /// vocab × hidden; nil when tied to the embedding.
    public let lmHead: Parameter<T>?

    public init(shape: ModelShape, embedding: Parameter<T>, blocks: [BlockParameters<T>], finalNorm: Parameter<T>, lmHead: Parameter<T>?) {
        self.shape = shape; self.embedding = embedding; self.blocks = blocks; self.finalNorm = finalNorm; self.lmHead = lmHead
    }

    public var all: [Parameter<T>] {
        var out: [Parameter<T>] = [embedding]
        for b in blocks {
            out.append(b.attentionNorm)
            out.append(contentsOf: b.linears)
            out.append(b.mlpNorm)
        }
        out.append(finalNorm)
        if let lmHead { out.append(lmHead) }
        return out
    }

    /// The lm_head matrix (the embedding when tied).
    public var head: Parameter<T> { lmHead ?? embedding }

    /// GPT-2-style initialisation from `seed`: embedding, lm_head and linears ~ N(0, 0.02²);
    /// o_proj and down_proj (the residual writers) ~ N(0, (0.02/√(2·layers))²); RMSNorm γ = 1.
    /// Each tensor draws from its own stream `derive(seed, name)`, so the order does not matter.
    public static func initialize(shape s: ModelShape, seed: UInt64) -> LlamaParameters<T> {
        func normal(_ name: String, _ rows: Int, _ cols: Int, std: Double) -> Parameter<T> {
            var g = SeededGenerator(seed: SeededGenerator.derive(seed, "init." + name))
            return Parameter(name: name, rows: rows, cols: cols, value: (0..<(rows * cols)).map { _ in T(g.nextGaussian() * std) }, decays: true)
        }
        func ones(_ name: String) -> Parameter<T> {
            Parameter(name: name, rows: 1, cols: s.hidden, value: [T](repeating: 1, count: s.hidden), decays: false)
        }
        let residualStd = 0.02 / (2 * Double(s.layers)).squareRoot()
        let blocks = (0..<s.layers).map { i in
            BlockParameters(attentionNorm: ones("layers.\(i).input_layernorm"), mlpNorm: ones("layers.\(i).post_attention_layernorm"),
                            linears: s.blockLinears.map { l in
                                normal("layers.\(i).\(l.name)", l.out, l.in,
                                       std: l.name == "self_attn.o_proj" || l.name == "mlp.down_proj" ? residualStd : 0.02)
                            })
        }
        return LlamaParameters(shape: s, embedding: normal("embed_tokens", s.vocab, s.hidden, std: 0.02), blocks: blocks,
                               finalNorm: ones("norm"), lmHead: s.tied ? nil : normal("lm_head", s.vocab, s.hidden, std: 0.02))
    }

    /// A converted copy of `other`'s values (e.g. Float weights into Double for a gradient check).
    public convenience init<U: TrainScalar>(converting other: LlamaParameters<U>) {
        func c(_ p: Parameter<U>) -> Parameter<T> { Parameter(name: p.name, rows: p.rows, cols: p.cols, value: p.value.map { T($0) }, decays: p.decays) }
        self.init(shape: other.shape, embedding: c(other.embedding),
                  blocks: other.blocks.map { BlockParameters(attentionNorm: c($0.attentionNorm), mlpNorm: c($0.mlpNorm), linears: $0.linears.map(c)) },
                  finalNorm: c(other.finalNorm), lmHead: other.lmHead.map(c))
    }
}

/// Why a loaded model cannot be fine-tuned.
public struct UnusableModel: Error, CustomStringConvertible {
    public var description: String
}

extension LlamaParameters where T == Float {
    /// The weights of an inference model (e.g. the reference GGUF) as trainable parameters.
    /// Throws when the model has biases, quantized weights or attention quantization.
    public static func converting(_ m: DecoderModel) throws -> LlamaParameters<Float> {
        let c = m.config
        let tied = m.lmHead.weight == m.embedding
        let shape = ModelShape(layers: c.layerCount, hidden: c.hiddenSize, heads: c.headCount, kvHeads: c.kvHeadCount, headDim: c.headDim,
                               ffn: c.intermediateSize, context: 32_768, vocab: c.vocabSize, tied: tied, ropeTheta: c.ropeTheta,
                               normEps: c.rmsNormEps, ropeLayout: c.ropeLayout)
        if let p = shape.problem { throw UnusableModel(description: "the model's shape cannot be trained: \(p)") }
        func matrix(_ l: Linear, out: Int, in inn: Int) throws -> Parameter<Float> {
            guard l.bias == nil else { throw UnusableModel(description: "\(l.name) has a bias; the trainer handles LLaMA linears without bias") }
            guard l.quantized == nil else { throw UnusableModel(description: "\(l.name) is already quantized; fine-tune from float weights") }
            guard l.weight.rows == out && l.weight.cols == inn else {
                throw UnusableModel(description: "\(l.name) is \(l.weight.rows)×\(l.weight.cols), expected \(out)×\(inn)")
            }
            return Parameter(name: l.name, rows: out, cols: inn, value: l.weight.data, decays: true)
        }
        func norm(_ name: String, _ v: [Float]) throws -> Parameter<Float> {
            guard v.count == shape.hidden else { throw UnusableModel(description: "\(name) has \(v.count) values, expected \(shape.hidden)") }
            return Parameter(name: name, rows: 1, cols: shape.hidden, value: v, decays: false)
        }
        var blocks: [BlockParameters<Float>] = []
        for b in m.blocks {
            guard b.attentionQuantization == nil else { throw UnusableModel(description: "block \(b.index) quantizes attention; fine-tune a float model") }
            let linears = b.qkv.linears + b.o.linears + b.gateUp.linears + b.down.linears
            guard linears.count == 7 else { throw UnusableModel(description: "block \(b.index) has \(linears.count) linears, expected q, k, v, o, gate, up, down") }
            blocks.append(BlockParameters(
                attentionNorm: try norm("layers.\(b.index).input_layernorm", b.attentionNorm),
                mlpNorm: try norm("layers.\(b.index).post_attention_layernorm", b.mlpNorm),
                linears: try zip(linears, shape.blockLinears).map { try matrix($0.0, out: $0.1.out, in: $0.1.in) }))
        }
        guard m.embedding.rows == shape.vocab && m.embedding.cols == shape.hidden else {
            throw UnusableModel(description: "the embedding is \(m.embedding.rows)×\(m.embedding.cols), expected \(shape.vocab)×\(shape.hidden)")
        }
        return LlamaParameters(shape: shape,
                               embedding: Parameter(name: "embed_tokens", rows: shape.vocab, cols: shape.hidden, value: m.embedding.data, decays: true),
                               blocks: blocks, finalNorm: try norm("norm", m.finalNorm),
                               lmHead: tied ? nil : try matrix(m.lmHead, out: shape.vocab, in: shape.hidden))
    }
}
