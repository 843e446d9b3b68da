import Foundation
import QuantCore

/// No quantization: the three products in f32 on the shared GEMM kernel. The reference every
/// quantized training run is compared with.
public final class FloatQuantizer: TrainingQuantizer {
    public static let name = "f32"
    public static let summary = "no quantization: forward and both gradient GEMMs in f32"
    public static let options: [OptionSpec] = []
    public init(options: MethodOptions) throws {}
    public init() {}
    public var planDescription: String { "forward X·Wᵀ f32; ∂X = G·W f32; ∂W = Gᵀ·X f32" }
    public func makeLinear(id: LinearID, inFeatures: Int, outFeatures: Int, seed: UInt64) throws -> any TrainingLinear {
        FloatLinear(id: id)
    }
}

/// `Y = X·Wᵀ`, `∂X = G·W`, `∂W = Gᵀ·X`, all f32.
public final class FloatLinear: TrainingLinear {
    public let id: LinearID
    public var scalars: [Float] = []
    public var scalarGradients: [Float] { [] }
    public var state: [String: Int] = [:]
    public private(set) var timing = LinearTiming()
    private var savedX: Matrix?
    private var savedW: Matrix?

    public init(id: LinearID) { self.id = id }

    public func zeroScalarGradients() {}

    public func forward(x: Matrix, w: Matrix, step: Int) -> Matrix {
        let t = DispatchTime.now()
        savedX = x; savedW = w
        let y = x.timesTransposed(w)
        timing.floatGemm += seconds(since: t)
        return y
    }

    public func backward(g: Matrix, step: Int) -> (dx: Matrix, dw: Matrix) {
        guard let x = savedX, let w = savedW else { preconditionFailure("FloatLinear.backward before forward") }
        let t = DispatchTime.now()
        let dx = g.timesTransposed(w.transposed)   // (tokens×out)·(out×in) = tokens×in
        let dw = g.transposed.timesTransposed(x.transposed)   // (out×tokens)·(tokens×in) = out×in
        timing.floatGemm += seconds(since: t)
        return (dx, dw)
    }
}

/// Seconds since `t` (monotonic clock).
@inline(__always) public func seconds(since t: DispatchTime) -> Double {
    Double(DispatchTime.now().uptimeNanoseconds - t.uptimeNanoseconds) / 1e9
}
