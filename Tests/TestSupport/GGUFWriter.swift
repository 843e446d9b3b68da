import Foundation
import ModelFormats

/// Writes GGUF files for tests: v3 (or v2) little-endian, metadata of any `GGUFValue`, tensors
/// stored as F32/F16/Q8_0/Q4_1 (quantized here, ggml reference rounding) or as raw bytes with
/// arbitrary (possibly invalid) directory fields for corruption tests.
public struct GGUFWriter {
    /// A tensor directory entry plus its bytes.
    public struct Entry {
        public var name: String
        /// ggml dims, innermost first.
        public var dims: [UInt64]
        public var typeID: UInt32
        public var bytes: [UInt8]
        /// Offset in the data section; nil = next aligned position. An override does not enlarge the
        /// data section (its bytes are written only where they fit), so it can point past the end.
        public var offsetOverride: UInt64?
    }

    public var version: UInt32 = 3
    /// Written as `general.alignment` only when not 32.
    public var alignment: Int = 32
    public private(set) var metadata: [(String, GGUFValue)] = []
    public var tensors: [Entry] = []
    /// Overrides for the header counts (corruption tests).
    public var tensorCountOverride: UInt64?
    public var metadataCountOverride: UInt64?

    public init(architecture: String? = nil) {
        if let architecture { set("general.architecture", .string(architecture)) }
    }

    /// Sets (or replaces) a metadata value.
    public mutating func set(_ key: String, _ value: GGUFValue) {
        if let i = metadata.firstIndex(where: { $0.0 == key }) { metadata[i].1 = value } else { metadata.append((key, value)) }
    }

    /// Adds a tensor given row-major `shape` (`[out, in]`) and values, stored as `type`
    /// (.f32, .f16, .q8_0 or .q4_1; the row length must be a multiple of 32 for the quantized types).
    public mutating func addTensor(_ name: String, shape: [Int], values: [Float], type: GGMLType = .f32) {
        precondition(shape.reduce(1, *) == values.count, "GGUFWriter: shape \(shape) does not match \(values.count) values")
        let bytes: [UInt8]
        switch type {
        case .f32: bytes = values.flatMap { formatsLE($0.bitPattern) }
        case .f16: bytes = values.flatMap { formatsLE(floatToHalfBits($0)) }
        case .q8_0: bytes = GGUFWriter.quantizeQ8_0(values)
        case .q4_1: bytes = GGUFWriter.quantizeQ4_1(values)
        default: preconditionFailure("GGUFWriter quantizes only F32/F16/Q8_0/Q4_1; use addRawTensor")
        }
        tensors.append(Entry(name: name, dims: shape.reversed().map(UInt64.init), typeID: type.rawValue, bytes: bytes))
    }

    /// Adds a directory entry with raw fields (no checks at all).
    public mutating func addRawTensor(_ name: String, dims: [UInt64], typeID: UInt32, bytes: [UInt8], offset: UInt64? = nil) {
        tensors.append(Entry(name: name, dims: dims, typeID: typeID, bytes: bytes, offsetOverride: offset))
    }

    /// The encoded file.
    public func data() -> Data {
        var out = [UInt8]("GGUF".utf8)
        out += formatsLE(version)
        var meta = metadata
        if alignment != 32, !meta.contains(where: { $0.0 == "general.alignment" }) { meta.append(("general.alignment", .uint32(UInt32(alignment)))) }
        out += formatsLE(tensorCountOverride ?? UInt64(tensors.count))
        out += formatsLE(metadataCountOverride ?? UInt64(meta.count))
        for (k, v) in meta {
            out += GGUFWriter.string(k)
            out += formatsLE(v.type.rawValue)
            out += GGUFWriter.encode(v)
        }
        // Data layout: each tensor at the next aligned offset unless overridden.
        var offsets: [UInt64] = []
        var cursor: UInt64 = 0
        for t in tensors {
            if let o = t.offsetOverride { offsets.append(o); continue }  // overrides never grow the data section
            offsets.append(cursor)
            cursor = align(cursor + UInt64(t.bytes.count))
        }
        for (t, o) in zip(tensors, offsets) {
            out += GGUFWriter.string(t.name)
            out += formatsLE(UInt32(t.dims.count))
            for d in t.dims { out += formatsLE(d) }
            out += formatsLE(t.typeID)
            out += formatsLE(o)
        }
        while out.count % alignment != 0 { out.append(0) }
        var dataSection = [UInt8](repeating: 0, count: Int(cursor))
        for (t, o) in zip(tensors, offsets) where o <= UInt64(dataSection.count) && Int(o) + t.bytes.count <= dataSection.count {
            dataSection.replaceSubrange(Int(o)..<Int(o) + t.bytes.count, with: t.bytes)
        }
        out += dataSection
        return Data(out)
    }

