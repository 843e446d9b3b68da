/// The element-wise f32 kernels behind `VectorMath` (module QuantKernels), written once on 16-lane
/// SIMD vectors and inlined into each ISA target: QuantKernelsAVX2 (haswell), QuantKernelsAVX512
/// (cascadelake) and QuantKernels itself (baseline, the portable path) each compile their own copy
/// (`@inline(__always)`, so no shared symbol is emitted that the linker could merge across ISAs).
///
/// Every kernel runs a scalar tail through the same lane function, so an element's value depends
/// only on its inputs — not on its position, the row length or the thread count.
///
/// `exp` is a Cephes-style `expf`: `x = n·ln2 + r` with |r| ≤ ln2/2, `eʳ` by a degree-6
/// polynomial, `2ⁿ` by building the exponent bits; within 2 ulp of `Foundation.exp` on
/// [-87.3, 88.7], 0 below, +inf above.
public enum VectorLanes {
    public typealias Lanes = SIMD16<Float>
    @inlinable public static var width: Int { 16 }

    // MARK: exp

    /// `eˣ` per lane. Written with the operations that compile to plain vector instructions on
    /// every target (`replacing(with:where:)` for clamps, the 1.5·2²³ trick for rounding, integer
    /// adds and shifts for 2ⁿ); `pointwiseMin`, `rounded` and float-to-int conversions of SIMD
    /// types compile to per-lane code on baseline x86-64 (measured 15–35 ns per value against 1).
    @inlinable @inline(__always)
    public static func exp(_ x: Lanes) -> Lanes {
        let (p, n) = expParts(x.replacing(with: hiClamp, where: x .> hiClamp))
        // 2ⁿ = 2^(n/2)·2^(n − n/2), each a valid exponent field for n ∈ [-126, 128].
        let half = n &>> 1
        let s1 = unsafeBitCast((half &+ 127) &<< 23, to: Lanes.self)
        let s2 = unsafeBitCast((n &- half &+ 127) &<< 23, to: Lanes.self)
        let e = (p * s1 * s2).replacing(with: 0, where: x .< loClamp)   // NaN stays NaN through p
        return e.replacing(with: .infinity, where: x .> hiClamp)
    }

    /// `eˣ` for lanes that are ≤ 0 or NaN (a softmax's shifted scores): the same bits as `exp`
    /// without what only positive arguments need — the upper clamp, +inf, and 2ⁿ in two factors
    /// (here n ≥ −126, so 2ⁿ is one normal float and `p·2ⁿ` rounds once, as `p·2^(n/2)·2^(n−n/2)` does).
    @inlinable @inline(__always)
    public static func expNonPositive(_ x: Lanes) -> Lanes {
        let (p, n) = expParts(x)
        return (p * unsafeBitCast((n &+ 127) &<< 23, to: Lanes.self)).replacing(with: 0, where: x .< loClamp)
    }

    @inlinable static var loClamp: Float { -87.33654 }
    @inlinable static var hiClamp: Float { 88.72283 }

    /// `x = n·ln2 + r` with |r| ≤ ln2/2, for `x` clamped below at `loClamp` (callers clamp above):
    /// `eʳ` by the degree-6 polynomial, and n as an integer.
    @inlinable @inline(__always)
    static func expParts(_ x: Lanes) -> (p: Lanes, n: SIMD16<Int32>) {
        let c = x.replacing(with: loClamp, where: x .< loClamp)
        // n = round(c·log₂e): adding 1.5·2²³ leaves n in the low mantissa bits of t.
        let magic: Float = 12_582_912
        let t = c * 1.442_695_04 + magic
        let n = t - magic
        // r = c − n·ln2, ln2 split in two so n·ln2_hi is exact.
        var r = c - n * 0.693_359_375
        r = r - n * -2.121_944_4e-4
        var p = Lanes(repeating: 1.987_569_15e-4)
        p = p * r + 1.398_199_95e-3
        p = p * r + 8.333_451_9e-3
        p = p * r + 4.166_579_59e-2
        p = p * r + 1.666_666_55e-1
        p = p * r + 5.000_000_12e-1
        p = p * (r * r) + r + 1
        return (p, unsafeBitCast(t, to: SIMD16<Int32>.self) &- 0x4B40_0000)
    }

