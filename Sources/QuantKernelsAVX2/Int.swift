// AVX2 integer dot-product tiles for IntGemm (compiled with -target-cpu haswell).
#if arch(x86_64)
import _Builtin_intrinsics.intel

public enum AVX2Int {
    /// Rows per tile.
    public static let mr = 4

    /// Raw int32 dot products of up to 4 activation rows with one 16-column weight panel:
    /// `out[r·16 + c] = Σ_k a[r·lda + k] · w[c, k]` over `steps` k-blocks.
    ///
    /// Activations: unsigned bytes. Weights (see IntGemm's panel layout): int8 — one 64-byte block per
    /// 4 k (byte `4c + t` = signed w[c, 4s + t]); int4 — one 64-byte block per 8 k (low nibble of
    /// byte `4c + t` = w[c, 8s + t], high nibble = w[c, 8s + 4 + t], values 0…15).
    ///
    /// int8 uses `vpmaddwd` on even/odd 16-bit halves, which is exact for u8 × s8 (`vpmaddubsw` could
    /// saturate at 255·(−128)·2). int4 uses `vpmaddubsw` (≤ 2·255·15, cannot saturate) + `vpmaddwd`.
    public static func dots(_ rows: Int, _ a: UnsafePointer<UInt8>, _ lda: Int, _ w: UnsafePointer<UInt8>,
                            _ steps: Int, _ int4: Bool, _ out: UnsafeMutablePointer<Int32>) {
        if rows == 1 { return dots1(a, w, steps, int4, out) }
        let r0 = UnsafeRawPointer(a), r1 = UnsafeRawPointer(a + min(1, rows - 1) * lda)
        let r2 = UnsafeRawPointer(a + min(2, rows - 1) * lda), r3 = UnsafeRawPointer(a + min(3, rows - 1) * lda)
        var a00 = _mm256_setzero_si256(), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00, a30 = a00, a31 = a00
        var pw = UnsafeRawPointer(w)
        if int4 {
            let lowNibbles = _mm256_set1_epi8(0x0F), ones = _mm256_set1_epi16(1)
            var o = 0
            for _ in 0..<steps {
                let v0 = pw.load(as: __m256i.self), v1 = pw.load(fromByteOffset: 32, as: __m256i.self)
                let l0 = _mm256_and_si256(v0, lowNibbles), h0 = _mm256_and_si256(_mm256_srli_epi16(v0, 4), lowNibbles)
                let l1 = _mm256_and_si256(v1, lowNibbles), h1 = _mm256_and_si256(_mm256_srli_epi16(v1, 4), lowNibbles)
                @inline(__always) func row(_ r: UnsafeRawPointer, _ c0: inout __m256i, _ c1: inout __m256i) {
                    let x0 = _mm256_set1_epi32(r.loadUnaligned(fromByteOffset: o, as: Int32.self))
                    let x1 = _mm256_set1_epi32(r.loadUnaligned(fromByteOffset: o + 4, as: Int32.self))
                    let t0 = _mm256_add_epi16(_mm256_maddubs_epi16(x0, l0), _mm256_maddubs_epi16(x1, h0))
                    let t1 = _mm256_add_epi16(_mm256_maddubs_epi16(x0, l1), _mm256_maddubs_epi16(x1, h1))
                    c0 = _mm256_add_epi32(c0, _mm256_madd_epi16(t0, ones))
                    c1 = _mm256_add_epi32(c1, _mm256_madd_epi16(t1, ones))
                }
                row(r0, &a00, &a01); row(r1, &a10, &a11); row(r2, &a20, &a21); row(r3, &a30, &a31)
                pw += 64; o += 8
            }
        } else {
            let lowBytes = _mm256_set1_epi16(0x00FF)
            var o = 0
            for _ in 0..<steps {
                let v0 = pw.load(as: __m256i.self), v1 = pw.load(fromByteOffset: 32, as: __m256i.self)
                let e0 = _mm256_srai_epi16(_mm256_slli_epi16(v0, 8), 8), d0 = _mm256_srai_epi16(v0, 8)
                let e1 = _mm256_srai_epi16(_mm256_slli_epi16(v1, 8), 8), d1 = _mm256_srai_epi16(v1, 8)
                @inline(__always) func row(_ r: UnsafeRawPointer, _ c0: inout __m256i, _ c1: inout __m256i) {
                    let x = _mm256_set1_epi32(r.loadUnaligned(fromByteOffset: o, as: Int32.self))
                    let xe = _mm256_and_si256(x, lowBytes), xd = _mm256_srli_epi16(x, 8)
                    c0 = _mm256_add_epi32(c0, _mm256_add_epi32(_mm256_madd_epi16(xe, e0), _mm256_madd_epi16(xd, d0)))
                    c1 = _mm256_add_epi32(c1, _mm256_add_epi32(_mm256_madd_epi16(xe, e1), _mm256_madd_epi16(xd, d1)))
                }
                row(r0, &a00, &a01); row(r1, &a10, &a11); row(r2, &a20, &a21); row(r3, &a30, &a31)
                pw += 64; o += 4
            }
        }
        let o = UnsafeMutableRawPointer(out)
        o.storeBytes(of: a00, toByteOffset: 0, as: __m256i.self); o.storeBytes(of: a01, toByteOffset: 32, as: __m256i.self)
        if rows > 1 { o.storeBytes(of: a10, toByteOffset: 64, as: __m256i.self); o.storeBytes(of: a11, toByteOffset: 96, as: __m256i.self) }
        if rows > 2 { o.storeBytes(of: a20, toByteOffset: 128, as: __m256i.self); o.storeBytes(of: a21, toByteOffset: 160, as: __m256i.self) }
        if rows > 3 { o.storeBytes(of: a30, toByteOffset: 192, as: __m256i.self); o.storeBytes(of: a31, toByteOffset: 224, as: __m256i.self) }
    }

