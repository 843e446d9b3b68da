import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A reason the export input cannot be written. The description names the tensor (or file) and
/// what is allowed.
public enum CompressedTensorsExportError: Error, Equatable, CustomStringConvertible, LocalizedError {
    /// A tensor is missing, unknown, duplicated, mis-shaped or holds values outside what is allowed.
    case invalidTensor(tensor: String, reason: String)
    /// The architecture config or an option cannot be exported.
    case invalidConfig(reason: String)
    /// The tokenizer cannot be written as a Hugging Face tokenizer.json.
    case unsupportedTokenizer(reason: String)
    /// Writing the folder failed (nothing is left at the destination).
    case io(path: String, reason: String)

    public var errorDescription: String? { description }

    public var description: String {
        switch self {
        case let .invalidTensor(tensor, reason):
            return "compressed-tensors export: tensor '\(tensor)': \(reason)"
        case let .invalidConfig(reason):
            return "compressed-tensors export: \(reason)"
        case let .unsupportedTokenizer(reason):
            return "compressed-tensors export: the tokenizer cannot be written as tokenizer.json: \(reason)"
        case let .io(path, reason):
            return "compressed-tensors export: cannot write \(path): \(reason). Nothing was left at the destination; check the path and free disk space."
        }
    }
}

/// Writes a Hugging Face model folder in the compressed-tensors `pack-quantized` layout (see
/// CompressedTensors.swift for the tensor layout):
///
/// - `model.safetensors`: every quantized linear as `weight_packed` / `weight_scale` (F32) /
///   `weight_zero_point` (asymmetric only) / `weight_shape`; every other tensor in `floatDType`;
///   `__metadata__ {"format": "pt"}`.
/// - `config.json`: the architecture fields and `quantization_config` (`quant_method:
///   compressed-tensors`, `format: pack-quantized`, one config group per distinct weight scheme —
///   `targets: ["Linear"]` when there is one scheme, else the module names — and `ignore` listing
///   the linears left in float, e.g. `lm_head`).
/// - `tokenizer.json`, `tokenizer_config.json`, `generation_config.json` when a tokenizer is given
///   (byte-level BPE only).
///
/// q/k rows stored for adjacent-pair RoPE (`config.ropeLayout == .interleavedPairs`, GGUF llama)
/// are reordered to the rotate-half layout Hugging Face models use; the rows of a quantized
/// weight move with their scales and zero points, so nothing is re-quantized.
///
/// The folder is built under a temporary name beside `folder` and renamed into place: it is
/// complete or absent.
public enum CompressedTensorsWriter {
    /// Files a written folder holds (tokenizer files only when a tokenizer is given).
    public static let modelFile = "model.safetensors"

    /// - Parameters:
    ///   - folder: destination; must not exist unless `replaceExisting`.
    ///   - config: the architecture; every tensor of `config.expectedTensors` must be given once,
    ///     either in `quantized` (2-D linears only) or in `floats`.
    ///   - floatDType: storage of the float tensors (`.f32`, `.f16`, `.bf16`); scales are always F32
    ///     so that the stored weights dequantize exactly to `(code − zero)·scale`.
    ///   - chatTemplate: copied into tokenizer_config.json when given.
    /// - Returns: the names of the files written, sorted.
    @discardableResult
    public static func write(to folder: URL, config: ArchitectureConfig, quantized: [QuantizedTensorData],
                             floats: [FloatTensorData], tokenizer: TextTokenizer? = nil,
                             floatDType: SafetensorsDType = .f32, chatTemplate: String? = nil,
                             replaceExisting: Bool = false) throws -> [String] {
        let fm = FileManager.default
        if fm.fileExists(atPath: folder.path) && !replaceExisting {
            throw CompressedTensorsExportError.io(path: folder.path, reason: "it already exists (pass replaceExisting to overwrite it)")
        }
        let plan = try Plan(config: config, quantized: quantized, floats: floats, floatDType: floatDType)
        var bpe: BPETokenizer?
        if let tokenizer {
            guard let b = tokenizer as? BPETokenizer else {
                throw CompressedTensorsExportError.unsupportedTokenizer(
                    reason: "only byte-level BPE tokenizers (GGUF tokenizer.ggml.model = gpt2) are written; this one is \(type(of: tokenizer)). Export without a tokenizer and copy the source model's tokenizer files")
            }
            bpe = b
        }
        var documents: [(String, Data)] = [("config.json", try json(plan.configJSON(tokenizer: bpe)))]
        if let bpe {
            documents.append(("tokenizer.json", try bpe.tokenizerJSON()))
            documents.append(("tokenizer_config.json", try json(bpe.tokenizerConfig(modelMaxLength: config.contextLength, chatTemplate: chatTemplate))))
            var generation: [String: Any] = ["_from_model_config": true]
            if let b = bpe.bosTokenID { generation["bos_token_id"] = b }
            if let e = bpe.eosTokenID { generation["eos_token_id"] = e }
            documents.append(("generation_config.json", try json(generation)))
        }

        let parent = folder.deletingLastPathComponent()
        let temp = parent.appendingPathComponent(".\(folder.lastPathComponent).partial-\(UUID().uuidString)")
        do {
            try fm.createDirectory(at: temp, withIntermediateDirectories: true)
        } catch {
            throw CompressedTensorsExportError.io(path: temp.path, reason: error.localizedDescription)
        }
        do {
            try SafetensorsStreamWriter.write(plan.entries, metadata: ["format": "pt"], to: temp.appendingPathComponent(modelFile))
            for (name, data) in documents {
                let u = temp.appendingPathComponent(name)
                do { try data.write(to: u) } catch { throw CompressedTensorsExportError.io(path: u.path, reason: error.localizedDescription) }
            }
            try moveIntoPlace(temp, folder)
        } catch {
            try? fm.removeItem(at: temp)
            throw error
        }
        return ([modelFile] + documents.map(\.0)).sorted()
    }

