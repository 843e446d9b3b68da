/// Dense f32 matrix products. Convention everywhere: `Y = X·Wᵀ`, X is M×K (tokens × in),
/// W is N×K (out × in), Y is M×N, all row-major and contiguous.
public enum Gemm {
    /// `Y = X·Wᵀ` (+ `bias` broadcast over rows when given). Overwrites `y`.
    public static func multiply(
        _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>,
        m: Int, n: Int, k: Int, bias: UnsafePointer<Float>? = nil, threads: Int? = nil
    ) {
        guard m > 0, n > 0 else { return }
        // Split over output rows (tokens) when there are many, else over output columns.
        if m >= 4 {
            Parallel.forEach(m, threads: threads) { i in
                rowTimesMatrix(x + i * k, w, y + i * n, n: n, k: k, bias: bias, columns: 0..<n)
            }
        } else {
            let chunks = max(1, min(64, n / 64))
            Parallel.forEach(chunks, threads: threads) { c in
                let lo = c * n / chunks, hi = (c + 1) * n / chunks
                for i in 0..<m { rowTimesMatrix(x + i * k, w, y + i * n, n: n, k: k, bias: bias, columns: lo..<hi) }
            }
        }
    }

    @inline(__always)
    static func rowTimesMatrix(_ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                               n: Int, k: Int, bias: UnsafePointer<Float>?, columns: Range<Int>) {
        for j in columns {
            y[j] = dot(x, w + j * k, k) + (bias?[j] ?? 0)
        }
    }

    /// Σ a[i]·b[i] with a fixed 16-lane accumulation order.
    @inline(__always)
    public static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ k: Int) -> Float {
        var acc = SIMD16<Float>(repeating: 0)
        var i = 0
        while i + 16 <= k {
            let va = UnsafeRawPointer(a + i).loadUnaligned(as: SIMD16<Float>.self)
            let vb = UnsafeRawPointer(b + i).loadUnaligned(as: SIMD16<Float>.self)
            acc.addProduct(va, vb)
            i += 16
        }
        var s = acc.sum()
        while i < k { s += a[i] * b[i]; i += 1 }
        return s
    }

    /// Array convenience: returns `X·Wᵀ` as a new M×N array.
    public static func multiply(_ x: [Float], _ w: [Float], m: Int, n: Int, k: Int, bias: [Float]? = nil, threads: Int? = nil) -> [Float] {
        precondition(x.count == m * k && w.count == n * k, "Gemm.multiply: shape mismatch")
        var y = [Float](repeating: 0, count: m * n)
        x.withUnsafeBufferPointer { xp in w.withUnsafeBufferPointer { wp in y.withUnsafeMutableBufferPointer { yp in
            if let bias {
                bias.withUnsafeBufferPointer { bp in
                    multiply(xp.baseAddress!, wp.baseAddress!, into: yp.baseAddress!, m: m, n: n, k: k, bias: bp.baseAddress!, threads: threads)
                }
            } else {
                multiply(xp.baseAddress!, wp.baseAddress!, into: yp.baseAddress!, m: m, n: n, k: k, threads: threads)
            }
        } } }
        return y
    }
}

/// Scalar references kept beside the fast paths (llm.c style). Tests compare against these.
public enum Reference {
    /// `Y = X·Wᵀ` with a plain triple loop, accumulated in Double.
    public static func gemm(_ x: [Float], _ w: [Float], m: Int, n: Int, k: Int) -> [Float] {
        var y = [Float](repeating: 0, count: m * n)
        for i in 0..<m { for j in 0..<n {
            var s = 0.0
            for p in 0..<k { s += Double(x[i * k + p]) * Double(w[j * k + p]) }
            y[i * n + j] = Float(s)
        } }
        return y
    }
}
