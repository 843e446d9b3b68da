// AVX2 quantization loops (compiled with -target-cpu haswell). Bit-identical to QuantGrid's scalar
// definition: `q = clamp(round_half_even(x/scale), qmin−zero, qmax−zero) + zero`.
#if arch(x86_64)
import _Builtin_intrinsics.intel

public enum AVX2Quant {
    /// (min, max) over `n` ≥ 1 values; (NaN, NaN) when a value is NaN (`Σ x·0` is NaN exactly when
    /// some x is NaN or ±inf — the check rides along in the same loads).
    public static func minMax(_ p: UnsafePointer<Float>, _ n: Int) -> (Float, Float) {
        var lo = Float.infinity, hi = -Float.infinity
        var check: Float = 0
        var i = 0
        if n >= 8 {
            let r = UnsafeRawPointer(p)
            var l0 = _mm256_set1_ps(.infinity), h0 = _mm256_set1_ps(-.infinity), l1 = l0, h1 = h0
            let zero = _mm256_setzero_ps()
            var c0 = zero
            while i + 16 <= n {
                let a = r.loadUnaligned(fromByteOffset: 4 &* i, as: __m256.self)
                let b = r.loadUnaligned(fromByteOffset: 4 &* i &+ 32, as: __m256.self)
                l0 = _mm256_min_ps(l0, a); h0 = _mm256_max_ps(h0, a); l1 = _mm256_min_ps(l1, b); h1 = _mm256_max_ps(h1, b)
                c0 = _mm256_add_ps(c0, _mm256_add_ps(_mm256_mul_ps(a, zero), _mm256_mul_ps(b, zero)))
                i &+= 16
            }
            if i + 8 <= n {
                let a = r.loadUnaligned(fromByteOffset: 4 &* i, as: __m256.self)
                l0 = _mm256_min_ps(l0, a); h0 = _mm256_max_ps(h0, a)
                c0 = _mm256_add_ps(c0, _mm256_mul_ps(a, zero))
                i &+= 8
            }
            let l = _mm256_min_ps(l0, l1), h = _mm256_max_ps(h0, h1)
            for j in 0..<8 { lo = Swift.min(lo, l[j]); hi = Swift.max(hi, h[j]); check += c0[j] }
        }
        while i < n { lo = Swift.min(lo, p[i]); hi = Swift.max(hi, p[i]); check += p[i] * 0; i &+= 1 }
        return check.isNaN ? (.nan, .nan) : (lo, hi)
    }

    /// `clamp(x/scale, lo, hi) + 1.5·2^23`: the addition rounds half to even and leaves the integer
    /// in the low mantissa bits (|v| ≤ 2^22; lo and hi are integers).
    @inline(__always)
    static func shifted(_ x: __m256, _ s: __m256, _ lo: __m256, _ hi: __m256) -> __m256 {
        _mm256_add_ps(_mm256_min_ps(_mm256_max_ps(_mm256_div_ps(x, s), lo), hi), _mm256_set1_ps(12582912))
    }

    /// In place `x ← (q(x) − zero)·scale` for the first `n & ~7` values; returns how many were done.
    public static func fakeQuantize(_ p: UnsafeMutablePointer<Float>, _ n: Int, scale: Float, lo: Float, hi: Float) -> Int {
        let s = _mm256_set1_ps(scale), l = _mm256_set1_ps(lo), h = _mm256_set1_ps(hi), m = _mm256_set1_ps(12582912)
        let r = UnsafeMutableRawPointer(p)
        var i = 0
        while i + 8 <= n {
            let v = _mm256_sub_ps(shifted(r.loadUnaligned(fromByteOffset: 4 &* i, as: __m256.self), s, l, h), m)
            r.storeBytes(of: _mm256_mul_ps(v, s), toByteOffset: 4 &* i, as: __m256.self)
            i &+= 8
        }
        return i
    }

    /// Codes `q(x) + offset` as Int32 for the first `n & ~7` values; returns how many were done.
    public static func codes(_ p: UnsafePointer<Float>, _ n: Int, scale: Float, lo: Float, hi: Float, add: Int32,
                             into out: UnsafeMutablePointer<Int32>) -> Int {
        let s = _mm256_set1_ps(scale), l = _mm256_set1_ps(lo), h = _mm256_set1_ps(hi)
        let bias = _mm256_set1_epi32(add &- 0x4B40_0000)
        let r = UnsafeRawPointer(p), o = UnsafeMutableRawPointer(out)
        var i = 0
        while i + 8 <= n {
            let v = shifted(r.loadUnaligned(fromByteOffset: 4 &* i, as: __m256.self), s, l, h)
            o.storeBytes(of: _mm256_add_epi32(_mm256_castps_si256(v), bias), toByteOffset: 4 &* i, as: __m256i.self)
            i &+= 8
        }
        return i
    }

    /// Codes `q(x) + offset` (must fit 0…255) as bytes for the first `n & ~7` values.
    public static func codesU8(_ p: UnsafePointer<Float>, _ n: Int, scale: Float, lo: Float, hi: Float, add: Int32,
                               into out: UnsafeMutablePointer<UInt8>) -> Int {
        let s = _mm256_set1_ps(scale), l = _mm256_set1_ps(lo), h = _mm256_set1_ps(hi)
        let bias = _mm256_set1_epi32(add &- 0x4B40_0000)
        let gather = _mm256_setr_epi32(0, 4, 0, 0, 0, 0, 0, 0)
        let r = UnsafeRawPointer(p), o = UnsafeMutableRawPointer(out)
        var i = 0
        while i + 8 <= n {
            let v = shifted(r.loadUnaligned(fromByteOffset: 4 &* i, as: __m256.self), s, l, h)
            let q = _mm256_add_epi32(_mm256_castps_si256(v), bias)           // 8 × int32 in 0…255
            let w = _mm256_packus_epi32(q, q)                                 // per 128-bit lane: 4 × u16, twice
            let b = _mm256_packus_epi16(w, w)                                 // per lane: 4 bytes in dword 0
            let d = _mm256_permutevar8x32_epi32(b, gather)                    // dwords 0 and 4 → 0, 1
            o.storeBytes(of: _mm256_castsi256_si128(d)[0], toByteOffset: i, as: Int64.self)
            i &+= 8
        }
        return i
    }
}
#endif
