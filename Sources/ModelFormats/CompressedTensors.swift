import Foundation

// The compressed-tensors `pack-quantized` layout (the format llm-compressor writes and vLLM /
// transformers load), weight-only integer quantization. For a linear layer `<m>` (HF module name,
// e.g. `model.layers.0.self_attn.q_proj`, `lm_head`) with an out × in weight:
//
//   <m>.weight_packed      I32 [out, ceil(in / f)]   f = 32 / bits codes per word (8 for int4, 4 for int8);
//                                                    code c of a row sits in word c / f at bits
//                                                    (c % f)·bits, stored unsigned as q + 2^(bits−1);
//                                                    the padding of the last word is 0
//   <m>.weight_scale       float [out, groups]       groups = 1 (strategy "channel") or in / group_size
//   <m>.weight_zero_point  I32 [ceil(out / f), groups]  asymmetric only: zero points packed the same
//                                                    way but along the output dimension (column g of
//                                                    the out × groups matrix, f rows per word)
//   <m>.weight_shape       I64 [2]                   [out, in]
//
// Codes and zero points live on the signed grid [−2^(bits−1), 2^(bits−1) − 1] for both symmetric
// and asymmetric schemes; W = (q − zero_point) · scale, zero_point = 0 when symmetric (and not stored).
// int8 weight-only uses the same `pack-quantized` format (4 codes per word).

/// One quantized linear weight in the workbench's convention: out × in codes, row-major.
///
/// `codes` lie in the grid [qmin, qmax]: symmetric [−2^(b−1), 2^(b−1) − 1] with every zero 0,
/// asymmetric [0, 2^b − 1] with zeros in the same range. Group `g` of row `r` covers columns
/// `g·groupSize ..< (g+1)·groupSize` and has `scales[r·groups + g]`, `zeros[r·groups + g]`;
/// `groupSize == cols` is one group per output channel. Dequantized value = (code − zero)·scale.
public struct QuantizedTensorData: Sendable, Equatable {
    /// Canonical name of the linear: "layers.3.self_attn.q_proj", "lm_head".
    public var name: String
    public var rows: Int
    public var cols: Int
    public var bits: Int
    public var groupSize: Int
    public var symmetric: Bool
    public var codes: [Int32]
    public var scales: [Float]
    public var zeros: [Int32]

    public init(name: String, rows: Int, cols: Int, bits: Int, groupSize: Int, symmetric: Bool,
                codes: [Int32], scales: [Float], zeros: [Int32]) {
        self.name = name; self.rows = rows; self.cols = cols; self.bits = bits; self.groupSize = groupSize
        self.symmetric = symmetric; self.codes = codes; self.scales = scales; self.zeros = zeros
    }

    public var groupsPerRow: Int { groupSize > 0 ? cols / groupSize : 0 }
    public var qmin: Int32 { symmetric ? -(Int32(1) << (bits - 1)) : 0 }
    public var qmax: Int32 { symmetric ? (Int32(1) << (bits - 1)) - 1 : (Int32(1) << bits) - 1 }
    public var scheme: CompressedTensorsScheme {
        CompressedTensorsScheme(bits: bits, symmetric: symmetric, groupSize: groupSize == cols ? nil : groupSize)
    }

    /// `(code − zero)·scale`, row-major out × in.
    public func dequantized() -> [Float] {
        let groups = groupsPerRow
        var out = [Float](repeating: 0, count: rows * cols)
        for r in 0..<rows {
            for c in 0..<cols {
                let g = r * groups + c / groupSize
                out[r * cols + c] = Float(codes[r * cols + c] - zeros[g]) * scales[g]
            }
        }
        return out
    }
}

/// A float tensor to export: canonical name ("embed_tokens", "layers.0.input_layernorm",
/// "layers.0.self_attn.q_proj.bias", "lm_head" …), row-major shape and values.
public struct FloatTensorData: Sendable, Equatable {
    public var name: String
    public var shape: [Int]
    public var values: [Float]

    public init(name: String, shape: [Int], values: [Float]) {
        self.name = name; self.shape = shape; self.values = values
    }
}

/// The weight scheme of one compressed-tensors config group: `num_bits`, `symmetric`,
/// `strategy` "channel" (groupSize nil) or "group" (`group_size`).
public struct CompressedTensorsScheme: Hashable, Sendable, CustomStringConvertible {
    public var bits: Int
    public var symmetric: Bool
    /// nil: one scale per output channel.
    public var groupSize: Int?