    /// `eˣ` for one value, through the same lane function.
    @inlinable @inline(__always)
    public static func exp(_ x: Float) -> Float { exp(Lanes(repeating: x))[0] }

    // MARK: row kernels

    @inlinable @inline(__always)
    public static func load(_ p: UnsafePointer<Float>) -> Lanes { UnsafeRawPointer(p).loadUnaligned(as: Lanes.self) }

    @inlinable @inline(__always)
    public static func store(_ v: Lanes, _ p: UnsafeMutablePointer<Float>) { UnsafeMutableRawPointer(p).storeBytes(of: v, as: Lanes.self) }

    /// Loads `count < 16` values, the other lanes `fill` (one copy into a vector on the stack:
    /// lane-by-lane inserts cost tens of nanoseconds).
    @inlinable @inline(__always)
    public static func loadPartial(_ p: UnsafePointer<Float>, _ count: Int, fill: Float = 0) -> Lanes {
        var v = Lanes(repeating: fill)
        withUnsafeMutableBytes(of: &v) { $0.baseAddress!.copyMemory(from: p, byteCount: count * 4) }
        return v
    }

    @inlinable @inline(__always)
    public static func storePartial(_ v: Lanes, _ p: UnsafeMutablePointer<Float>, _ count: Int) {
        withUnsafeBytes(of: v) { UnsafeMutableRawPointer(p).copyMemory(from: $0.baseAddress!, byteCount: count * 4) }
    }

    /// Lane indices 0…15.
    @inlinable @inline(__always)
    public static var laneIndex: Lanes { Lanes(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15) }

    /// Applies `f` to `n` values from `src` into `dst` (may alias).
    @inlinable @inline(__always)
    public static func map(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, _ n: Int, _ f: (Lanes) -> Lanes) {
        var i = 0
        while i + width <= n { store(f(load(src + i)), dst + i); i += width }
        if i < n { storePartial(f(loadPartial(src + i, n - i)), dst + i, n - i) }
    }

    /// `out[i] ← silu(gate[i])·up[i] = gate[i]/(1 + e^(−gate[i]))·up[i]` for `n` values (`out` may be `up`).
    @inlinable @inline(__always)
    public static func siluMultiply(gate: UnsafePointer<Float>, up: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, _ n: Int) {
        @inline(__always) func f(_ g: Lanes, _ u: Lanes) -> Lanes { g / (1 + exp(-g)) * u }
        var i = 0
        while i + width <= n { store(f(load(gate + i), load(up + i)), out + i); i += width }
        if i < n { storePartial(f(loadPartial(gate + i, n - i), loadPartial(up + i, n - i)), out + i, n - i) }
    }

    /// `out[i] ← a[i] + b[i]` for `n` values (`out` may be `a` or `b`).
    @inlinable @inline(__always)
    public static func add(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, _ n: Int) {
        var i = 0
        while i + width <= n { store(load(a + i) + load(b + i), out + i); i += width }
        while i < n { out[i] = a[i] + b[i]; i += 1 }
    }

    /// `s[j] = Σ_d q[d]·k_j[d]` for `j < count`: one query against `count` keys stored in blocks of
    /// 16 positions, each block `depth × 16` (dimension-major: `blocks[(j/16)·depth·16 + d·16 + j%16]`).
    /// Every block is one contiguous read and gives 16 dot products with no horizontal sums (the
    /// decoder's QKᵀ over its key cache); four blocks at a time.
    @inlinable @inline(__always)
    public static func dotKeyBlocks(_ q: UnsafePointer<Float>, _ blocks: UnsafePointer<Float>, depth: Int, count: Int,
                                    into s: UnsafeMutablePointer<Float>) {
        let stride = depth * width
        var j = 0
        while j + 4 * width <= count {
            let b = blocks + (j / width) * stride
            var a0 = Lanes(), a1 = Lanes(), a2 = Lanes(), a3 = Lanes()
            for d in 0..<depth {
                let qd = Lanes(repeating: q[d])
                a0 += qd * load(b + d * width); a1 += qd * load(b + stride + d * width)
                a2 += qd * load(b + 2 * stride + d * width); a3 += qd * load(b + 3 * stride + d * width)
            }
            store(a0, s + j); store(a1, s + j + 16); store(a2, s + j + 32); store(a3, s + j + 48)
            j += 4 * width
        }
        while j < count {
            let b = blocks + (j / width) * stride, n = min(width, count - j)
            var a = Lanes()
            for d in 0..<depth { a += Lanes(repeating: q[d]) * load(b + d * width) }
            if n == width { store(a, s + j) } else { storePartial(a, s + j, n) }
            j += n
        }
    }