    public func write(to url: URL) throws { try data().write(to: url) }

    private func align(_ x: UInt64) -> UInt64 { (x + UInt64(alignment) - 1) / UInt64(alignment) * UInt64(alignment) }

    // MARK: encoding

    static func string(_ s: String) -> [UInt8] { let u = Array(s.utf8); return formatsLE(UInt64(u.count)) + u }

    static func encode(_ v: GGUFValue) -> [UInt8] {
        switch v {
        case .uint8(let x): return [x]
        case .int8(let x): return [UInt8(bitPattern: x)]
        case .uint16(let x): return formatsLE(x)
        case .int16(let x): return formatsLE(x)
        case .uint32(let x): return formatsLE(x)
        case .int32(let x): return formatsLE(x)
        case .uint64(let x): return formatsLE(x)
        case .int64(let x): return formatsLE(x)
        case .float32(let x): return formatsLE(x.bitPattern)
        case .float64(let x): return formatsLE(x.bitPattern)
        case .bool(let b): return [b ? 1 : 0]
        case .string(let s): return string(s)
        case .array(let a): return formatsLE(a.elementType.rawValue) + formatsLE(UInt64(a.count)) + a.values.flatMap(encode)
        }
    }

    // MARK: reference quantizers (ggml's quantize_row_*_ref)

    /// Q8_0: d = max|x|/127, q = round(x/d), d stored as f16.
    public static func quantizeQ8_0(_ x: [Float]) -> [UInt8] {
        precondition(x.count % 32 == 0)
        var out: [UInt8] = []
        out.reserveCapacity(x.count / 32 * 34)
        for b in stride(from: 0, to: x.count, by: 32) {
            let blk = x[b..<b + 32]
            let amax = blk.map(abs).max()!
            let d = amax / 127, id = d != 0 ? 1 / d : 0
            out += formatsLE(floatToHalfBits(d))
            for v in blk { out.append(UInt8(bitPattern: Int8((v * id).rounded(.toNearestOrAwayFromZero)))) }
        }
        return out
    }

    /// Q4_1: d = (max − min)/15, m = min, q = clamp(round((x − m)/d)), d and m stored as f16.
    public static func quantizeQ4_1(_ x: [Float]) -> [UInt8] {
        precondition(x.count % 32 == 0)
        var out: [UInt8] = []
        out.reserveCapacity(x.count / 32 * 20)
        for b in stride(from: 0, to: x.count, by: 32) {
            let blk = Array(x[b..<b + 32])
            let mn = blk.min()!, mx = blk.max()!
            let d = (mx - mn) / 15, id = d != 0 ? 1 / d : 0
            out += formatsLE(floatToHalfBits(d)) + formatsLE(floatToHalfBits(mn))
            func q(_ v: Float) -> UInt8 { UInt8(min(15, max(0, Int(((v - mn) * id + 0.5).rounded(.down))))) }
            for j in 0..<16 { out.append(q(blk[j]) | (q(blk[j + 16]) << 4)) }
        }
        return out
    }
}

/// Little-endian bytes of an integer.
func formatsLE<T: FixedWidthInteger>(_ x: T) -> [UInt8] {
    withUnsafeBytes(of: x.littleEndian) { Array($0) }
}

// MARK: - Tiny models in both formats

extension ArchitectureConfig {
    /// A small LLaMA-style config for tests (override fields as needed).
    public static func tinyLlama(architecture: String = "llama", hidden: Int = 64, intermediate: Int = 96, layers: Int = 2,
                                 heads: Int = 4, kvHeads: Int = 2, vocab: Int = 40, tied: Bool = false) -> ArchitectureConfig {
        ArchitectureConfig(architecture: architecture, hiddenSize: hidden, intermediateSize: intermediate, layerCount: layers,
                           headCount: heads, kvHeadCount: kvHeads, headDim: hidden / heads, vocabSize: vocab,
                           contextLength: 128, ropeTheta: 10000, rmsNormEps: 1e-5, tiedEmbeddings: tied,
                           hasQKVBias: architecture == "qwen2", ropeLayout: .rotateHalf)
    }

