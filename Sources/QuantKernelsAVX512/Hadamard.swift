// AVX-512 Hadamard row kernel (compiled with -target-cpu cascadelake). Same arithmetic, per
// element and in the same order, as the portable and AVX2 kernels, so all three give the same bits.
#if arch(x86_64)
import _Builtin_intrinsics.intel
import QuantKernelsAVX2

public enum AVX512Hadamard {
    typealias V = SIMD16<Float>

    /// One row of `x ← x·(H_K ⊗ H_p)ᵀ·norm`: FWHT of each of the K length-p segments of `row`
    /// (p a power of two ≥ 16), then `out[a] = norm·Σ_c h[a·K + c]·seg[c]` into `tmp` (K·p floats),
    /// copied back into `row`. `h` holds ±1 (pass `H_Kᵀ` for the inverse); each output is the
    /// ascending-c sum of the exact products ±seg[c], then one multiply by `norm`.
    public static func row(_ row: UnsafeMutablePointer<Float>, _ tmp: UnsafeMutablePointer<Float>,
                           _ h: UnsafePointer<Float>, _ k: Int, _ p: Int, _ norm: Float) {
        for a in 0..<k { fwht(row + a * p, p) }
        let r = UnsafeRawPointer(row), o = UnsafeMutableRawPointer(k == 1 ? row : tmp)
        let nv = V(repeating: norm)
        if k == 1 {
            var i = 0
            while i < p { o.storeBytes(of: r.load(fromByteOffset: 4 * i, as: V.self) * nv, toByteOffset: 4 * i, as: V.self); i += 16 }
            return
        }
        // Output rows a…a+3 (clamped: a repeated row is recomputed and stored twice, harmlessly)
        // × four 16-column vectors: 4 broadcasts + 4 loads feed 16 FMAs.
        var cb = 0
        while cb + 64 <= p {
            var a = 0
            while a < k {
                let a1 = min(a + 1, k - 1), a2 = min(a + 2, k - 1), a3 = min(a + 3, k - 1)
                let h0 = h + a &* k, h1 = h + a1 &* k, h2 = h + a2 &* k, h3 = h + a3 &* k
                var s00 = V(), s01 = V(), s02 = V(), s03 = V(), s10 = V(), s11 = V(), s12 = V(), s13 = V()
                var s20 = V(), s21 = V(), s22 = V(), s23 = V(), s30 = V(), s31 = V(), s32 = V(), s33 = V()
                var off = 4 &* cb
                for c in 0..<k {
                    let x0 = r.load(fromByteOffset: off, as: V.self), x1 = r.load(fromByteOffset: off &+ 64, as: V.self)
                    let x2 = r.load(fromByteOffset: off &+ 128, as: V.self), x3 = r.load(fromByteOffset: off &+ 192, as: V.self)
                    let g0 = V(repeating: h0[c]), g1 = V(repeating: h1[c]), g2 = V(repeating: h2[c]), g3 = V(repeating: h3[c])
                    s00.addProduct(g0, x0); s01.addProduct(g0, x1); s02.addProduct(g0, x2); s03.addProduct(g0, x3)
                    s10.addProduct(g1, x0); s11.addProduct(g1, x1); s12.addProduct(g1, x2); s13.addProduct(g1, x3)
                    s20.addProduct(g2, x0); s21.addProduct(g2, x1); s22.addProduct(g2, x2); s23.addProduct(g2, x3)
                    s30.addProduct(g3, x0); s31.addProduct(g3, x1); s32.addProduct(g3, x2); s33.addProduct(g3, x3)
                    off &+= 4 &* p
                }
                @inline(__always) func store(_ row: Int, _ v0: V, _ v1: V, _ v2: V, _ v3: V) {
                    let d = 4 &* (row &* p &+ cb)
                    o.storeBytes(of: v0 * nv, toByteOffset: d, as: V.self); o.storeBytes(of: v1 * nv, toByteOffset: d &+ 64, as: V.self)
                    o.storeBytes(of: v2 * nv, toByteOffset: d &+ 128, as: V.self); o.storeBytes(of: v3 * nv, toByteOffset: d &+ 192, as: V.self)
                }
                store(a, s00, s01, s02, s03); store(a1, s10, s11, s12, s13)
                store(a2, s20, s21, s22, s23); store(a3, s30, s31, s32, s33)
                a &+= 4
            }
            cb &+= 64
        }
        // Segments of 16 or 32 columns: one vector per pass.
        while cb < p {
            var a = 0
            while a < k {
                let a1 = min(a + 1, k - 1), a2 = min(a + 2, k - 1), a3 = min(a + 3, k - 1)
                let h0 = h + a &* k, h1 = h + a1 &* k, h2 = h + a2 &* k, h3 = h + a3 &* k
                var s0 = V(), s1 = V(), s2 = V(), s3 = V()
                var off = 4 &* cb
                for c in 0..<k {
                    let x = r.load(fromByteOffset: off, as: V.self)
                    s0.addProduct(V(repeating: h0[c]), x); s1.addProduct(V(repeating: h1[c]), x)
                    s2.addProduct(V(repeating: h2[c]), x); s3.addProduct(V(repeating: h3[c]), x)
                    off &+= 4 &* p
                }
                o.storeBytes(of: s0 * nv, toByteOffset: 4 &* (a &* p &+ cb), as: V.self)
                o.storeBytes(of: s1 * nv, toByteOffset: 4 &* (a1 &* p &+ cb), as: V.self)
                o.storeBytes(of: s2 * nv, toByteOffset: 4 &* (a2 &* p &+ cb), as: V.self)
                o.storeBytes(of: s3 * nv, toByteOffset: 4 &* (a3 &* p &+ cb), as: V.self)
                a &+= 4
            }
            cb &+= 16
        }
        row.update(from: tmp, count: k * p)
    }

