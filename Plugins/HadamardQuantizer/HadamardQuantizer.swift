import QuantCore
import TrainingQuantization

/// `hq`: the forward Hadamard quantizer of "Training Transformers with 4-bit Integers" — block
/// Hadamard of size g on X and W, per-tensor INT4 with LSQ step sizes, the forward GEMM on the
/// integer kernels — and by default the paper's backward, bit splitting + leverage-score sampling
/// (`backward: bs_lss`, with `lss: sample` as in the paper or `skip_zero` as in the released code).
/// `backward: f32` keeps HQ's forward with float gradient GEMMs (on the dequantized operands).
public final class HadamardQuantizer: TrainingQuantizer {
    public static let name = "hq"
    public static let summary = "INT4 training (Xi et al. 2023): Hadamard quantizer forward (block Hadamard + LSQ INT4), bit splitting + leverage-score sampling backward"
    public static let options: [OptionSpec] = [
        OptionSpec("block_size", .string, default: .string("dynamic"),
                   "Hadamard block g: a power of two 1…1024 dividing each layer's input size, or `dynamic` (chosen per layer on the first step)"),
        OptionSpec("backward", .choice(["bs_lss", "f32"]), default: .string("bs_lss"),
                   "gradient GEMMs: bit splitting + leverage-score sampling on the integer kernels, or f32"),
        OptionSpec("lss", .choice(LSSMode.allCases.map(\.rawValue)), default: .string("sample"),
                   "`sample`: Bernoulli sampling of ~half the split rows (the paper); `skip_zero`: keep every non-zero row (the released code)"),
    ]

    /// nil = dynamic.
    public let blockSize: Int?
    public let backward: HQLinear.Backward

    public init(options: MethodOptions) throws {
        let b = try options.string("block_size")
        if b == "dynamic" {
            blockSize = nil
        } else if let g = Int(b), BlockHadamard.searchSizes.contains(g) {
            blockSize = g
        } else {
            throw TrainingQuantizerError("hq: block_size '\(b)' must be `dynamic` or a power of two 1…1024 (e.g. 32)")
        }
        let mode = LSSMode(rawValue: try options.string("lss")) ?? .sample
        backward = try options.string("backward") == "f32" ? .float : .bitSplit(mode)
    }

    public var planDescription: String {
        let g = blockSize.map { "g=\($0)" } ?? "g=dynamic"
        let fwd = "forward int4 (HQ \(g), LSQ per-tensor)"
        switch backward {
        case .float: return fwd + "; ∂X = G·Ŵ f32; ∂W = Gᵀ·X̂ f32"
        case .bitSplit(let m): return fwd + "; ∂X = G·Ŵ and ∂W = Gᵀ·X̂ int4 (BS + LSS \(m.rawValue); rows with p < 1 in f32)"
        }
    }

    public func makeLinear(id: LinearID, inFeatures: Int, outFeatures: Int, seed: UInt64) throws -> any TrainingLinear {
        try HQLinear(id: id, inFeatures: inFeatures, outFeatures: outFeatures, seed: seed,
                     forward: .hq(blockSize: blockSize), backward: backward)
    }
}
