#if arch(x86_64)
import QuantKernelsAVX2
#endif

/// Integer grids and row/group quantization.
///
/// Symmetric (signed) grid: levels −2^(b−1) … 2^(b−1)−1, `scale = c·absmax / (2^(b−1)−1)`, zero 0.
/// Asymmetric grid: levels 0 … 2^b−1 over `[c·min(x,0), c·max(x,0)]`, `scale = (hi−lo)/(2^b−1)`,
/// `zero = round(−lo/scale)`. `c` is the clip ratio in (0, 1]. `q = clamp(round(x/scale)+zero)`,
/// rounding half to even; dequantized `x̂ = (q − zero)·scale`. A group that is all zero gets
/// scale 1 so it never produces NaN or Inf.
public struct QuantGrid: Hashable, Sendable, CustomStringConvertible {
    public var bits: Int
    public var symmetric: Bool
    public var clip: Float
    /// Scales rounded to f16 before the codes are chosen, so they are stored exactly in formats
    /// with f16 scales (ggml's Q8_0 / Q4_0 / Q4_1 blocks).
    public var f16Scales: Bool

    public init(bits: Int, symmetric: Bool, clip: Float = 1, f16Scales: Bool = false) {
        self.bits = bits; self.symmetric = symmetric; self.clip = clip; self.f16Scales = f16Scales
    }

    /// `s` rounded to the nearest f16 when `f16Scales` (a scale that rounds to 0 or ∞ becomes 1).
    @inline(__always)
    func storable(_ s: Float) -> Float {
        guard f16Scales else { return s }
        let h = Float(Float16(s))
        return h > 0 && h.isFinite ? h : 1
    }

    public var qmin: Int32 { symmetric ? -(Int32(1) << (bits - 1)) : 0 }
    public var qmax: Int32 { symmetric ? (Int32(1) << (bits - 1)) - 1 : (Int32(1) << bits) - 1 }

    /// Scale and zero point for a group whose range is `[lo, hi]`.
    @inline(__always)
    public func parameters(min lo: Float, max hi: Float) -> (scale: Float, zero: Int32) {
        if symmetric {
            let absmax = Swift.max(-lo, hi) * clip
            let s = absmax / Float(qmax)
            return (storable(s > 0 && s.isFinite ? s : 1), 0)
        }
        let l = Swift.min(lo, 0) * clip, h = Swift.max(hi, 0) * clip
        var s = (h - l) / Float(qmax)
        if !(s > 0 && s.isFinite) { s = 1 }
        s = storable(s)
        let z = Int32((-l / s).rounded(.toNearestOrEven))
        return (s, Swift.min(Swift.max(z, 0), qmax))
    }

    @inline(__always)
    public func quantize(_ x: Float, scale: Float, zero: Int32) -> Int32 {
        let r = (x / scale).rounded(.toNearestOrEven)
        // Clamp in float first so huge values cannot overflow the integer conversion.
        let c = Swift.min(Swift.max(r, Float(qmin - zero)), Float(qmax - zero))
        // NaN has no code: callers give a group holding NaN a NaN scale (see `Quantizer.poison`);
        // here it must only not trap.
        return c.isNaN ? zero : Int32(c) + zero
    }

    @inline(__always)
    public func dequantize(_ q: Int32, scale: Float, zero: Int32) -> Float { Float(q - zero) * scale }

    public var description: String { "int\(bits) \(symmetric ? "sym" : "asym")" + (clip < 1 ? " clip \(clip)" : "") + (f16Scales ? " f16-scales" : "") }
}

/// Quantization of row-major matrices in groups of `groupSize` consecutive columns
/// (`groupSize == cols` is per row: per token for activations, per output channel for weights).
public enum Quantizer {
    /// Quantize-dequantize in place ("fake quantization"), one (scale, zero) per group.
    public static func fakeQuantize(_ x: UnsafeMutablePointer<Float>, rows: Int, cols: Int, groupSize: Int,
                                    grid: QuantGrid, threads: Int? = nil) {
        precondition(groupSize > 0 && cols % groupSize == 0, "group size must divide the row length")
        let simd = KernelDispatch.active != .portable
        Parallel.forEach(rows, threads: rows * cols >= 1 << 14 ? threads : 1) { r in
            fakeQuantizeRow(x + r * cols, cols: cols, groupSize: groupSize, grid: grid, simd: simd)
        }
    }

    /// One row of `fakeQuantize`.
    @inline(__always)
    static func fakeQuantizeRow(_ row: UnsafeMutablePointer<Float>, cols: Int, groupSize: Int, grid: QuantGrid, simd: Bool) {
        var g = 0
        while g < cols {
            let p = row + g
            let (lo, hi) = minMax(p, groupSize, simd: simd)
            if lo.isFinite && hi.isFinite {
                let (s, z) = grid.parameters(min: lo, max: hi)
                fakeQuantizeRun(p, groupSize, grid: grid, scale: s, zero: z, simd: simd)
            } else {
                poison(p, groupSize)
            }
            g += groupSize
        }
    }