    /// `out[c] = Σ_j w[j]·rows[j·ld + c]` for `c < width` (`width` a multiple of 16 runs in
    /// registers): the weighted sum of `count` rows (the decoder's P·V over cached values).
    @inlinable @inline(__always)
    public static func weightedRowSum(_ rows: UnsafePointer<Float>, ld: Int, weights w: UnsafePointer<Float>, count: Int,
                                      width n: Int, into out: UnsafeMutablePointer<Float>) {
        var c = 0
        // 128 columns at a time (eight accumulators): each row's 512 contiguous bytes in one
        // sweep, so reading a wide matrix (a 128×128 rotation block) streams. Every output is
        // the same sum in the same order as in the narrower loops below.
        while c + 8 * width <= n {
            var a0 = Lanes(), a1 = Lanes(), a2 = Lanes(), a3 = Lanes(), a4 = Lanes(), a5 = Lanes(), a6 = Lanes(), a7 = Lanes()
            for j in 0..<count {
                let r = rows + j * ld + c, wj = Lanes(repeating: w[j])
                a0 += wj * load(r); a1 += wj * load(r + 16); a2 += wj * load(r + 32); a3 += wj * load(r + 48)
                a4 += wj * load(r + 64); a5 += wj * load(r + 80); a6 += wj * load(r + 96); a7 += wj * load(r + 112)
            }
            store(a0, out + c); store(a1, out + c + 16); store(a2, out + c + 32); store(a3, out + c + 48)
            store(a4, out + c + 64); store(a5, out + c + 80); store(a6, out + c + 96); store(a7, out + c + 112)
            c += 8 * width
        }
        while c + 4 * width <= n {
            var a0 = Lanes(), a1 = Lanes(), a2 = Lanes(), a3 = Lanes()
            for j in 0..<count {
                let r = rows + j * ld + c, wj = Lanes(repeating: w[j])
                a0 += wj * load(r); a1 += wj * load(r + 16); a2 += wj * load(r + 32); a3 += wj * load(r + 48)
            }
            store(a0, out + c); store(a1, out + c + 16); store(a2, out + c + 32); store(a3, out + c + 48)
            c += 4 * width
        }
        while c < n {
            let m = min(width, n - c)
            var a = Lanes()
            for j in 0..<count { a += Lanes(repeating: w[j]) * (m == width ? load(rows + j * ld + c) : loadPartial(rows + j * ld + c, m)) }
            if m == width { store(a, out + c) } else { storePartial(a, out + c, m) }
            c += m
        }
    }

    /// RMSNorm of one row: `out = x / sqrt(mean(x²) + eps) · γ` (`n` values; Σx² in 16 f32 lanes).
    @inlinable @inline(__always)
    public static func rmsNorm(_ x: UnsafePointer<Float>, _ gamma: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>,
                               _ n: Int, eps: Float) {
        var acc = Lanes(repeating: 0)
        var i = 0
        while i + width <= n { let v = load(x + i); acc += v * v; i += width }
        if i < n { let v = loadPartial(x + i, n - i); acc += v * v }
        let inv = 1 / (acc.sum() / Float(n) + eps).squareRoot()
        i = 0
        while i + width <= n { store(load(x + i) * inv * load(gamma + i), out + i); i += width }
        while i < n { out[i] = x[i] * inv * gamma[i]; i += 1 }
    }

    /// Lane-wise max (`pointwiseMax` compiles to per-lane code on baseline x86-64).
    @inlinable @inline(__always)
    public static func lanesMax(_ a: Lanes, _ b: Lanes) -> Lanes { a.replacing(with: b, where: b .> a) }