    /// `row` for the Paley I (q = 11) factor `paley12` (n = 12·p, p a multiple of 16): the same
    /// arithmetic, with the signs in the code (`HadamardPaley12.swift`), twice as fast, in place.
    public static func rowPaley12(_ row: UnsafeMutablePointer<Float>, _ p: Int, _ norm: Float, transposed: Bool) {
        for a in 0..<12 { fwht(row + a * p, p) }
        mixPaley12(row, p, norm, transposed: transposed)
    }

    /// Lane i's butterfly partner i ^ s for the in-register strides s = 1, 2, 4, 8 (vpermps indices).
    static let partners: (SIMD8<Int64>, SIMD8<Int64>, SIMD8<Int64>, SIMD8<Int64>) = {
        func index(_ s: Int32) -> SIMD8<Int64> { unsafeBitCast(SIMD16<Int32>((0..<16).map { Int32($0) ^ s }), to: SIMD8<Int64>.self) }
        return (index(1), index(2), index(4), index(8))
    }()
    /// +1 on the lanes that keep `even + odd`, −1 on those that get `even − odd`.
    static let signs: (V, V, V, V) = {
        func sign(_ s: Int) -> V { V((0..<16).map { $0 & s == 0 ? 1 : -1 }) }
        return (sign(1), sign(2), sign(4), sign(8))
    }()

    /// In-place unnormalized FWHT of length n (power of two ≥ 16); the butterflies of the portable one.
    /// Strides 1, 2, 4, 8 stay in one register: `v ← permute(v) + v·(±1)` (one `vpermps` + one exact FMA).
    /// For n ≥ 128 each block of 128 floats (8 registers) also takes strides 16, 32 and 64 before it
    /// is stored, so those stages cost no memory pass; larger strides use the AVX2 butterflies.
    @inline(__always)
    public static func fwht(_ x: UnsafeMutablePointer<Float>, _ n: Int) {
        let raw = UnsafeMutableRawPointer(x)
        let (p1, p2, p4, p8) = partners, (s1, s2, s4, s8) = signs
        @inline(__always) func inRegister(_ v: V) -> V {
            var v = _mm512_fmadd_ps(v, s1, _mm512_permutexvar_ps(p1, v))
            v = _mm512_fmadd_ps(v, s2, _mm512_permutexvar_ps(p2, v))
            v = _mm512_fmadd_ps(v, s4, _mm512_permutexvar_ps(p4, v))
            return _mm512_fmadd_ps(v, s8, _mm512_permutexvar_ps(p8, v))
        }
        if n >= 128 {
            var b = 0
            while b < n {
                @inline(__always) func ld(_ j: Int) -> V { inRegister(raw.load(fromByteOffset: 4 &* (b &+ 16 &* j), as: V.self)) }
                @inline(__always) func bf(_ a: inout V, _ c: inout V) {
                    let sum = _mm512_add_ps(a, c), difference = _mm512_sub_ps(a, c)
                    a = sum; c = difference
                }
                var v0 = ld(0), v1 = ld(1), v2 = ld(2), v3 = ld(3), v4 = ld(4), v5 = ld(5), v6 = ld(6), v7 = ld(7)
                bf(&v0, &v1); bf(&v2, &v3); bf(&v4, &v5); bf(&v6, &v7)      // stride 16
                bf(&v0, &v2); bf(&v1, &v3); bf(&v4, &v6); bf(&v5, &v7)      // stride 32
                bf(&v0, &v4); bf(&v1, &v5); bf(&v2, &v6); bf(&v3, &v7)      // stride 64
                @inline(__always) func st(_ j: Int, _ v: V) { raw.storeBytes(of: v, toByteOffset: 4 &* (b &+ 16 &* j), as: V.self) }
                st(0, v0); st(1, v1); st(2, v2); st(3, v3); st(4, v4); st(5, v5); st(6, v6); st(7, v7)
                b &+= 128
            }
            if n > 128 { AVX2Hadamard.butterflies(x, n, from: 128) }
            return
        }
        var i = 0
        while i < n {
            raw.storeBytes(of: inRegister(raw.load(fromByteOffset: 4 * i, as: V.self)), toByteOffset: 4 * i, as: V.self)
            i += 16
        }
        // n = 32, 64: the remaining strides with the AVX2 butterflies.
        AVX2Hadamard.butterflies(x, n, from: 16)
    }
}
#endif