    /// Deterministic random weights for every tensor in `expectedTensors` (canonical names, HF rotate-half layout).
    /// Norm weights are around 1, everything else in ±0.1.
    public func randomTensors(seed: UInt64 = 1) -> [String: [Float]] {
        var s = seed &* 0x9E37_79B9_7F4A_7C15 | 1
        func next() -> Float { s ^= s << 13; s ^= s >> 7; s ^= s << 17; return Float(s >> 40) / Float(1 << 24) - 0.5 }
        var out: [String: [Float]] = [:]
        for (name, shape) in expectedTensors {
            let n = shape.reduce(1, *)
            let isNorm = name.hasSuffix("norm") || name.hasSuffix("layernorm")
            out[name] = (0..<n).map { _ in isNorm ? 1 + 0.2 * next() : 0.2 * next() }
        }
        return out
    }
}

extension GGUFWriter {
    /// GGUF name for a canonical name ("layers.0.self_attn.q_proj" → "blk.0.attn_q.weight").
    public static func ggufName(canonical: String) -> String {
        var base = canonical, suffix = ".weight"
        if base.hasSuffix(".bias") { base.removeLast(5); suffix = ".bias" }
        switch base {
        case "embed_tokens": return "token_embd" + suffix
        case "norm": return "output_norm" + suffix
        case "lm_head": return "output" + suffix
        default: break
        }
        let parts = base.split(separator: ".", maxSplits: 2)
        let map = ["input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
                   "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output", "post_attention_layernorm": "ffn_norm",
                   "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"]
        return "blk.\(parts[1]).\(map[String(parts[2])]!)\(suffix)"
    }

    /// llama.cpp's converter permutation of q/k rows (`[heads·headDim, cols]`): within each head,
    /// HF row `p·headDim/2 + i` (rotate-half) moves to row `2i + p` (adjacent pairs).
    public static func permuteForInterleavedRope(_ w: [Float], rows: Int, cols: Int, heads: Int) -> [Float] {
        let hd = rows / heads
        var out = [Float](repeating: 0, count: w.count)
        for h in 0..<heads {
            for p in 0..<2 {
                for i in 0..<hd / 2 {
                    let src = h * hd + p * hd / 2 + i, dst = h * hd + 2 * i + p
                    out[dst * cols..<(dst + 1) * cols] = w[src * cols..<(src + 1) * cols]
                }
            }
        }
        return out
    }

    /// A GGUF file for `config` from canonical HF-layout tensors, as llama.cpp's converter writes it:
    /// `<arch>.*` metadata, q/k rows permuted for `llama`/`mistral` (not for `qwen2`), vectors in F32,
    /// matrices in `matrixType` (F32/F16/Q8_0/Q4_1). `lm_head` is written only if present and not tied.
    public static func model(config c: ArchitectureConfig, tensors: [String: [Float]], matrixType: GGMLType = .f32,
                             tokens: [String]? = nil) -> GGUFWriter {
        let arch = c.architecture == "mistral" ? "llama" : c.architecture
        var w = GGUFWriter(architecture: arch)
        w.set("\(arch).block_count", .uint32(UInt32(c.layerCount)))
        w.set("\(arch).context_length", .uint32(UInt32(c.contextLength)))
        w.set("\(arch).embedding_length", .uint32(UInt32(c.hiddenSize)))
        w.set("\(arch).feed_forward_length", .uint32(UInt32(c.intermediateSize)))
        w.set("\(arch).attention.head_count", .uint32(UInt32(c.headCount)))
        w.set("\(arch).attention.head_count_kv", .uint32(UInt32(c.kvHeadCount)))
        w.set("\(arch).rope.freq_base", .float32(Float(c.ropeTheta)))
        w.set("\(arch).attention.layer_norm_rms_epsilon", .float32(Float(c.rmsNormEps)))
        if c.headDim * c.headCount != c.hiddenSize {
            w.set("\(arch).attention.key_length", .uint32(UInt32(c.headDim)))
            w.set("\(arch).attention.value_length", .uint32(UInt32(c.headDim)))
        }
        if let tokens { w.set("tokenizer.ggml.tokens", .array(.string, tokens.map { .string($0) })) }
        for (name, _) in c.expectedTensors {
            guard var v = tensors[name] else { continue }
            var shape = c.expectedTensors.first { $0.name == name }!.shape
            if name == "lm_head" && c.tiedEmbeddings { continue }
            if arch == "llama" && (name.hasSuffix("q_proj") || name.hasSuffix("k_proj")) {
                let heads = name.hasSuffix("q_proj") ? c.headCount : c.kvHeadCount
                v = permuteForInterleavedRope(v, rows: shape[0], cols: shape[1], heads: heads)
            }
            let type: GGMLType = shape.count == 1 ? .f32 : matrixType
            if shape.count == 1 { shape = [v.count] }
            w.addTensor(ggufName(canonical: name), shape: shape, values: v, type: type)
        }
        return w
    }
}
