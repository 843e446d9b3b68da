// AVX2 Hadamard row kernel (compiled with -target-cpu haswell).
#if arch(x86_64)
import _Builtin_intrinsics.intel

public enum AVX2Hadamard {
    /// One row of `x ← x·(H_K ⊗ H_p)ᵀ·norm`, in place: FWHT of each of the K length-p segments of
    /// `row` (p a power of two ≥ 8), then `mixQuads`. Same bits as the portable kernel.
    public static func row(_ row: UnsafeMutablePointer<Float>, _ patterns: UnsafeMutablePointer<Float>,
                           _ signedPick: UnsafePointer<Int32>, _ outputSign: UnsafePointer<Float>, _ k: Int, _ p: Int, _ norm: Float) {
        for a in 0..<k { fwht(row + a * p, p) }
        mixQuads(row, patterns, signedPick, outputSign, k, p, norm)
    }

    /// `seg_a ← norm·Σ_c H[a][c]·seg_c` for the K length-p segments of `row` (p a multiple of 8), in
    /// place, 16 (or 8) columns at a time, with the quad-pattern arithmetic of the portable kernel
    /// (`QuadPlan`; `signedPick`: K·K/4 entries, `outputSign`: K; K = 1 only scales).
    /// `patterns` holds 64·K floats: each quad's eight patterns and their negations, so that every
    /// output is a chain of additions (adding −P rounds exactly like subtracting P).
    public static func mixQuads(_ row: UnsafeMutablePointer<Float>, _ patterns: UnsafeMutablePointer<Float>,
                                _ signedPick: UnsafePointer<Int32>, _ outputSign: UnsafePointer<Float>, _ k: Int, _ p: Int, _ norm: Float) {
        let r = UnsafeMutableRawPointer(row), pt = UnsafeMutableRawPointer(patterns)
        if k == 1 {
            let nv = SIMD8<Float>(repeating: norm)
            var i = 0
            while i < p { r.storeBytes(of: r.load(fromByteOffset: 4 &* i, as: SIMD8<Float>.self) * nv, toByteOffset: 4 &* i, as: SIMD8<Float>.self); i &+= 8 }
            return
        }
        var j = 0
        if p % 16 == 0 {
            while j < p { mixSlice(r, pt, signedPick, outputSign, k, p, j, norm, SIMD16<Float>.self); j &+= 16 }
        } else {
            while j < p { mixSlice(r, pt, signedPick, outputSign, k, p, j, norm, SIMD8<Float>.self); j &+= 8 }
        }
    }

    /// `mixQuads` on the columns j ..< j + V.scalarCount; four outputs at a time (K is a multiple of 4).
    @inline(__always)
    static func mixSlice<V: SIMD>(_ r: UnsafeMutableRawPointer, _ pt: UnsafeMutableRawPointer, _ signedPick: UnsafePointer<Int32>,
                                  _ outputSign: UnsafePointer<Float>, _ k: Int, _ p: Int, _ j: Int, _ norm: Float, _: V.Type)
    where V.Scalar == Float {
        let quads = k / 4, width = MemoryLayout<V>.stride
        for q in 0..<quads {
            @inline(__always) func ld(_ c: Int) -> V { r.load(fromByteOffset: 4 &* ((4 &* q &+ c) &* p &+ j), as: V.self) }
            let x0 = ld(0), x1 = ld(1), x2 = ld(2), x3 = ld(3)
            let u = x0 + x1, v = x0 - x1, w = x2 + x3, z = x2 - x3
            let base = 16 &* q &* width
            @inline(__always) func put(_ t: Int, _ pattern: V) {
                pt.storeBytes(of: pattern, toByteOffset: base &+ t &* width, as: V.self)
                pt.storeBytes(of: -pattern, toByteOffset: base &+ (t &+ 8) &* width, as: V.self)
            }
            put(0, u + w); put(1, u - w); put(2, u + z); put(3, u - z)
            put(4, v + w); put(5, v - w); put(6, v + z); put(7, v - z)
        }
        @inline(__always) func pattern(_ i: Int32) -> V { pt.load(fromByteOffset: Int(i) &* width, as: V.self) }
        @inline(__always) func store(_ a: Int, _ acc: V) {
            r.storeBytes(of: acc * V(repeating: outputSign[a] * norm), toByteOffset: 4 &* (a &* p &+ j), as: V.self)
        }
        var a = 0
        while a < k {
            let p0 = signedPick + a &* quads, p1 = p0 + quads, p2 = p1 + quads, p3 = p2 + quads
            var acc0 = pattern(p0[0]), acc1 = pattern(p1[0]), acc2 = pattern(p2[0]), acc3 = pattern(p3[0])
            for q in 1..<quads {
                acc0 += pattern(p0[q]); acc1 += pattern(p1[q]); acc2 += pattern(p2[q]); acc3 += pattern(p3[q])
            }
            store(a, acc0); store(a &+ 1, acc1); store(a &+ 2, acc2); store(a &+ 3, acc3)
            a &+= 4
        }
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
