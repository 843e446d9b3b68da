import QuantCore
import TrainingQuantization

/// How the model runs one linear layer's three products (`Y = X·Wᵀ`, `∂X = G·W`, `∂W = Gᵀ·X`;
/// X tokens×in, W out×in, row-major). Keeps what its backward needs from the latest forward.
public protocol LinearBackend<Scalar>: AnyObject {
    associatedtype Scalar: TrainScalar
    func forward(x: [Scalar], w: [Scalar], outFeatures: Int, inFeatures: Int, step: Int) -> [Scalar]
    func backward(g: [Scalar], step: Int) -> (dx: [Scalar], dw: [Scalar])
}

/// A training quantizer's layer (`TrainingLinear`, f32) as the model's backend.
public final class QuantizedLinearBackend: LinearBackend {
    public let layer: any TrainingLinear
    /// The output width of the latest forward (the row length of the gradient `backward` gets).
    private var outFeatures = 0
    public init(_ layer: any TrainingLinear) { self.layer = layer }

    public func forward(x: [Float], w: [Float], outFeatures: Int, inFeatures: Int, step: Int) -> [Float] {
        self.outFeatures = outFeatures
        return layer.forward(x: Matrix(rows: x.count / inFeatures, cols: inFeatures, data: x),
                      w: Matrix(rows: outFeatures, cols: inFeatures, data: w), step: step).data
    }

    public func backward(g: [Float], step: Int) -> (dx: [Float], dw: [Float]) {
        let rows = g.count / max(1, outFeatures)
        let r = layer.backward(g: Matrix(rows: rows, cols: outFeatures, data: g), step: step)
        return (r.dx.data, r.dw.data)
    }
}

/// Plain loops in any precision — the backend of the Double gradient checks.
public final class ReferenceLinear<T: TrainScalar>: LinearBackend {
    private var x: [T] = [], w: [T] = []
    private var outFeatures = 0, inFeatures = 0
    public init() {}

    public func forward(x: [T], w: [T], outFeatures: Int, inFeatures: Int, step: Int) -> [T] {
        self.x = x; self.w = w; self.outFeatures = outFeatures; self.inFeatures = inFeatures
        return DenseOps.referenceTimesTransposed(x, w, m: x.count / inFeatures, n: outFeatures, k: inFeatures)
    }

    public func backward(g: [T], step: Int) -> (dx: [T], dw: [T]) {
        let rows = x.count / inFeatures
        let dx = DenseOps.referenceTimesTransposed(g, DenseOps.transpose(w, rows: outFeatures, cols: inFeatures),
                                                   m: rows, n: inFeatures, k: outFeatures)
        let dw = DenseOps.referenceTimesTransposed(DenseOps.transpose(g, rows: rows, cols: outFeatures),
                                                   DenseOps.transpose(x, rows: rows, cols: inFeatures),
                                                   m: outFeatures, n: inFeatures, k: rows)
        return (dx, dw)
    }
}
