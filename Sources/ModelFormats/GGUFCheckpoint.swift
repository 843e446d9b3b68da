import Foundation

/// A GGUF file as a `Checkpoint`. GGUF names map onto canonical names:
/// `token_embd`→`embed_tokens`, `blk.N.attn_norm`→`layers.N.input_layernorm`,
/// `blk.N.attn_{q,k,v}`→`layers.N.self_attn.{q,k,v}_proj`, `blk.N.attn_output`→`…o_proj`,
/// `blk.N.ffn_norm`→`layers.N.post_attention_layernorm`, `blk.N.ffn_{gate,up,down}`→`layers.N.mlp.*_proj`,
/// `output_norm`→`norm`, `output`→`lm_head`; a `.bias` suffix is kept, `.weight` dropped.
public final class GGUFCheckpoint: Checkpoint, @unchecked Sendable {
    public let gguf: GGUFFile
    public let config: ArchitectureConfig
    public let tensorNames: [String]
    private let infos: [String: TensorInfo]
    private let storage: [String: GGUFTensorInfo]

    public var url: URL { gguf.url }
    public var metadata: [String: GGUFValue] { gguf.metadata }

    /// Maps a GGUF tensor name to its canonical name (nil for tensors outside the scheme).
    public static func canonicalName(_ ggufName: String) -> String? {
        var base = ggufName
        var suffix = ""
        if base.hasSuffix(".weight") { base.removeLast(7) } else if base.hasSuffix(".bias") { base.removeLast(5); suffix = ".bias" } else { return nil }
        switch base {
        case "token_embd": return "embed_tokens" + suffix
        case "output_norm": return "norm" + suffix
        case "output": return "lm_head" + suffix
        default: break
        }
        let parts = base.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0] == "blk", let layer = Int(parts[1]), layer >= 0 else { return nil }
        let map = ["attn_norm": "input_layernorm", "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj",
                   "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj", "ffn_norm": "post_attention_layernorm",
                   "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj"]
        guard let m = map[String(parts[2])] else { return nil }
        return "layers.\(layer).\(m)\(suffix)"
    }

    public convenience init(url: URL) throws { try self.init(GGUFFile(url: url)) }

    public init(_ gguf: GGUFFile) throws {
        self.gguf = gguf
        let path = gguf.url.path
        var infos: [String: TensorInfo] = [:]
        var storage: [String: GGUFTensorInfo] = [:]
        for t in gguf.tensors {
            guard let c = Self.canonicalName(t.name) else { continue }
            infos[c] = TensorInfo(name: c, storageName: t.name, shape: t.shape, storageType: t.type.name, byteCount: t.byteCount)
            storage[c] = t
        }
        guard let arch = gguf.architecture else {
            throw ModelFormatError.badMetadata(file: path, key: "general.architecture", reason: "missing")
        }
        guard ["llama", "mistral", "qwen2"].contains(arch) else {
            throw ModelFormatError.unsupportedArchitecture(file: path, architecture: arch)
        }
        let md = gguf.metadata
        func int(_ key: String, default d: Int? = nil) throws -> Int {
            let k = "\(arch).\(key)"
            guard let v = md[k] else {
                if let d { return d }
                throw ModelFormatError.badMetadata(file: path, key: k, reason: "missing (required for \(arch))")
            }
            guard let i = v.int, i > 0 else { throw ModelFormatError.badMetadata(file: path, key: k, reason: "expected a positive integer, found \(v)") }
            return i
        }
        func double(_ key: String, default d: Double) throws -> Double {
            let k = "\(arch).\(key)"
            guard let v = md[k] else { return d }
            guard let x = v.double, x.isFinite else { throw ModelFormatError.badMetadata(file: path, key: k, reason: "expected a number, found \(v)") }
            // f32 values are widened via their shortest decimal form (1e-5, not 9.99999974e-06); Float(x) is unchanged.
            if case .float32(let f) = v { return Double("\(f)") ?? x }
            return x
        }
        let hidden = try int("embedding_length")
        let heads = try int("attention.head_count")
        guard hidden % heads == 0 || md["\(arch).attention.key_length"] != nil else {
            throw ModelFormatError.badMetadata(file: path, key: "\(arch).attention.head_count", reason: "\(heads) does not divide embedding_length \(hidden)")
        }
        let embedRows = infos["embed_tokens"]?.shape.first
        let vocab = md["tokenizer.ggml.tokens"]?.count ?? md["\(arch).vocab_size"]?.int ?? embedRows
        guard let vocab else { throw ModelFormatError.missingTensor(file: path, tensor: "embed_tokens (token_embd.weight)") }
        let tied = infos["lm_head"] == nil
        let config = ArchitectureConfig(
            architecture: arch, hiddenSize: hidden, intermediateSize: try int("feed_forward_length"),
            layerCount: try int("block_count"), headCount: heads, kvHeadCount: try int("attention.head_count_kv", default: heads),
            headDim: try int("attention.key_length", default: hidden / heads), vocabSize: vocab,
            contextLength: try int("context_length", default: 2048),
            ropeTheta: try double("rope.freq_base", default: 10000),
            rmsNormEps: try double("attention.layer_norm_rms_epsilon", default: 1e-5),
            tiedEmbeddings: tied, hasQKVBias: infos["layers.0.self_attn.q_proj.bias"] != nil || arch == "qwen2",
            ropeLayout: arch == "qwen2" ? .rotateHalf : .interleavedPairs)
        self.config = config
        self.infos = infos
        self.storage = storage
        self.tensorNames = infos.keys.sorted()
        try validateTensors(file: path) { field in
            switch field {
            case .hiddenSize: return "\(arch).embedding_length"
            case .intermediateSize: return "\(arch).feed_forward_length"
            case .layerCount: return "\(arch).block_count"
            case .headCount: return "\(arch).attention.head_count"
            case .kvHeadCount: return "\(arch).attention.head_count_kv"
            case .headDim: return "\(arch).attention.key_length"
            case .vocabSize: return md["tokenizer.ggml.tokens"] != nil ? "tokenizer.ggml.tokens" : "\(arch).vocab_size"
            case .contextLength: return "\(arch).context_length"
            case .ropeTheta: return "\(arch).rope.freq_base"
            case .rmsNormEps: return "\(arch).attention.layer_norm_rms_epsilon"
            }
        }
    }

    public func info(_ canonical: String) -> TensorInfo? { infos[canonical] }

    public func floats(_ canonical: String) throws -> [Float] {
        guard let t = storage[canonical] else { throw ModelFormatError.missingTensor(file: gguf.url.path, tensor: canonical) }
        return try gguf.floats(t.name)
    }

    /// The GGUF directory entry behind a canonical name (type, ggml dims, offset).
    public func storedTensor(_ canonical: String) -> GGUFTensorInfo? { storage[canonical] }

    /// Calls `body` with the stored (still quantized) bytes of a tensor, e.g. for a quantized matmul.
    /// The pointer is valid only inside `body`. Returns nil if the tensor does not exist.
    public func withStoredBytes<R>(_ canonical: String, _ body: (GGUFTensorInfo, UnsafeRawBufferPointer) throws -> R) rethrows -> R? {
        guard let t = storage[canonical] else { return nil }
        return try withExtendedLifetime(gguf) { try body(t, gguf.rawBytes(t)) }
    }

    /// Typed `tokenizer.ggml.*` values.
    public var vocabulary: GGUFVocabulary { GGUFVocabulary(metadata: gguf.metadata) }
}

