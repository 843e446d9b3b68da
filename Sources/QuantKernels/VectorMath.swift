import Foundation

/// Element-wise f32 math of the forward pass (exp, SiLU, softmax, RMSNorm, adds), 16 lanes at a
/// time with a scalar tail that runs the same lane function, so every element's value depends only
/// on its inputs — not on its position, the row length or the thread count.
///
/// `VectorMath.exp` is a Cephes-style `expf`: `x = n·ln2 + r` with |r| ≤ ln2/2, `eʳ` by a degree-6
/// polynomial, `2ⁿ` by building the exponent bits; within 2 ulp of `Foundation.exp` on
/// [-87.3, 88.7], 0 below, +inf above. `VectorMathReference` holds the plain scalar loops the
/// tests compare against.
public enum VectorMath {
    public typealias Lanes = SIMD16<Float>
    public static let width = 16

    // MARK: exp

    /// `eˣ` per lane. Written with the operations that compile to plain vector instructions on
    /// every target (`replacing(with:where:)` for clamps, the 1.5·2²³ trick for rounding, integer
    /// adds and shifts for 2ⁿ); `pointwiseMin`, `rounded` and float-to-int conversions of SIMD
    /// types compile to per-lane code on baseline x86-64 (measured 15–35 ns per value against 1).
    @inline(__always)
    public static func exp(_ x: Lanes) -> Lanes {
        let lo: Float = -87.33654, hi: Float = 88.72283
        var c = x.replacing(with: lo, where: x .< lo)
        c = c.replacing(with: hi, where: c .> hi)
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
        // 2ⁿ = 2^(n/2)·2^(n − n/2), each a valid exponent field for n ∈ [-126, 128].
        let ni = unsafeBitCast(t, to: SIMD16<Int32>.self) &- 0x4B40_0000
        let half = ni &>> 1
        let s1 = unsafeBitCast((half &+ 127) &<< 23, to: Lanes.self)
        let s2 = unsafeBitCast((ni &- half &+ 127) &<< 23, to: Lanes.self)
        let e = (p * s1 * s2).replacing(with: 0, where: x .< lo)   // NaN stays NaN through p
        return e.replacing(with: .infinity, where: x .> hi)
    }

    /// `eˣ` for one value, through the same lane function.
    @inline(__always)
    public static func exp(_ x: Float) -> Float { exp(Lanes(repeating: x))[0] }

    // MARK: row kernels

    @inline(__always)
    static func load(_ p: UnsafePointer<Float>) -> Lanes { UnsafeRawPointer(p).loadUnaligned(as: Lanes.self) }

    @inline(__always)
    static func store(_ v: Lanes, _ p: UnsafeMutablePointer<Float>) { UnsafeMutableRawPointer(p).storeBytes(of: v, as: Lanes.self) }

    /// Loads `count < 16` values, the other lanes `fill`.
    @inline(__always)
    static func loadPartial(_ p: UnsafePointer<Float>, _ count: Int, fill: Float = 0) -> Lanes {
        var v = Lanes(repeating: fill)
        for i in 0..<count { v[i] = p[i] }
        return v
    }

    @inline(__always)
    static func storePartial(_ v: Lanes, _ p: UnsafeMutablePointer<Float>, _ count: Int) {
        for i in 0..<count { p[i] = v[i] }
    }

    /// Applies `f` to `n` values from `src` into `dst` (may alias).
    @inline(__always)
    static func map(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, _ n: Int, _ f: (Lanes) -> Lanes) {
        var i = 0
        while i + width <= n { store(f(load(src + i)), dst + i); i += width }
        if i < n { storePartial(f(loadPartial(src + i, n - i)), dst + i, n - i) }
    }

    /// `up[i] ← silu(gate[i])·up[i] = gate[i]/(1 + e^(−gate[i]))·up[i]` for `n` values.
    public static func siluMultiply(gate: UnsafePointer<Float>, up: UnsafeMutablePointer<Float>, _ n: Int) {
        @inline(__always) func f(_ g: Lanes, _ u: Lanes) -> Lanes { g / (1 + exp(-g)) * u }
        var i = 0
        while i + width <= n { store(f(load(gate + i), load(up + i)), up + i); i += width }
        if i < n { storePartial(f(loadPartial(gate + i, n - i), loadPartial(up + i, n - i)), up + i, n - i) }
    }

    /// `y[i] += x[i]` for `n` values.
    public static func add(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ n: Int) {
        var i = 0
        while i + width <= n { store(load(y + i) + load(x + i), y + i); i += width }
        while i < n { y[i] += x[i]; i += 1 }
    }

