import QuantKernels

/// A dense row-major f32 matrix. Activations are tokens × features; weights are out × in.
public struct Matrix: Equatable, Sendable {
    public var rows: Int
    public var cols: Int
    public var data: [Float]

    public init(rows: Int, cols: Int, data: [Float]) {
        precondition(data.count == rows * cols, "Matrix: \(data.count) values for \(rows)×\(cols)")
        self.rows = rows; self.cols = cols; self.data = data
    }

    public init(zeros rows: Int, _ cols: Int) {
        self.init(rows: rows, cols: cols, data: [Float](repeating: 0, count: rows * cols))
    }

    /// A rows × cols matrix whose every element `fill` writes (row-major, from the base pointer);
    /// no zero fill first. `fill` is not called for an empty matrix.
    public init(rows: Int, cols: Int, overwrittenBy fill: (UnsafeMutablePointer<Float>) throws -> Void) rethrows {
        self.init(rows: rows, cols: cols, data: try overwrittenArray(rows * cols, fill))
    }

    public subscript(r: Int, c: Int) -> Float {
        get { data[r * cols + c] }
        set { data[r * cols + c] = newValue }
    }

    public func row(_ r: Int) -> ArraySlice<Float> { data[(r * cols)..<((r + 1) * cols)] }

    /// Rows `range` as a new matrix.
    public func rows(_ range: Range<Int>) -> Matrix {
        Matrix(rows: range.count, cols: cols, data: Array(data[(range.lowerBound * cols)..<(range.upperBound * cols)]))
    }

    /// `self · wᵀ` — the linear-layer product `Y = X·Wᵀ` (self: tokens×in, w: out×in).
    public func timesTransposed(_ w: Matrix, bias: [Float]? = nil) -> Matrix {
        precondition(cols == w.cols, "X·Wᵀ: X has \(cols) columns, W has \(w.cols)")
        return Matrix(rows: rows, cols: w.rows, data: Gemm.multiply(data, w.data, m: rows, n: w.rows, k: cols, bias: bias))
    }

    public var transposed: Matrix {
        var out = Matrix(zeros: cols, rows)
        let rows = rows, cols = cols
        data.withUnsafeBufferPointer { src in out.data.withUnsafeMutableBufferPointer { dst in
            // 32×32 tiles keep both sides in cache (a plain double loop misses on every write).
            for r0 in stride(from: 0, to: rows, by: 32) {
                for c0 in stride(from: 0, to: cols, by: 32) {
                    for r in r0..<min(r0 + 32, rows) { for c in c0..<min(c0 + 32, cols) { dst[c * rows + r] = src[r * cols + c] } }
                }
            }
        } }
        return out
    }

    /// Frobenius norm, accumulated in Double.
    public var norm: Double {
        var s = 0.0
        for v in data { s += Double(v) * Double(v) }
        return s.squareRoot()
    }

    /// `‖self − reference‖ / ‖reference‖`.
    public func relativeError(to reference: Matrix) -> Double {
        precondition(data.count == reference.data.count)
        var num = 0.0, den = 0.0
        for i in 0..<data.count {
            let d = Double(data[i]) - Double(reference.data[i])
            num += d * d; den += Double(reference.data[i]) * Double(reference.data[i])
        }
        return den > 0 ? (num / den).squareRoot() : num.squareRoot()
    }

    /// Per-column max |x| (the per-channel absmax of an activation matrix).
    /// Per-column max |x|. A NaN in a column makes that column's entry NaN (NaN is not skipped),
    /// an infinity makes it +inf, so callers see non-finite input in the statistic itself.
    public func columnAbsMax() -> [Float] {
        let rows = rows, cols = cols
        guard cols > 0 else { return [] }
        // Fixed row chunks (any thread count gives the same maxima), merged by the same rule.
        let chunk = max(1, (1 << 16) / cols)
        let chunks = (rows + chunk - 1) / chunk
        var partial = [Float](repeating: 0, count: max(1, chunks) * cols)
        data.withUnsafeBufferPointer { src in partial.withUnsafeMutableBufferPointer { dst in
            let box = UncheckedBox((src.baseAddress!, dst.baseAddress!))
            Parallel.forEach(chunks) { ch in
                let (x, out) = box.value
                let m = out + ch * cols
                for r in (ch * chunk)..<min(rows, (ch + 1) * chunk) { Matrix.absMaxUpdate(m, x + r * cols, cols) }
            }
        } }
        var m = [Float](repeating: 0, count: cols)
        m.withUnsafeMutableBufferPointer { mp in partial.withUnsafeBufferPointer { pp in
            for ch in 0..<chunks { Matrix.absMaxUpdate(mp.baseAddress!, pp.baseAddress! + ch * cols, cols) }
        } }
        return m
    }

    /// `m[c] = |x[c]|` where `|x[c]| > m[c]` or `x[c]` is NaN (once NaN, nothing compares greater: it stays).
    @inline(__always)
    static func absMaxUpdate(_ m: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ n: Int) {
        var c = 0
        while c + 8 <= n {
            let bits = UnsafeRawPointer(x + c).loadUnaligned(as: SIMD8<UInt32>.self) & SIMD8(repeating: 0x7FFF_FFFF)
            let a = unsafeBitCast(bits, to: SIMD8<Float>.self)   // |x|: the sign bit cleared, as `abs`
            var v = UnsafeRawPointer(m + c).loadUnaligned(as: SIMD8<Float>.self)
            v.replace(with: a, where: (a .> v) .| (a .!= a))
            UnsafeMutableRawPointer(m + c).storeBytes(of: v, as: SIMD8<Float>.self)
            c += 8
        }
        while c < n {
            let a = abs(x[c])
            if a > m[c] || a.isNaN { m[c] = a }
            c += 1
        }
    }

    /// Rows of `self` followed by rows of `other`.
    public func stacked(with other: Matrix) -> Matrix {
        precondition(cols == other.cols)
        return Matrix(rows: rows + other.rows, cols: cols, data: data + other.data)
    }

    public var hasNonFinite: Bool { data.contains { !$0.isFinite } }
}
