import Foundation
import QuantKernels

/// What a method needs the pipeline to collect at each site before it runs.
public struct CalibrationNeeds: OptionSet, Sendable {
    public let rawValue: Int
    public init(rawValue: Int) { self.rawValue = rawValue }
    /// The site's calibration inputs (tokens × in), from which absmax, means, Hessians derive.
    public static let inputs = CalibrationNeeds(rawValue: 1)
}

/// Calibration data arriving at one site, in the site's current basis (every transform added so
/// far applied). The inputs and every statistic are computed on first use.
///
/// A calibration in a transformed basis (`init(base:transforms:)`) derives its Hessian from the
/// base's by congruence, `Tᵀ·H·T` (in × in work), so a method that needs only `H` (GPTQ after
/// DuQuant or Hadamard) never transforms the tokens × in inputs.
public final class SiteCalibration {
    /// Calibration rows (windows·windowLength) and features (in).
    public let rows: Int, features: Int
    public let windowLength: Int
    private let base: SiteCalibration?
    private let plan: TransformPlan?

    public init(inputs: Matrix, windowLength: Int) {
        rows = inputs.rows; features = inputs.cols; self.windowLength = windowLength
        base = nil; plan = nil
        self.inputs = inputs
    }

    /// The calibration `base` seen through `transforms` (`x ← x·T₁·T₂·…`), e.g. a site's raw
    /// inputs in the basis its transforms have built so far.
    public init(base: SiteCalibration, transforms: [Transform]) {
        rows = base.rows; features = base.features; windowLength = base.windowLength
        self.base = base
        plan = TransformPlan(transforms, features: base.features)
    }

    /// Inputs of all calibration windows stacked: (windows·windowLength) × in.
    public private(set) lazy var inputs: Matrix = {
        var x = base!.inputs
        plan!.apply(&x)
        return x
    }()

    public var windowCount: Int { windowLength > 0 ? rows / windowLength : 0 }

    /// Per-channel max |x| over all calibration tokens.
    public lazy var channelAbsMax: [Float] = inputs.columnAbsMax()

    /// The position-wise mean of the windows: windowLength × in (DuQuant's calibration input).
    /// Every element sums the windows in window order, then divides (fixed element ranges over threads).
    public lazy var positionwiseMean: Matrix = {
        var m = Matrix(zeros: windowLength, inputs.cols)
        let n = windowCount
        guard n > 0 else { return m }
        let width = windowLength * inputs.cols, chunk = 4096
        inputs.data.withUnsafeBufferPointer { src in m.data.withUnsafeMutableBufferPointer { dst in
            let box = UncheckedBox((src.baseAddress!, dst.baseAddress!))
            Parallel.forEach((width + chunk - 1) / chunk) { c in
                let (s, d) = box.value
                let lo = c * chunk, hi = min(width, lo + chunk)
                for w in 0..<n { let sw = s + w * width; for i in lo..<hi { d[i] += sw[i] } }
                for i in lo..<hi { d[i] /= Float(n) }
            }
        } }
        return m
    }()

    /// `hessian`, or a `NumericalFault` naming `site` when its diagonal `Σ x_j²` is not finite —
    /// which happens exactly when an input value is NaN or ±inf (or overflows when squared), so
    /// the check reads only the diagonal of a matrix the method needs anyway.
    public func checkedHessian(site: String) throws -> Matrix {
        let h = hessian
        for j in 0..<h.rows where !h.data[j * h.cols + j].isFinite {
            throw NumericalFault(quantity: "Hessian", site: site, step: "", value: h.data[j * h.cols + j])
        }
        return h
    }

    /// `H = XᵀX / tokens` (in × in), accumulated in f32 by the GEMM micro-kernels, one triangle
    /// computed (`Gram`: bit for bit `Xᵀ·(Xᵀ)ᵀ` of the f32 GEMM). In a transformed basis,
    /// `Tᵀ·H_base·T` (`congruence`).
    public lazy var hessian: Matrix = {
        if let base, let plan { return SiteCalibration.congruence(base.hessian, plan) }
        var h = Matrix(rows: features, cols: features, data: Gram.multiply(inputs.data, rows: rows, cols: features))
        let n = Float(max(1, rows))
        for i in 0..<h.data.count { h.data[i] /= n }
        return h
    }()

    /// `Tᵀ·H·T` for symmetric `H` (n × n) and `T` the map `plan` applies to rows: the plan runs on
    /// the rows of `H` (giving `H·T`), then on the rows of its transpose (`Tᵀ·H·T`), and the two
    /// triangles are averaged so the result is exactly symmetric. Equal to the Gram matrix of the
    /// transformed inputs up to f32 rounding.
    static func congruence(_ h: Matrix, _ plan: TransformPlan) -> Matrix {
        var a = h
        plan.apply(&a)
        var m = a.transposed
        plan.apply(&m)
        let n = m.rows
        for i in 0..<n {
            for j in (i + 1)..<n {
                let v = (m.data[i * n + j] + m.data[j * n + i]) / 2
                m.data[i * n + j] = v; m.data[j * n + i] = v
            }
        }
        return m
    }
}

/// Everything a method may read or change while it runs at a site.
public struct MethodContext {
    public let model: DecoderModel
    public let block: DecoderBlock
    /// The recipe seed mixed with the method's position, for deterministic random draws.
    public let seed: UInt64
    /// Lines the method wants in the run log (also in the JSON report).
    public var log: (String) -> Void
    public init(model: DecoderModel, block: DecoderBlock, seed: UInt64, log: @escaping (String) -> Void) {
        self.model = model; self.block = block; self.seed = seed; self.log = log
    }
}