    /// One activation row (GEMV / decode): same arithmetic as `dots` without the unused rows.
    static func dots1(_ a: UnsafePointer<UInt8>, _ w: UnsafePointer<UInt8>, _ steps: Int, _ int4: Bool,
                      _ out: UnsafeMutablePointer<Int32>) {
        let r = UnsafeRawPointer(a)
        var c0 = _mm256_setzero_si256(), c1 = c0, d0 = c0, d1 = c0
        var pw = UnsafeRawPointer(w)
        var o = 0
        if int4 {
            let lowNibbles = _mm256_set1_epi8(0x0F), ones = _mm256_set1_epi16(1)
            for _ in 0..<steps {
                let v0 = pw.load(as: __m256i.self), v1 = pw.load(fromByteOffset: 32, as: __m256i.self)
                let x0 = _mm256_set1_epi32(r.loadUnaligned(fromByteOffset: o, as: Int32.self))
                let x1 = _mm256_set1_epi32(r.loadUnaligned(fromByteOffset: o + 4, as: Int32.self))
                let t0 = _mm256_add_epi16(_mm256_maddubs_epi16(x0, _mm256_and_si256(v0, lowNibbles)),
                                          _mm256_maddubs_epi16(x1, _mm256_and_si256(_mm256_srli_epi16(v0, 4), lowNibbles)))
                let t1 = _mm256_add_epi16(_mm256_maddubs_epi16(x0, _mm256_and_si256(v1, lowNibbles)),
                                          _mm256_maddubs_epi16(x1, _mm256_and_si256(_mm256_srli_epi16(v1, 4), lowNibbles)))
                c0 = _mm256_add_epi32(c0, _mm256_madd_epi16(t0, ones)); c1 = _mm256_add_epi32(c1, _mm256_madd_epi16(t1, ones))
                pw += 64; o += 8
            }
        } else {
            let lowBytes = _mm256_set1_epi16(0x00FF)
            for _ in 0..<steps {
                let v0 = pw.load(as: __m256i.self), v1 = pw.load(fromByteOffset: 32, as: __m256i.self)
                let x = _mm256_set1_epi32(r.loadUnaligned(fromByteOffset: o, as: Int32.self))
                let xe = _mm256_and_si256(x, lowBytes), xd = _mm256_srli_epi16(x, 8)
                c0 = _mm256_add_epi32(c0, _mm256_madd_epi16(xe, _mm256_srai_epi16(_mm256_slli_epi16(v0, 8), 8)))
                d0 = _mm256_add_epi32(d0, _mm256_madd_epi16(xd, _mm256_srai_epi16(v0, 8)))
                c1 = _mm256_add_epi32(c1, _mm256_madd_epi16(xe, _mm256_srai_epi16(_mm256_slli_epi16(v1, 8), 8)))
                d1 = _mm256_add_epi32(d1, _mm256_madd_epi16(xd, _mm256_srai_epi16(v1, 8)))
                pw += 64; o += 4
            }
            c0 = _mm256_add_epi32(c0, d0); c1 = _mm256_add_epi32(c1, d1)
        }
        let p = UnsafeMutableRawPointer(out)
        p.storeBytes(of: c0, toByteOffset: 0, as: __m256i.self); p.storeBytes(of: c1, toByteOffset: 32, as: __m256i.self)
    }

