// AVX2 + FMA kernels for WeightOnlyGemm (f32 activations × IntGemm's packed integer weights),
// compiled with -target-cpu haswell. Only call them when KernelDispatch says so.
#if arch(x86_64)
import _Builtin_intrinsics.intel

public enum AVX2WeightOnly {
    /// The codes at offset `t` of one 32-byte half of a panel block (8 columns), minus the stored
    /// zero points `z`, as floats (exact). Lane layout as `AVX512WeightOnly.codes`.
    @inline(__always)
    static func codes(_ v: __m256i, _ t: Int, _ int4: Bool, _ z: __m256i) -> SIMD8<Float> {
        let q = int4 ? _mm256_and_si256(_mm256_srli_epi32(v, Int32(8 * (t & 3) + 4 * (t >> 2))), _mm256_set1_epi32(0xF))
                     : _mm256_srai_epi32(_mm256_slli_epi32(v, Int32(24 - 8 * t)), 24)
        return _mm256_cvtepi32_ps(_mm256_sub_epi32(q, z))
    }

    /// `WeightOnlyGemm.portablePanel` (same contract) with fused multiply-adds.
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

    /// `panel` for a constant row count and code width. Per row two 8-lane accumulators (columns
    /// 0…7, 8…15); one row alone gets a second pair for odd t to hide FMA latency (16 registers).
    @inline(__always)
    static func panelRows(_ rows: Int, _ int4: Bool, _ x: UnsafePointer<Float>, _ ldx: Int, _ panel: UnsafePointer<UInt8>,
                          _ groups: Int, _ groupSize: Int, _ groupBytes: Int,
                          _ zeros: UnsafePointer<Int32>, _ scales: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>) {
        typealias F = SIMD8<Float>
        let per = int4 ? 8 : 4
        let xs = (x, x + min(1, rows - 1) * ldx, x + min(2, rows - 1) * ldx, x + min(3, rows - 1) * ldx)
        var tot = (F(), F(), F(), F(), F(), F(), F(), F())
        for g in 0..<groups {
            let zp = UnsafeRawPointer(zeros + g * 16)
            let z0 = zp.loadUnaligned(as: __m256i.self), z1 = zp.loadUnaligned(fromByteOffset: 32, as: __m256i.self)
            var a = (F(), F(), F(), F(), F(), F(), F(), F())   // rows 0…3 × (cols 0…7, 8…15)
            var b0 = F(), b1 = F()                              // row 0, odd t (rows == 1 only)
            var blk = UnsafeRawPointer(panel + g * groupBytes)
            var p = g * groupSize
            @inline(__always) func step(_ v0: __m256i, _ v1: __m256i, _ t: Int) {
                let d0 = codes(v0, t, int4, z0), d1 = codes(v1, t, int4, z1)
                if rows == 1 && t & 1 == 1 {
                    let xv = F(repeating: xs.0[p &+ t]); b0.addProduct(xv, d0); b1.addProduct(xv, d1)
                    return
                }
                var xv = F(repeating: xs.0[p &+ t]); a.0.addProduct(xv, d0); a.1.addProduct(xv, d1)
                if rows > 1 { xv = F(repeating: xs.1[p &+ t]); a.2.addProduct(xv, d0); a.3.addProduct(xv, d1) }
                if rows > 2 { xv = F(repeating: xs.2[p &+ t]); a.4.addProduct(xv, d0); a.5.addProduct(xv, d1) }
                if rows > 3 { xv = F(repeating: xs.3[p &+ t]); a.6.addProduct(xv, d0); a.7.addProduct(xv, d1) }
            }
            let whole = groupSize / per
            for _ in 0..<whole {
                let v0 = blk.load(as: __m256i.self), v1 = blk.load(fromByteOffset: 32, as: __m256i.self)
                if int4 {
                    step(v0, v1, 0); step(v0, v1, 1); step(v0, v1, 2); step(v0, v1, 3)
                    step(v0, v1, 4); step(v0, v1, 5); step(v0, v1, 6); step(v0, v1, 7)
                } else {
                    step(v0, v1, 0); step(v0, v1, 1); step(v0, v1, 2); step(v0, v1, 3)
                }
                blk += 64; p &+= per
            }
            // A partial last block (one group of K not a multiple of 8): its padding is never read.
            let tail = groupSize - whole * per
            if tail > 0 {
                let v0 = blk.load(as: __m256i.self), v1 = blk.load(fromByteOffset: 32, as: __m256i.self)
                for t in 0..<tail { step(v0, v1, t) }
            }
            let sp = UnsafeRawPointer(scales + g * 16)
            let s0 = sp.loadUnaligned(as: F.self), s1 = sp.loadUnaligned(fromByteOffset: 32, as: F.self)
            if rows == 1 { a.0 += b0; a.1 += b1 }
            tot.0.addProduct(s0, a.0); tot.1.addProduct(s1, a.1)
            if rows > 1 { tot.2.addProduct(s0, a.2); tot.3.addProduct(s1, a.3) }
            if rows > 2 { tot.4.addProduct(s0, a.4); tot.5.addProduct(s1, a.5) }
            if rows > 3 { tot.6.addProduct(s0, a.6); tot.7.addProduct(s1, a.7) }
        }
        let o = UnsafeMutableRawPointer(out)
        o.storeBytes(of: tot.0, as: F.self); o.storeBytes(of: tot.1, toByteOffset: 32, as: F.self)
        if rows > 1 { o.storeBytes(of: tot.2, toByteOffset: 64, as: F.self); o.storeBytes(of: tot.3, toByteOffset: 96, as: F.self) }
        if rows > 2 { o.storeBytes(of: tot.4, toByteOffset: 128, as: F.self); o.storeBytes(of: tot.5, toByteOffset: 160, as: F.self) }
        if rows > 3 { o.storeBytes(of: tot.6, toByteOffset: 192, as: F.self); o.storeBytes(of: tot.7, toByteOffset: 224, as: F.self) }
    }

