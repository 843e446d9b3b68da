import Foundation

/// A Hugging Face checkpoint (config.json + safetensors) as a `Checkpoint`.
/// Canonical names drop the `model.` prefix and the `.weight` suffix (`lm_head.weight` → `lm_head`).
public final class SafetensorsCheckpoint: Checkpoint, @unchecked Sendable {
    public let url: URL
    public let tensors: SafetensorsCollection
    public let config: ArchitectureConfig
    public let tensorNames: [String]
    /// The parsed config.json.
    public let hfConfig: [String: Any]
    private let infos: [String: TensorInfo]
    /// Linears stored in the compressed-tensors `pack-quantized` layout, by canonical name.
    let packed: [String: PackedLinear]
    public var metadata: [String: GGUFValue] { [:] }

    /// HF `architectures[0]` → our architecture name.
    public static let supportedArchitectures = ["LlamaForCausalLM": "llama", "MistralForCausalLM": "mistral", "Qwen2ForCausalLM": "qwen2"]

    /// Canonical name for a safetensors tensor name.
    public static func canonicalName(_ name: String) -> String {
        var n = name
        if n.hasPrefix("model.") { n.removeFirst(6) }
        if n.hasSuffix(".weight") { n.removeLast(7) }
        return n
    }

    /// A folder with config.json and `model.safetensors.index.json`, `model.safetensors`, or other `*.safetensors` files.
    public convenience init(folder: URL) throws {
        let fm = FileManager.default
        let index = folder.appendingPathComponent("model.safetensors.index.json")
        let single = folder.appendingPathComponent("model.safetensors")
        let collection: SafetensorsCollection
        if fm.fileExists(atPath: index.path) {
            collection = try SafetensorsCollection(index: index)
        } else if fm.fileExists(atPath: single.path) {
            collection = try SafetensorsCollection(file: single)
        } else {
            let names = ((try? fm.contentsOfDirectory(atPath: folder.path)) ?? []).filter { $0.hasSuffix(".safetensors") }.sorted()
            guard !names.isEmpty else {
                throw ModelFormatError.unreadable(file: folder.path, reason: "no model.safetensors.index.json or *.safetensors files in the folder")
            }
            collection = try SafetensorsCollection(files: names.map { folder.appendingPathComponent($0) })
        }
        try self.init(url: folder, tensors: collection, configURL: folder.appendingPathComponent("config.json"))
    }

    /// A single `.safetensors` file with config.json in the same folder.
    public convenience init(file: URL) throws {
        try self.init(url: file, tensors: SafetensorsCollection(file: file),
                      configURL: file.deletingLastPathComponent().appendingPathComponent("config.json"))
    }

