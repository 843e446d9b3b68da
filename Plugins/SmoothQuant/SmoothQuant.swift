import Foundation
import QuantCore
import QuantKernels

/// SmoothQuant (Xiao et al., ICML 2023): migrate activation outliers into the weights with a
/// per-input-channel scale,
///
///     s_j = max(a_j, 1e-5)^α / max(w_j, 1e-5)^(1−α),   s_j ≥ 1e-5,
///     X ← X·diag(s)⁻¹,   W ← W·diag(s)      (so X·Wᵀ is unchanged)
///
/// with `a_j = max_t |X_tj|` over the site's calibration inputs and `w_j = max_i |W_ij|` over every
/// member linear of the site (q/k/v together, gate/up together). `diag(s)⁻¹` is folded offline
/// into the RMSNorm weight (q/k/v, gate/up), into up_proj's output rows (down), into v_proj's output
/// rows (o, plain multi-head attention only) — otherwise (o under GQA) it runs online.
///
/// The reference code smooths only q/k/v and gate/up (`sites: ["layers.*.qkv", "layers.*.gate_up"]`);
/// by default every site is smoothed. `alpha: auto` searches α ∈ {0, step, …, 1} per site for the
/// smallest output error `‖Q(X/s)·Q(W·s)ᵀ − X·Wᵀ‖/‖X·Wᵀ‖` on (a sample of) the calibration inputs,
/// quantizing with the site's activation scheme and each member's weight scheme (RTN).
public final class SmoothQuant: QuantMethod {
    public static let name = "smoothquant"
    public static let role = MethodRole.transform
    public static let summary = "per-channel scale s = a^α / w^(1−α) moves activation outliers into the weights (folded where possible)"
    public static let options: [OptionSpec] = [
        OptionSpec("alpha", .doubleOrAuto(0...1), default: .double(0.5), "migration strength α, or auto (per-site grid search)"),
        OptionSpec("sites", .patterns, default: .patterns(["*"]), "site name patterns to smooth, e.g. [\"layers.*.qkv\", \"layers.*.gate_up\"]"),
        OptionSpec("site_alpha", .patternMap(0...1), default: .patternMap([]), "per-site α overrides: {\"layers.*.down\": 0.8}"),
        OptionSpec("alpha_step", .double(0.01...0.5), default: .double(0.05), "grid step of alpha: auto"),
        OptionSpec("search_rows", .int(16...1_000_000), default: .int(1024), "calibration rows used by alpha: auto (evenly spaced)"),
    ]

    let alpha: Double?
    let sites: [String]
    let siteAlpha: [(pattern: String, value: Double)]
    let step: Double
    let searchRows: Int

    public init(options: MethodOptions) throws {
        alpha = options.isAuto("alpha") ? nil : try options.double("alpha")
        sites = try options.patterns("sites")
        siteAlpha = try options.patternMap("site_alpha")
        step = try options.double("alpha_step")
        searchRows = try options.int("search_rows")
    }

    public var needs: CalibrationNeeds { .inputs }

    func applies(to site: Site) -> Bool { sites.contains { globMatch($0, site.name) } }

    func fixedAlpha(for site: Site) -> Double? {
        siteAlpha.last { globMatch($0.pattern, site.name) }?.value ?? alpha
    }

    public func plan(site: Site, config: DecoderConfig) throws -> SitePlan {
        guard applies(to: site) else { return SitePlan() }
        let placement = site.kind.diagonalScalePlacement(block: site.block, config: config)
        let a = fixedAlpha(for: site).map { "α = \($0)" } ?? "α searched"
        let where_ = placement == .online ? "online (GQA: v_proj rows are shared by \(config.headCount / config.kvHeadCount) heads)" : placement.description
        return SitePlan(transforms: ["scale (\(a)) [\(where_)]"])
    }

    public func apply(to site: Site, calibration: SiteCalibration?, context: MethodContext) throws {
        guard applies(to: site), let calibration else { return }
        let a = calibration.channelAbsMax
        let w = SmoothQuant.weightColumnMax(site)
        let chosen: Double
        if let fixed = fixedAlpha(for: site) {
            chosen = fixed
        } else {
            chosen = searchAlpha(site: site, inputs: calibration.inputs, a: a, w: w)
            context.log("smoothquant \(site.name): alpha auto → \(chosen)")
        }
        context.model.smooth(site, in: context.block, by: SmoothQuant.factors(a: a, w: w, alpha: chosen), addedBy: Self.name)
    }

    /// `s_j = max(a_j,1e-5)^α / max(w_j,1e-5)^(1−α)`, clamped ≥ 1e-5.
    public static func factors(a: [Float], w: [Float], alpha: Double) -> [Float] {
        zip(a, w).map { aj, wj -> Float in
            let num: Double = pow(Double(max(aj, 1e-5)), alpha)
            let den: Double = pow(Double(max(wj, 1e-5)), 1 - alpha)
            return Float(max(num / den, 1e-5))
        }
    }

    /// Per input column, max |W_ij| over every member of the site.
    public static func weightColumnMax(_ site: Site) -> [Float] {
        var m = [Float](repeating: 0, count: site.inFeatures)
        for l in site.linears { for r in 0..<l.weight.rows { for c in 0..<l.weight.cols { m[c] = max(m[c], abs(l.weight[r, c])) } } }
        return m
    }

    /// The α on the grid with the smallest relative output error of the quantized site.
    func searchAlpha(site: Site, inputs: Matrix, a: [Float], w: [Float]) -> Double {
        let stride = max(1, inputs.rows / searchRows)
        var x = Matrix(zeros: (inputs.rows + stride - 1) / stride, inputs.cols)
        for (r, src) in Swift.stride(from: 0, to: inputs.rows, by: stride).enumerated() {
            for j in 0..<inputs.cols { x[r, j] = inputs[src, j] }
        }
        let references = site.linears.map { x.timesTransposed($0.weight) }
        var best = (alpha: 0.5, error: Double.infinity)
        for alpha in Swift.stride(from: 0.0, through: 1.0 + 1e-9, by: step) {
            let s = SmoothQuant.factors(a: a, w: w, alpha: min(alpha, 1))
            var xs = x
            Transform.scale(s.map { 1 / $0 }).applyToActivations(&xs)
            site.activationScheme.fakeQuantize(&xs)
            var num = 0.0, den = 0.0
            for (l, ref) in zip(site.linears, references) {
                var ws = l.weight
                Transform.scale(s.map { 1 / $0 }).foldIntoWeights(&ws)
                let wq = l.scheme.isQuantized ? QuantizedWeight.roundToNearest(ws, scheme: l.scheme).dequantized() : ws
                let y = xs.timesTransposed(wq)
                for i in 0..<y.data.count {
                    let d = Double(y.data[i] - ref.data[i])
                    num += d * d; den += Double(ref.data[i]) * Double(ref.data[i])
                }
            }
            let e = den > 0 ? (num / den).squareRoot() : num
            if e < best.error { best = (min(alpha, 1), e) }
        }
        return (best.alpha * 1000).rounded() / 1000
    }

    public func estimate(site: Site, tokens: Int) -> (seconds: Double, bytes: Int) {
        guard alpha == nil else { return (0.01, site.inFeatures * 8) }
        let outs = site.linears.reduce(0) { $0 + $1.outFeatures }
        let flops = 2.0 * Double(min(tokens, searchRows) * site.inFeatures * outs) * (1 / step + 1)
        return (flops / 30e9, min(tokens, searchRows) * (site.inFeatures + outs) * 4)
    }
}
