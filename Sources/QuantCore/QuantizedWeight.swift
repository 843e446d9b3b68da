import QuantKernels

/// A quantized weight matrix kept as integers with its scales and zero points, so an integer
/// engine can run it directly; the simulated (quantize-dequantize) weights derive from it.
///
/// `codes` is row-major out × in. Group `g` of row `r` covers columns `g·groupSize ..< (g+1)·groupSize`;
/// its parameters are `scales[r·groups + g]`, `zeros[r·groups + g]`. Dequantized `Ŵ = (q − zero)·scale`.
public struct QuantizedWeight: Sendable {
    public var rows: Int
    public var cols: Int
    public var groupSize: Int
    public var grid: QuantGrid
    public var codes: [Int32]
    public var scales: [Float]
    public var zeros: [Int32]
    /// Which method produced it ("rtn", "gptq", …).
    public var producedBy: String

    public var groupsPerRow: Int { cols / groupSize }

    public init(rows: Int, cols: Int, groupSize: Int, grid: QuantGrid, codes: [Int32], scales: [Float],
                zeros: [Int32], producedBy: String) {
        precondition(codes.count == rows * cols && scales.count == rows * (cols / groupSize) && zeros.count == scales.count)
        self.rows = rows; self.cols = cols; self.groupSize = groupSize; self.grid = grid
        self.codes = codes; self.scales = scales; self.zeros = zeros; self.producedBy = producedBy
    }

    /// Round-to-nearest quantization of `w` (out × in) with `scheme`.
    public static func roundToNearest(_ w: Matrix, scheme: WeightScheme, producedBy: String = "rtn") -> QuantizedWeight {
        let grid = scheme.grid
        switch scheme.granularity {
        case .tensor:
            let (lo, hi) = w.data.withUnsafeBufferPointer { Quantizer.minMax($0.baseAddress!, $0.count) }
            var (s, z) = grid.parameters(min: lo, max: hi)
            if !(lo.isFinite && hi.isFinite) { (s, z) = (.nan, 0) }  // dequantizes to NaN, not to finite values
            let codes = w.data.map { grid.quantize($0, scale: s, zero: z) }
            return QuantizedWeight(rows: w.rows, cols: w.cols, groupSize: w.cols, grid: grid, codes: codes,
                                   scales: [Float](repeating: s, count: w.rows), zeros: [Int32](repeating: z, count: w.rows),
                                   producedBy: producedBy)
        case .channel, .group:
            let g = scheme.groupSize(cols: w.cols)
            let r = w.data.withUnsafeBufferPointer { Quantizer.quantize($0.baseAddress!, rows: w.rows, cols: w.cols, groupSize: g, grid: grid) }
            return QuantizedWeight(rows: w.rows, cols: w.cols, groupSize: g, grid: grid, codes: r.codes,
                                   scales: r.scales, zeros: r.zeros, producedBy: producedBy)
        }
    }

    /// The simulated weights `(q − zero)·scale`, out × in.
    public func dequantized() -> Matrix {
        var out = [Float](repeating: 0, count: rows * cols)
        let groups = groupsPerRow
        for r in 0..<rows {
            for c in 0..<cols {
                let gi = r * groups + c / groupSize
                out[r * cols + c] = grid.dequantize(codes[r * cols + c], scale: scales[gi], zero: zeros[gi])
            }
        }
        return Matrix(rows: rows, cols: cols, data: out)
    }

    /// Scales output row `r` by `factors[r] > 0`. Row-wise quantization commutes with a positive
    /// row scale, so only the scales change (used when a transform is folded into a producer).
    public mutating func scaleRows(by factors: [Float]) {
        let groups = groupsPerRow
        for r in 0..<rows { for g in 0..<groups { scales[r * groups + g] *= factors[r] } }
    }
}
