import QuantKernels

/// A row-major matrix of signed integer codes on a symmetric `bits`-bit grid; the value of
/// element (r, c) is `codes[r·cols + c]·scale` (one scale for the whole tensor: per-tensor
/// quantization, as every training quantizer here uses).
public struct IntCodes: Sendable, Equatable {
    public var rows: Int, cols: Int
    public var bits: Int
    public var codes: [Int8]
    public var scale: Float

    public init(rows: Int, cols: Int, bits: Int, codes: [Int8], scale: Float) {
        precondition(codes.count == rows * cols && (2...8).contains(bits))
        self.rows = rows; self.cols = cols; self.bits = bits; self.codes = codes; self.scale = scale
    }

    /// The codes transposed (cols × rows), same grid and scale.
    public var transposed: IntCodes {
        var t = [Int8](repeating: 0, count: codes.count)
        let r = rows, c = cols
        codes.withUnsafeBufferPointer { src in t.withUnsafeMutableBufferPointer { dst in
            let s = src.baseAddress!, d = dst.baseAddress!
            // 32×32 tiles keep both sides in L1.
            for i0 in stride(from: 0, to: r, by: 32) { for j0 in stride(from: 0, to: c, by: 32) {
                for i in i0..<min(r, i0 + 32) { for j in j0..<min(c, j0 + 32) { d[j * r + i] = s[i * c + j] } }
            } }
        } }
        return IntCodes(rows: c, cols: r, bits: bits, codes: t, scale: scale)
    }

    /// Rows `indices` (in that order) as a new matrix.
    public func gatherRows(_ indices: [Int]) -> IntCodes {
        var out = [Int8](repeating: 0, count: indices.count * cols)
        for (o, i) in indices.enumerated() { for c in 0..<cols { out[o * cols + c] = codes[i * cols + c] } }
        return IntCodes(rows: indices.count, cols: cols, bits: bits, codes: out, scale: scale)
    }

    /// `codes·scale` as f32.
    public var dequantized: [Float] { codes.map { Float($0) * scale } }
}

/// Integer matrix products of the training quantizers on the shared kernels (`IntGemm`: VNNI, AVX2
/// or portable, int32 accumulation):
///
///     Y[i, j] = rowScales[i] · b.scale · Σ_p a[i, p]·b[j, p]        A: M×K, B: N×K, Y: M×N
///
/// A is the "activation" operand (unsigned bytes after the grid offset), B the "weight" operand
/// (packed into 16-column panels; ≤ 4 bits packs two codes per byte). For `∂X = G·W` and
/// `∂W = Gᵀ·X` the operand that plays B is a transposed matrix, packed as such (see `IntCodes.transposed`).
public enum IntProducts {
    /// `A·Bᵀ` scaled as above. `rowScales` defaults to `a.scale` for every row.
    public static func multiply(_ a: IntCodes, _ b: IntCodes, rowScales: [Float]? = nil, threads: Int? = nil) -> [Float] {
        precondition(a.cols == b.cols, "IntProducts: A has K = \(a.cols), B has K = \(b.cols)")
        guard a.rows > 0, b.rows > 0 else { return [Float](repeating: 0, count: a.rows * b.rows) }
        let acts = activations(a, rowScales: rowScales)
        let packed = weights(b)
        return IntGemm.multiply(acts, packed, threads: threads)
    }

    /// The exact int32 sums `Σ_p a[i, p]·b[j, p]` (M×N) as the kernels compute them.
    public static func accumulators(_ a: IntCodes, _ b: IntCodes, threads: Int? = nil) -> [Int32] {
        precondition(a.cols == b.cols)
        guard a.rows > 0, b.rows > 0 else { return [] }
        return IntGemm.accumulators(activations(a, rowScales: nil), weights(b), threads: threads)
    }

    /// Scalar reference of `accumulators` (plain loops, Int64 sums truncated to Int32 as the kernels wrap).
    public static func referenceAccumulators(_ a: IntCodes, _ b: IntCodes) -> [Int32] {
        var out = [Int32](repeating: 0, count: a.rows * b.rows)
        for i in 0..<a.rows { for j in 0..<b.rows {
            var s: Int64 = 0
            for p in 0..<a.cols { s += Int64(a.codes[i * a.cols + p]) * Int64(b.codes[j * b.cols + p]) }
            out[i * b.rows + j] = Int32(truncatingIfNeeded: s)
        } }
        return out
    }

    /// A as IntGemm activations (bytes `code + 2^(bits−1)`, zero padded), one scale per row.
    public static func activations(_ a: IntCodes, rowScales: [Float]? = nil) -> QuantizedActivations {
        QuantizedActivations(codes: a.codes.map { Int32($0) }, scales: rowScales ?? [Float](repeating: a.scale, count: a.rows),
                             zeros: [Int32](repeating: 0, count: a.rows), m: a.rows, k: a.cols,
                             grid: QuantGrid(bits: a.bits, symmetric: true))
    }

    /// B packed as IntGemm weights (16-column panels; nibbles for ≤ 4 bits), one scale.
    public static func weights(_ b: IntCodes) -> PackedIntWeights {
        IntGemm.packWeights(codes: b.codes.map { Int32($0) }, scales: [Float](repeating: b.scale, count: b.rows),
                            zeros: [Int32](repeating: 0, count: b.rows), n: b.rows, k: b.cols, groupSize: b.cols,
                            grid: QuantGrid(bits: b.bits, symmetric: true))
    }
}