    /// Scalar definition of `fakeQuantize` (the SIMD path must match it bit for bit).
    public static func fakeQuantizeReference(_ x: UnsafeMutablePointer<Float>, rows: Int, cols: Int, groupSize: Int,
                                             grid: QuantGrid) {
        precondition(groupSize > 0 && cols % groupSize == 0, "group size must divide the row length")
        for r in 0..<rows {
            var g = 0
            while g < cols {
                let p = x + r * cols + g
                var lo = Float.infinity, hi = -Float.infinity
                for i in 0..<groupSize { lo = min(lo, p[i]); hi = max(hi, p[i]) }
                if (0..<groupSize).contains(where: { !p[$0].isFinite }) {
                    for i in 0..<groupSize { p[i] = .nan }  // a non-finite input poisons its group
                    g += groupSize
                    continue
                }
                let (s, z) = grid.parameters(min: lo, max: hi)
                for i in 0..<groupSize { p[i] = grid.dequantize(grid.quantize(p[i], scale: s, zero: z), scale: s, zero: z) }
                g += groupSize
            }
        }
    }

    // MARK: SIMD building blocks
    //
    // Round-half-even without a rounding instruction: for |v| ≤ 2^22, `(v + 1.5·2^23)` lands in
    // [2^23, 2^24) where the float spacing is 1, so the addition itself rounds v to the nearest
    // integer (ties to even, the default FP mode) and the integer sits in the low mantissa bits.
    // Clamping before rounding equals clamping after it because the bounds are integers.

    static let magic: Float = 12582912          // 1.5·2^23
    static let magicBits: Int32 = 0x4B40_0000

    /// `clamp(x/scale, qmin−zero, qmax−zero) + magic`, eight lanes.
    @inline(__always)
    static func shifted(_ x: SIMD8<Float>, _ s: SIMD8<Float>, _ lo: SIMD8<Float>, _ hi: SIMD8<Float>) -> SIMD8<Float> {
        var v = x / s
        v.replace(with: lo, where: v .< lo)
        v.replace(with: hi, where: v .> hi)
        return v + SIMD8(repeating: magic)
    }

    /// In place `x ← (q(x) − zero)·scale` for `n` values.
    @inline(__always)
    static func fakeQuantizeRun(_ p: UnsafeMutablePointer<Float>, _ n: Int, grid: QuantGrid, scale: Float, zero: Int32,
                                simd: Bool = KernelDispatch.active != .portable) {
        let s = SIMD8(repeating: scale), lo = SIMD8(repeating: Float(grid.qmin - zero)), hi = SIMD8(repeating: Float(grid.qmax - zero))
        let raw = UnsafeMutableRawPointer(p)
        var i = 0
        #if arch(x86_64)
        if simd {
            i = AVX2Quant.fakeQuantize(p, n, scale: scale, lo: Float(grid.qmin - zero), hi: Float(grid.qmax - zero))
        }
        #endif
        while i + 8 <= n {
            let v = raw.loadUnaligned(fromByteOffset: 4 * i, as: SIMD8<Float>.self)
            let r = shifted(v, s, lo, hi) - SIMD8(repeating: magic)
            raw.storeBytes(of: r * s, toByteOffset: 4 * i, as: SIMD8<Float>.self)
            i += 8
        }
        while i < n { p[i] = grid.dequantize(grid.quantize(p[i], scale: scale, zero: zero), scale: scale, zero: zero); i += 1 }
    }

    /// Codes `q(x) + offset` of `n` values through `store(i, codes8)` / `storeOne(i, code)`.
    @inline(__always)
    static func codesRun(_ p: UnsafePointer<Float>, _ n: Int, grid: QuantGrid, scale: Float, zero: Int32, offset: Int32,
                         _ store: (Int, SIMD8<Int32>) -> Void, _ storeOne: (Int, Int32) -> Void, from start: Int = 0) {
        let s = SIMD8(repeating: scale), lo = SIMD8(repeating: Float(grid.qmin - zero)), hi = SIMD8(repeating: Float(grid.qmax - zero))
        let raw = UnsafeRawPointer(p)
        let bias = SIMD8<Int32>(repeating: zero &+ offset &- magicBits)
        var i = start
        while i + 8 <= n {
            let v = shifted(raw.loadUnaligned(fromByteOffset: 4 * i, as: SIMD8<Float>.self), s, lo, hi)
            store(i, unsafeBitCast(v, to: SIMD8<Int32>.self) &+ bias)
            i += 8
        }
        while i < n { storeOne(i, grid.quantize(p[i], scale: scale, zero: zero) &+ offset); i += 1 }
    }

