import QuantCore

/// Round-to-nearest weight quantization, the baseline every paper compares against.
///
/// For each group of the weight (a row for `channel`, `g` columns for `group: g`, the whole
/// matrix for `tensor`): symmetric `scale = c·absmax/(2^(b−1)−1)`, codes −2^(b−1)…2^(b−1)−1;
/// asymmetric `scale = c·(max−min)/(2^b−1)` over a range that includes 0, `zero = round(−min/scale)`,
/// codes 0…2^b−1. Rounding is half to even; an all-zero group gets scale 1. The bits,
/// granularity, symmetry and clip ratio come from the layer's weight scheme.
public final class RTN: QuantMethod {
    public static let name = "rtn"
    public static let role = MethodRole.weightQuantizer
    public static let summary = "round-to-nearest weight quantization with the scheme's bits, granularity, symmetry and clip"
    public static let options: [OptionSpec] = []

    public init(options: MethodOptions) throws {}

    public var needs: CalibrationNeeds { [] }

    public func plan(site: Site, config: DecoderConfig) throws -> SitePlan {
        SitePlan(weights: site.linears.map { "\($0.name): \($0.scheme)" }.joined(separator: "; "))
    }

    public func apply(to site: Site, calibration: SiteCalibration?, context: MethodContext) throws {
        for l in site.linears where l.scheme.isQuantized && l.quantized == nil {
            l.quantized = QuantizedWeight.roundToNearest(l.weight, scheme: l.scheme, producedBy: Self.name)
        }
    }

    public func estimate(site: Site, tokens: Int) -> (seconds: Double, bytes: Int) {
        (0.01, site.linears.reduce(0) { $0 + $1.weight.data.count * 8 })
    }
}
