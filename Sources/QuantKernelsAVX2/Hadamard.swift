// AVX2 Hadamard row kernel (compiled with -target-cpu haswell).
#if arch(x86_64)
import _Builtin_intrinsics.intel

public enum AVX2Hadamard {
    /// One row of `x ← x·(H_K ⊗ H_p)ᵀ·norm`: FWHT of each of the K length-p segments of `row`
    /// (p a power of two ≥ 8), then `out[a] = norm·Σ_c h[a·K + c]·seg[c]` into `tmp` (K·p floats),
    /// copied back into `row`. `h` holds ±1 (pass `H_Kᵀ` for the inverse). The ±1 products are
    /// exact, so each output is the ascending-c sum of ±seg[c], then one multiply by `norm`.
    public static func row(_ row: UnsafeMutablePointer<Float>, _ tmp: UnsafeMutablePointer<Float>,
                           _ h: UnsafePointer<Float>, _ k: Int, _ p: Int, _ norm: Float) {
        typealias V = SIMD8<Float>
        for a in 0..<k { fwht(row + a * p, p) }
        let r = UnsafeRawPointer(row), o = UnsafeMutableRawPointer(k == 1 ? row : tmp)
        let nv = V(repeating: norm)
        if k == 1 {
            var i = 0
            while i < p { o.storeBytes(of: r.load(fromByteOffset: 4 * i, as: V.self) * nv, toByteOffset: 4 * i, as: V.self); i += 8 }
            return
        }
        var cb = 0
        while cb < p {
            if cb + 32 <= p {
                // 4 column vectors × 2 output rows per pass: 4 loads + 2 broadcasts feed 8 FMAs.
                var a = 0
                while a < k {
                    let a2 = a + 1 < k ? a + 1 : a
                    var s0 = V(), s1 = V(), s2 = V(), s3 = V(), t0 = V(), t1 = V(), t2 = V(), t3 = V()
                    let ha = h + a &* k, hb = h + a2 &* k
                    var off = 4 &* cb
                    for c in 0..<k {
                        let x0 = r.load(fromByteOffset: off, as: V.self), x1 = r.load(fromByteOffset: off &+ 32, as: V.self)
                        let x2 = r.load(fromByteOffset: off &+ 64, as: V.self), x3 = r.load(fromByteOffset: off &+ 96, as: V.self)
                        let hv = V(repeating: ha[c]), hw = V(repeating: hb[c])
                        s0.addProduct(hv, x0); s1.addProduct(hv, x1); s2.addProduct(hv, x2); s3.addProduct(hv, x3)
                        t0.addProduct(hw, x0); t1.addProduct(hw, x1); t2.addProduct(hw, x2); t3.addProduct(hw, x3)
                        off &+= 4 &* p
                    }
                    var d = 4 &* (a &* p &+ cb)
                    o.storeBytes(of: s0 * nv, toByteOffset: d, as: V.self); o.storeBytes(of: s1 * nv, toByteOffset: d &+ 32, as: V.self)
                    o.storeBytes(of: s2 * nv, toByteOffset: d &+ 64, as: V.self); o.storeBytes(of: s3 * nv, toByteOffset: d &+ 96, as: V.self)
                    d = 4 &* (a2 &* p &+ cb)
                    o.storeBytes(of: t0 * nv, toByteOffset: d, as: V.self); o.storeBytes(of: t1 * nv, toByteOffset: d &+ 32, as: V.self)
                    o.storeBytes(of: t2 * nv, toByteOffset: d &+ 64, as: V.self); o.storeBytes(of: t3 * nv, toByteOffset: d &+ 96, as: V.self)
                    a &+= 2
                }
                cb += 32
            } else {
                for a in 0..<k {
                    var s0 = V()
                    let ha = h + a * k
                    for c in 0..<k { s0.addProduct(V(repeating: ha[c]), r.load(fromByteOffset: 4 * (c * p + cb), as: V.self)) }
                    o.storeBytes(of: s0 * nv, toByteOffset: 4 * (a * p + cb), as: V.self)
                }
                cb += 8
            }
        }
        row.update(from: tmp, count: k * p)
    }

