import Foundation
import QuantCore
import QuantKernels
import TrainingQuantization

/// `rtn`: the baselines of the INT4-training comparison — per-tensor symmetric round-to-nearest
/// (`step = max|x|/qmax`, `bits: 8` or `4`) of X and W in the forward and of the output gradient G
/// in the backward, with straight-through gradients (no clipping can happen, so no masks). All
/// three products run on the integer kernels:
///
///     Y = X̂·Ŵᵀ,   ∂X = Ĝ·Ŵ  (B operand Ŵᵀ, in × out),   ∂W = Ĝᵀ·X̂  (A = Ĝᵀ, B = X̂ᵀ, in × tokens)
public final class TrainingRTN: TrainingQuantizer {
    public static let name = "rtn"
    public static let summary = "per-tensor symmetric RTN of X, W and the output gradient (int8 or int4), straight-through, integer GEMMs"
    public static let options: [OptionSpec] = [
        OptionSpec("bits", .int(4...8), default: .int(8), "grid bits: 8 (INT8 baseline) or 4 (INT4 baseline); 5–7 also run"),
    ]
    public let bits: Int

    public init(options: MethodOptions) throws { bits = try options.int("bits") }
    public init(bits: Int) { self.bits = bits }

    public var planDescription: String {
        "forward X·Wᵀ int\(bits) (RTN per-tensor); ∂X = G·W and ∂W = Gᵀ·X int\(bits) (G RTN per-tensor, straight-through)"
    }

    public func makeLinear(id: LinearID, inFeatures: Int, outFeatures: Int, seed: UInt64) throws -> any TrainingLinear {
        RTNLinear(id: id, bits: bits)
    }
}

/// One layer of `TrainingRTN`.
public final class RTNLinear: TrainingLinear {
    public let id: LinearID
    public let bits: Int
    public var scalars: [Float] = []
    public var scalarGradients: [Float] { [] }
    public var state: [String: Int] = [:]
    public private(set) var timing = LinearTiming()
    private var qx: IntCodes?, qw: IntCodes?

    public init(id: LinearID, bits: Int) { self.id = id; self.bits = bits }
    public func zeroScalarGradients() {}

    public func forward(x: Matrix, w: Matrix, step: Int) -> Matrix {
        var t0 = DispatchTime.now()
        let qx = PerTensor.quantize(x.data, rows: x.rows, cols: x.cols, step: PerTensor.absmaxStep(x.data, bits: bits), bits: bits)
        let qw = PerTensor.quantize(w.data, rows: w.rows, cols: w.cols, step: PerTensor.absmaxStep(w.data, bits: bits), bits: bits)
        self.qx = qx; self.qw = qw
        let (a, b) = (IntProducts.activations(qx), IntProducts.weights(qw))
        timing.quantize += seconds(since: t0)
        t0 = DispatchTime.now()
        let y = IntGemm.multiply(a, b)
        timing.integerGemm += seconds(since: t0)
        return Matrix(rows: x.rows, cols: w.rows, data: y)
    }

    public func backward(g: Matrix, step: Int) -> (dx: Matrix, dw: Matrix) {
        guard let qx, let qw else { preconditionFailure("\(id): backward before forward") }
        var t0 = DispatchTime.now()
        let qg = PerTensor.quantize(g.data, rows: g.rows, cols: g.cols, step: PerTensor.absmaxStep(g.data, bits: bits), bits: bits)
        let (ax, bx) = (IntProducts.activations(qg), IntProducts.weights(kMajor: qw))
        let (aw, bw) = (IntProducts.activationsTransposed(qg), IntProducts.weights(kMajor: qx))
        timing.quantize += seconds(since: t0)
        t0 = DispatchTime.now()
        let dx = IntGemm.multiply(ax, bx), dw = IntGemm.multiply(aw, bw)
        timing.integerGemm += seconds(since: t0)
        timing.integerRows += 2 * g.rows
        return (Matrix(rows: g.rows, cols: qx.cols, data: dx), Matrix(rows: qw.rows, cols: qw.cols, data: dw))
    }
}