    /// `y[i] += a·x[i]` for `n` values.
    public static func axpy(_ y: UnsafeMutablePointer<Float>, _ a: Float, _ x: UnsafePointer<Float>, _ n: Int) {
        var i = 0
        while i + width <= n { store(load(y + i) + a * load(x + i), y + i); i += width }
        while i < n { y[i] += a * x[i]; i += 1 }
    }

    /// RMSNorm of one row: `out = x / sqrt(mean(x²) + eps) · γ` (`n` values; Σx² in 16 f32 lanes).
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
    @inline(__always)
    static func lanesMax(_ a: Lanes, _ b: Lanes) -> Lanes { a.replacing(with: b, where: b .> a) }

    /// The largest of `n ≥ 1` values.
    public static func maximum(_ x: UnsafePointer<Float>, _ n: Int) -> Float {
        var m = Lanes(repeating: -.infinity)
        var i = 0
        while i + width <= n { m = lanesMax(m, load(x + i)); i += width }
        if i < n { m = lanesMax(m, loadPartial(x + i, n - i, fill: -.infinity)) }
        return m.max()
    }

    /// The largest of `n ≥ 1` values, and whether all are finite (`Σ x·0` is NaN exactly when
    /// some x is NaN or ±inf).
    public static func maximumChecked(_ x: UnsafePointer<Float>, _ n: Int) -> (max: Float, finite: Bool) {
        var m = Lanes(repeating: -.infinity), check = Lanes(repeating: 0)
        var i = 0
        while i + width <= n { let v = load(x + i); m = lanesMax(m, v); check += v * 0; i += width }
        if i < n { let v = loadPartial(x + i, n - i, fill: -.infinity); m = lanesMax(m, v); check += loadPartial(x + i, n - i) * 0 }
        return (m.max(), !check.sum().isNaN)
    }

    /// In place: `x[i] ← e^(x[i]·scale − max)` for `n` values, where max is the largest `x·scale`;
    /// returns Σ (16 f32 lanes). Dividing by the sum gives softmax(scale·x).
    public static func exponentiateShifted(_ x: UnsafeMutablePointer<Float>, _ n: Int, scale: Float) -> Float {
        let mx = maximum(x, n) * scale
        var acc = Lanes(repeating: 0)
        var i = 0
        while i + width <= n { let e = exp(load(x + i) * scale - mx); store(e, x + i); acc += e; i += width }
        if i < n {
            var e = exp(loadPartial(x + i, n - i) * scale - mx)
            for j in (n - i)..<width { e[j] = 0 }
            storePartial(e, x + i, n - i); acc += e
        }
        return acc.sum()
    }

    /// `Σ e^(x[i] − shift)` over `n` values, accumulated in 16 f64 lanes.
    public static func sumExp(_ x: UnsafePointer<Float>, _ n: Int, shift: Float) -> Double {
        var acc = SIMD16<Double>(repeating: 0)
        var i = 0
        while i + width <= n { acc += SIMD16<Double>(exp(load(x + i) - shift)); i += width }
        var s = acc.sum()
        while i < n { s += Double(exp(x[i] - shift)); i += 1 }
        return s
    }

    /// `y[i] = x[i] − c` for `n` values.
    public static func subtract(_ x: UnsafePointer<Float>, _ c: Float, into y: UnsafeMutablePointer<Float>, _ n: Int) {
        map(x, y, n) { $0 - c }
    }

    /// `y[i] *= c` for `n` values.
    public static func scale(_ y: UnsafeMutablePointer<Float>, _ n: Int, by c: Float) {
        map(y, y, n) { $0 * c }
    }
}

/// Plain scalar loops for `VectorMath` (llm.c style); the tests compare the lanes against these.
public enum VectorMathReference {
    public static func silu(_ g: Float) -> Float { g / (1 + Foundation.exp(-g)) }

    public static func rmsNorm(_ x: [Float], _ gamma: [Float], eps: Float) -> [Float] {
        var ss = 0.0
        for v in x { ss += Double(v) * Double(v) }
        let inv = Float(1 / (ss / Double(x.count) + Double(eps)).squareRoot())
        return zip(x, gamma).map { $0 * inv * $1 }
    }

    public static func softmax(_ x: [Float], scale: Float) -> [Float] {
        let mx = x.map { $0 * scale }.max()!
        let e = x.map { Foundation.exp(Double($0 * scale - mx)) }
        let s = e.reduce(0, +)
        return e.map { Float($0 / s) }
    }
}