/// Typed view of the `tokenizer.ggml.*` (and `tokenizer.chat_template`) GGUF keys; absent keys are nil.
public struct GGUFVocabulary: Sendable {
    public let metadata: [String: GGUFValue]
    public init(metadata: [String: GGUFValue]) { self.metadata = metadata }

    /// `tokenizer.ggml.<key>`.
    public subscript(_ key: String) -> GGUFValue? { metadata["tokenizer.ggml." + key] }

    /// "gpt2", "llama", …
    public var model: String? { self["model"]?.string }
    /// Pre-tokenizer name, e.g. "smollm".
    public var pre: String? { self["pre"]?.string }
    public var tokens: [String]? { self["tokens"]?.strings }
    public var tokenTypes: [Int]? { self["token_type"]?.ints }
    public var scores: [Float]? { self["scores"]?.floats }
    public var merges: [String]? { self["merges"]?.strings }
    public var bosTokenID: Int? { self["bos_token_id"]?.int }
    public var eosTokenID: Int? { self["eos_token_id"]?.int }
    public var unknownTokenID: Int? { self["unknown_token_id"]?.int }
    public var paddingTokenID: Int? { self["padding_token_id"]?.int }
    public var addBOSToken: Bool? { self["add_bos_token"]?.bool }
    public var addEOSToken: Bool? { self["add_eos_token"]?.bool }
    public var addSpacePrefix: Bool? { self["add_space_prefix"]?.bool }
    public var chatTemplate: String? { metadata["tokenizer.chat_template"]?.string }
}

