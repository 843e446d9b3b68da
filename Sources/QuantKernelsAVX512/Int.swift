// AVX-512 VNNI integer dot-product tiles for IntGemm (compiled with -target-cpu cascadelake).
#if arch(x86_64)
import _Builtin_intrinsics.intel

public enum AVX512Int {
    /// Rows per tile.
    public static let mr = 8

    /// Raw int32 dot products of up to 8 activation rows (unsigned bytes) with one 16-column weight
    /// panel, `out[r·16 + c] = Σ_k a[r·lda + k] · w[c, k]`; same layouts as `AVX2Int.dots`.
    /// One `vpdpbusd` per row per 4 k (int4: nibbles unpacked in registers, two `vpdpbusd` per 8 k).
    public static func dots(_ rows: Int, _ a: UnsafePointer<UInt8>, _ lda: Int, _ w: UnsafePointer<UInt8>,
                            _ steps: Int, _ int4: Bool, _ out: UnsafeMutablePointer<Int32>) {
        if rows == 1 { return dots1(a, w, steps, int4, out) }
        let r0 = UnsafeRawPointer(a + min(0, rows - 1) * lda)
        let r1 = UnsafeRawPointer(a + min(1, rows - 1) * lda)
        let r2 = UnsafeRawPointer(a + min(2, rows - 1) * lda)
        let r3 = UnsafeRawPointer(a + min(3, rows - 1) * lda)
        let r4 = UnsafeRawPointer(a + min(4, rows - 1) * lda)
        let r5 = UnsafeRawPointer(a + min(5, rows - 1) * lda)
        let r6 = UnsafeRawPointer(a + min(6, rows - 1) * lda)
        let r7 = UnsafeRawPointer(a + min(7, rows - 1) * lda)
        var c0 = _mm512_setzero_si512(), c1 = _mm512_setzero_si512(), c2 = _mm512_setzero_si512(), c3 = _mm512_setzero_si512(), c4 = _mm512_setzero_si512(), c5 = _mm512_setzero_si512(), c6 = _mm512_setzero_si512(), c7 = _mm512_setzero_si512()
        var pw = UnsafeRawPointer(w)
        var o = 0
        if int4 {
            let lowNibbles = _mm512_set1_epi8(0x0F)
            for _ in 0..<steps {
                let v = pw.load(as: __m512i.self)
                let l = _mm512_and_si512(v, lowNibbles), h = _mm512_and_si512(_mm512_srli_epi16(v, 4), lowNibbles)
                c0 = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(c0, _mm512_set1_epi32(r0.loadUnaligned(fromByteOffset: o, as: Int32.self)), l), _mm512_set1_epi32(r0.loadUnaligned(fromByteOffset: o + 4, as: Int32.self)), h)
                c1 = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(c1, _mm512_set1_epi32(r1.loadUnaligned(fromByteOffset: o, as: Int32.self)), l), _mm512_set1_epi32(r1.loadUnaligned(fromByteOffset: o + 4, as: Int32.self)), h)
                c2 = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(c2, _mm512_set1_epi32(r2.loadUnaligned(fromByteOffset: o, as: Int32.self)), l), _mm512_set1_epi32(r2.loadUnaligned(fromByteOffset: o + 4, as: Int32.self)), h)
                c3 = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(c3, _mm512_set1_epi32(r3.loadUnaligned(fromByteOffset: o, as: Int32.self)), l), _mm512_set1_epi32(r3.loadUnaligned(fromByteOffset: o + 4, as: Int32.self)), h)
                c4 = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(c4, _mm512_set1_epi32(r4.loadUnaligned(fromByteOffset: o, as: Int32.self)), l), _mm512_set1_epi32(r4.loadUnaligned(fromByteOffset: o + 4, as: Int32.self)), h)
                c5 = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(c5, _mm512_set1_epi32(r5.loadUnaligned(fromByteOffset: o, as: Int32.self)), l), _mm512_set1_epi32(r5.loadUnaligned(fromByteOffset: o + 4, as: Int32.self)), h)
                c6 = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(c6, _mm512_set1_epi32(r6.loadUnaligned(fromByteOffset: o, as: Int32.self)), l), _mm512_set1_epi32(r6.loadUnaligned(fromByteOffset: o + 4, as: Int32.self)), h)
                c7 = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(c7, _mm512_set1_epi32(r7.loadUnaligned(fromByteOffset: o, as: Int32.self)), l), _mm512_set1_epi32(r7.loadUnaligned(fromByteOffset: o + 4, as: Int32.self)), h)
                pw += 64; o += 8
            }
        } else {
            for _ in 0..<steps {
                let v = pw.load(as: __m512i.self)
                c0 = _mm512_dpbusd_epi32(c0, _mm512_set1_epi32(r0.loadUnaligned(fromByteOffset: o, as: Int32.self)), v)
                c1 = _mm512_dpbusd_epi32(c1, _mm512_set1_epi32(r1.loadUnaligned(fromByteOffset: o, as: Int32.self)), v)
                c2 = _mm512_dpbusd_epi32(c2, _mm512_set1_epi32(r2.loadUnaligned(fromByteOffset: o, as: Int32.self)), v)
                c3 = _mm512_dpbusd_epi32(c3, _mm512_set1_epi32(r3.loadUnaligned(fromByteOffset: o, as: Int32.self)), v)
                c4 = _mm512_dpbusd_epi32(c4, _mm512_set1_epi32(r4.loadUnaligned(fromByteOffset: o, as: Int32.self)), v)
                c5 = _mm512_dpbusd_epi32(c5, _mm512_set1_epi32(r5.loadUnaligned(fromByteOffset: o, as: Int32.self)), v)
                c6 = _mm512_dpbusd_epi32(c6, _mm512_set1_epi32(r6.loadUnaligned(fromByteOffset: o, as: Int32.self)), v)
                c7 = _mm512_dpbusd_epi32(c7, _mm512_set1_epi32(r7.loadUnaligned(fromByteOffset: o, as: Int32.self)), v)
                pw += 64; o += 4
            }
        }
        let p = UnsafeMutableRawPointer(out)
        if rows > 0 { p.storeBytes(of: c0, toByteOffset: 0, as: __m512i.self) }
        if rows > 1 { p.storeBytes(of: c1, toByteOffset: 64, as: __m512i.self) }
        if rows > 2 { p.storeBytes(of: c2, toByteOffset: 128, as: __m512i.self) }
        if rows > 3 { p.storeBytes(of: c3, toByteOffset: 192, as: __m512i.self) }
        if rows > 4 { p.storeBytes(of: c4, toByteOffset: 256, as: __m512i.self) }
        if rows > 5 { p.storeBytes(of: c5, toByteOffset: 320, as: __m512i.self) }
        if rows > 6 { p.storeBytes(of: c6, toByteOffset: 384, as: __m512i.self) }
        if rows > 7 { p.storeBytes(of: c7, toByteOffset: 448, as: __m512i.self) }
    }

    /// One activation row (GEMV / decode); two accumulators to hide the `vpdpbusd` latency.
    static func dots1(_ a: UnsafePointer<UInt8>, _ w: UnsafePointer<UInt8>, _ steps: Int, _ int4: Bool,
                      _ out: UnsafeMutablePointer<Int32>) {
        let r = UnsafeRawPointer(a)
        var c0 = _mm512_setzero_si512(), c1 = c0
        var pw = UnsafeRawPointer(w)
        var o = 0
        if int4 {
            let lowNibbles = _mm512_set1_epi8(0x0F)
            for _ in 0..<steps {
                let v = pw.load(as: __m512i.self)
                c0 = _mm512_dpbusd_epi32(c0, _mm512_set1_epi32(r.loadUnaligned(fromByteOffset: o, as: Int32.self)), _mm512_and_si512(v, lowNibbles))
                c1 = _mm512_dpbusd_epi32(c1, _mm512_set1_epi32(r.loadUnaligned(fromByteOffset: o + 4, as: Int32.self)),
                                         _mm512_and_si512(_mm512_srli_epi16(v, 4), lowNibbles))
                pw += 64; o += 8
            }
        } else {
            var s = 0
            while s + 2 <= steps {
                c0 = _mm512_dpbusd_epi32(c0, _mm512_set1_epi32(r.loadUnaligned(fromByteOffset: o, as: Int32.self)), pw.load(as: __m512i.self))
                c1 = _mm512_dpbusd_epi32(c1, _mm512_set1_epi32(r.loadUnaligned(fromByteOffset: o + 4, as: Int32.self)), pw.load(fromByteOffset: 64, as: __m512i.self))
                pw += 128; o += 8; s += 2
            }
            if s < steps {
                c0 = _mm512_dpbusd_epi32(c0, _mm512_set1_epi32(r.loadUnaligned(fromByteOffset: o, as: Int32.self)), pw.load(as: __m512i.self))
            }
        }
        UnsafeMutableRawPointer(out).storeBytes(of: _mm512_add_epi32(c0, c1), as: __m512i.self)
    }

    /// Practical VNNI peak: `n` iterations of 12 independent `vpdpbusd` (12·64 u8·s8 multiply-adds = 1,536 integer ops).
    public static func peakLoop(_ n: Int) -> Int32 {
        let x = _mm512_set1_epi8(3), w = _mm512_set1_epi8(1)
        var c = [__m512i](repeating: _mm512_setzero_si512(), count: 12)
        var c0 = c[0], c1 = c[0], c2 = c[0], c3 = c[0], c4 = c[0], c5 = c[0], c6 = c[0], c7 = c[0], c8 = c[0], c9 = c[0], c10 = c[0], c11 = c[0]
        for _ in 0..<n {
            c0 = _mm512_dpbusd_epi32(c0, x, w); c1 = _mm512_dpbusd_epi32(c1, x, w); c2 = _mm512_dpbusd_epi32(c2, x, w)
            c3 = _mm512_dpbusd_epi32(c3, x, w); c4 = _mm512_dpbusd_epi32(c4, x, w); c5 = _mm512_dpbusd_epi32(c5, x, w)
            c6 = _mm512_dpbusd_epi32(c6, x, w); c7 = _mm512_dpbusd_epi32(c7, x, w); c8 = _mm512_dpbusd_epi32(c8, x, w)
            c9 = _mm512_dpbusd_epi32(c9, x, w); c10 = _mm512_dpbusd_epi32(c10, x, w); c11 = _mm512_dpbusd_epi32(c11, x, w)
        }
        c = [c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11]
        var s: Int64 = 0
        for v in c { s ^= v[0] ^ v[7] }
        return Int32(truncatingIfNeeded: s)
    }
}

extension AVX512F32 {
    /// Practical f32 peak: `n` iterations of 12 independent 16-lane FMAs (384 flops per iteration).
    public static func peakLoop(_ n: Int) -> Float {
        typealias V = SIMD16<Float>
        var c = (V(repeating: 1), V(repeating: 2), V(repeating: 3), V(repeating: 4), V(repeating: 5), V(repeating: 6),
                 V(repeating: 7), V(repeating: 8), V(repeating: 9), V(repeating: 10), V(repeating: 11), V(repeating: 12))
        let a = V(repeating: 0.999999)
        for _ in 0..<n {
            c.0.addProduct(c.0, a); c.1.addProduct(c.1, a); c.2.addProduct(c.2, a); c.3.addProduct(c.3, a)
            c.4.addProduct(c.4, a); c.5.addProduct(c.5, a); c.6.addProduct(c.6, a); c.7.addProduct(c.7, a)
            c.8.addProduct(c.8, a); c.9.addProduct(c.9, a); c.10.addProduct(c.10, a); c.11.addProduct(c.11, a)
        }
        return (c.0 + c.1 + c.2 + c.3 + c.4 + c.5 + c.6 + c.7 + c.8 + c.9 + c.10 + c.11).sum()
    }
}
#endif
