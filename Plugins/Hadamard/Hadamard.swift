import QuantCore
import QuantKernels

/// Randomized Hadamard rotation of linear inputs: QuaRot (Ashkboos et al.) and the Hadamard
/// quantizer of "Training Transformers with 4-bit Integers" (Xi et al.).
///
/// **Online, per site** (input dimension n, `x` one token row, `W` out × n):
///
///     T = diag(s)·Mᵀ,   M = (H_K ⊗ H_{2^m}) / √n      (n = K·2^m, Kronecker construction of the kernels)
///     x ← x·T = (x ⊙ s)·Mᵀ          at run time, before the activation quantizer
///     W ← W·T                       offline (T is orthogonal, so T⁻ᵀ = T); X·Wᵀ is unchanged
///
/// `s ∈ {±1}ⁿ` are random signs drawn from the site's derived seed (`random_signs`), or all +1.
/// With `block_size: b` (a power of two dividing n) `M` is block-diagonal, `I_{n/b} ⊗ H_b/√b`
/// (the INT4-training paper's form, and QuaRot's advice for sizes with no Hadamard matrix).
///
/// **Offline, per model** (`rotate_residual: true`, QuaRot): RMSNorm weights γ are folded into
/// the linears that read the norm (q/k/v, gate/up, lm_head; γ ← 1), then the residual stream is
/// rotated by one random Hadamard `Q` of size hidden: `E ← E·Q`, readers `W ← W·Q`, writers
/// (o, down) `W ← Qᵀ·W`. RMSNorm with γ = 1 commutes with `Q`, so q/k/v and gate/up already see
/// rotated inputs; QuaRot then only adds the online Hadamard before down_proj (size = FFN). That
/// is the default placement when `rotate_residual` is on; `sites` can add o_proj (`["*.down",
/// "*.o"]`; QuaRot's o_proj transform is the full-size Hadamard split into a per-head part in
/// v_proj and a cross-head part online — here it is applied online in one piece).
///
/// The method only rotates; pair it with a weight quantizer (`rtn`, `gptq`) in the recipe.
public final class Hadamard: QuantMethod {
    public static let name = "hadamard"
    public static let role = MethodRole.transform
    public static let summary = "randomized Hadamard rotation of linear inputs (QuaRot; block-diagonal INT4-training form), optional residual-stream rotation"
    public static let options: [OptionSpec] = [
        OptionSpec("block_size", .string, default: .string("full"),
                   "`full` (one Kronecker Hadamard of the whole input size) or a power of two dividing it (block-diagonal)"),
        OptionSpec("random_signs", .bool, default: .bool(true), "multiply by random ±1 signs (seeded) before the Hadamard"),
        OptionSpec("sites", .patterns, default: .patterns([]),
                   "site-name patterns that get the online Hadamard; empty = every site, or only `*.down` with rotate_residual"),
        OptionSpec("rotate_residual", .bool, default: .bool(false),
                   "QuaRot: fold RMSNorm weights and rotate the residual stream by a random Hadamard of size hidden"),
    ]

    /// nil = full size.
    public let blockSize: Int?
    public let randomSigns: Bool
    public let rotateResidual: Bool
    public let sitePatterns: [String]

    public init(options: MethodOptions) throws {
        let b = try options.string("block_size")
        if b == "full" {
            blockSize = nil
        } else if let v = Int(b), v >= 2, v & (v - 1) == 0 {
            blockSize = v
        } else {
            throw MethodError(method: Self.name, "block_size '\(b)' must be `full` or a power of two ≥ 2 (e.g. 64, 128)")
        }
        randomSigns = try options.bool("random_signs")
        rotateResidual = try options.bool("rotate_residual")
        let p = try options.patterns("sites")
        sitePatterns = p.isEmpty ? (rotateResidual ? ["*.down"] : ["*"]) : p
    }

    public var needs: CalibrationNeeds { [] }

    /// True when the online Hadamard goes before `site`.
    public func rotatesOnline(_ site: Site) -> Bool { sitePatterns.contains { globMatch($0, site.name) } }