    /// The largest lane of `v`, by halving (16 → 8 → 4 → 2 → 1 lanes with `lanesMax`): a handful of
    /// shuffles, where `SIMD16.max()` compiles to a lane-by-lane loop through the stack (as long as
    /// exponentiating a row of 256 scores). For lanes without NaN (the rows' running maxima it
    /// reduces never hold NaN: `lanesMax` from −inf skips them) it is the value `max()` gives.
    @inlinable @inline(__always)
    public static func horizontalMax(_ v: Lanes) -> Float {
        let m8 = v.lowHalf.replacing(with: v.highHalf, where: v.highHalf .> v.lowHalf)
        let m4 = m8.lowHalf.replacing(with: m8.highHalf, where: m8.highHalf .> m8.lowHalf)
        let m2 = m4.lowHalf.replacing(with: m4.highHalf, where: m4.highHalf .> m4.lowHalf)
        return m2[1] > m2[0] ? m2[1] : m2[0]
    }

    /// The largest of `n ≥ 1` values.
    @inlinable @inline(__always)
    public static func maximum(_ x: UnsafePointer<Float>, _ n: Int) -> Float {
        var m = Lanes(repeating: -.infinity)
        var i = 0
        while i + width <= n { m = lanesMax(m, load(x + i)); i += width }
        if i < n { m = lanesMax(m, loadPartial(x + i, n - i, fill: -.infinity)) }
        return horizontalMax(m)
    }

    /// The largest of `n ≥ 1` values, and whether all are finite (`Σ x·0` is NaN exactly when
    /// some x is NaN or ±inf).
    @inlinable @inline(__always)
    public static func maximumChecked(_ x: UnsafePointer<Float>, _ n: Int) -> (max: Float, finite: Bool) {
        var m = Lanes(repeating: -.infinity), check = Lanes(repeating: 0)
        var i = 0
        while i + width <= n { let v = load(x + i); m = lanesMax(m, v); check += v * 0; i += width }
        if i < n { let v = loadPartial(x + i, n - i, fill: -.infinity); m = lanesMax(m, v); check += loadPartial(x + i, n - i) * 0 }
        return (horizontalMax(m), !check.sum().isNaN)
    }

    /// In place: `x[i] ← e^(x[i]·scale − max)` for `n` values, where max is the largest `x·scale`;
    /// returns Σ (16 f32 lanes). Dividing by the sum gives softmax(scale·x).
    @inlinable @inline(__always)
    public static func exponentiateShifted(_ x: UnsafeMutablePointer<Float>, _ n: Int, scale: Float) -> Float {
        let mx = maximum(x, n) * scale
        var acc = Lanes(repeating: 0)
        var i = 0
        // x·scale ≤ max·scale (rounding is monotonic), so every argument is ≤ 0 (or NaN).
        while i + width <= n { let e = expNonPositive(load(x + i) * scale - mx); store(e, x + i); acc += e; i += width }
        if i < n {
            let e = expNonPositive(loadPartial(x + i, n - i) * scale - mx).replacing(with: 0, where: laneIndex .>= Lanes(repeating: Float(n - i)))
            storePartial(e, x + i, n - i); acc += e
        }
        return acc.sum()
    }

    /// `Σ e^(x[i] − shift)` over `n` values, `shift` ≥ every `x[i]` (the row's max): 16 f32 lanes over blocks of 1,024 values, each block's
    /// lanes added into f64 (a per-vector f32→f64 conversion compiles to per-lane code).
    @inlinable @inline(__always)
    public static func sumExp(_ x: UnsafePointer<Float>, _ n: Int, shift: Float) -> Double {
        var total = 0.0
        var i = 0
        while i < n {
            let end = min(n, i + 1024)
            var acc = Lanes(repeating: 0)
            while i + width <= end { acc += expNonPositive(load(x + i) - shift); i += width }
            if i < end {
                acc += expNonPositive(loadPartial(x + i, end - i) - shift).replacing(with: 0, where: laneIndex .>= Lanes(repeating: Float(end - i)))
                i = end
            }
            for l in 0..<width { total += Double(acc[l]) }
        }
        return total
    }

    /// `y[i] = x[i] − c` for `n` values.
    @inlinable @inline(__always)
    public static func subtract(_ x: UnsafePointer<Float>, _ c: Float, into y: UnsafeMutablePointer<Float>, _ n: Int) {
        map(x, y, n) { $0 - c }
    }

    /// `y[i] *= c` for `n` values.
    @inlinable @inline(__always)
    public static func scale(_ y: UnsafeMutablePointer<Float>, _ n: Int, by c: Float) {
        map(y, y, n) { $0 * c }
    }
}
