import Foundation

/// Tensor storage types this package can dequantize. Raw values are ggml's type ids.
public enum GGMLType: UInt32, Sendable, CaseIterable, CustomStringConvertible {
    case f32 = 0, f16 = 1, q4_0 = 2, q4_1 = 3, q5_0 = 6, q5_1 = 7, q8_0 = 8
    case q4_K = 12, q5_K = 13, q6_K = 14, bf16 = 30

    /// ggml's name, e.g. "Q4_1".
    public var name: String {
        switch self {
        case .f32: return "F32"
        case .f16: return "F16"
        case .bf16: return "BF16"
        case .q4_0: return "Q4_0"
        case .q4_1: return "Q4_1"
        case .q5_0: return "Q5_0"
        case .q5_1: return "Q5_1"
        case .q8_0: return "Q8_0"
        case .q4_K: return "Q4_K"
        case .q5_K: return "Q5_K"
        case .q6_K: return "Q6_K"
        }
    }
    public var description: String { name }

    public init?(name: String) {
        guard let t = GGMLType.allCases.first(where: { $0.name == name.uppercased() || $0.name == name }) else { return nil }
        self = t
    }

    /// Elements per block.
    public var blockSize: Int { QuantFormat.table[self]!.blockSize }
    /// Bytes per block.
    public var bytesPerBlock: Int { QuantFormat.table[self]!.bytesPerBlock }

    /// Bytes needed for `elements` values (nil if `elements` is not a multiple of the block size or overflows).
    public func byteCount(elements: Int) -> Int? {
        guard elements >= 0, elements % blockSize == 0 else { return nil }
        let (r, o) = (elements / blockSize).multipliedReportingOverflow(by: bytesPerBlock)
        return o ? nil : r
    }

    /// Names of ggml type ids we recognise but do not support (for error messages).
    static func describe(id: UInt32) -> String {
        if let t = GGMLType(rawValue: id) { return t.name }
        let known: [UInt32: String] = [9: "Q8_1", 10: "Q2_K", 11: "Q3_K", 15: "Q8_K", 16: "IQ2_XXS", 17: "IQ2_XS",
                                       18: "IQ3_XXS", 19: "IQ1_S", 20: "IQ4_NL", 21: "IQ3_S", 22: "IQ2_S", 23: "IQ4_XS",
                                       24: "I8", 25: "I16", 26: "I32", 27: "I64", 28: "F64", 29: "IQ1_M",
                                       34: "TQ1_0", 35: "TQ2_0", 39: "MXFP4"]
        return known[id].map { "\($0) (id \(id))" } ?? "unknown type id \(id)"
    }
}
