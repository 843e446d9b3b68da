import Foundation

/// How q/k rows are arranged for rotary embeddings.
public enum RopeLayout: String, Sendable, Equatable, Codable {
    /// Rotate adjacent pairs (x[2i], x[2i+1]): GGUF `llama` files, whose converter permuted q/k rows.
    case interleavedPairs
    /// Rotate halves (x[i], x[i + headDim/2]): Hugging Face checkpoints (and GGUF `qwen2`).
    case rotateHalf
}

/// The architecture hyper-parameters the forward pass needs, independent of file format.
public struct ArchitectureConfig: Sendable, Equatable, Codable {
    /// "llama", "mistral" or "qwen2".
    public var architecture: String
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var layerCount: Int
    public var headCount: Int
    public var kvHeadCount: Int
    public var headDim: Int
    public var vocabSize: Int
    public var contextLength: Int
    public var ropeTheta: Double
    public var rmsNormEps: Double
    /// `lm_head` shares `embed_tokens` (and is absent from the tensor list).
    public var tiedEmbeddings: Bool
    /// q/k/v projections have biases (Qwen2).
    public var hasQKVBias: Bool
    public var ropeLayout: RopeLayout

    public init(architecture: String, hiddenSize: Int, intermediateSize: Int, layerCount: Int, headCount: Int,
                kvHeadCount: Int, headDim: Int, vocabSize: Int, contextLength: Int, ropeTheta: Double,
                rmsNormEps: Double, tiedEmbeddings: Bool, hasQKVBias: Bool, ropeLayout: RopeLayout) {
        self.architecture = architecture; self.hiddenSize = hiddenSize; self.intermediateSize = intermediateSize
        self.layerCount = layerCount; self.headCount = headCount; self.kvHeadCount = kvHeadCount; self.headDim = headDim
        self.vocabSize = vocabSize; self.contextLength = contextLength; self.ropeTheta = ropeTheta
        self.rmsNormEps = rmsNormEps; self.tiedEmbeddings = tiedEmbeddings; self.hasQKVBias = hasQKVBias
        self.ropeLayout = ropeLayout
    }

    /// A field of the config, for naming the file's key in errors.
    public enum Field: CaseIterable, Sendable {
        case hiddenSize, intermediateSize, layerCount, headCount, kvHeadCount, headDim, vocabSize, contextLength
        case ropeTheta, rmsNormEps
    }

    /// Largest accepted sizes. Real models are far below these; the limits keep every product of
    /// sizes (and every token id, which is stored as `Int32`) far from overflow.
    public static let sizeLimits: [Field: Int] = [
        .hiddenSize: 1 << 20, .intermediateSize: 1 << 22, .headCount: 1 << 16, .kvHeadCount: 1 << 16,
        .headDim: 1 << 16, .vocabSize: Int(Int32.max), .contextLength: Int(Int32.max),
    ]
    /// Accepted RMSNorm ε: 0 < ε ≤ this (models use 1e-6…1e-5).
    public static let maxRMSNormEps = 0.01

    /// Checks every size against `sizeLimits` and the tensors the file holds, before anything is
    /// sized by them: the layer count against `tensorCount` (a layer has 9 tensors), head count ×
    /// head size without overflow, heads a multiple of KV heads, RoPE base > 0 and finite,
    /// 0 < RMSNorm ε ≤ `maxRMSNormEps`. Errors are `badMetadata` naming `key(field)` in `file`.
    public func validate(file: String, tensorCount: Int, key: (Field) -> String) throws {
        func bad(_ f: Field, _ why: String) -> ModelFormatError { .badMetadata(file: file, key: key(f), reason: why) }
        let sizes: [(Field, Int)] = [(.hiddenSize, hiddenSize), (.intermediateSize, intermediateSize), (.headCount, headCount),
                                     (.kvHeadCount, kvHeadCount), (.headDim, headDim), (.vocabSize, vocabSize),
                                     (.contextLength, contextLength)]
        for (f, v) in sizes {
            let limit = Self.sizeLimits[f]!
            guard v >= 1, v <= limit else { throw bad(f, "\(v) is outside the allowed range 1...\(limit)") }
        }
        let layerLimit = tensorCount / 9
        guard layerCount >= 1, layerCount <= layerLimit else {
            throw bad(.layerCount, "\(layerCount) layers need at least \(9 as Int)× as many tensors, but the file has \(tensorCount) tensors (allowed: 1...\(max(layerLimit, 1)))")
        }
        for (f, heads) in [(Field.headCount, headCount), (.kvHeadCount, kvHeadCount)] {
            let (width, o) = heads.multipliedReportingOverflow(by: headDim)
            guard !o, width <= Self.sizeLimits[.hiddenSize]! * 4 else {
                throw bad(f, "\(heads) heads × head size \(headDim) is larger than \(Self.sizeLimits[.hiddenSize]! * 4)")
            }
        }
        guard headCount % kvHeadCount == 0 else {
            throw bad(.kvHeadCount, "\(headCount) attention heads are not a multiple of \(kvHeadCount) KV heads")
        }
        guard ropeTheta.isFinite, ropeTheta > 0 else { throw bad(.ropeTheta, "\(ropeTheta) is not a positive finite number") }
        guard rmsNormEps.isFinite, rmsNormEps > 0, rmsNormEps <= Self.maxRMSNormEps else {
            throw bad(.rmsNormEps, "\(rmsNormEps) is outside the allowed range 0 < ε ≤ \(Self.maxRMSNormEps)")
        }
    }