    /// In-place unnormalized FWHT of length n (power of two ≥ 8); same butterflies as the portable one.
    /// Strides 1, 2, 4 stay in one register: `v ← permute(v) + v·(±1)` (one `vpermps` + one exact FMA).
    @inline(__always)
    public static func fwht(_ x: UnsafeMutablePointer<Float>, _ n: Int) {
        typealias V = SIMD8<Float>
        let raw = UnsafeMutableRawPointer(x)
        let p1 = _mm256_setr_epi32(1, 0, 3, 2, 5, 4, 7, 6), s1 = V(1, -1, 1, -1, 1, -1, 1, -1)
        let p2 = _mm256_setr_epi32(2, 3, 0, 1, 6, 7, 4, 5), s2 = V(1, 1, -1, -1, 1, 1, -1, -1)
        let p4 = _mm256_setr_epi32(4, 5, 6, 7, 0, 1, 2, 3), s4 = V(1, 1, 1, 1, -1, -1, -1, -1)
        var i = 0
        while i < n {
            var v = raw.load(fromByteOffset: 4 * i, as: V.self)
            v = _mm256_fmadd_ps(v, s1, _mm256_permutevar8x32_ps(v, p1))
            v = _mm256_fmadd_ps(v, s2, _mm256_permutevar8x32_ps(v, p2))
            v = _mm256_fmadd_ps(v, s4, _mm256_permutevar8x32_ps(v, p4))
            raw.storeBytes(of: v, toByteOffset: 4 * i, as: V.self)
            i += 8
        }
        butterflies(x, n, from: 8)
    }

    /// The FWHT stages with strides h0, 2·h0, … < n on 8-lane vectors (h0 ≥ 8): two at a time
    /// (radix 4: h and 2h in one load/store pass), then a last radix-2 stage when log2(n/h0) is
    /// odd. Same butterflies, same order per element as the portable FWHT.
    @inline(__always)
    public static func butterflies(_ x: UnsafeMutablePointer<Float>, _ n: Int, from h0: Int) {
        typealias V = SIMD8<Float>
        let raw = UnsafeMutableRawPointer(x)
        var h = h0
        while 4 &* h <= n {
            var b = 0
            while b < n {
                var j = b
                while j < b &+ h {
                    let o0 = 4 &* j, o1 = 4 &* (j &+ h), o2 = 4 &* (j &+ 2 &* h), o3 = 4 &* (j &+ 3 &* h)
                    let x0 = raw.load(fromByteOffset: o0, as: V.self), x1 = raw.load(fromByteOffset: o1, as: V.self)
                    let x2 = raw.load(fromByteOffset: o2, as: V.self), x3 = raw.load(fromByteOffset: o3, as: V.self)
                    let y0 = x0 + x1, y1 = x0 - x1, y2 = x2 + x3, y3 = x2 - x3
                    raw.storeBytes(of: y0 + y2, toByteOffset: o0, as: V.self); raw.storeBytes(of: y1 + y3, toByteOffset: o1, as: V.self)
                    raw.storeBytes(of: y0 - y2, toByteOffset: o2, as: V.self); raw.storeBytes(of: y1 - y3, toByteOffset: o3, as: V.self)
                    j &+= 8
                }
                b &+= 4 &* h
            }
            h &*= 4
        }
        if h < n {
            var j = 0
            while j < h {
                let u = raw.load(fromByteOffset: 4 &* j, as: V.self), w = raw.load(fromByteOffset: 4 &* (j &+ h), as: V.self)
                raw.storeBytes(of: u + w, toByteOffset: 4 &* j, as: V.self)
                raw.storeBytes(of: u - w, toByteOffset: 4 &* (j &+ h), as: V.self)
                j &+= 8
            }
        }
    }
}
#endif
