// AVX2 panel packing for the f32 GEMM (compiled with -target-cpu haswell).
#if arch(x86_64)
import _Builtin_intrinsics.intel

extension AVX2F32 {
    /// Same layout as `Gemm.packPanels`: `count` rows (stride `ld`) × `depth` columns into panels of
    /// `width` rows stored column by column, zero-padded. 8×8 register transposes; `width` must be a
    /// multiple of 4 or below 8. When `width` is not a multiple of 8, the last group of rows is
    /// written as 8 floats per column (the extra ones land on the next column and are overwritten:
    /// groups run last to first), so `dst` needs 8 floats of slack.
    public static func pack(_ src: UnsafePointer<Float>, _ ld: Int, _ count: Int, _ depth: Int, _ width: Int,
                            _ dst: UnsafeMutablePointer<Float>) {
        precondition(width % 4 == 0 || width < 8)
        let groups = (width + 7) / 8
        let d8 = depth & ~7
        var r0 = 0
        var out = dst
        while r0 < count {
            for g in (0..<groups).reversed() {
                let base = r0 + 8 * g
                let valid = max(0, min(8, min(width - 8 * g, count - base)))
                withUnsafeTemporaryAllocation(of: UnsafeRawPointer?.self, capacity: 8) { rp in
                    for r in 0..<8 { rp[r] = r < valid ? UnsafeRawPointer(src + (base + r) * ld) : nil }
                    var p = 0
                    while p < d8 {
                        @inline(__always) func ld8(_ r: Int) -> __m256 {
                            if let q = rp[r] { return q.loadUnaligned(fromByteOffset: 4 &* p, as: __m256.self) }
                            return _mm256_setzero_ps()
                        }
                        let t = transpose(ld8(0), ld8(1), ld8(2), ld8(3), ld8(4), ld8(5), ld8(6), ld8(7))
                        let o = UnsafeMutableRawPointer(out + p &* width + 8 &* g)
                        let stride = 4 &* width
                        o.storeBytes(of: t.0, as: __m256.self)
                        o.storeBytes(of: t.1, toByteOffset: stride, as: __m256.self)
                        o.storeBytes(of: t.2, toByteOffset: 2 &* stride, as: __m256.self)
                        o.storeBytes(of: t.3, toByteOffset: 3 &* stride, as: __m256.self)
                        o.storeBytes(of: t.4, toByteOffset: 4 &* stride, as: __m256.self)
                        o.storeBytes(of: t.5, toByteOffset: 5 &* stride, as: __m256.self)
                        o.storeBytes(of: t.6, toByteOffset: 6 &* stride, as: __m256.self)
                        o.storeBytes(of: t.7, toByteOffset: 7 &* stride, as: __m256.self)
                        p &+= 8
                    }
                }
            }
            // Depth tail (and exact zero padding of absent rows) element by element.
            if d8 < depth {
                for r in 0..<width {
                    let s: UnsafePointer<Float>? = r0 + r < count ? src + (r0 + r) * ld : nil
                    for p in d8..<depth { out[p * width + r] = s?[p] ?? 0 }
                }
            }
            out += width * depth
            r0 += width
        }
    }

    /// 8×8 transpose: result j holds element j of every input.
    @inline(__always)
    static func transpose(_ r0: __m256, _ r1: __m256, _ r2: __m256, _ r3: __m256, _ r4: __m256, _ r5: __m256,
                          _ r6: __m256, _ r7: __m256)
        -> (__m256, __m256, __m256, __m256, __m256, __m256, __m256, __m256) {
        let t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1)
        let t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3)
        let t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5)
        let t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7)
        @inline(__always) func lo(_ a: __m256, _ b: __m256) -> __m256 {
            _mm256_castpd_ps(_mm256_unpacklo_pd(_mm256_castps_pd(a), _mm256_castps_pd(b)))
        }
        @inline(__always) func hi(_ a: __m256, _ b: __m256) -> __m256 {
            _mm256_castpd_ps(_mm256_unpackhi_pd(_mm256_castps_pd(a), _mm256_castps_pd(b)))
        }
        let u0 = lo(t0, t2), u1 = hi(t0, t2), u2 = lo(t1, t3), u3 = hi(t1, t3)
        let u4 = lo(t4, t6), u5 = hi(t4, t6), u6 = lo(t5, t7), u7 = hi(t5, t7)
        // u0 = (r0..r3 elem 0 | r0..r3 elem 4), u4 = (r4..r7 elem 0 | elem 4), …
        return (SIMD8(lowHalf: u0.lowHalf, highHalf: u4.lowHalf), SIMD8(lowHalf: u1.lowHalf, highHalf: u5.lowHalf),
                SIMD8(lowHalf: u2.lowHalf, highHalf: u6.lowHalf), SIMD8(lowHalf: u3.lowHalf, highHalf: u7.lowHalf),
                SIMD8(lowHalf: u0.highHalf, highHalf: u4.highHalf), SIMD8(lowHalf: u1.highHalf, highHalf: u5.highHalf),
                SIMD8(lowHalf: u2.highHalf, highHalf: u6.highHalf), SIMD8(lowHalf: u3.highHalf, highHalf: u7.highHalf))
    }
}
#endif