/// What a method will do at a site, for `workbench check` — computed without running anything.
public struct SitePlan: Sendable {
    public var transforms: [String] = []
    public var weights: String?
    public var notes: [String] = []
    public init(transforms: [String] = [], weights: String? = nil, notes: [String] = []) {
        self.transforms = transforms; self.weights = weights; self.notes = notes
    }
}

/// What a method does to a site. The pipeline runs steps in recipe order, so the order must be
/// possible: every transform of a site comes before its weights are quantized.
public enum MethodRole: String, Sendable, CaseIterable {
    /// Changes the site's basis (scales, rotations, …) and folds it into the float weights.
    case transform
    /// Writes `Linear.quantized` (RTN, GPTQ); nothing may transform the site afterwards.
    case weightQuantizer = "weight quantizer"
    /// Reads the site and changes nothing (statistics, tests); may stand anywhere.
    case observer

    /// Checks a pipeline's order: no transform after a weight quantizer, at most one weight
    /// quantizer. Returns the index of the first offending step and why, or nil when the order works.
    public static func orderProblem(_ methods: [any QuantMethod.Type]) -> (step: Int, message: String)? {
        var quantizer: (index: Int, name: String)?
        for (i, m) in methods.enumerated() {
            switch m.role {
            case .weightQuantizer:
                if let q = quantizer {
                    return (i, "'\(m.name)' is a second weight quantizer after '\(q.name)' (step \(q.index + 1)); it would quantize the weights again. Keep one of them")
                }
                quantizer = (i, m.name)
            case .observer: continue
            case .transform:
                if let q = quantizer {
                    return (i, "'\(m.name)' is a transform but comes after the weight quantizer '\(q.name)' (step \(q.index + 1)); a site cannot change basis once its weights are quantized. Move '\(m.name)' before '\(q.name)'")
                }
            }
        }
        return nil
    }
}

/// A quantization method: a plugin module that transforms and/or quantizes sites.
///
/// The pipeline visits blocks in order and, inside a block, sites in dependency order (q/k/v,
/// o, gate/up, down). At each site it calls every method of the recipe's pipeline in recipe
/// order. A method declares its options once (`options`), which is both the YAML schema and the
/// documentation, and says which calibration statistics it needs.
public protocol QuantMethod: AnyObject {
    /// The name used in recipes, e.g. `rtn`.
    static var name: String { get }
    /// One line for `workbench methods`.
    static var summary: String { get }
    static var options: [OptionSpec] { get }
    /// What the method does to a site; decides where it may stand in a pipeline.
    static var role: MethodRole { get }

    init(options: MethodOptions) throws

    var needs: CalibrationNeeds { get }
    /// True when the method writes `Linear.quantized` (by default: its role is `weightQuantizer`).
    var quantizesWeights: Bool { get }

    /// Checks the method against the model without computing anything; throws a
    /// `MethodError` for a setting that cannot work (e.g. a block size that does not divide).
    func plan(site: Site, config: DecoderConfig) throws -> SitePlan

    /// Model-level work done once before any block (e.g. QuaRot's residual rotation).
    func prepare(model: DecoderModel, seed: UInt64, log: (String) -> Void) throws

    /// Transforms and/or quantizes `site`. `calibration` is nil when `needs` is empty.
    func apply(to site: Site, calibration: SiteCalibration?, context: MethodContext) throws

    /// Rough cost estimate for `check`: seconds and bytes for a site with `tokens` calibration rows.
    func estimate(site: Site, tokens: Int) -> (seconds: Double, bytes: Int)
}

extension QuantMethod {
    public var quantizesWeights: Bool { Self.role == .weightQuantizer }
    public func prepare(model: DecoderModel, seed: UInt64, log: (String) -> Void) throws {}
    public func estimate(site: Site, tokens: Int) -> (seconds: Double, bytes: Int) { (0, 0) }
}

/// An error a method raises for its configuration or data; names the site and says what to do.
public struct MethodError: Error, CustomStringConvertible {
    public var method: String
    public var site: String?
    public var message: String
    public init(method: String, site: String? = nil, _ message: String) { self.method = method; self.site = site; self.message = message }
    public var description: String { "\(method)" + (site.map { " at \($0)" } ?? "") + ": " + message }
}

/// The methods an executable knows, by recipe name. The `workbench` executable registers the
/// built-in methods; another package can register its own beside them.
public struct MethodRegistry {
    public private(set) var methods: [any QuantMethod.Type] = []
    public init(_ methods: [any QuantMethod.Type] = []) { for m in methods { register(m) } }

    public mutating func register(_ m: any QuantMethod.Type) {
        precondition(!methods.contains { $0.name == m.name }, "method '\(m.name)' registered twice")
        methods.append(m)
    }

    public func method(named name: String) -> (any QuantMethod.Type)? { methods.first { $0.name == name } }
    public var names: [String] { methods.map { $0.name } }
}

/// A deterministic random generator (SplitMix64) so the same seed gives the same numbers everywhere.
public struct SeededGenerator: RandomNumberGenerator {
    private var state: UInt64
    public init(seed: UInt64) { state = seed &+ 0x9E37_79B9_7F4A_7C15 }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    public mutating func nextUnit() -> Double { Double(next() >> 11) / Double(1 << 53) }
    /// Standard normal (Box–Muller).
    public mutating func nextGaussian() -> Double {
        let u1 = max(nextUnit(), 1e-300), u2 = nextUnit()
        return (-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2)
    }
    /// A seed derived from a base seed and a string (e.g. a site name), stable across runs.
    public static func derive(_ seed: UInt64, _ label: String) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in label.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        var g = SeededGenerator(seed: seed ^ h)
        return g.next()
    }
}
