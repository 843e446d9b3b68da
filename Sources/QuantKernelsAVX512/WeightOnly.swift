// AVX-512 kernels for WeightOnlyGemm (f32 activations × IntGemm's packed integer weights), compiled
// with -target-cpu cascadelake. Only call them when KernelDispatch reports `.vnni`.
#if arch(x86_64)
import _Builtin_intrinsics.intel

public enum AVX512WeightOnly {
    /// The codes at offset `t` of one 64-byte panel block minus their zero points, as floats
    /// (exact). Lane c is column c: int8 — signed byte t of the lane (k = 4s + t); int4 — nibble at
    /// bit 8·(t & 3) + 4·(t >> 2) (k = 8s + t). `zf` is `zeroBase(z, int4)` of the stored zeros.
    ///
    /// The code goes into the mantissa of 2²³ (exponent bits OR-ed on, int8's sign bit flipped so
    /// the byte reads as q + 128: one `vpternlogd`), and the subtraction of `2²³ (+ 128) + zero`
    /// leaves `q − zero` exactly: shift, ternlog, subtract instead of shifts, subtract, convert.
    @inline(__always)
    static func codes(_ v: __m512i, _ t: Int, _ int4: Bool, _ zf: SIMD16<Float>) -> SIMD16<Float> {
        let shift = int4 ? 8 * (t & 3) + 4 * (t >> 2) : 8 * t
        let s = shift == 0 ? v : _mm512_srli_epi32(v, UInt32(shift))
        let mask = _mm512_set1_epi32(int4 ? 0xF : 0xFF), magic = _mm512_set1_epi32(int4 ? 0x4B00_0000 : 0x4B00_0080)
        return _mm512_castsi512_ps(_mm512_xor_si512(_mm512_and_si512(s, mask), magic)) - zf
    }

    /// `2²³ + zero` (int4) or `2²³ + 128 + zero` (int8) per lane, for `codes`.
    @inline(__always)
    static func zeroBase(_ zeros: UnsafePointer<Int32>, _ int4: Bool) -> SIMD16<Float> {
        _mm512_cvtepi32_ps(UnsafeRawPointer(zeros).loadUnaligned(as: __m512i.self)) + SIMD16(repeating: int4 ? 8_388_608 : 8_388_736)
    }

    /// `WeightOnlyGemm.portablePanel` (same contract) with fused multiply-adds: `rows` ≤ 4 rows of X
    /// against one 16-column panel, all groups; `out[r·16 + c]`.
    public static func panel(_ rows: Int, _ x: UnsafePointer<Float>, _ ldx: Int, _ panel: UnsafePointer<UInt8>,
                             _ groups: Int, _ groupSize: Int, _ groupBytes: Int, _ int4: Bool,
                             _ zeros: UnsafePointer<Int32>, _ scales: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>) {
        switch (rows, int4) {
        case (1, true): panelRows(1, true, x, ldx, panel, groups, groupSize, groupBytes, zeros, scales, out)
        case (1, false): panelRows(1, false, x, ldx, panel, groups, groupSize, groupBytes, zeros, scales, out)
        case (2, true): panelRows(2, true, x, ldx, panel, groups, groupSize, groupBytes, zeros, scales, out)
        case (2, false): panelRows(2, false, x, ldx, panel, groups, groupSize, groupBytes, zeros, scales, out)
        case (3, true): panelRows(3, true, x, ldx, panel, groups, groupSize, groupBytes, zeros, scales, out)
        case (3, false): panelRows(3, false, x, ldx, panel, groups, groupSize, groupBytes, zeros, scales, out)
        case (_, true): panelRows(4, true, x, ldx, panel, groups, groupSize, groupBytes, zeros, scales, out)
        case (_, false): panelRows(4, false, x, ldx, panel, groups, groupSize, groupBytes, zeros, scales, out)
        }
    }