    /// `dots` for int4 weights and activations ≤ 15 (W4A4): `vpmaddubsw` pairs are ≤ 2·15·15, so
    /// 16-bit lanes accumulate 32 blocks (≤ 28 800) before one `vpmaddwd` widens them to int32.
    public static func dotsSmall(_ rows: Int, _ a: UnsafePointer<UInt8>, _ lda: Int, _ w: UnsafePointer<UInt8>,
                                 _ steps: Int, _ out: UnsafeMutablePointer<Int32>) {
        if rows == 1 { return dots1(a, w, steps, true, out) }
        let r0 = UnsafeRawPointer(a), r1 = UnsafeRawPointer(a + min(1, rows - 1) * lda)
        let r2 = UnsafeRawPointer(a + min(2, rows - 1) * lda), r3 = UnsafeRawPointer(a + min(3, rows - 1) * lda)
        var a00 = _mm256_setzero_si256(), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00, a30 = a00, a31 = a00
        let lowNibbles = _mm256_set1_epi8(0x0F), ones = _mm256_set1_epi16(1)
        var pw = UnsafeRawPointer(w)
        var o = 0, done = 0
        while done < steps {
            let chunk = min(32, steps - done)
            var s00 = _mm256_setzero_si256(), s01 = s00, s10 = s00, s11 = s00, s20 = s00, s21 = s00, s30 = s00, s31 = s00
            for _ in 0..<chunk {
                let v0 = pw.load(as: __m256i.self), v1 = pw.load(fromByteOffset: 32, as: __m256i.self)
                let l0 = _mm256_and_si256(v0, lowNibbles), h0 = _mm256_and_si256(_mm256_srli_epi16(v0, 4), lowNibbles)
                let l1 = _mm256_and_si256(v1, lowNibbles), h1 = _mm256_and_si256(_mm256_srli_epi16(v1, 4), lowNibbles)
                @inline(__always) func row(_ r: UnsafeRawPointer, _ c0: inout __m256i, _ c1: inout __m256i) {
                    let x0 = _mm256_set1_epi32(r.loadUnaligned(fromByteOffset: o, as: Int32.self))
                    let x1 = _mm256_set1_epi32(r.loadUnaligned(fromByteOffset: o + 4, as: Int32.self))
                    c0 = _mm256_add_epi16(c0, _mm256_add_epi16(_mm256_maddubs_epi16(x0, l0), _mm256_maddubs_epi16(x1, h0)))
                    c1 = _mm256_add_epi16(c1, _mm256_add_epi16(_mm256_maddubs_epi16(x0, l1), _mm256_maddubs_epi16(x1, h1)))
                }
                row(r0, &s00, &s01); row(r1, &s10, &s11); row(r2, &s20, &s21); row(r3, &s30, &s31)
                pw += 64; o += 8
            }
            a00 = _mm256_add_epi32(a00, _mm256_madd_epi16(s00, ones)); a01 = _mm256_add_epi32(a01, _mm256_madd_epi16(s01, ones))
            a10 = _mm256_add_epi32(a10, _mm256_madd_epi16(s10, ones)); a11 = _mm256_add_epi32(a11, _mm256_madd_epi16(s11, ones))
            a20 = _mm256_add_epi32(a20, _mm256_madd_epi16(s20, ones)); a21 = _mm256_add_epi32(a21, _mm256_madd_epi16(s21, ones))
            a30 = _mm256_add_epi32(a30, _mm256_madd_epi16(s30, ones)); a31 = _mm256_add_epi32(a31, _mm256_madd_epi16(s31, ones))
            done += chunk
        }
        let p = UnsafeMutableRawPointer(out)
        p.storeBytes(of: a00, toByteOffset: 0, as: __m256i.self); p.storeBytes(of: a01, toByteOffset: 32, as: __m256i.self)
        if rows > 1 { p.storeBytes(of: a10, toByteOffset: 64, as: __m256i.self); p.storeBytes(of: a11, toByteOffset: 96, as: __m256i.self) }
        if rows > 2 { p.storeBytes(of: a20, toByteOffset: 128, as: __m256i.self); p.storeBytes(of: a21, toByteOffset: 160, as: __m256i.self) }
        if rows > 3 { p.storeBytes(of: a30, toByteOffset: 192, as: __m256i.self); p.storeBytes(of: a31, toByteOffset: 224, as: __m256i.self) }
    }

