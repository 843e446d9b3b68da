import QuantCore
import TrainingQuantization

/// `bs_lss`: only the backward quantizer of "Training Transformers with 4-bit Integers" — the
/// output gradient bit-split into two INT4 halves and leverage-score sampled — with an f32
/// forward. The other operands of the gradient GEMMs (X, W) are then float, so the sampled
/// gradient is dequantized and both gradient GEMMs run in f32: an ablation of the gradient
/// quantizer's error, not a fast path (`hq` runs BS + LSS on the integer kernels).
public final class BitSplitLSS: TrainingQuantizer {
    public static let name = "bs_lss"
    public static let summary = "gradient-only INT4 quantizer (bit splitting + leverage-score sampling), f32 forward; GEMMs in f32"
    public static let options: [OptionSpec] = [
        OptionSpec("lss", .choice(LSSMode.allCases.map(\.rawValue)), default: .string("sample"),
                   "`sample`: Bernoulli sampling of ~half the split rows (the paper); `skip_zero`: keep every non-zero row (the released code)"),
    ]
    public let mode: LSSMode

    public init(options: MethodOptions) throws { mode = LSSMode(rawValue: try options.string("lss")) ?? .sample }

    public var planDescription: String { "forward X·Wᵀ f32; ∂X, ∂W f32 on the BS + LSS (\(mode.rawValue)) quantized gradient" }

    public func makeLinear(id: LinearID, inFeatures: Int, outFeatures: Int, seed: UInt64) throws -> any TrainingLinear {
        try HQLinear(id: id, inFeatures: inFeatures, outFeatures: outFeatures, seed: seed, forward: .float, backward: .bitSplit(mode))
    }
}