    /// `panel` for a constant row count and code width (inlined into each case, so the unused rows
    /// and the per-t shifts fold away). Two accumulators per row (even and odd t) hide FMA latency;
    /// per group `total += scale · (even + odd)`.
    @inline(__always)
    static func panelRows(_ rows: Int, _ int4: Bool, _ x: UnsafePointer<Float>, _ ldx: Int, _ panel: UnsafePointer<UInt8>,
                          _ groups: Int, _ groupSize: Int, _ groupBytes: Int,
                          _ zeros: UnsafePointer<Int32>, _ scales: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>) {
        typealias F = SIMD16<Float>
        let per = int4 ? 8 : 4
        let xs = (x, x + min(1, rows - 1) * ldx, x + min(2, rows - 1) * ldx, x + min(3, rows - 1) * ldx)
        var t0 = F(), t1 = F(), t2 = F(), t3 = F()
        for g in 0..<groups {
            let z = zeroBase(zeros + g * 16, int4)
            var e0 = F(), e1 = F(), e2 = F(), e3 = F(), o0 = F(), o1 = F(), o2 = F(), o3 = F()
            var blk = UnsafeRawPointer(panel + g * groupBytes)
            var p = g * groupSize
            @inline(__always) func step(_ v: __m512i, _ t: Int) {
                let d = codes(v, t, int4, z)
                if t & 1 == 0 {
                    e0.addProduct(F(repeating: xs.0[p &+ t]), d)
                    if rows > 1 { e1.addProduct(F(repeating: xs.1[p &+ t]), d) }
                    if rows > 2 { e2.addProduct(F(repeating: xs.2[p &+ t]), d) }
                    if rows > 3 { e3.addProduct(F(repeating: xs.3[p &+ t]), d) }
                } else {
                    o0.addProduct(F(repeating: xs.0[p &+ t]), d)
                    if rows > 1 { o1.addProduct(F(repeating: xs.1[p &+ t]), d) }
                    if rows > 2 { o2.addProduct(F(repeating: xs.2[p &+ t]), d) }
                    if rows > 3 { o3.addProduct(F(repeating: xs.3[p &+ t]), d) }
                }
            }
            let whole = groupSize / per
            for _ in 0..<whole {
                let v = blk.load(as: __m512i.self)
                if int4 {
                    step(v, 0); step(v, 1); step(v, 2); step(v, 3); step(v, 4); step(v, 5); step(v, 6); step(v, 7)
                } else {
                    step(v, 0); step(v, 1); step(v, 2); step(v, 3)
                }
                blk += 64; p &+= per
            }
            // A partial last block (one group of K not a multiple of 8): its padding is never read.
            let tail = groupSize - whole * per
            if tail > 0 {
                let v = blk.load(as: __m512i.self)
                for t in 0..<tail { step(v, t) }
            }
            let s = UnsafeRawPointer(scales + g * 16).loadUnaligned(as: F.self)
            t0.addProduct(s, e0 + o0)
            if rows > 1 { t1.addProduct(s, e1 + o1) }
            if rows > 2 { t2.addProduct(s, e2 + o2) }
            if rows > 3 { t3.addProduct(s, e3 + o3) }
        }
        let o = UnsafeMutableRawPointer(out)
        o.storeBytes(of: t0, as: F.self)
        if rows > 1 { o.storeBytes(of: t1, toByteOffset: 64, as: F.self) }
        if rows > 2 { o.storeBytes(of: t2, toByteOffset: 128, as: F.self) }
        if rows > 3 { o.storeBytes(of: t3, toByteOffset: 192, as: F.self) }
    }

    /// `WeightOnlyGemm.portableDequantize` (same contract): group-local indices `from ..< to` of one
    /// panel's group, `Float(q − zeros[c])·scales[c]` to `lo` (columns 0…7) and `hi` (8…15), row
    /// `p − from` at `stride` floats.
    public static func dequantize(_ group: UnsafePointer<UInt8>, _ int4: Bool, _ from: Int, _ to: Int,
                                  _ zeros: UnsafePointer<Int32>, _ scales: UnsafePointer<Float>,
                                  _ lo: UnsafeMutablePointer<Float>, _ hi: UnsafeMutablePointer<Float>, _ stride: Int) {
        if int4 { dequantizeRun(true, group, from, to, zeros, scales, lo, hi, stride) }
        else { dequantizeRun(false, group, from, to, zeros, scales, lo, hi, stride) }
    }

    @inline(__always)
    static func dequantizeRun(_ int4: Bool, _ group: UnsafePointer<UInt8>, _ from: Int, _ to: Int,
                              _ zeros: UnsafePointer<Int32>, _ scales: UnsafePointer<Float>,
                              _ lo: UnsafeMutablePointer<Float>, _ hi: UnsafeMutablePointer<Float>, _ stride: Int) {
        guard from < to else { return }
        let per = int4 ? 8 : 4
        let z = zeroBase(zeros, int4)
        let s = UnsafeRawPointer(scales).loadUnaligned(as: SIMD16<Float>.self)
        @inline(__always) func put(_ v: __m512i, _ t: Int, _ row: Int) {
            let d = codes(v, t, int4, z) * s
            UnsafeMutableRawPointer(lo + row * stride).storeBytes(of: d.lowHalf, as: SIMD8<Float>.self)
            UnsafeMutableRawPointer(hi + row * stride).storeBytes(of: d.highHalf, as: SIMD8<Float>.self)
        }
        for b in (from / per)...((to - 1) / per) {
            let v = UnsafeRawPointer(group + b * 64).load(as: __m512i.self)
            let base = b * per - from
            if b * per >= from && b * per + per <= to {
                if int4 {
                    put(v, 0, base); put(v, 1, base + 1); put(v, 2, base + 2); put(v, 3, base + 3)
                    put(v, 4, base + 4); put(v, 5, base + 5); put(v, 6, base + 6); put(v, 7, base + 7)
                } else {
                    put(v, 0, base); put(v, 1, base + 1); put(v, 2, base + 2); put(v, 3, base + 3)
                }
            } else {
                for t in max(0, from - b * per)..<min(per, to - b * per) { put(v, t, base + t) }
            }
        }
    }
}
#endif