    /// Σ of `rows` × `groups` runs of `length` bytes (a multiple of 8): run g of row r starts at
    /// `a + r·lda + g·length` and its sum goes to `out[r·groups + g]` (`vpsadbw`, 32 bytes a step).
    public static func byteSums(_ a: UnsafePointer<UInt8>, _ lda: Int, rows: Int, groups: Int, length: Int,
                                into out: UnsafeMutablePointer<Int32>) {
        let zero = _mm256_setzero_si256()
        for r in 0..<rows {
            for g in 0..<groups {
                let p = UnsafeRawPointer(a + (r &* lda &+ g &* length))
                var acc = zero
                var t = 0
                while t &+ 32 <= length {
                    acc = _mm256_add_epi64(acc, _mm256_sad_epu8(p.loadUnaligned(fromByteOffset: t, as: __m256i.self), zero))
                    t &+= 32
                }
                var total = unsafeBitCast(acc, to: SIMD4<UInt64>.self).wrappedSum()
                while t < length {
                    var word = p.loadUnaligned(fromByteOffset: t, as: UInt64.self)
                    for _ in 0..<8 { total &+= word & 0xFF; word >>= 8 }
                    t &+= 8
                }
                out[r &* groups &+ g] = Int32(truncatingIfNeeded: total)
            }
        }
    }