    /// Renames the finished `temp` folder to `folder`; an existing `folder` is moved aside first
    /// and removed after.
    static func moveIntoPlace(_ temp: URL, _ folder: URL) throws {
        let fm = FileManager.default
        var old: URL?
        if fm.fileExists(atPath: folder.path) {
            let aside = folder.deletingLastPathComponent().appendingPathComponent(".\(folder.lastPathComponent).old-\(UUID().uuidString)")
            guard rename(folder.path, aside.path) == 0 else {
                throw CompressedTensorsExportError.io(path: folder.path, reason: "cannot move the existing folder aside: \(String(cString: strerror(errno)))")
            }
            old = aside
        }
        guard rename(temp.path, folder.path) == 0 else {
            let reason = String(cString: strerror(errno))
            if let old { _ = rename(old.path, folder.path) }
            throw CompressedTensorsExportError.io(path: folder.path, reason: reason)
        }
        if let old { try? fm.removeItem(at: old) }
    }

    static func json(_ object: Any) throws -> Data {
        do {
            return try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
        } catch {
            throw CompressedTensorsExportError.invalidConfig(reason: "cannot encode JSON: \(error.localizedDescription)")
        }
    }

    /// The validated input, in file order.
    struct Plan {
        let config: ArchitectureConfig
        var entries: [SafetensorsStreamWriter.Entry] = []
        /// HF module name → scheme, for every quantized linear.
        var schemes: [String: CompressedTensorsScheme] = [:]
        /// HF module names of the linears kept in float.
        var floatLinears: [String] = []
        let floatDType: SafetensorsDType