    /// `WeightOnlyGemm.portableDequantize` (same contract).
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
        let zp = UnsafeRawPointer(zeros), sp = UnsafeRawPointer(scales)
        let z0 = zp.loadUnaligned(as: __m256i.self), z1 = zp.loadUnaligned(fromByteOffset: 32, as: __m256i.self)
        let s0 = sp.loadUnaligned(as: SIMD8<Float>.self), s1 = sp.loadUnaligned(fromByteOffset: 32, as: SIMD8<Float>.self)
        @inline(__always) func put(_ v0: __m256i, _ v1: __m256i, _ t: Int, _ row: Int) {
            UnsafeMutableRawPointer(lo + row * stride).storeBytes(of: codes(v0, t, int4, z0) * s0, as: SIMD8<Float>.self)
            UnsafeMutableRawPointer(hi + row * stride).storeBytes(of: codes(v1, t, int4, z1) * s1, as: SIMD8<Float>.self)
        }
        for b in (from / per)...((to - 1) / per) {
            let bp = UnsafeRawPointer(group + b * 64)
            let v0 = bp.load(as: __m256i.self), v1 = bp.load(fromByteOffset: 32, as: __m256i.self)
            let base = b * per - from
            if b * per >= from && b * per + per <= to {
                if int4 {
                    put(v0, v1, 0, base); put(v0, v1, 1, base + 1); put(v0, v1, 2, base + 2); put(v0, v1, 3, base + 3)
                    put(v0, v1, 4, base + 4); put(v0, v1, 5, base + 5); put(v0, v1, 6, base + 6); put(v0, v1, 7, base + 7)
                } else {
                    put(v0, v1, 0, base); put(v0, v1, 1, base + 1); put(v0, v1, 2, base + 2); put(v0, v1, 3, base + 3)
                }
            } else {
                for t in max(0, from - b * per)..<min(per, to - b * per) { put(v0, v1, t, base + t) }
            }
        }
    }
}
#endif
