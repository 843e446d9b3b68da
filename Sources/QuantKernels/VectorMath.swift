#if arch(x86_64)
import QuantKernelsAVX2
import QuantKernelsAVX512
#endif
import QuantKernelsVector
import Foundation

/// Element-wise f32 math of the forward pass (exp, SiLU, softmax, RMSNorm, adds, the decoder's
/// attention products), 16 lanes at a time: `VectorLanes` (module QuantKernelsVector) compiled for
/// the active kernel path — AVX-512, AVX2 + FMA, or baseline (portable, also arm64). Each path
/// gives an element the same value wherever it sits in a row and on any thread count; paths may
/// differ in the last bit (FMA). `VectorMathReference` holds the plain scalar loops the tests
/// compare every path against.
public enum VectorMath {
    public typealias Lanes = SIMD16<Float>

    /// `eˣ` per lane (the portable build; every path runs the same polynomial).
    public static func exp(_ x: Lanes) -> Lanes { VectorLanes.exp(x) }

    /// `eˣ` for one value, through the same lane function.
    public static func exp(_ x: Float) -> Float { VectorLanes.exp(x) }

    /// `out[i] ← silu(gate[i])·up[i] = gate[i]/(1 + e^(−gate[i]))·up[i]` for `n` values (`out` may be `up`).
    public static func siluMultiply(gate: UnsafePointer<Float>, up: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, _ n: Int) {
        #if arch(x86_64)
        switch KernelDispatch.active {
        case .vnni: return AVX512Vector.siluMultiply(gate: gate, up: up, into: out, n)
        case .avx2: return AVX2Vector.siluMultiply(gate: gate, up: up, into: out, n)
        case .portable: break
        }
        #endif
        return VectorLanes.siluMultiply(gate: gate, up: up, into: out, n)
    }

    /// `out[i] ← a[i] + b[i]` for `n` values (`out` may be `a` or `b`).
    public static func add(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, _ n: Int) {
        #if arch(x86_64)
        switch KernelDispatch.active {
        case .vnni: return AVX512Vector.add(a, b, into: out, n)
        case .avx2: return AVX2Vector.add(a, b, into: out, n)
        case .portable: break
        }
        #endif
        return VectorLanes.add(a, b, into: out, n)
    }

    /// `s[j] = Σ_d q[d]·k_j[d]` for `j < count`, keys in blocks of 16 positions, each block
    /// `depth × 16` (dimension-major): one contiguous read per 16 dot products (the decoder's QKᵀ).
    public static func dotKeyBlocks(_ q: UnsafePointer<Float>, _ blocks: UnsafePointer<Float>, depth: Int, count: Int,
                                    into s: UnsafeMutablePointer<Float>) {
        #if arch(x86_64)
        switch KernelDispatch.active {
        case .vnni: return AVX512Vector.dotKeyBlocks(q, blocks, depth: depth, count: count, into: s)
        case .avx2: return AVX2Vector.dotKeyBlocks(q, blocks, depth: depth, count: count, into: s)
        case .portable: break
        }
        #endif
        return VectorLanes.dotKeyBlocks(q, blocks, depth: depth, count: count, into: s)
    }

    /// `out[c] = Σ_j w[j]·rows[j·ld + c]` for `c < width` (`width` a multiple of 16 runs in
    /// registers): the weighted sum of `count` rows (the decoder's P·V over cached values).
    public static func weightedRowSum(_ rows: UnsafePointer<Float>, ld: Int, weights w: UnsafePointer<Float>, count: Int, width n: Int, into out: UnsafeMutablePointer<Float>) {
        #if arch(x86_64)
        switch KernelDispatch.active {
        case .vnni: return AVX512Vector.weightedRowSum(rows, ld: ld, weights: w, count: count, width: n, into: out)
        case .avx2: return AVX2Vector.weightedRowSum(rows, ld: ld, weights: w, count: count, width: n, into: out)
        case .portable: break
        }
        #endif
        return VectorLanes.weightedRowSum(rows, ld: ld, weights: w, count: count, width: n, into: out)
    }

    /// RMSNorm of one row: `out = x / sqrt(mean(x²) + eps) · γ` (`n` values; Σx² in 16 f32 lanes).
    public static func rmsNorm(_ x: UnsafePointer<Float>, _ gamma: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, _ n: Int, eps: Float) {
        #if arch(x86_64)
        switch KernelDispatch.active {
        case .vnni: return AVX512Vector.rmsNorm(x, gamma, out, n, eps: eps)
        case .avx2: return AVX2Vector.rmsNorm(x, gamma, out, n, eps: eps)
        case .portable: break
        }
        #endif
        return VectorLanes.rmsNorm(x, gamma, out, n, eps: eps)
    }