    /// Quantizes to integers. Returns codes (row-major, as `Int8` for symmetric grids and as the
    /// raw unsigned level stored in an `Int8` bit pattern for asymmetric 8-bit grids — use
    /// `Int32(UInt8(bitPattern:))` to read those), and per-group scales and zeros
    /// (`rows × cols/groupSize`).
    public static func quantize(_ x: UnsafePointer<Float>, rows: Int, cols: Int, groupSize: Int,
                                grid: QuantGrid, threads: Int? = nil) -> (codes: [Int32], scales: [Float], zeros: [Int32]) {
        precondition(groupSize > 0 && cols % groupSize == 0, "group size must divide the row length")
        let groups = cols / groupSize
        var codes = [Int32](repeating: 0, count: rows * cols)
        var scales = [Float](repeating: 1, count: rows * groups)
        var zeros = [Int32](repeating: 0, count: rows * groups)
        codes.withUnsafeMutableBufferPointer { cb in scales.withUnsafeMutableBufferPointer { sb in zeros.withUnsafeMutableBufferPointer { zb in
            guard let c = cb.baseAddress, let sp = sb.baseAddress, let zp = zb.baseAddress else { return }
            Parallel.forEach(rows, threads: rows * cols >= 1 << 15 ? threads : 1) { r in
                for g in 0..<groups {
                    let p = x + r * cols + g * groupSize
                    let (lo, hi) = minMax(p, groupSize)
                    // A group holding NaN or ±inf gets scale NaN (codes 0): it dequantizes to NaN
                    // instead of finite values that would hide the fault.
                    guard lo.isFinite && hi.isFinite else { sp[r * groups + g] = .nan; zp[r * groups + g] = 0; continue }
                    let (s, z) = grid.parameters(min: lo, max: hi)
                    sp[r * groups + g] = s; zp[r * groups + g] = z
                    let out = c + r * cols + g * groupSize
                    var done = 0
                    #if arch(x86_64)
                    if KernelDispatch.active != .portable {
                        done = AVX2Quant.codes(p, groupSize, scale: s, lo: Float(grid.qmin - z), hi: Float(grid.qmax - z), add: z, into: out)
                    }
                    #endif
                    if done < groupSize { codesRun(p, groupSize, grid: grid, scale: s, zero: z, offset: 0,
                             { i, v in UnsafeMutableRawPointer(out + i).storeBytes(of: v, as: SIMD8<Int32>.self) },
                             { i, q in out[i] = q }, from: done) }
                }
            }
        } } }
        return (codes, scales, zeros)
    }

    /// Quantize-dequantize the whole matrix with a single (scale, zero) ("per tensor").
    public static func fakeQuantizeTensor(_ x: UnsafeMutablePointer<Float>, count: Int, grid: QuantGrid) {
        let (lo, hi) = minMax(x, count)
        guard lo.isFinite && hi.isFinite else { return poison(x, count) }
        let (s, z) = grid.parameters(min: lo, max: hi)
        fakeQuantizeRun(x, count, grid: grid, scale: s, zero: z)
    }

    /// Sets `n` values to NaN: the output of quantizing a group that held NaN or ±inf.
    static func poison(_ p: UnsafeMutablePointer<Float>, _ n: Int) {
        for i in 0..<n { p[i] = .nan }
    }

    /// (min, max) of `n` values, (0, 0) when empty; (NaN, NaN) when a value is NaN, and an infinite
    /// bound when a value is infinite. Eight-lane SIMD; equal to the scalar fold.
    /// Quantizing callers turn a non-finite bound into NaN output (`poison`), so a fault in the
    /// activations can never become finite codes and is seen by the next finiteness check.
    @inline(__always)
    public static func minMax(_ p: UnsafePointer<Float>, _ n: Int) -> (Float, Float) {
        minMax(p, n, simd: KernelDispatch.active != .portable)
    }

    @inline(__always)
    static func minMax(_ p: UnsafePointer<Float>, _ n: Int, simd: Bool) -> (Float, Float) {
        if n == 0 { return (0, 0) }
        #if arch(x86_64)
        if simd { return AVX2Quant.minMax(p, n) }
        #endif
        var lo = Float.infinity, hi = -Float.infinity
        var check: Float = 0  // Σ x·0: NaN exactly when some x is NaN or ±inf
        var i = 0
        if n >= 8 {
            var vlo = SIMD8<Float>(repeating: .infinity), vhi = SIMD8<Float>(repeating: -.infinity)
            var vcheck = SIMD8<Float>(repeating: 0)
            let raw = UnsafeRawPointer(p)
            while i + 8 <= n {
                let v = raw.loadUnaligned(fromByteOffset: 4 * i, as: SIMD8<Float>.self)
                vlo.replace(with: v, where: v .< vlo); vhi.replace(with: v, where: v .> vhi)
                vcheck += v * 0
                i += 8
            }
            for l in 0..<8 { lo = min(lo, vlo[l]); hi = max(hi, vhi[l]); check += vcheck[l] }
        }
        while i < n { lo = min(lo, p[i]); hi = max(hi, p[i]); check += p[i] * 0; i += 1 }
        return check.isNaN ? (.nan, .nan) : (lo, hi)
    }
}
