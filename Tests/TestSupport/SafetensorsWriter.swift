import Foundation
import ModelFormats

/// Writes `.safetensors` files (and sharded Hugging Face folders) for tests.
public struct SafetensorsWriter {
    public enum DType: String { case f32 = "F32", f16 = "F16", bf16 = "BF16", i32 = "I32", i64 = "I64" }

    public struct Tensor {
        public var name: String
        public var shape: [Int]
        public var dtype: DType
        public var bytes: [UInt8]

        public init(name: String, shape: [Int], dtype: DType, bytes: [UInt8]) {
            self.name = name; self.shape = shape; self.dtype = dtype; self.bytes = bytes
        }
    }

    public var tensors: [Tensor] = []
    public var metadata: [String: String] = [:]

    public init() {}

    /// Adds a tensor (row-major `shape`). BF16 rounds to nearest even.
    public mutating func add(_ name: String, shape: [Int], values: [Float], dtype: DType = .f32) {
        precondition(shape.reduce(1, *) == values.count, "SafetensorsWriter: shape \(shape) does not match \(values.count) values")
        let bytes: [UInt8]
        switch dtype {
        case .f32: bytes = values.flatMap { formatsLE($0.bitPattern) }
        case .f16: bytes = values.flatMap { formatsLE(floatToHalfBits($0)) }
        case .bf16: bytes = values.flatMap { formatsLE(SafetensorsWriter.bf16Bits($0)) }
        case .i32: bytes = values.flatMap { formatsLE(Int32($0)) }
        case .i64: bytes = values.flatMap { formatsLE(Int64($0)) }
        }
        tensors.append(Tensor(name: name, shape: shape, dtype: dtype, bytes: bytes))
    }

    /// Adds a tensor from its stored bytes (no check that they fit the shape).
    public mutating func addRaw(_ name: String, shape: [Int], dtype: DType, bytes: [UInt8]) {
        tensors.append(Tensor(name: name, shape: shape, dtype: dtype, bytes: bytes))
    }

    /// Every tensor of a safetensors file, with its stored bytes (to rewrite it with changes).
    public static func reading(_ url: URL) throws -> SafetensorsWriter {
        let f = try SafetensorsFile(url: url)
        var w = SafetensorsWriter()
        w.metadata = f.metadata
        for t in f.tensors {
            w.addRaw(t.name, shape: t.shape, dtype: DType(rawValue: t.dtype.rawValue)!, bytes: Array(f.rawBytes(t)))
        }
        return w
    }

    /// Replaces the tensor `name` (keeping its position), or removes it when `with` is nil.
    public mutating func replace(_ name: String, with t: Tensor?) {
        guard let i = tensors.firstIndex(where: { $0.name == name }) else { return }
        if let t { tensors[i] = t } else { tensors.remove(at: i) }
    }

    public func tensor(_ name: String) -> Tensor? { tensors.first { $0.name == name } }

    /// Float → bfloat16 bits, round to nearest even (NaN stays NaN).
    public static func bf16Bits(_ f: Float) -> UInt16 {
        if f.isNaN { return 0x7fc0 }
        let b = f.bitPattern
        return UInt16((b + 0x7fff + ((b >> 16) & 1)) >> 16)
    }

    /// The encoded file: u64 header length, JSON header padded with spaces to 8 bytes, data.
    public func data() -> Data {
        var header = "{"
        var parts: [String] = []
        if !metadata.isEmpty {
            let m = metadata.sorted { $0.key < $1.key }.map { "\(SafetensorsWriter.quote($0.key)):\(SafetensorsWriter.quote($0.value))" }
            parts.append("\"__metadata__\":{\(m.joined(separator: ","))}")
        }
        var offset = 0
        for t in tensors {
            parts.append("\(SafetensorsWriter.quote(t.name)):{\"dtype\":\"\(t.dtype.rawValue)\",\"shape\":[\(t.shape.map(String.init).joined(separator: ","))],\"data_offsets\":[\(offset),\(offset + t.bytes.count)]}")
            offset += t.bytes.count
        }
        header += parts.joined(separator: ",") + "}"
        var h = Array(header.utf8)
        while h.count % 8 != 0 { h.append(0x20) }
        var out = formatsLE(UInt64(h.count)) + h
        for t in tensors { out += t.bytes }
        return Data(out)
    }

