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

    /// A as IntGemm activations (bytes `code + 2^(bits−1)`, rows padded to a multiple of 8), one
    /// scale per row.
    public static func activations(_ a: IntCodes, rowScales: [Float]? = nil) -> QuantizedActivations {
        let stride = QuantizedActivations.stride(a.cols), off = UInt8(1 << (a.bits - 1))
        var bytes = [UInt8](repeating: 0, count: a.rows * stride)
        let (m, k) = (a.rows, a.cols)
        a.codes.withUnsafeBufferPointer { src in bytes.withUnsafeMutableBufferPointer { dst in
            let s = src.baseAddress!, d = dst.baseAddress!
            Parallel.forEach(m, threads: m * k >= 1 << 16 ? nil : 1) { i in
                for p in 0..<k { d[i * stride + p] = UInt8(bitPattern: s[i * k + p]) &+ off }
            }
        } }
        return QuantizedActivations(storedCodes: bytes, m: m, k: k, scales: rowScales ?? [Float](repeating: a.scale, count: m),
                                    grid: QuantGrid(bits: a.bits, symmetric: true))
    }

    /// Aᵀ as IntGemm activations (a.cols rows of a.rows codes), one scale for all rows: a blocked
    /// transpose straight into the stored bytes.
    public static func activationsTransposed(_ a: IntCodes) -> QuantizedActivations {
        let (m, k) = (a.cols, a.rows)
        let stride = QuantizedActivations.stride(k), off = UInt8(1 << (a.bits - 1))
        var bytes = [UInt8](repeating: 0, count: m * stride)
        a.codes.withUnsafeBufferPointer { src in bytes.withUnsafeMutableBufferPointer { dst in
            let s = src.baseAddress!, d = dst.baseAddress!
            // Tiles of 32 output rows × 32 reduction indices; writes run along the output rows (a
            // destination stride of a power of two would alias in L1 if written column-wise).
            let tiles = (m + 31) / 32
            Parallel.forEach(tiles, threads: m * k >= 1 << 16 ? nil : 1) { tile in
                let i0 = tile * 32, i1 = min(m, i0 + 32)
                for p0 in Swift.stride(from: 0, to: k, by: 32) {
                    let p1 = min(k, p0 + 32)
                    for i in i0..<i1 {
                        let out = d + i * stride
                        for p in p0..<p1 { out[p] = UInt8(bitPattern: s[p * m + i]) &+ off }
                    }
                }
            }
        } }
        return QuantizedActivations(storedCodes: bytes, m: m, k: k, scales: [Float](repeating: a.scale, count: m),
                                    grid: QuantGrid(bits: a.bits, symmetric: true))
    }

    /// B packed as IntGemm weights (16-column panels; nibbles for ≤ 4 bits), one scale; B's rows
    /// are the output columns (N × K).
    public static func weights(_ b: IntCodes) -> PackedIntWeights {
        IntGemm.packWeights(codes: b.codes.map { Int32($0) }, scales: [Float](repeating: b.scale, count: b.rows),
                            zeros: [Int32](repeating: 0, count: b.rows), n: b.rows, k: b.cols, groupSize: b.cols,
                            grid: QuantGrid(bits: b.bits, symmetric: true))
    }

    /// Bᵀ packed as IntGemm weights without transposing: `m`'s rows are the reduction index (K) and
    /// its columns the output columns (N); `rows` picks (and orders) the K rows used.
    public static func weights(kMajor m: IntCodes, rows: [Int]? = nil) -> PackedIntWeights {
        let k = rows?.count ?? m.rows
        return m.codes.withUnsafeBufferPointer { src in
            let make = { (r: UnsafePointer<Int>?) in
                PackedIntWeights(kMajor: src.baseAddress!, ld: m.cols, rows: r, n: m.cols, k: k,
                                 scales: [Float](repeating: m.scale, count: m.cols), grid: QuantGrid(bits: m.bits, symmetric: true))
            }
            guard let rows else { return make(nil) }
            return rows.withUnsafeBufferPointer { make($0.baseAddress!) }
        }
    }
}