        init(config: ArchitectureConfig, quantized: [QuantizedTensorData], floats: [FloatTensorData], floatDType: SafetensorsDType) throws {
            self.config = config
            self.floatDType = floatDType
            guard floatDType.floatType != nil else {
                throw CompressedTensorsExportError.invalidConfig(reason: "float tensors cannot be stored as \(floatDType.rawValue) (allowed: F32, F16, BF16)")
            }
            guard HuggingFaceNames.architecture(config.architecture) != nil else {
                throw CompressedTensorsExportError.invalidConfig(reason: "architecture '\(config.architecture)' has no Hugging Face class (allowed: \(SafetensorsCheckpoint.supportedArchitectures.values.sorted().joined(separator: ", ")))")
            }
            do {
                try config.validate(file: "the export's architecture config", tensorCount: config.expectedTensors.count) { "\($0)" }
            } catch let e as ModelFormatError {
                throw CompressedTensorsExportError.invalidConfig(reason: e.description)
            }
            let expected = Dictionary(uniqueKeysWithValues: config.expectedTensors.map { ($0.name, $0.shape) })
            func bad(_ name: String, _ why: String) -> CompressedTensorsExportError { .invalidTensor(tensor: name, reason: why) }
            var seen = Set<String>()
            func claim(_ name: String) throws -> [Int] {
                guard let shape = expected[name] else {
                    if name == "lm_head" && config.tiedEmbeddings {
                        throw bad(name, "the config ties lm_head to embed_tokens, so lm_head is not stored; export with tiedEmbeddings = false to store a separate (quantized) lm_head")
                    }
                    throw bad(name, "not a tensor of this architecture (expected canonical names such as embed_tokens, layers.0.self_attn.q_proj, norm, lm_head)")
                }
                guard seen.insert(name).inserted else { throw bad(name, "given more than once") }
                return shape
            }
            var rows: [String: Int] = [:]
            for q in quantized {
                let shape = try claim(q.name)
                guard shape.count == 2, q.name != "embed_tokens" else {
                    throw bad(q.name, "only linear layers are quantized in this format (the embedding and norms stay float)")
                }
                try Self.validate(q, shape: shape)
                rows[q.name] = q.rows
            }
            for f in floats {
                let shape = try claim(f.name)
                guard f.shape == shape else { throw bad(f.name, "shape \(f.shape) but the config implies \(shape)") }
                guard f.values.count == shape.reduce(1, *) else {
                    throw bad(f.name, "\(f.values.count) values for shape \(shape)")
                }
                if let i = f.values.firstIndex(where: { !$0.isFinite }) {
                    throw bad(f.name, "value \(f.values[i]) at index \(i) is not finite (allowed: finite numbers)")
                }
                if shape.count == 2 && f.name != "embed_tokens" { floatLinears.append(HuggingFaceNames.module(f.name)) }
            }
            if let missing = config.expectedTensors.first(where: { !seen.contains($0.name) }) {
                throw bad(missing.name, "missing: every tensor of the architecture must be given, quantized or float")
            }

            for var q in quantized {
                if let heads = Self.ropeHeads(q.name, config) { q = Self.permuteRows(q, heads: heads) }
                let module = HuggingFaceNames.module(q.name)
                let scheme = q.scheme
                schemes[module] = scheme
                let groups = q.groupsPerRow
                let packed = CompressedTensorsPacking.packRows(
                    q.symmetric ? q.codes : q.codes.map { $0 - (Int32(1) << (q.bits - 1)) }, rows: q.rows, cols: q.cols, bits: q.bits)
                let f = scheme.packFactor
                entries.append(.int32(module + ".weight_packed", shape: [q.rows, (q.cols + f - 1) / f], packed))
                entries.append(.float(module + ".weight_scale", shape: [q.rows, groups], q.scales, .f32))
                if !q.symmetric {
                    let zp = CompressedTensorsPacking.packColumns(q.zeros.map { $0 - (Int32(1) << (q.bits - 1)) }, rows: q.rows, cols: groups, bits: q.bits)
                    entries.append(.int32(module + ".weight_zero_point", shape: [(q.rows + f - 1) / f, groups], zp))
                }
                entries.append(.int64(module + ".weight_shape", [Int64(q.rows), Int64(q.cols)]))
            }
            for var f in floats {
                if let heads = Self.ropeHeads(f.name, config) {
                    let r = f.shape[0], c = f.shape.count == 2 ? f.shape[1] : 1
                    f.values = Self.rotateHalfOrder(rows: r, heads: heads).flatMap { f.values[$0 * c..<($0 + 1) * c] }
                }
                entries.append(.float(HuggingFaceNames.tensor(f.name), shape: f.shape, f.values, floatDType))
            }
            // a tied lm_head is still an nn.Linear in transformers: keep it out of the "Linear" target
            if schemes["lm_head"] == nil && !floatLinears.contains("lm_head") { floatLinears.append("lm_head") }
            floatLinears.sort()
        }

        /// Checks one quantized tensor against its expected `[out, in]` shape and its grid.
        static func validate(_ q: QuantizedTensorData, shape: [Int]) throws {
            func bad(_ why: String) -> CompressedTensorsExportError { .invalidTensor(tensor: q.name, reason: why) }
            guard [q.rows, q.cols] == shape else { throw bad("shape [\(q.rows), \(q.cols)] but the config implies \(shape)") }
            guard CompressedTensorsScheme.supportedBits.contains(q.bits) else {
                throw bad("\(q.bits) bits (allowed: \(CompressedTensorsScheme.supportedBits.lowerBound)...\(CompressedTensorsScheme.supportedBits.upperBound); runtimes run 4 and 8)")
            }
            guard q.groupSize > 0, q.cols % q.groupSize == 0 else {
                throw bad("group size \(q.groupSize) does not divide the \(q.cols) input columns (allowed: a divisor of \(q.cols); \(q.cols) = one group per output channel)")
            }
            let groups = q.rows * q.groupsPerRow
            guard q.codes.count == q.rows * q.cols else { throw bad("\(q.codes.count) codes for \(q.rows) × \(q.cols)") }
            guard q.scales.count == groups, q.zeros.count == groups else {
                throw bad("\(q.scales.count) scales and \(q.zeros.count) zeros for \(groups) groups (rows × columns / group size)")
            }
            let lo = q.qmin, hi = q.qmax
            if let i = q.codes.firstIndex(where: { $0 < lo || $0 > hi }) {
                throw bad("code \(q.codes[i]) at index \(i) is outside the \(q.symmetric ? "symmetric" : "asymmetric") int\(q.bits) grid [\(lo), \(hi)]")
            }
            if q.symmetric {
                if let i = q.zeros.firstIndex(where: { $0 != 0 }) {
                    throw bad("zero point \(q.zeros[i]) of group \(i) in a symmetric scheme (allowed: 0)")
                }
            } else if let i = q.zeros.firstIndex(where: { $0 < lo || $0 > hi }) {
                throw bad("zero point \(q.zeros[i]) of group \(i) is outside [\(lo), \(hi)] (the format stores zero points on the code grid)")
            }
            if let i = q.scales.firstIndex(where: { !$0.isFinite }) {
                throw bad("scale \(q.scales[i]) of group \(i) is not finite (allowed: finite numbers)")
            }
        }

