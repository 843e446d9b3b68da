// AVX-512 Hadamard row kernels (compiled with -target-cpu cascadelake). Same arithmetic, per
// element and in the same order, as the portable and AVX2 kernels, so all three give the same bits.
#if arch(x86_64)
import _Builtin_intrinsics.intel
import QuantKernelsAVX2

public enum AVX512Hadamard {
    typealias V = SIMD16<Float>

    /// One row of `x ← x·(H_K ⊗ H_p)ᵀ·norm`, in place: the AVX-512 FWHT of each of the K length-p
    /// segments (p a power of two ≥ 16), then the AVX2 `mixQuads` (tables of `QuadPlan`).
    public static func row(_ row: UnsafeMutablePointer<Float>, _ patterns: UnsafeMutablePointer<Float>,
                           _ signedPick: UnsafePointer<Int32>, _ sign: UnsafePointer<Float>, _ k: Int, _ p: Int, _ norm: Float) {
        for a in 0..<k { fwht(row + a * p, p) }
        AVX2Hadamard.mixQuads(row, patterns, signedPick, sign, k, p, norm)
    }

    /// `row` for the Paley I (q = 11) factor `paley12` (n = 12·p, p a multiple of 16): the same
    /// arithmetic, with the signs and the 24 quad patterns in registers (`HadamardPaley12.swift`).
    public static func rowPaley12(_ row: UnsafeMutablePointer<Float>, _ p: Int, _ norm: Float, transposed: Bool) {
        for a in 0..<12 { fwht(row + a * p, p) }
        mixPaley12(row, p, norm, transposed: transposed)
    }

    /// Lane i's butterfly partner i ^ s for the in-register strides s = 1, 2, 4, 8 (`vpermps` indices),
    /// written as literals: LLVM sees constant permutations and emits immediate shuffles
    /// (`vpermilps`, `vshuff64x2`), cheaper than `vpermps` (indices loaded from a global are not).
    @inline(__always) static var partners: (SIMD8<Int64>, SIMD8<Int64>, SIMD8<Int64>, SIMD8<Int64>) {
        typealias I = SIMD16<Int32>
        return (unsafeBitCast(I(1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14), to: SIMD8<Int64>.self),
                unsafeBitCast(I(2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13), to: SIMD8<Int64>.self),
                unsafeBitCast(I(4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11), to: SIMD8<Int64>.self),
                unsafeBitCast(I(8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7), to: SIMD8<Int64>.self))
    }
    /// +1 on the lanes that keep `even + odd`, −1 on those that get `even − odd`.
    @inline(__always) static var signs: (V, V, V, V) {
        (V(1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1), V(1, 1, -1, -1, 1, 1, -1, -1, 1, 1, -1, -1, 1, 1, -1, -1),
         V(1, 1, 1, 1, -1, -1, -1, -1, 1, 1, 1, 1, -1, -1, -1, -1), V(1, 1, 1, 1, 1, 1, 1, 1, -1, -1, -1, -1, -1, -1, -1, -1))
    }

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