    init(url: URL, tensors: SafetensorsCollection, configURL: URL) throws {
        self.url = url
        self.tensors = tensors
        let cpath = configURL.path
        guard let data = FileManager.default.contents(atPath: cpath) else {
            throw ModelFormatError.unreadable(file: cpath, reason: "config.json is missing next to the safetensors weights")
        }
        guard let cfg = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw ModelFormatError.badHeader(file: cpath, reason: "config.json is not a JSON object")
        }
        hfConfig = cfg
        let archName = (cfg["architectures"] as? [String])?.first ?? "(none)"
        guard let arch = Self.supportedArchitectures[archName] else {
            throw ModelFormatError.unsupportedArchitecture(file: cpath, architecture: archName)
        }
        func int(_ key: String, default d: Int? = nil) throws -> Int {
            guard let v = cfg[key], !(v is NSNull) else {
                if let d { return d }
                throw ModelFormatError.badMetadata(file: cpath, key: key, reason: "missing (required for \(archName))")
            }
            guard let i = v as? Int, i > 0 else { throw ModelFormatError.badMetadata(file: cpath, key: key, reason: "expected a positive integer, found \(v)") }
            return i
        }
        func double(_ key: String, default d: Double) throws -> Double {
            guard let v = cfg[key], !(v is NSNull) else { return d }
            guard let x = v as? Double, x.isFinite else { throw ModelFormatError.badMetadata(file: cpath, key: key, reason: "expected a number, found \(v)") }
            return x
        }
        let (packed, consumed) = try Self.packedLinears(tensors: tensors, hfConfig: cfg, file: url.path, configFile: cpath)
        var infos: [String: TensorInfo] = [:]
        for (c, p) in packed {
            infos[c] = TensorInfo(name: c, storageName: p.packedName, shape: [p.rows, p.cols],
                                  storageType: "pack-quantized \(p.scheme)", byteCount: p.byteCount)
        }
        for name in tensors.tensorNames where !consumed.contains(name) {
            let t = tensors.tensor(named: name)!
            let c = Self.canonicalName(name)
            if infos[c] != nil { throw ModelFormatError.duplicateTensor(file: url.path, tensor: c) }
            infos[c] = TensorInfo(name: c, storageName: name, shape: t.shape, storageType: t.dtype.rawValue, byteCount: t.byteCount)
        }
        self.packed = packed
        let tieSetting = cfg["tie_word_embeddings"] as? Bool
        if tieSetting == false && infos["lm_head"] == nil {
            throw ModelFormatError.missingTensor(file: url.path,
                tensor: "lm_head.weight (config.json says tie_word_embeddings: false, so the output projection must be stored)")
        }
        let tied = (tieSetting ?? false) || infos["lm_head"] == nil
        if tied { infos["lm_head"] = nil }
        let hidden = try int("hidden_size")
        let heads = try int("num_attention_heads")
        config = ArchitectureConfig(
            architecture: arch, hiddenSize: hidden, intermediateSize: try int("intermediate_size"),
            layerCount: try int("num_hidden_layers"), headCount: heads,
            kvHeadCount: try int("num_key_value_heads", default: heads), headDim: try int("head_dim", default: hidden / heads),
            vocabSize: try int("vocab_size"), contextLength: try int("max_position_embeddings", default: 2048),
            ropeTheta: try double("rope_theta", default: 10000), rmsNormEps: try double("rms_norm_eps", default: 1e-6),
            tiedEmbeddings: tied, hasQKVBias: arch == "qwen2" || (cfg["attention_bias"] as? Bool ?? false),
            ropeLayout: .rotateHalf)
        self.infos = infos
        tensorNames = infos.keys.sorted()
        try validateTensors(file: url.path, configFile: cpath) { field in
            switch field {
            case .hiddenSize: return "hidden_size"
            case .intermediateSize: return "intermediate_size"
            case .layerCount: return "num_hidden_layers"
            case .headCount: return "num_attention_heads"
            case .kvHeadCount: return "num_key_value_heads"
            case .headDim: return "head_dim"
            case .vocabSize: return "vocab_size"
            case .contextLength: return "max_position_embeddings"
            case .ropeTheta: return "rope_theta"
            case .rmsNormEps: return "rms_norm_eps"
            }
        }
    }

    public func info(_ canonical: String) -> TensorInfo? { infos[canonical] }

    /// Dequantized values; a packed linear is unpacked and dequantized to `(code − zero)·scale`.
    public func floats(_ canonical: String) throws -> [Float] {
        guard let i = infos[canonical] else { throw ModelFormatError.missingTensor(file: url.path, tensor: canonical) }
        if let q = try quantizedTensor(canonical) { return q.dequantized() }
        return try tensors.floats(i.storageName)
    }

    /// Canonical names of the linears stored packed (compressed-tensors), sorted.
    public var packedTensorNames: [String] { packed.keys.sorted() }

    /// The codes, scales and zero points of a packed linear in the workbench's convention
    /// (symmetric codes in [−2^(b−1), 2^(b−1) − 1] with zeros 0; asymmetric codes and zeros in
    /// [0, 2^b − 1]); nil for a tensor stored as float. Scales must be finite.
    public func quantizedTensor(_ canonical: String) throws -> QuantizedTensorData? {
        guard let p = packed[canonical] else { return nil }
        let s = p.scheme, groups = p.groups
        let codes = CompressedTensorsPacking.unpackRows(try tensors.int32s(p.packedName), rows: p.rows, cols: p.cols, bits: s.bits)
        let scales = try tensors.floats(p.scaleName)
        if let bad = scales.firstIndex(where: { !$0.isFinite }) {
            throw ModelFormatError.badTensorData(file: url.path, tensor: p.scaleName,
                reason: "scale \(scales[bad]) of row \(bad / groups), group \(bad % groups) is not finite (allowed: finite numbers)")
        }
        let offset = Int32(1) << (s.bits - 1)
        if s.symmetric {
            return QuantizedTensorData(name: canonical, rows: p.rows, cols: p.cols, bits: s.bits, groupSize: s.groupSize ?? p.cols,
                                       symmetric: true, codes: codes, scales: scales, zeros: [Int32](repeating: 0, count: scales.count))
        }
        let zeros = CompressedTensorsPacking.unpackColumns(try tensors.int32s(p.zeroName), rows: p.rows, cols: groups, bits: s.bits)
        return QuantizedTensorData(name: canonical, rows: p.rows, cols: p.cols, bits: s.bits, groupSize: s.groupSize ?? p.cols,
                                   symmetric: false, codes: codes.map { $0 + offset }, scales: scales, zeros: zeros.map { $0 + offset })
    }
}