    /// The kernel transform and the effective block for a dimension n; throws a `MethodError`
    /// naming `site` when no construction exists or the block does not divide n.
    func resolve(_ n: Int, site: String) throws -> HadamardTransform {
        if let b = blockSize {
            guard n % b == 0 else {
                let valid = (1...12).map { 1 << $0 }.filter { n % $0 == 0 }
                throw MethodError(method: Self.name, site: site,
                                  "block_size \(b) does not divide \(n); powers of two that do: "
                                  + (valid.isEmpty ? "none" : valid.map(String.init).joined(separator: ", ")) + ", or `full`")
            }
            return try HadamardTransform(size: b)
        }
        if let h = cache[n] { return h }
        do {
            let h = try HadamardTransform(size: n)
            cache[n] = h
            return h
        } catch let f as HadamardTransform.Failure {
            throw MethodError(method: Self.name, site: site, f.description)
        }
    }

    /// Resolved full-size transforms by size (a large Paley factor takes seconds to build).
    private var cache: [Int: HadamardTransform] = [:]

    /// A note when the Kronecker factor K is so large that the online cost (about K/4 + 2 adds per
    /// element for the factor) is far above a block-diagonal Hadamard's (log2 b).
    func costNote(_ h: HadamardTransform) -> String? {
        guard h.factor > 256 else { return nil }
        let b = (1...12).map { 1 << $0 }.filter { h.size % $0 == 0 }.last ?? 1
        return "hadamard(\(h.size)) uses a dense \(h.factor)×\(h.factor) factor (\(h.construction)); "
            + "block_size: \(b) would be far cheaper online"
    }

    /// Describes a transform of size n: `hadamard(320 = 20·16, Paley I (q = 19))`.
    func describe(_ h: HadamardTransform, n: Int) -> String {
        let what = h.size == n ? "hadamard(\(n)" : "block-hadamard(\(h.size) × \(n / h.size) blocks"
        let kron = h.factor > 1 ? " = \(h.factor)·\(h.size / h.factor), \(h.construction)" : ", Walsh–Hadamard"
        return what + kron + ")" + (randomSigns ? " · random signs" : "")
    }

    public func plan(site: Site, config: DecoderConfig) throws -> SitePlan {
        var plan = SitePlan()
        if rotateResidual && site.kind == .qkv && site.block == 0 {
            let h = try resolve(config.hiddenSize, site: "residual stream")
            plan.notes.append("once per model: RMSNorm weights folded, residual stream rotated by " + describe(h, n: config.hiddenSize))
        }
        if rotatesOnline(site) {
            let h = try resolve(site.inFeatures, site: site.name)
            plan.transforms.append(describe(h, n: site.inFeatures) + " [online]")
            if let note = costNote(h) { plan.notes.append(note) }
        } else if rotateResidual && (site.kind == .qkv || site.kind == .gateUp) {
            plan.notes.append("input already rotated by the residual-stream Hadamard")
        }
        return plan
    }

    /// Random ±1 signs (or nil when `random_signs` is off).
    func signs(_ n: Int, seed: UInt64) -> [Float]? {
        guard randomSigns else { return nil }
        var g = SeededGenerator(seed: seed)
        return (0..<n).map { _ in g.next() & 1 == 0 ? 1 : -1 }
    }

    /// The orthogonal transform `diag(s)·Mᵀ` of size n.
    public func transform(size n: Int, seed: UInt64, site: String) throws -> Transform {
        let h = try resolve(n, site: site)
        return .hadamard(size: n, blockSize: h.size, signs: signs(n, seed: seed))
    }

    public func prepare(model: DecoderModel, seed: UInt64, log: (String) -> Void) throws {
        guard rotateResidual else { return }
        let d = model.config.hiddenSize
        let q = try transform(size: d, seed: seed, site: "residual stream")
        model.foldNormWeightsIntoLinears()
        model.rotateResidualStream(q)
        log("hadamard: RMSNorm weights folded; residual stream rotated by \(q.kindName) (\(d))")
    }

    public func apply(to site: Site, calibration: SiteCalibration?, context: MethodContext) throws {
        guard rotatesOnline(site) else { return }
        let t = try transform(size: site.inFeatures, seed: context.seed, site: site.name)
        site.addTransform(t, placement: .online, addedBy: Self.name)
    }

    /// A fast transform: n·log n adds (+ K² row passes) per token; nothing is stored.
    public func estimate(site: Site, tokens: Int) -> (seconds: Double, bytes: Int) {
        (Double(site.linears.reduce(0) { $0 + $1.weight.data.count }) * 1e-9, site.inFeatures * 4)
    }
}
