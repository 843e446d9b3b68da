import QuantKernels

/// How a weight matrix (out × in) is quantized.
public struct WeightScheme: Hashable, Sendable, CustomStringConvertible {
    public enum Granularity: Hashable, Sendable {
        /// One scale (and zero point) per output row.
        case channel
        /// Groups of `g` consecutive input columns in each row.
        case group(Int)
        /// One scale for the whole matrix.
        case tensor
    }
    /// 2…8, or 16 for "not quantized".
    public var bits: Int
    public var granularity: Granularity
    public var symmetric: Bool
    /// Multiplies the group's min and max, in (0, 1].
    public var clip: Double
    /// Scales rounded to f16 before rounding the weights (`scales: f16`), so groups of 32 export
    /// exactly as ggml Q8_0 / Q4_0 blocks.
    public var f16Scales: Bool

    public init(bits: Int = 16, granularity: Granularity = .channel, symmetric: Bool = true, clip: Double = 1, f16Scales: Bool = false) {
        self.bits = bits; self.granularity = granularity; self.symmetric = symmetric; self.clip = clip; self.f16Scales = f16Scales
    }

    public var isQuantized: Bool { bits < 16 }
    public var grid: QuantGrid { QuantGrid(bits: bits, symmetric: symmetric, clip: Float(clip), f16Scales: f16Scales) }

    /// Elements per (scale, zero) group along a row of length `cols`.
    public func groupSize(cols: Int) -> Int {
        switch granularity {
        case .channel, .tensor: return cols
        case .group(let g): return g
        }
    }

    public var description: String {
        guard isQuantized else { return "float" }
        let g: String
        switch granularity {
        case .channel: g = "per-channel"
        case .group(let n): g = "group \(n)"
        case .tensor: g = "per-tensor"
        }
        return "int\(bits) \(g) \(symmetric ? "sym" : "asym")" + (clip < 1 ? " clip \(clip)" : "") + (f16Scales ? " f16 scales" : "")
    }
}

/// How the input activations of a site (tokens × in) are quantized, dynamically at run time.
public struct ActivationScheme: Hashable, Sendable, CustomStringConvertible {
    public enum Granularity: String, Hashable, Sendable { case token, tensor }
    /// 2…8, or 16 for "not quantized".
    public var bits: Int
    public var granularity: Granularity
    public var symmetric: Bool
    public var clip: Double

    public init(bits: Int = 16, granularity: Granularity = .token, symmetric: Bool = false, clip: Double = 1) {
        self.bits = bits; self.granularity = granularity; self.symmetric = symmetric; self.clip = clip
    }

    public var isQuantized: Bool { bits < 16 }
    public var grid: QuantGrid { QuantGrid(bits: bits, symmetric: symmetric, clip: Float(clip)) }

    public var description: String {
        guard isQuantized else { return "float" }
        return "int\(bits) per-\(granularity.rawValue) \(symmetric ? "sym" : "asym")" + (clip < 1 ? " clip \(clip)" : "")
    }

    /// Quantize-dequantize `x` (tokens × features) in place.
    public func fakeQuantize(_ x: inout Matrix) {
        guard isQuantized, x.rows > 0 else { return }
        let g = grid
        let (rows, cols) = (x.rows, x.cols)
        x.data.withUnsafeMutableBufferPointer { p in
            switch granularity {
            case .token: Quantizer.fakeQuantize(p.baseAddress!, rows: rows, cols: cols, groupSize: cols, grid: g)
            case .tensor: Quantizer.fakeQuantizeTensor(p.baseAddress!, count: rows * cols, grid: g)
            }
        }
    }
}

/// The default scheme of a recipe or variant: one weight and one activation scheme.
public struct QuantScheme: Hashable, Sendable {
    public var weights: WeightScheme
    public var activations: ActivationScheme
    public init(weights: WeightScheme = .init(), activations: ActivationScheme = .init()) {
        self.weights = weights; self.activations = activations
    }
    /// A short label such as "W4A8".
    public var label: String {
        "W\(weights.isQuantized ? String(weights.bits) : "16")A\(activations.isQuantized ? String(activations.bits) : "16")"
    }
}