    public func write(to url: URL) throws { try data().write(to: url) }

    static func quote(_ s: String) -> String {
        var r = "\""
        for c in s.unicodeScalars {
            switch c {
            case "\"": r += "\\\""
            case "\\": r += "\\\\"
            case _ where c.value < 0x20: r += String(format: "\\u%04x", c.value)
            default: r.unicodeScalars.append(c)
            }
        }
        return r + "\""
    }

    /// Writes a Hugging Face folder: `config.json` plus either `model.safetensors` (shards = 1) or
    /// `model-0000i-of-0000n.safetensors` files and `model.safetensors.index.json`. Tensors are dealt
    /// to shards in order, in contiguous groups.
    public func writeFolder(_ folder: URL, config: [String: Any], shards: Int = 1) throws {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let cfg = try JSONSerialization.data(withJSONObject: config, options: [.prettyPrinted, .sortedKeys])
        try cfg.write(to: folder.appendingPathComponent("config.json"))
        if shards <= 1 {
            try write(to: folder.appendingPathComponent("model.safetensors"))
            return
        }
        var weightMap: [String: String] = [:]
        for s in 0..<shards {
            let name = String(format: "model-%05d-of-%05d.safetensors", s + 1, shards)
            var w = SafetensorsWriter()
            w.metadata = metadata
            w.tensors = Array(tensors[(s * tensors.count / shards)..<((s + 1) * tensors.count / shards)])
            for t in w.tensors { weightMap[t.name] = name }
            try w.write(to: folder.appendingPathComponent(name))
        }
        let total = tensors.reduce(0) { $0 + $1.bytes.count }
        let index: [String: Any] = ["metadata": ["total_size": total], "weight_map": weightMap]
        try JSONSerialization.data(withJSONObject: index, options: [.prettyPrinted, .sortedKeys])
            .write(to: folder.appendingPathComponent("model.safetensors.index.json"))
    }
}

extension SafetensorsWriter {
    /// A Hugging Face checkpoint for `config` from canonical tensors (names get `model.` / `.weight`;
    /// `lm_head` → `lm_head.weight`, omitted when tied). Returns the writer and the config.json object;
    /// write both with `writeFolder(_:config:shards:)`.
    public static func model(config c: ArchitectureConfig, tensors: [String: [Float]], dtype: DType = .f32)
        -> (writer: SafetensorsWriter, config: [String: Any]) {
        var w = SafetensorsWriter()
        for (name, shape) in c.expectedTensors {
            guard let v = tensors[name] else { continue }
            let stored: String
            if name == "lm_head" { stored = "lm_head.weight" }
            else if name.hasSuffix(".bias") { stored = "model." + name }
            else { stored = "model." + name + ".weight" }
            w.add(stored, shape: shape, values: v, dtype: dtype)
        }
        let archName = ["llama": "LlamaForCausalLM", "mistral": "MistralForCausalLM", "qwen2": "Qwen2ForCausalLM"][c.architecture] ?? c.architecture
        let cfg: [String: Any] = [
            "architectures": [archName], "model_type": c.architecture, "hidden_size": c.hiddenSize,
            "intermediate_size": c.intermediateSize, "num_hidden_layers": c.layerCount,
            "num_attention_heads": c.headCount, "num_key_value_heads": c.kvHeadCount, "head_dim": c.headDim,
            "vocab_size": c.vocabSize, "max_position_embeddings": c.contextLength, "rope_theta": c.ropeTheta,
            "rms_norm_eps": c.rmsNormEps, "tie_word_embeddings": c.tiedEmbeddings, "torch_dtype": "float32",
        ]
        return (w, cfg)
    }
}
