import QuantCore

/// DuQuant (Lin et al., "DuQuant: Distributing Outliers via Dual Transformation", NeurIPS 2024;
/// released code Hsu1023/DuQuant). At every site, with input X (tokens × D) and weights W (out × D):
///
///     X̂ = X · Λ⁻¹ · R₁ · P · R₂          (online at run time; Λ folded into the producer when possible)
///     Ŵ = W · Λ   · R₁ · P · R₂          (offline, row-wise)       ⇒  X̂·Ŵᵀ = X·Wᵀ exactly
///
/// 1. **Smoothing** `Λ = diag(s)`, `s_j = max(a_j,1e-5)^α / max(max_i|W_ij|,1e-5)^{1−α}` (≥ 1e-5),
///    `a_j` the site's input channel absmax over all calibration tokens, the weight max over one
///    linear (q_proj for q/k/v, up_proj for gate/up). Folded like SmoothQuant: into the RMSNorm γ
///    for q/k/v and gate/up, into up_proj's output rows for down, into v_proj's output rows for o
///    when heads = KV heads, and applied online (`x/s`) for o under GQA.
/// 2. **R₁**: greedy block rotation (`DuQuantMath.greedyRotation`), b×b blocks, ≤ `rotation_steps`.
/// 3. **P**: zigzag permutation of channels by their absmax after R₁ (equal magnitude per block).
/// 4. **R₂**: a second greedy rotation. Steps 2–3 repeat `permutation_times` times.
///
/// The rotations are calibrated, as in the released code, on `SiteCalibration.positionwiseMean`
/// (one windowLength × D matrix: the mean over windows, which keeps the BOS/sink outliers), or
/// with `calibrate_on: rows` on a seeded sample of raw calibration rows.
///
/// The method only transforms; it does not quantize weights. Pair it with `rtn` or `gptq`. The
/// paper's W4A4 settings are scheme settings written in the recipe: weights asymmetric
/// per-channel with clip 0.8 (`swc`), activations asymmetric per-token with clip 0.9 (`lac`), and
/// (optionally) Q/K/V int4 per head with a Hadamard over head_dim. Smoothing α is 0.6 in the
/// paper's run.sh (0.5 with LWC).
///
/// `variant: paper` (default) picks the outlier channel `argmax_j max_t |X_tj|` and keeps one
/// rotation per block; `variant: code` reproduces the released code (row index of the extreme
/// entry modulo b, one b×b matrix shared by all blocks).
public final class DuQuant: QuantMethod {
    public static let name = "duquant"
    public static let role = MethodRole.transform
    public static let summary = "DuQuant: smoothing, then greedy block rotation → zigzag permutation → block rotation (calibrated, online)"
    public static let options: [OptionSpec] = [
        OptionSpec("alpha", .double(0...1), default: .double(0.6), "smoothing migration strength α"),
        OptionSpec("smooth", .bool, default: .bool(true), "apply DuQuant's smoothing before the rotations"),
        OptionSpec("block_size", .intOrAuto(2...4096), default: .int(128),
                   "rotation block b (must divide the site's input size); auto = largest power of two ≤ 128 that divides"),
        OptionSpec("rotation_steps", .int(0...4096), default: .int(256), "greedy steps N per rotation (N+1 evaluations)"),
        OptionSpec("permutation_times", .int(0...8), default: .int(1), "rotation → zigzag rounds before the final rotation"),
        OptionSpec("variant", .choice(["paper", "code"]), default: .string("paper"),
                   "paper: outlier channel, per-block rotations; code: released code's row index, one shared matrix"),
        OptionSpec("calibrate_on", .choice(["mean", "rows"]), default: .string("mean"),
                   "mean: position-wise mean of the windows (reference code); rows: a seeded sample of calibration rows"),
        OptionSpec("sample_rows", .int(1...1_000_000), default: .int(2048), "rows sampled when calibrate_on = rows"),
    ]