    /// IntGemm's per-group epilogue for one tile of `rows` × 16 columns (`raw`: 16 int32 per row,
    /// from `dots`); IntGemm documents the formula. Per row r, in wrapping int32 arithmetic,
    ///
    ///     comp[r] = raw[r] − zw·(Σqa[r] − G·za[r]) − Σqw·za[r]
    ///     f[r]   += sw · Float(comp[r])          (multiply, then add: no FMA, so every path agrees)
    ///
    /// (`first`: the tile's first group, `f[r] = sw · Float(comp[r])`). `activationSums` advances by `sumStride` per row; `comp[r]` is also written to
    /// `acc + r·accStride` (first `cols` lanes) when `acc` is given. `f` holds 16 floats per row.
    public static func compensate(_ rows: Int, _ raw: UnsafePointer<Int32>,
                                  weightZeros: UnsafePointer<Int32>, weightSums: UnsafePointer<Int32>,
                                  weightScales: UnsafePointer<Float>, activationZeros: UnsafePointer<Int32>,
                                  activationSums: UnsafePointer<Int32>, sumStride: Int, groupLength: Int32,
                                  into f: UnsafeMutablePointer<Float>, first: Bool, acc: UnsafeMutablePointer<Int32>?, accStride: Int,
                                  cols: Int) {
        @inline(__always) func ld(_ p: UnsafePointer<Int32>) -> __m256i { UnsafeRawPointer(p).loadUnaligned(as: __m256i.self) }
        @inline(__always) func ldf(_ p: UnsafePointer<Float>) -> __m256 { UnsafeRawPointer(p).loadUnaligned(as: __m256.self) }
        let zw0 = ld(weightZeros), zw1 = ld(weightZeros + 8), sw0 = ld(weightSums), sw1 = ld(weightSums + 8)
        let sc0 = ldf(weightScales), sc1 = ldf(weightScales + 8)
        for r in 0..<rows {
            let za = activationZeros[r]
            let u = _mm256_set1_epi32(activationSums[r * sumStride] &- groupLength &* za), z = _mm256_set1_epi32(za)
            let c0 = _mm256_sub_epi32(_mm256_sub_epi32(ld(raw + r * 16), _mm256_mullo_epi32(zw0, u)), _mm256_mullo_epi32(sw0, z))
            let c1 = _mm256_sub_epi32(_mm256_sub_epi32(ld(raw + r * 16 + 8), _mm256_mullo_epi32(zw1, u)), _mm256_mullo_epi32(sw1, z))
            if let acc {
                let o = acc + r * accStride
                if cols == 16 {
                    UnsafeMutableRawPointer(o).storeBytes(of: c0, as: __m256i.self)
                    UnsafeMutableRawPointer(o + 8).storeBytes(of: c1, as: __m256i.self)
                } else {
                    withUnsafeBytes(of: (c0, c1)) { b in for c in 0..<cols { o[c] = b.load(fromByteOffset: 4 * c, as: Int32.self) } }
                }
            }
            let fr = UnsafeMutableRawPointer(f + r * 16)
            let t0 = _mm256_mul_ps(sc0, _mm256_cvtepi32_ps(c0)), t1 = _mm256_mul_ps(sc1, _mm256_cvtepi32_ps(c1))
            fr.storeBytes(of: first ? t0 : _mm256_add_ps(ldf(f + r * 16), t0), as: __m256.self)
            fr.storeBytes(of: first ? t1 : _mm256_add_ps(ldf(f + r * 16 + 8), t1), toByteOffset: 32, as: __m256.self)
        }
    }

    /// Writes a finished tile: `y[r·ldy + c] = f[r·16 + c] · activationScales[r] (+ bias[c])`, `cols` ≤ 16.
    public static func storeTile(_ rows: Int, _ f: UnsafePointer<Float>, activationScales: UnsafePointer<Float>,
                                 _ y: UnsafeMutablePointer<Float>, _ ldy: Int, _ cols: Int, _ bias: UnsafePointer<Float>?) {
        for r in 0..<rows {
            let s = _mm256_set1_ps(activationScales[r])
            let src = UnsafeRawPointer(f + r * 16)
            var v0 = _mm256_mul_ps(src.loadUnaligned(as: __m256.self), s)
            var v1 = _mm256_mul_ps(src.loadUnaligned(fromByteOffset: 32, as: __m256.self), s)
            let o = y + r * ldy
            if cols == 16 {
                if let bias {
                    v0 = _mm256_add_ps(v0, UnsafeRawPointer(bias).loadUnaligned(as: __m256.self))
                    v1 = _mm256_add_ps(v1, UnsafeRawPointer(bias).loadUnaligned(fromByteOffset: 32, as: __m256.self))
                }
                UnsafeMutableRawPointer(o).storeBytes(of: v0, as: __m256.self)
                UnsafeMutableRawPointer(o + 8).storeBytes(of: v1, as: __m256.self)
            } else {
                withUnsafeBytes(of: (v0, v1)) { b in
                    if let bias { for c in 0..<cols { o[c] = b.load(fromByteOffset: 4 * c, as: Float.self) + bias[c] } }
                    else { for c in 0..<cols { o[c] = b.load(fromByteOffset: 4 * c, as: Float.self) } }
                }
            }
        }
    }

