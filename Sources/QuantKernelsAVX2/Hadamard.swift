// AVX2 Hadamard row kernel (compiled with -target-cpu haswell).
#if arch(x86_64)

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
                // 4 column vectors per pass: one broadcast of h[a, c] feeds four FMAs.
                for a in 0..<k {
                    var s0 = V(), s1 = V(), s2 = V(), s3 = V()
                    let ha = h + a * k
                    for c in 0..<k {
                        let hv = V(repeating: ha[c])
                        let off = 4 * (c * p + cb)
                        s0.addProduct(hv, r.load(fromByteOffset: off, as: V.self))
                        s1.addProduct(hv, r.load(fromByteOffset: off + 32, as: V.self))
                        s2.addProduct(hv, r.load(fromByteOffset: off + 64, as: V.self))
                        s3.addProduct(hv, r.load(fromByteOffset: off + 96, as: V.self))
                    }
                    let d = 4 * (a * p + cb)
                    o.storeBytes(of: s0 * nv, toByteOffset: d, as: V.self); o.storeBytes(of: s1 * nv, toByteOffset: d + 32, as: V.self)
                    o.storeBytes(of: s2 * nv, toByteOffset: d + 64, as: V.self); o.storeBytes(of: s3 * nv, toByteOffset: d + 96, as: V.self)
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
    @inline(__always)
    public static func fwht(_ x: UnsafeMutablePointer<Float>, _ n: Int) {
        typealias V = SIMD8<Float>
        let raw = UnsafeMutableRawPointer(x)
        var i = 0
        while i < n {
            var v = raw.load(fromByteOffset: 4 * i, as: V.self)
            v = V(lowHalf: v.evenHalf + v.oddHalf, highHalf: v.evenHalf - v.oddHalf)
            v = V(lowHalf: v.evenHalf + v.oddHalf, highHalf: v.evenHalf - v.oddHalf)
            v = V(lowHalf: v.evenHalf + v.oddHalf, highHalf: v.evenHalf - v.oddHalf)
            raw.storeBytes(of: v, toByteOffset: 4 * i, as: V.self)
            i += 8
        }
        var h = 8
        while h < n {
            var b = 0
            while b < n {
                var j = b
                while j < b + h {
                    let u = raw.load(fromByteOffset: 4 * j, as: V.self), w = raw.load(fromByteOffset: 4 * (j + h), as: V.self)
                    raw.storeBytes(of: u + w, toByteOffset: 4 * j, as: V.self)
                    raw.storeBytes(of: u - w, toByteOffset: 4 * (j + h), as: V.self)
                    j += 8
                }
                b += 2 * h
            }
            h *= 2
        }
    }
}
#endif