    public let alpha: Double
    public let smooth: Bool
    /// nil = auto.
    public let blockSize: Int?
    public let rotationSteps: Int
    public let permutationTimes: Int
    public let variant: DuQuantMath.Variant
    /// What the greedy rotation is calibrated on (`calibrate_on`).
    public enum CalibrationInput: String, Sendable { case mean, rows }
    public let calibrateOn: CalibrationInput
    public var calibrateOnMean: Bool { calibrateOn == .mean }
    public let sampleRows: Int

    public init(options: MethodOptions) throws {
        alpha = try options.double("alpha")
        smooth = try options.bool("smooth")
        blockSize = options.isAuto("block_size") ? nil : try options.int("block_size")
        rotationSteps = try options.int("rotation_steps")
        permutationTimes = try options.int("permutation_times")
        variant = try options.choice("variant", as: DuQuantMath.Variant.self)
        calibrateOn = try options.choice("calibrate_on", as: CalibrationInput.self)
        sampleRows = try options.int("sample_rows")
    }

    public var needs: CalibrationNeeds { .inputs }

    /// The block size for an input of size n; throws listing the sizes that divide n.
    public func resolveBlockSize(_ n: Int, site: String) throws -> Int {
        if let b = blockSize {
            guard n % b != 0 else { return b }
            let valid = (2...min(n, 4096)).filter { n % $0 == 0 && $0 <= 1024 }
            let auto = DuQuant.autoBlockSize(n).map { " (auto picks \($0))" } ?? ""
            throw MethodError(method: Self.name, site: site,
                              "block_size \(b) does not divide the input size \(n); sizes that do: "
                              + valid.map(String.init).joined(separator: ", ") + ", or block_size: auto\(auto)")
        }
        guard let b = DuQuant.autoBlockSize(n) else {
            throw MethodError(method: Self.name, site: site, "block_size auto: no power of two ≥ 2 divides the input size \(n)")
        }
        return b
    }

    /// The largest power of two ≤ 128 dividing n (nil when n is odd).
    public static func autoBlockSize(_ n: Int) -> Int? {
        var b = 128
        while b >= 2 { if n % b == 0 { return b }; b /= 2 }
        return nil
    }

    /// Where the smoothing scale goes for a site.
    func smoothingPlacement(_ kind: SiteKind, block: DecoderBlock?, index: Int, config: DecoderConfig) -> TransformPlacement {
        kind.diagonalScalePlacement(block: index, config: config)
    }

    public func plan(site: Site, config: DecoderConfig) throws -> SitePlan {
        let n = site.inFeatures
        let b = try resolveBlockSize(n, site: site.name)
        var plan = SitePlan()
        if smooth {
            let placement = smoothingPlacement(site.kind, block: nil, index: site.block, config: config)
            plan.transforms.append("scale (smoothing α = \(alpha)) [\(placement == .online ? "online (GQA: v_proj rows cannot carry it)" : placement.description)]")
        }
        let shape = variant == .paper ? "\(n / b) blocks of \(b), one rotation per block" : "\(n / b) blocks of \(b), one shared matrix"
        for i in 0..<permutationTimes {
            plan.transforms.append("greedy rotation R\(i + 1) (\(shape), ≤ \(rotationSteps) steps) [online]")
            plan.transforms.append("zigzag permutation [online]")
        }
        plan.transforms.append("greedy rotation R\(permutationTimes + 1) (\(shape), ≤ \(rotationSteps) steps) [online]")
        if blockSize == nil { plan.notes.append("block_size auto → \(b) (\(n) = \(n / b)·\(b))") }
        plan.notes.append("calibrated on " + (calibrateOnMean ? "the position-wise mean of the calibration windows" : "\(sampleRows) sampled calibration rows")
                          + ", variant \(variant.rawValue)")
        return plan
    }

