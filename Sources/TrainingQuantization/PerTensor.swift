import QuantKernels

/// Per-tensor symmetric quantization on the signed `bits`-bit grid [−2^(b−1), 2^(b−1)−1]:
/// `q = clamp(round(x/step), qmin, qmax)` (round half to even), `x̂ = q·step`.
///
/// Two ways to choose `step`: round-to-nearest from the absolute maximum (`absmaxStep`, never
/// clips), or a learned step size (LSQ, Esser et al.): initialised to `2·mean|x|/√qmax`
/// (`lsqInitialStep`; 4 bits: `2·mean|x|/√7`) and trained with `lsqBackward`.
public enum PerTensor {
    public static func qmin(_ bits: Int) -> Int { -(1 << (bits - 1)) }
    public static func qmax(_ bits: Int) -> Int { (1 << (bits - 1)) - 1 }

    /// Codes of `x` (row-major rows × cols) with `step` > 0.
    public static func quantize(_ x: [Float], rows: Int, cols: Int, step: Float, bits: Int, threads: Int? = nil) -> IntCodes {
        precondition(x.count == rows * cols && step > 0)
        var codes = [Int8](repeating: 0, count: x.count)
        let lo = Float(qmin(bits)), hi = Float(qmax(bits)), inv = 1 / step
        let n = x.count
        let chunks = n >= 1 << 16 ? 64 : 1
        x.withUnsafeBufferPointer { xb in codes.withUnsafeMutableBufferPointer { cb in
            let xp = xb.baseAddress!, cp = cb.baseAddress!
            Parallel.forEach(chunks, threads: chunks == 1 ? 1 : threads) { c in
                for i in (c * n / chunks)..<((c + 1) * n / chunks) {
                    // Multiplying by 1/step (not dividing) is the quantizer's definition here; the f64
                    // reference in the tests does the same.
                    let v = xp[i] * inv
                    let b = (v > lo ? (v < hi ? v : hi) : lo) + 12_582_912
                    cp[i] = Int8(truncatingIfNeeded: Int32(bitPattern: b.bitPattern) &- 0x4B40_0000)
                }
            }
        } }
        return IntCodes(rows: rows, cols: cols, bits: bits, codes: codes, scale: step)
    }

    /// `round(clamp(v, lo, hi))`, rounding half to even, for integer bounds |lo|, |hi| < 2²²: adding
    /// and subtracting 1.5·2²³ rounds in the FPU's default mode (no libm call, vectorizes). NaN → lo.
    @inline(__always) public static func clampRound(_ v: Float, _ lo: Float, _ hi: Float) -> Float {
        let c = v > lo ? (v < hi ? v : hi) : lo
        return (c + 12_582_912) - 12_582_912
    }

    /// max |x| (SIMD; NaN is ignored).
    public static func absMax(_ x: [Float]) -> Float {
        x.withUnsafeBufferPointer { b in
            let p = b.baseAddress!, n = b.count
            // `replace(with:where:)`, not `pointwiseMax`/`max` (those compile to slow generic code here).
            var acc = SIMD8<Float>(repeating: 0)
            var i = 0
            while i + 8 <= n {
                let v = UnsafeRawPointer(p + i).loadUnaligned(as: SIMD8<Float>.self)
                let a = v.replacing(with: -v, where: v .< 0)
                acc.replace(with: a, where: a .> acc)
                i += 8
            }
            var m: Float = 0
            for l in 0..<8 where acc[l] > m { m = acc[l] }
            while i < n { let a = abs(p[i]); if a > m { m = a }; i += 1 }
            return m
        }
    }

    /// `max|x| / qmax` (1 for an all-zero tensor, so it never divides by zero).
    public static func absmaxStep(_ x: [Float], bits: Int) -> Float {
        let m = absMax(x)
        let s = m / Float(qmax(bits))
        return s > 0 && s.isFinite ? s : 1
    }

    /// LSQ's initial step: `2·mean|x| / √qmax + 1e-10` (the released code adds 1e-10).
    public static func lsqInitialStep(_ x: [Float], bits: Int) -> Float {
        var s = 0.0
        for v in x { s += Double(abs(v)) }
        let mean = x.isEmpty ? 0 : s / Double(x.count)
        return Float(2 * mean / Double(qmax(bits)).squareRoot() + 1e-10)
    }

    /// LSQ backward for `x̂ = step·clamp(round(x/step))` with the straight-through estimator:
    /// with `v = x/step`, inside the grid (qmin ≤ v ≤ qmax) `∂x̂/∂x = 1`, `∂x̂/∂step = round(v) − v`;
    /// outside `∂x̂/∂x = 0`, `∂x̂/∂step = qmin` or `qmax`. The step gradient is scaled by LSQ's
    /// `1/√(numel·qmax)`. `upstream` (∂L/∂x̂, same shape as x) becomes ∂L/∂x in place; returns ∂L/∂step.
    public static func lsqBackward(_ x: [Float], step: Float, bits: Int, upstream: inout [Float]) -> Float {
        precondition(x.count == upstream.count)
        let lo = Float(qmin(bits)), hi = Float(qmax(bits)), inv = 1 / step
        let n = x.count
        let chunks = n >= 1 << 16 ? 64 : 1
        var partial = [Double](repeating: 0, count: chunks)
        x.withUnsafeBufferPointer { xb in upstream.withUnsafeMutableBufferPointer { gb in partial.withUnsafeMutableBufferPointer { pb in
            let xp = xb.baseAddress!, gp = gb.baseAddress!, pp = pb.baseAddress!
            Parallel.forEach(chunks, threads: chunks == 1 ? 1 : nil) { c in
                var acc = 0.0
                for i in (c * n / chunks)..<((c + 1) * n / chunks) {
                    let v = xp[i] * inv, g = gp[i]
                    let d: Float
                    if v < lo { d = lo; gp[i] = 0 } else if v > hi { d = hi; gp[i] = 0 } else { d = PerTensor.clampRound(v, lo, hi) - v }
                    acc += Double(d) * Double(g)
                }
                pp[c] = acc
            }
        } } }
        // Chunks are fixed (not per thread), summed in order: same bits on any thread count.
        let total = partial.reduce(0, +)
        return Float(total / (Double(n) * Double(qmax(bits))).squareRoot())
    }
}