    /// The largest of `n ≥ 1` values.
    public static func maximum(_ x: UnsafePointer<Float>, _ n: Int) -> Float {
        #if arch(x86_64)
        switch KernelDispatch.active {
        case .vnni: return AVX512Vector.maximum(x, n)
        case .avx2: return AVX2Vector.maximum(x, n)
        case .portable: break
        }
        #endif
        return VectorLanes.maximum(x, n)
    }

    /// The largest of `n ≥ 1` values, and whether all are finite (`Σ x·0` is NaN exactly when
    /// some x is NaN or ±inf).
    public static func maximumChecked(_ x: UnsafePointer<Float>, _ n: Int) -> (max: Float, finite: Bool) {
        #if arch(x86_64)
        switch KernelDispatch.active {
        case .vnni: return AVX512Vector.maximumChecked(x, n)
        case .avx2: return AVX2Vector.maximumChecked(x, n)
        case .portable: break
        }
        #endif
        return VectorLanes.maximumChecked(x, n)
    }

    /// In place: `x[i] ← e^(x[i]·scale − max)` for `n` values, where max is the largest `x·scale`;
    /// returns Σ (16 f32 lanes). Dividing by the sum gives softmax(scale·x).
    public static func exponentiateShifted(_ x: UnsafeMutablePointer<Float>, _ n: Int, scale: Float) -> Float {
        #if arch(x86_64)
        switch KernelDispatch.active {
        case .vnni: return AVX512Vector.exponentiateShifted(x, n, scale: scale)
        case .avx2: return AVX2Vector.exponentiateShifted(x, n, scale: scale)
        case .portable: break
        }
        #endif
        return VectorLanes.exponentiateShifted(x, n, scale: scale)
    }

    /// `Σ e^(x[i] − shift)` over `n` values, `shift` ≥ every `x[i]` (the row's max): 16 f32 lanes over blocks of 1,024 values, each block's
    /// lanes added into f64 (a per-vector f32→f64 conversion compiles to per-lane code).
    public static func sumExp(_ x: UnsafePointer<Float>, _ n: Int, shift: Float) -> Double {
        #if arch(x86_64)
        switch KernelDispatch.active {
        case .vnni: return AVX512Vector.sumExp(x, n, shift: shift)
        case .avx2: return AVX2Vector.sumExp(x, n, shift: shift)
        case .portable: break
        }
        #endif
        return VectorLanes.sumExp(x, n, shift: shift)
    }

    /// `y[i] = x[i] − c` for `n` values.
    public static func subtract(_ x: UnsafePointer<Float>, _ c: Float, into y: UnsafeMutablePointer<Float>, _ n: Int) {
        #if arch(x86_64)
        switch KernelDispatch.active {
        case .vnni: return AVX512Vector.subtract(x, c, into: y, n)
        case .avx2: return AVX2Vector.subtract(x, c, into: y, n)
        case .portable: break
        }
        #endif
        return VectorLanes.subtract(x, c, into: y, n)
    }

    /// `y[i] *= c` for `n` values.
    public static func scale(_ y: UnsafeMutablePointer<Float>, _ n: Int, by c: Float) {
        #if arch(x86_64)
        switch KernelDispatch.active {
        case .vnni: return AVX512Vector.scale(y, n, by: c)
        case .avx2: return AVX2Vector.scale(y, n, by: c)
        case .portable: break
        }
        #endif
        return VectorLanes.scale(y, n, by: c)
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

    /// `s[j] = Σ_d q[d]·keys[j][d]` (keys: count × depth, row-major).
    public static func dots(_ q: [Float], keys: [Float]) -> [Float] {
        (0..<(keys.count / q.count)).map { j in Float(q.indices.reduce(0.0) { $0 + Double(q[$1]) * Double(keys[j * q.count + $1]) }) }
    }

    /// `out[c] = Σ_j w[j]·rows[j][c]` (rows: count × width, row-major).
    public static func weightedRowSum(_ rows: [Float], weights w: [Float], width: Int) -> [Float] {
        (0..<width).map { c in Float(w.indices.reduce(0.0) { $0 + Double(w[$1]) * Double(rows[$1 * width + c]) }) }
    }

    public static func softmax(_ x: [Float], scale: Float) -> [Float] {
        let mx = x.map { $0 * scale }.max()!
        let e = x.map { Foundation.exp(Double($0 * scale - mx)) }
        let s = e.reduce(0, +)
        return e.map { Float($0 / s) }
    }
}