    public func apply(to site: Site, calibration: SiteCalibration?, context: MethodContext) throws {
        guard let calibration else { throw MethodError(method: Self.name, site: site.name, "needs calibration inputs") }
        let n = site.inFeatures
        let b = try resolveBlockSize(n, site: site.name)
        var rng = SeededGenerator(seed: context.seed)
        var x = calibrationMatrix(calibration, rng: &rng)

        if smooth {
            // The weight max comes from one linear: up_proj for gate/up, the first member elsewhere (q_proj).
            let member = site.kind == .gateUp ? DuQuant.member(site, "up_proj", fallback: 1) : site.linears[0]
            let s = DuQuantMath.smoothingFactors(activationAbsMax: calibration.channelAbsMax,
                                                 weight: member.weight, alpha: alpha)
            context.model.smooth(site, in: context.block, by: s, addedBy: Self.name)
            Transform.scale(s.map { 1 / $0 }).applyToActivations(&x)
        }

        var summary: [String] = []
        let absBefore = x.columnAbsMax().max() ?? 0
        for i in 0...permutationTimes {
            let r = DuQuantMath.greedyRotation(&x, blockSize: b, steps: rotationSteps, variant: variant, rng: &rng)
            site.addTransform(.blockOrthogonal(blockSize: b, blocks: r.blocks), placement: .online, addedBy: Self.name)
            summary.append("R\(i + 1) kept \(r.keptSteps)/\(r.evaluatedSteps - 1) steps, range \(fmt(r.rangeBefore)) → \(fmt(r.rangeAfter))")
            if i < permutationTimes {
                let perm = DuQuantMath.zigzagPermutation(magnitudes: x.columnAbsMax(), blockSize: b)
                let t = Transform.permutation(perm)
                site.addTransform(t, placement: .online, addedBy: Self.name)
                t.applyToActivations(&x)
            }
        }
        let absAfter = x.columnAbsMax().max() ?? 0
        context.log("duquant \(site.name): b = \(b), \(x.rows)×\(n) calibration, absmax \(fmt(absBefore)) → \(fmt(absAfter)); " + summary.joined(separator: "; "))
    }

    /// The member linear whose name ends in `suffix` (LLaMA order as the fallback index).
    static func member(_ site: Site, _ suffix: String, fallback: Int) -> Linear {
        site.linears.first { $0.name.hasSuffix(suffix) } ?? site.linears[min(fallback, site.linears.count - 1)]
    }

    /// The matrix the rotations are calibrated on (a copy, in the site's current basis).
    func calibrationMatrix(_ c: SiteCalibration, rng: inout SeededGenerator) -> Matrix {
        if calibrateOnMean && c.windowLength > 0 && c.windowCount > 0 { return c.positionwiseMean }
        let rows = c.rows
        guard rows > sampleRows else { return c.inputs }
        // Seeded sample without replacement (partial Fisher–Yates), kept in row order.
        var idx = Array(0..<rows)
        for i in 0..<sampleRows { idx.swapAt(i, i + Int(rng.next() % UInt64(rows - i))) }
        let chosen = idx.prefix(sampleRows).sorted()
        let d = c.inputs.cols
        var out = Matrix(zeros: sampleRows, d)
        for (r, src) in chosen.enumerated() { for j in 0..<d { out.data[r * d + j] = c.inputs.data[src * d + j] } }
        return out
    }

    /// Calibration matrix bytes; the time of one statistics pass over the calibration inputs
    /// (~2 G values/s) and the greedy steps' multiply-adds (~20 GMAC/s on a 2-core AVX-512 machine).
    public func estimate(site: Site, tokens: Int) -> (seconds: Double, bytes: Int) {
        let n = site.inFeatures
        // The position-wise mean has one window's rows (typically 512).
        let rows = calibrateOnMean ? min(tokens, 512) : min(tokens, sampleRows)
        let b = Double((try? resolveBlockSize(n, site: site.name)) ?? 128)
        let perStep = variant == .paper ? Double(rows) * b * b : Double(rows) * Double(n) * b
        let macs = Double(permutationTimes + 1) * Double(rotationSteps) * (perStep + b * b * b)
        return (macs / 20e9 + Double(tokens * n) / 2e9, rows * n * 4)
    }

    private func fmt(_ v: Float) -> String { String(format: "%.3g", Double(v)) }
}

#if canImport(Foundation)
import Foundation
#endif