    /// Practical integer peak: `n` iterations of 8 independent `vpmaddubsw` + `vpaddw` (the fastest
    /// exact u8·s8 pattern, used by the W4A4 tile); 8 · 32 multiply-adds = 512 integer ops per iteration.
    public static func peakLoop(_ n: Int) -> Int32 {
        // Eight different multiplicands so no two multiplies are common subexpressions.
        let x0 = _mm256_set1_epi8(1), x1 = _mm256_set1_epi8(2), x2 = _mm256_set1_epi8(3), x3 = _mm256_set1_epi8(4)
        let x4 = _mm256_set1_epi8(5), x5 = _mm256_set1_epi8(6), x6 = _mm256_set1_epi8(7), x7 = _mm256_set1_epi8(8)
        var w = _mm256_set1_epi8(1)
        var c0 = _mm256_setzero_si256(), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0, c6 = c0, c7 = c0
        for _ in 0..<n {
            c0 = _mm256_add_epi16(c0, _mm256_maddubs_epi16(x0, w)); c1 = _mm256_add_epi16(c1, _mm256_maddubs_epi16(x1, w))
            c2 = _mm256_add_epi16(c2, _mm256_maddubs_epi16(x2, w)); c3 = _mm256_add_epi16(c3, _mm256_maddubs_epi16(x3, w))
            c4 = _mm256_add_epi16(c4, _mm256_maddubs_epi16(x4, w)); c5 = _mm256_add_epi16(c5, _mm256_maddubs_epi16(x5, w))
            c6 = _mm256_add_epi16(c6, _mm256_maddubs_epi16(x6, w)); c7 = _mm256_add_epi16(c7, _mm256_maddubs_epi16(x7, w))
            w = _mm256_add_epi8(w, x0)   // keeps the multiplies inside the loop (one cheap op per 8)
        }
        let s = _mm256_add_epi32(_mm256_add_epi32(_mm256_add_epi32(c0, c1), _mm256_add_epi32(c2, c3)),
                                 _mm256_add_epi32(_mm256_add_epi32(c4, c5), _mm256_add_epi32(c6, c7)))
        return Int32(truncatingIfNeeded: s[0] ^ s[1] ^ s[2] ^ s[3])
    }
}

extension AVX2F32 {
    /// Practical f32 peak: `n` iterations of 12 independent 8-lane FMAs (192 flops per iteration).
    public static func peakLoop(_ n: Int) -> Float {
        typealias V = SIMD8<Float>
        var c = (V(repeating: 1), V(repeating: 2), V(repeating: 3), V(repeating: 4), V(repeating: 5), V(repeating: 6),
                 V(repeating: 7), V(repeating: 8), V(repeating: 9), V(repeating: 10), V(repeating: 11), V(repeating: 12))
        let a = V(repeating: 0.999999), b = V(repeating: 1e-7)
        for _ in 0..<n {
            c.0.addProduct(c.0, a); c.1.addProduct(c.1, a); c.2.addProduct(c.2, a); c.3.addProduct(c.3, a)
            c.4.addProduct(c.4, a); c.5.addProduct(c.5, a); c.6.addProduct(c.6, a); c.7.addProduct(c.7, a)
            c.8.addProduct(c.8, b); c.9.addProduct(c.9, b); c.10.addProduct(c.10, b); c.11.addProduct(c.11, b)
        }
        return (c.0 + c.1 + c.2 + c.3 + c.4 + c.5 + c.6 + c.7 + c.8 + c.9 + c.10 + c.11).sum()
    }
}
#endif