extension GGUFVocabulary {
    /// The tokenizer these keys describe, every key checked first: types of the values, token
    /// types in 0...6 (no unchecked conversion), finite scores, special ids inside the vocabulary
    /// (−1 = none). Nil when the file has no `tokenizer.ggml.model`. Errors are `badMetadata`
    /// naming `file` and the key, or a `TokenizerError` with `file` in front.
    public func makeTokenizer(file: String) throws -> TextTokenizer? {
        guard let modelValue = self["model"] else { return nil }
        func bad(_ key: String, _ why: String) -> ModelFormatError {
            .badMetadata(file: file, key: "tokenizer.ggml." + key, reason: why)
        }
        guard let model = modelValue.string else { throw bad("model", "expected a string, found \(modelValue)") }
        guard let tokensValue = self["tokens"] else { throw bad("tokens", "missing (required with tokenizer.ggml.model)") }
        guard let tokens = tokensValue.strings else { throw bad("tokens", "expected an array of strings, found \(tokensValue)") }
        var types: [Int32]?
        if let v = self["token_type"] {
            guard let a = v.arrayValue, let ints = a.ints else { throw bad("token_type", "expected an array of integers, found \(v)") }
            types = try ints.enumerated().map { i, t in
                guard let code = Int32(exactly: t), TokenizerTokenType(rawValue: code) != nil else {
                    throw bad("token_type", "element \(i) is \(t); allowed token types are 0...6")
                }
                return code
            }
        }
        var scores: [Float]?
        if let v = self["scores"] {
            guard let f = v.floats else { throw bad("scores", "expected an array of floats, found \(v)") }
            if let i = f.firstIndex(where: { !$0.isFinite }) { throw bad("scores", "element \(i) is \(f[i]); scores must be finite") }
            scores = f
        }
        var merges: [String]?
        if let v = self["merges"] {
            guard let m = v.strings else { throw bad("merges", "expected an array of strings, found \(v)") }
            merges = m
        }
        func id(_ key: String) throws -> Int? {
            guard let v = self[key] else { return nil }
            guard let i = v.int else { throw bad(key, "expected an integer token id, found \(v)") }
            guard i == -1 || (i >= 0 && i < tokens.count) else {
                throw bad(key, "token id \(i) is outside the vocabulary (allowed: 0...\(tokens.count - 1), or -1 for none)")
            }
            return i == -1 ? -1 : i
        }
        func flag(_ key: String) throws -> Bool? {
            guard let v = self[key] else { return nil }
            guard let b = v.bool else { throw bad(key, "expected a bool, found \(v)") }
            return b
        }
        if let v = self["pre"], v.string == nil { throw bad("pre", "expected a string, found \(v)") }
        do {
            return try TokenizerGGUF.makeTokenizer(
                model: model, pre: pre, tokens: tokens, scores: scores, tokenTypes: types, merges: merges,
                bosTokenID: try id("bos_token_id"), eosTokenID: try id("eos_token_id"),
                unknownTokenID: try id("unknown_token_id"), addBOS: try flag("add_bos_token"),
                addSpacePrefix: try flag("add_space_prefix"))
        } catch let e as TokenizerError {
            throw e.located(in: file)
        }
    }
}