    public init(bits: Int, symmetric: Bool, groupSize: Int?) {
        self.bits = bits; self.symmetric = symmetric; self.groupSize = groupSize
    }

    public var strategy: String { groupSize == nil ? "channel" : "group" }
    /// Codes per int32 word.
    public var packFactor: Int { 32 / bits }
    /// "int4 asym g32", "int8 sym channel".
    public var description: String {
        "int\(bits) \(symmetric ? "sym" : "asym") \(groupSize.map { "g\($0)" } ?? "channel")"
    }
    /// Accepted bit widths (the format packs 1…8 bits; vLLM runs 4 and 8).
    public static let supportedBits = 2...8
}

/// Packing of signed codes into int32 words, as the `pack-quantized` format stores them. Plain
/// loops: these run once per export or load.
public enum CompressedTensorsPacking {
    /// Packs a rows × cols matrix of codes in [−2^(b−1), 2^(b−1) − 1] along each row:
    /// result rows × ceil(cols / f), code c of row r at bits (c % f)·b of word c / f, stored as code + 2^(b−1).
    public static func packRows(_ codes: [Int32], rows: Int, cols: Int, bits: Int) -> [Int32] {
        let f = 32 / bits, words = (cols + f - 1) / f
        let offset = Int32(1) << (bits - 1), mask = UInt32((1 << bits) - 1)
        var out = [Int32](repeating: 0, count: rows * words)
        for r in 0..<rows {
            for c in 0..<cols {
                let u = UInt32(bitPattern: codes[r * cols + c] + offset) & mask
                out[r * words + c / f] |= Int32(bitPattern: u << UInt32((c % f) * bits))
            }
        }
        return out
    }

    /// Inverse of `packRows`: rows × cols signed codes from rows × ceil(cols / f) words (padding ignored).
    public static func unpackRows(_ packed: [Int32], rows: Int, cols: Int, bits: Int) -> [Int32] {
        let f = 32 / bits, words = (cols + f - 1) / f
        let offset = Int32(1) << (bits - 1), mask = UInt32((1 << bits) - 1)
        var out = [Int32](repeating: 0, count: rows * cols)
        for r in 0..<rows {
            for c in 0..<cols {
                let w = UInt32(bitPattern: packed[r * words + c / f])
                out[r * cols + c] = Int32((w >> UInt32((c % f) * bits)) & mask) - offset
            }
        }
        return out
    }

    /// Packs a rows × cols matrix of codes along each column (the zero-point layout):
    /// result ceil(rows / f) × cols, code (r, c) at bits (r % f)·b of word (r / f, c).
    public static func packColumns(_ codes: [Int32], rows: Int, cols: Int, bits: Int) -> [Int32] {
        packRows(transpose(codes, rows: rows, cols: cols), rows: cols, cols: rows, bits: bits)
            .transposed(rows: cols, cols: (rows + 32 / bits - 1) / (32 / bits))
    }

    /// Inverse of `packColumns`.
    public static func unpackColumns(_ packed: [Int32], rows: Int, cols: Int, bits: Int) -> [Int32] {
        let words = (rows + 32 / bits - 1) / (32 / bits)
        return unpackRows(transpose(packed, rows: words, cols: cols), rows: cols, cols: rows, bits: bits)
            .transposed(rows: cols, cols: rows)
    }

    static func transpose(_ a: [Int32], rows: Int, cols: Int) -> [Int32] { a.transposed(rows: rows, cols: cols) }
}

extension Array where Element == Int32 {
    /// The cols × rows transpose of a row-major rows × cols matrix.
    func transposed(rows: Int, cols: Int) -> [Int32] {
        var out = [Int32](repeating: 0, count: count)
        for r in 0..<rows { for c in 0..<cols { out[c * rows + r] = self[r * cols + c] } }
        return out
    }
}

/// Hugging Face names for canonical tensor names.
public enum HuggingFaceNames {
    /// "layers.0.self_attn.q_proj" → "model.layers.0.self_attn.q_proj", "lm_head" → "lm_head".
    public static func module(_ canonical: String) -> String {
        canonical == "lm_head" ? "lm_head" : "model." + canonical
    }

    /// The stored name of a float tensor: `.weight` appended except for biases.
    public static func tensor(_ canonical: String) -> String {
        canonical.hasSuffix(".bias") ? module(canonical) : module(canonical) + ".weight"
    }

    /// HF `architectures[0]` for our architecture name.
    public static func architecture(_ arch: String) -> String? {
        SafetensorsCheckpoint.supportedArchitectures.first { $0.value == arch }?.key
    }
}
