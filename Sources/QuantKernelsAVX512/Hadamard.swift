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
                           _ signedPick: UnsafePointer<Int32>, _ outputSign: UnsafePointer<Float>, _ k: Int, _ p: Int, _ norm: Float) {
        fwhtSegments(row, k, p)
        AVX2Hadamard.mixQuads(row, patterns, signedPick, outputSign, k, p, norm)
    }

    /// `row` for the Paley I (q = 11) factor `paley12` (n = 12·p, p a multiple of 16): the same
    /// arithmetic, with the signs and the 24 quad patterns in registers (`HadamardPaley12.swift`).
    public static func rowPaley12(_ row: UnsafeMutablePointer<Float>, _ p: Int, _ norm: Float, transposed: Bool) {
        fwhtSegments(row, 12, p)
        mixPaley12(row, p, norm, transposed: transposed)
    }

    /// `fwht` of each of the K adjacent length-p segments of `row`; for p = 128 the segments are
    /// `fwht128Blocks`' blocks, taken two at a time.
    @inline(__always)
    static func fwhtSegments(_ row: UnsafeMutablePointer<Float>, _ k: Int, _ p: Int) {
        if p == 128 { fwht128Blocks(row, k) } else { for a in 0..<k { fwht(row + a * p, p) } }
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

    /// Strides 1, 2, 4, 8 of the FWHT inside one register: `v ← permute(v) + v·(±1)` (one shuffle
    /// + one exact FMA per stride).
    @inline(__always)
    static func lanes(_ v: V) -> V {
        let (p1, p2, p4, p8) = partners, (s1, s2, s4, s8) = signs
        var v = _mm512_fmadd_ps(v, s1, _mm512_permutexvar_ps(p1, v))
        v = _mm512_fmadd_ps(v, s2, _mm512_permutexvar_ps(p2, v))
        v = _mm512_fmadd_ps(v, s4, _mm512_permutexvar_ps(p4, v))
        return _mm512_fmadd_ps(v, s8, _mm512_permutexvar_ps(p8, v))
    }

    /// `(a, c) ← (a + c, a − c)`.
    @inline(__always)
    static func butterfly(_ a: inout V, _ c: inout V) {
        let sum = _mm512_add_ps(a, c), difference = _mm512_sub_ps(a, c)
        a = sum; c = difference
    }

    /// The FWHT of length 128 on each of `count` consecutive 128-float blocks of `x`, in place,
    /// two blocks at a time (16 independent chains in flight): each block's 8 registers take the
    /// in-register strides, then strides 16, 32, 64 before they are stored.
    @inline(__always)
    static func fwht128Blocks(_ x: UnsafeMutablePointer<Float>, _ count: Int) {
        let raw = UnsafeMutableRawPointer(x)
        var block = 0
        while block < count {
            let pair = block &+ 1 < count
            let base = 512 &* block   // bytes
            @inline(__always) func ld(_ j: Int) -> V { lanes(raw.load(fromByteOffset: base &+ 64 &* j, as: V.self)) }
            @inline(__always) func st(_ j: Int, _ v: V) { raw.storeBytes(of: v, toByteOffset: base &+ 64 &* j, as: V.self) }
            @inline(__always) func strides16to64(_ v: inout (V, V, V, V, V, V, V, V)) {
                butterfly(&v.0, &v.1); butterfly(&v.2, &v.3); butterfly(&v.4, &v.5); butterfly(&v.6, &v.7)   // 16
                butterfly(&v.0, &v.2); butterfly(&v.1, &v.3); butterfly(&v.4, &v.6); butterfly(&v.5, &v.7)   // 32
                butterfly(&v.0, &v.4); butterfly(&v.1, &v.5); butterfly(&v.2, &v.6); butterfly(&v.3, &v.7)   // 64
            }
            var v = (ld(0), ld(1), ld(2), ld(3), ld(4), ld(5), ld(6), ld(7))
            if pair {
                var w = (ld(8), ld(9), ld(10), ld(11), ld(12), ld(13), ld(14), ld(15))
                strides16to64(&v); strides16to64(&w)
                st(8, w.0); st(9, w.1); st(10, w.2); st(11, w.3); st(12, w.4); st(13, w.5); st(14, w.6); st(15, w.7)
            } else {
                strides16to64(&v)
            }
            st(0, v.0); st(1, v.1); st(2, v.2); st(3, v.3); st(4, v.4); st(5, v.5); st(6, v.6); st(7, v.7)
            block &+= pair ? 2 : 1
        }
    }

    /// In-place unnormalized FWHT of length n (power of two ≥ 16); the butterflies of the portable one.
    /// For n ≥ 128, `fwht128Blocks` (strides up to 64 without a memory pass), then the AVX2
    /// butterflies for the larger strides; for n = 16…64 `lanes` per register, then the AVX2 ones.
    @inline(__always)
    public static func fwht(_ x: UnsafeMutablePointer<Float>, _ n: Int) {
        if n >= 128 {
            fwht128Blocks(x, n / 128)
            if n > 128 { AVX2Hadamard.butterflies(x, n, from: 128) }
            return
        }
        let raw = UnsafeMutableRawPointer(x)
        var i = 0
        while i < n {
            raw.storeBytes(of: lanes(raw.load(fromByteOffset: 4 * i, as: V.self)), toByteOffset: 4 * i, as: V.self)
            i += 16
        }
        // n = 32, 64: the remaining strides with the AVX2 butterflies.
        AVX2Hadamard.butterflies(x, n, from: 16)
    }
}
#endif