        /// Heads of a q/k projection (or its bias) whose rows need reordering for rotate-half RoPE.
        static func ropeHeads(_ name: String, _ c: ArchitectureConfig) -> Int? {
            guard c.ropeLayout == .interleavedPairs else { return nil }
            let base = name.hasSuffix(".bias") ? String(name.dropLast(5)) : name
            if base.hasSuffix("self_attn.q_proj") { return c.headCount }
            if base.hasSuffix("self_attn.k_proj") { return c.kvHeadCount }
            return nil
        }

        /// `order[hfRow]` = the adjacent-pair row that holds it: within each head of `rows / heads`
        /// rows, HF row `p·hd/2 + i` is row `2i + p` of the interleaved layout.
        static func rotateHalfOrder(rows: Int, heads: Int) -> [Int] {
            let hd = rows / heads
            var order = [Int](repeating: 0, count: rows)
            for h in 0..<heads { for p in 0..<2 { for i in 0..<hd / 2 { order[h * hd + p * hd / 2 + i] = h * hd + 2 * i + p } } }
            return order
        }

        static func permuteRows(_ q: QuantizedTensorData, heads: Int) -> QuantizedTensorData {
            let order = rotateHalfOrder(rows: q.rows, heads: heads), g = q.groupsPerRow
            var out = q
            out.codes = order.flatMap { q.codes[$0 * q.cols..<($0 + 1) * q.cols] }
            out.scales = order.flatMap { q.scales[$0 * g..<($0 + 1) * g] }
            out.zeros = order.flatMap { q.zeros[$0 * g..<($0 + 1) * g] }
            return out
        }

        /// config.json: the architecture and `quantization_config`.
        func configJSON(tokenizer: BPETokenizer?) -> [String: Any] {
            let c = config
            var cfg: [String: Any] = [
                "architectures": [HuggingFaceNames.architecture(c.architecture)!], "model_type": c.architecture,
                "hidden_size": c.hiddenSize, "intermediate_size": c.intermediateSize, "num_hidden_layers": c.layerCount,
                "num_attention_heads": c.headCount, "num_key_value_heads": c.kvHeadCount, "head_dim": c.headDim,
                "vocab_size": c.vocabSize, "max_position_embeddings": c.contextLength, "rope_theta": c.ropeTheta,
                "rms_norm_eps": c.rmsNormEps, "tie_word_embeddings": c.tiedEmbeddings, "hidden_act": "silu",
                "torch_dtype": ["F32": "float32", "F16": "float16", "BF16": "bfloat16"][floatDType.rawValue]!,
                "rope_scaling": NSNull(), "use_cache": true,
            ]
            if c.architecture == "llama" { cfg["attention_bias"] = c.hasQKVBias; cfg["mlp_bias"] = false }
            if let t = tokenizer {
                cfg["bos_token_id"] = t.bosTokenID.map { $0 as Any } ?? NSNull()
                cfg["eos_token_id"] = t.eosTokenID.map { $0 as Any } ?? NSNull()
            }
            cfg["quantization_config"] = quantizationConfig()
            return cfg
        }