    /// Canonical tensor names this config requires, with their shapes (`[out, in]` / `[n]`).
    public var expectedTensors: [(name: String, shape: [Int])] {
        let q = headCount * headDim, kv = kvHeadCount * headDim
        var out: [(String, [Int])] = [("embed_tokens", [vocabSize, hiddenSize])]
        for i in 0..<layerCount {
            let p = "layers.\(i)."
            out.append((p + "input_layernorm", [hiddenSize]))
            out.append((p + "self_attn.q_proj", [q, hiddenSize]))
            out.append((p + "self_attn.k_proj", [kv, hiddenSize]))
            out.append((p + "self_attn.v_proj", [kv, hiddenSize]))
            if hasQKVBias {
                out.append((p + "self_attn.q_proj.bias", [q]))
                out.append((p + "self_attn.k_proj.bias", [kv]))
                out.append((p + "self_attn.v_proj.bias", [kv]))
            }
            out.append((p + "self_attn.o_proj", [hiddenSize, q]))
            out.append((p + "post_attention_layernorm", [hiddenSize]))
            out.append((p + "mlp.gate_proj", [intermediateSize, hiddenSize]))
            out.append((p + "mlp.up_proj", [intermediateSize, hiddenSize]))
            out.append((p + "mlp.down_proj", [hiddenSize, intermediateSize]))
        }
        out.append(("norm", [hiddenSize]))
        if !tiedEmbeddings { out.append(("lm_head", [vocabSize, hiddenSize])) }
        return out
    }
}

/// Where a canonical tensor lives and how it is stored.
public struct TensorInfo: Sendable, Equatable {
    /// Canonical name, e.g. "layers.3.self_attn.q_proj".
    public let name: String
    /// Name inside the file, e.g. "blk.3.attn_q.weight" or "model.layers.3.self_attn.q_proj.weight".
    public let storageName: String
    /// Row-major shape: `[out, in]` for matrices, `[n]` for vectors.
    public let shape: [Int]
    /// Storage type name: "F32", "F16", "BF16", "Q4_1", "Q8_0", …
    public let storageType: String
    /// Stored size in bytes.
    public let byteCount: Int
    public var elementCount: Int { shape.reduce(1, *) }
}

/// A loaded model checkpoint in any supported format, addressed by canonical tensor names
/// (Hugging Face style without the `model.` prefix and `.weight` suffix).
public protocol Checkpoint: AnyObject, Sendable {
    /// The .gguf file, or the folder / index / single safetensors file.
    var url: URL { get }
    var config: ArchitectureConfig { get }
    /// Canonical names of all mapped tensors (excludes `lm_head` when embeddings are tied).
    var tensorNames: [String] { get }
    func info(_ canonical: String) -> TensorInfo?
    /// Dequantized values, row-major `[out, in]` (or `[n]`).
    func floats(_ canonical: String) throws -> [Float]
    /// GGUF metadata (empty for safetensors).
    var metadata: [String: GGUFValue] { get }
}

extension Checkpoint {
    /// Validates `config` (see `ArchitectureConfig.validate`), then throws `missingTensor` /
    /// `shapeMismatch` if a tensor required by `config` is absent or mis-shaped.
    /// Config errors name `configFile`, tensor errors `file`.
    func validateTensors(file: String, configFile: String? = nil, key: (ArchitectureConfig.Field) -> String) throws {
        try config.validate(file: configFile ?? file, tensorCount: tensorNames.count, key: key)
        for (name, shape) in config.expectedTensors {
            guard let i = info(name) else { throw ModelFormatError.missingTensor(file: file, tensor: name) }
            guard i.shape == shape else {
                throw ModelFormatError.shapeMismatch(file: file, tensor: "\(name) (\(i.storageName))", expected: shape, found: i.shape)
            }
        }
    }
}

/// Opens a `.gguf` file, a Hugging Face folder (config.json + safetensors, single or sharded),
/// a `.safetensors` file next to a config.json, or a `model.safetensors.index.json`.
public func openCheckpoint(_ url: URL) throws -> Checkpoint {
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir) else {
        throw ModelFormatError.unreadable(file: url.path, reason: "no such file or directory")
    }
    if isDir.boolValue { return try SafetensorsCheckpoint(folder: url) }
    switch url.pathExtension.lowercased() {
    case "safetensors": return try SafetensorsCheckpoint(file: url)
    case "json": return try SafetensorsCheckpoint(folder: url.deletingLastPathComponent())
    default: return try GGUFCheckpoint(url: url)
    }
}
