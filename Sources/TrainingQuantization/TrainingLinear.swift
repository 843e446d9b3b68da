import QuantCore

/// Identifies one linear layer of the model being trained: keys random draws (stochastic
/// rounding, sampling) and names rows in reports. `layer` is the block index; `name` the
/// canonical linear name inside the block, e.g. `mlp.down_proj`.
public struct LinearID: Hashable, Codable, Sendable, CustomStringConvertible {
    public var layer: Int
    public var name: String
    public init(layer: Int, name: String) { self.layer = layer; self.name = name }
    public var description: String { "layers.\(layer).\(name)" }
}

/// Where a linear layer's time went, accumulated over calls (seconds).
public struct LinearTiming: Codable, Sendable, Equatable {
    /// Integer GEMMs (int8/int4 codes, int32 accumulation).
    public var integerGemm = 0.0
    /// Quantization work: Hadamard transforms, rounding, bit splitting, sampling, packing.
    public var quantize = 0.0
    /// f32 GEMMs (unquantized layers, or rows that cannot take the integer path).
    public var floatGemm = 0.0
    /// Rows of the output gradient that went through the integer GEMMs / through f32 (LSS).
    public var integerRows = 0
    public var floatRows = 0
    public init() {}
    public static func + (a: LinearTiming, b: LinearTiming) -> LinearTiming {
        var r = a
        r.integerGemm += b.integerGemm; r.quantize += b.quantize; r.floatGemm += b.floatGemm
        r.integerRows += b.integerRows; r.floatRows += b.floatRows
        return r
    }
}

/// One linear layer's three matrix products during training, possibly quantized:
///
/// - forward  `Y = X·Wᵀ`       X: tokens×in, W: out×in, Y: tokens×out (row-major)
/// - backward `∂L/∂X = G·W`    G = ∂L/∂Y: tokens×out
///            `∂L/∂W = Gᵀ·X`
///
/// A layer keeps what its backward needs from the most recent `forward` (one forward, then one
/// backward, per step). Learned scalars (e.g. LSQ step sizes) are owned by the layer: `backward`
/// accumulates their gradients, the optimizer reads `scalarGradients` and writes `scalars`.
public protocol TrainingLinear: AnyObject {
    var id: LinearID { get }
    /// `Y = Q(X)·Q(W)ᵀ`. `step` keys any random draw together with `id` and the row.
    func forward(x: Matrix, w: Matrix, step: Int) -> Matrix
    /// Gradients from the saved forward: `(∂L/∂X, ∂L/∂W)`. Adds to `scalarGradients`.
    func backward(g: Matrix, step: Int) -> (dx: Matrix, dw: Matrix)
    /// Learned scalars, in a fixed order (empty for unquantized layers).
    var scalars: [Float] { get set }
    /// ∂L/∂scalars accumulated since the last `zeroScalarGradients()`; same order as `scalars`.
    var scalarGradients: [Float] { get }
    func zeroScalarGradients()
    /// Any other state a checkpoint must hold to continue bit-identically (e.g. a chosen
    /// Hadamard block size), as named integers.
    var state: [String: Int] { get set }
    /// Accumulated time breakdown.
    var timing: LinearTiming { get }
    /// Why `state` and `scalars` read from a checkpoint cannot be this layer's (nil: they can).
    /// Checked before a checkpoint is applied, so a corrupt file is an error, never a trap.
    func problem(restoring state: [String: Int], scalars: [Float]) -> String?
}

extension TrainingLinear {
    /// Default: the scalars must match in count and be finite; a layer that keeps state checks it itself.
    public func problem(restoring state: [String: Int], scalars: [Float]) -> String? {
        if scalars.count != self.scalars.count { return "\(scalars.count) learned scalars, expected \(self.scalars.count)" }
        if let bad = scalars.first(where: { !$0.isFinite }) { return "learned scalar \(bad) is not finite" }
        return nil
    }
}

/// A training quantizer: a plugin selected by name in a training recipe, creating one
/// `TrainingLinear` per linear layer of the model.
public protocol TrainingQuantizer: AnyObject {
    /// The name used in training recipes, e.g. `f32`.
    static var name: String { get }
    /// One line for `workbench methods`.
    static var summary: String { get }
    /// Typed options: both the YAML schema and the documentation.
    static var options: [OptionSpec] { get }
    init(options: MethodOptions) throws
    /// How the three products run, for `workbench check` (e.g. "forward int4 (HQ g=dynamic)…").
    var planDescription: String { get }
    /// A layer `out × in`; `seed` is the run's seed (random draws mix it with id, step and row).
    func makeLinear(id: LinearID, inFeatures: Int, outFeatures: Int, seed: UInt64) throws -> any TrainingLinear
}

/// The training quantizers available to a run, looked up by recipe name.
public struct TrainingQuantizerRegistry: Sendable {
    public let quantizers: [any TrainingQuantizer.Type]
    public init(_ quantizers: [any TrainingQuantizer.Type] = []) {
        // f32 is built in; a registry always has it.
        self.quantizers = quantizers.contains { $0.name == FloatQuantizer.name } ? quantizers : [FloatQuantizer.self] + quantizers
    }
    public func lookup(_ name: String) -> (any TrainingQuantizer.Type)? { quantizers.first { $0.name == name } }
    public var names: [String] { quantizers.map { $0.name } }
}