        func quantizationConfig() -> [String: Any] {
            let byScheme = Dictionary(grouping: schemes.keys.sorted(), by: { schemes[$0]! })
            let ordered = byScheme.keys.sorted { ($0.bits, $0.symmetric ? 0 : 1, $0.groupSize ?? 0) < ($1.bits, $1.symmetric ? 0 : 1, $1.groupSize ?? 0) }
            var groups: [String: Any] = [:]
            for (i, s) in ordered.enumerated() {
                let weights: [String: Any] = [
                    "num_bits": s.bits, "type": "int", "symmetric": s.symmetric, "strategy": s.strategy,
                    "group_size": s.groupSize.map { $0 as Any } ?? NSNull(), "dynamic": false,
                    "actorder": NSNull(), "block_structure": NSNull(), "observer": "minmax", "observer_kwargs": [String: Any](),
                ]
                groups["group_\(i)"] = [
                    "targets": ordered.count == 1 ? ["Linear"] : byScheme[s]!,
                    "weights": weights, "input_activations": NSNull(), "output_activations": NSNull(),
                    "format": "pack-quantized",
                ] as [String: Any]
            }
            return [
                "quant_method": "compressed-tensors", "format": "pack-quantized", "quantization_status": "compressed",
                "config_groups": groups, "ignore": floatLinears, "kv_cache_scheme": NSNull(),
                "global_compression_ratio": NSNull(), "sparsity_config": [String: Any](),
            ]
        }
    }
}

/// Writes a safetensors file tensor by tensor (u64 header length, JSON header padded with spaces
/// to a multiple of 8, data). Tensors are laid out widest element first, so each one starts at a
/// multiple of its element size.
struct SafetensorsStreamWriter {
    struct Entry {
        var name: String
        var dtype: SafetensorsDType
        var shape: [Int]
        var bytes: () -> Data

        var byteCount: Int { shape.reduce(1, *) * dtype.byteWidth }

        static func float(_ name: String, shape: [Int], _ v: [Float], _ dtype: SafetensorsDType) -> Entry {
            Entry(name: name, dtype: dtype, shape: shape) {
                switch dtype {
                case .f16: return littleEndianData(v.map { floatToHalfBits($0) })
                case .bf16: return littleEndianData(v.map { bfloat16Bits($0) })
                default: return littleEndianData(v.map { $0.bitPattern })
                }
            }
        }
        static func int32(_ name: String, shape: [Int], _ v: [Int32]) -> Entry {
            Entry(name: name, dtype: .i32, shape: shape) { littleEndianData(v) }
        }
        static func int64(_ name: String, _ v: [Int64]) -> Entry {
            Entry(name: name, dtype: .i64, shape: [v.count]) { littleEndianData(v) }
        }
    }

    static func write(_ entries: [Entry], metadata: [String: String], to url: URL) throws {
        let ordered = entries.sorted { ($0.dtype.byteWidth, $1.name) > ($1.dtype.byteWidth, $0.name) }
        var header: [String: Any] = ["__metadata__": metadata]
        var offset = 0
        for e in ordered {
            header[e.name] = ["dtype": e.dtype.rawValue, "shape": e.shape, "data_offsets": [offset, offset + e.byteCount]] as [String: Any]
            offset += e.byteCount
        }
        var h = [UInt8](try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys]))
        while h.count % 8 != 0 { h.append(0x20) }
        guard FileManager.default.createFile(atPath: url.path, contents: nil),
              let handle = FileHandle(forWritingAtPath: url.path) else {
            throw CompressedTensorsExportError.io(path: url.path, reason: "cannot create the file")
        }
        defer { try? handle.close() }
        do {
            try handle.write(contentsOf: littleEndianData([UInt64(h.count)]) + Data(h))
            for e in ordered {
                let d = e.bytes()
                guard d.count == e.byteCount else {
                    throw CompressedTensorsExportError.invalidTensor(tensor: e.name, reason: "\(d.count) bytes of data for shape \(e.shape) × \(e.dtype.rawValue) (\(e.byteCount) bytes)")
                }
                try handle.write(contentsOf: d)
            }
            try handle.synchronize()
        } catch let e as CompressedTensorsExportError {
            throw e
        } catch {
            throw CompressedTensorsExportError.io(path: url.path, reason: error.localizedDescription)
        }
    }
}

/// The little-endian bytes of fixed-width integers.
func littleEndianData<T: FixedWidthInteger>(_ values: [T]) -> Data {
    #if _endian(little)
    return values.withUnsafeBufferPointer { Data(buffer: $0) }
    #else
    return values.map { $0.littleEndian }.withUnsafeBufferPointer { Data(buffer: $0) }
    #endif
}

/// Float → bfloat16 bits, round to nearest even (NaN stays NaN).
func bfloat16Bits(_ f: Float) -> UInt16 {
    if f.isNaN { return 0x7fc0 }
    let b = f.bitPattern
    return UInt16((b + 0x7fff + ((b >> 16) & 1)) >> 16)
}
