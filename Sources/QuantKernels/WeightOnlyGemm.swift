#if arch(x86_64)
import QuantKernelsAVX2
import QuantKernelsAVX512
#endif

/// Weight-only quantized GEMM (W8A16 / W4A16): `Y = X·Ŵᵀ (+ bias)` with f32 activations and integer
/// weights read straight from a `PackedIntWeights` (the object `IntGemm` runs on, so a quantized
/// layer keeps one packed copy of its weights). X is M×K, Y is M×N, both row-major;
/// `Ŵ[j, p] = (q[j, p] − zero[j, g])·scale[j, g]` for the group g holding p.
///
/// Large M: the f32 GEMM's blocking and micro-kernels (`Gemm.packed`), with each K_c slab of W
/// dequantized straight into its packed B panels instead of copied from an f32 matrix. The
/// dequantized values are bit-identical to `QuantizedWeight.dequantized()`.
///
/// Small M (≤ 4, decode): a GEMV over the 16-column panels that reads only the packed bytes
/// (int4: 1/8 of the f32 weights' bytes) and unpacks them in registers:
/// `y[i, j] = Σ_g scale[j, g] · Σ_{p∈g} x[i, p]·Float(q[j, p] − zero[j, g])`, g ascending.
///
/// Work is split by output columns (small M) or by the f32 GEMM's deterministic split, and every
/// output is computed by the same instruction sequence on any thread count: 1 and N threads give
/// identical bits.
public enum WeightOnlyGemm {
    /// `Y = X·Ŵᵀ (+ bias)` into `y` (M×N, overwritten). X is M×K with K = `w.k`.
    public static func multiply(_ x: UnsafePointer<Float>, m: Int, _ w: PackedIntWeights, into y: UnsafeMutablePointer<Float>,
                                bias: UnsafePointer<Float>? = nil, threads: Int? = nil) {
        run(x, m: m, w, y, bias: bias, threads: threads, path: KernelDispatch.active)
    }

    /// Array convenience for `multiply`: X is M×K row-major, returns M×N.
    public static func multiply(_ x: [Float], m: Int, _ w: PackedIntWeights, bias: [Float]? = nil,
                                threads: Int? = nil) -> [Float] {
        precondition(x.count == m * w.k && (bias?.count ?? w.n) == w.n, "WeightOnlyGemm.multiply: shape mismatch")
        var y = [Float](repeating: 0, count: m * w.n)
        guard m > 0 else { return y }
        x.withUnsafeBufferPointer { xp in y.withUnsafeMutableBufferPointer { yp in
            let xb = xp.baseAddress ?? UnsafePointer(yp.baseAddress!)   // K = 0: X is empty and never read
            if let bias { bias.withUnsafeBufferPointer { multiply(xb, m: m, w, into: yp.baseAddress!, bias: $0.baseAddress, threads: threads) } }
            else { multiply(xb, m: m, w, into: yp.baseAddress!, threads: threads) }
        } }
        return y
    }

    /// One ISA path: the small-M panel kernel and the slab dequantizer (see `portablePanel` and
    /// `portableDequantize` for their contracts).
    struct Kernels {
        var panel: PanelKernel
        var dequantize: Dequantize
    }

    typealias PanelKernel = (_ rows: Int, _ x: UnsafePointer<Float>, _ ldx: Int, _ panel: UnsafePointer<UInt8>,
                             _ groups: Int, _ groupSize: Int, _ groupBytes: Int, _ int4: Bool,
                             _ zeros: UnsafePointer<Int32>, _ scales: UnsafePointer<Float>,
                             _ out: UnsafeMutablePointer<Float>) -> Void
    typealias Dequantize = (_ group: UnsafePointer<UInt8>, _ int4: Bool, _ from: Int, _ to: Int,
                            _ zeros: UnsafePointer<Int32>, _ scales: UnsafePointer<Float>,
                            _ lo: UnsafeMutablePointer<Float>, _ hi: UnsafeMutablePointer<Float>, _ stride: Int) -> Void

    static func kernels(_ path: KernelPath) -> Kernels {
        #if arch(x86_64)
        switch path {
        case .vnni: return Kernels(panel: AVX512WeightOnly.panel, dequantize: AVX512WeightOnly.dequantize)
        case .avx2: return Kernels(panel: AVX2WeightOnly.panel, dequantize: AVX2WeightOnly.dequantize)
        case .portable: break
        }
        #endif
        return Kernels(panel: portablePanel, dequantize: portableDequantize)
    }

    static func run(_ x: UnsafePointer<Float>, m: Int, _ w: PackedIntWeights, _ y: UnsafeMutablePointer<Float>,
                    bias: UnsafePointer<Float>?, threads: Int?, path: KernelPath) {
        let n = w.n, k = w.k
        guard m > 0, n > 0 else { return }
        if k == 0 {
            for i in 0..<m { for j in 0..<n { y[i * n + j] = bias?[j] ?? 0 } }
            return
        }
        let t = 2 * m * n * k < 1 << 18 ? 1 : (threads ?? Parallel.threadCount)
        let kern = kernels(path)
        let int4 = w.storageBits == 4
        let groups = w.groups, gs = w.groupSize, pw = IntGemm.panelWidth
        let groupBytes = w.paddedGroup * pw / (int4 ? 2 : 1)
        w.withPointers { data, _, zeros, scales in
            if m <= 4 {
                Parallel.forEach(w.panels, threads: t) { panel in
                    withUnsafeTemporaryAllocation(of: Float.self, capacity: 4 * 16) { tmp in
                        let o = tmp.baseAddress!
                        let meta = panel * groups * pw
                        kern.panel(m, x, k, data + panel * groups * groupBytes, groups, gs, groupBytes, int4,
                                   zeros + meta, scales + meta, o)
                        let j0 = panel * pw, cols = min(pw, n - j0)
                        for i in 0..<m {
                            for c in 0..<cols { y[i * n + j0 + c] = o[i * 16 + c] + (bias?[j0 + c] ?? 0) }
                        }
                    }
                }
                return
            }
            let spec = Gemm.F32Spec.for(path)
            Gemm.packed(x, lda: k, packB: { jc, ncur, pc, kcur, dst in
                packSlab(w, data, zeros, scales, groupBytes: groupBytes, jc: jc, ncur: ncur, pc: pc, kcur: kcur,
                         nr: spec.nr, into: dst, kern.dequantize)
            }, y, ldy: n, m: m, n: n, k: k, bias: bias, threads: t, spec: spec)
        }
    }

    /// Dequantizes columns `jc ..< jc + ncur` and reduction indices `pc ..< pc + kcur` of W into the
    /// f32 GEMM's packed B layout: `⌈ncur/nr⌉` panels of `kcur` steps of `nr` floats (padding lanes 0).
    /// `jc` and `nr` are multiples of 8; each 16-column integer panel is written as two 8-column halves.
    static func packSlab(_ w: PackedIntWeights, _ data: UnsafePointer<UInt8>, _ zeros: UnsafePointer<Int32>,
                         _ scales: UnsafePointer<Float>, groupBytes: Int, jc: Int, ncur: Int, pc: Int, kcur: Int,
                         nr: Int, into dst: UnsafeMutablePointer<Float>, _ dequantize: Dequantize) {
        let pw = IntGemm.panelWidth, gs = w.groupSize, groups = w.groups
        let ncr = (ncur + nr - 1) / nr * nr
        // Lanes past the last integer panel (AVX-512: 32-wide panels over 16-wide ones) stay zero.
        if jc + ncr > w.panels * pw { (dst + (ncr - nr) * kcur).initialize(repeating: 0, count: nr * kcur) }
        // Halves outside this block (a block boundary inside a panel: 8-wide portable panels) go here.
        var scratch: UnsafeMutablePointer<Float>? = nil
        defer { scratch?.deallocate() }
        for panel in (jc / pw)...((jc + ncur - 1) / pw) {
            @inline(__always) func target(_ h: Int) -> UnsafeMutablePointer<Float> {
                let local = panel * pw + 8 * h - jc
                if local >= 0 && local < ncr { return dst + local / nr * (nr * kcur) + local % nr }
                if scratch == nil { scratch = .allocate(capacity: nr * kcur) }
                return scratch!
            }
            let lo = target(0), hi = target(1)
            var g = pc / gs
            while g < groups && g * gs < pc + kcur {
                let a = max(pc, g * gs), b = min(pc + kcur, (g + 1) * gs)
                let meta = (panel * groups + g) * pw
                let row = (a - pc) * nr
                dequantize(data + (panel * groups + g) * groupBytes, w.storageBits == 4, a - g * gs, b - g * gs,
                           zeros + meta, scales + meta, lo + row, hi + row, nr)
                g += 1
            }
        }
    }

    // MARK: portable kernels (Swift SIMD; multiply and add kept separate)

    /// The stored code of column `c` at index `p` of one group's blocks (IntGemm's panel layout).
    @inline(__always)
    static func storedCode(_ group: UnsafePointer<UInt8>, _ int4: Bool, _ c: Int, _ p: Int) -> Int32 {
        if int4 {
            let byte = group[(p / 8) * 64 + 4 * c + p % 4]
            return Int32(p % 8 >= 4 ? byte >> 4 : byte & 0xF)
        }
        return Int32(Int8(bitPattern: group[(p / 4) * 64 + 4 * c + p % 4]))
    }

    /// Codes at offset `t` of one 64-byte block whose 32-bit lane c holds column c's 4 bytes (int8:
    /// k = 4s + t, signed) or 8 nibbles (int4: low nibble of byte t&3 at k = 8s + t for t < 4,
    /// high nibble at t ≥ 4).
    @inline(__always)
    static func unpack(_ lanes: SIMD16<Int32>, _ t: Int, _ int4: Bool) -> SIMD16<Int32> {
        int4 ? (lanes &>> Int32(8 * (t & 3) + 4 * (t >> 2))) & 0xF : (lanes &<< Int32(24 - 8 * t)) &>> 24
    }

    /// Small-M panel kernel: `out[r·16 + c] = Σ_g scales[g·16 + c] · Σ_{p∈g} x[r·ldx + p]·Float(q − zeros[g·16 + c])`
    /// for `rows` ≤ 4 rows of X and the 16 columns of one panel (`panel`: its groups, `groupBytes`
    /// apart; `zeros`/`scales`: 16 stored zero points / scales per group).
    static func portablePanel(_ rows: Int, _ x: UnsafePointer<Float>, _ ldx: Int, _ panel: UnsafePointer<UInt8>,
                              _ groups: Int, _ groupSize: Int, _ groupBytes: Int, _ int4: Bool,
                              _ zeros: UnsafePointer<Int32>, _ scales: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>) {
        typealias F = SIMD16<Float>
        typealias I = SIMD16<Int32>
        let per = int4 ? 8 : 4, whole = groupSize / per
        for r in 0..<rows {
            let xr = x + r * ldx
            var total = F()
            for g in 0..<groups {
                let base = panel + g * groupBytes
                let zv = UnsafeRawPointer(zeros + g * 16).loadUnaligned(as: I.self)
                var acc = F()
                var blk = UnsafeRawPointer(base), p = g * groupSize
                for _ in 0..<whole {
                    let lanes = I(truncatingIfNeeded: blk.loadUnaligned(as: SIMD16<UInt32>.self))
                    for t in 0..<per { acc += F(repeating: xr[p + t]) * IntGemm.floats(unpack(lanes, t, int4) &- zv) }
                    blk += 64; p += per
                }
                // A partial last block (one group of K not a multiple of 8): its padding is never read.
                if whole * per < groupSize {
                    let lanes = I(truncatingIfNeeded: blk.loadUnaligned(as: SIMD16<UInt32>.self))
                    for t in 0..<(groupSize - whole * per) { acc += F(repeating: xr[p + t]) * IntGemm.floats(unpack(lanes, t, int4) &- zv) }
                }
                total += UnsafeRawPointer(scales + g * 16).loadUnaligned(as: F.self) * acc
            }
            UnsafeMutableRawPointer(out + r * 16).storeBytes(of: total, as: F.self)
        }
    }

    /// Slab dequantizer: for group-local indices `p` in `from ..< to` of one panel's group, writes
    /// `Float(q − zeros[c])·scales[c]` of columns c < 8 to `lo[(p − from)·stride + c]` and of
    /// columns c ≥ 8 to `hi[(p − from)·stride + c − 8]`.
    static func portableDequantize(_ group: UnsafePointer<UInt8>, _ int4: Bool, _ from: Int, _ to: Int,
                                   _ zeros: UnsafePointer<Int32>, _ scales: UnsafePointer<Float>,
                                   _ lo: UnsafeMutablePointer<Float>, _ hi: UnsafeMutablePointer<Float>, _ stride: Int) {
        typealias F = SIMD16<Float>
        typealias I = SIMD16<Int32>
        let zv = UnsafeRawPointer(zeros).loadUnaligned(as: I.self), sv = UnsafeRawPointer(scales).loadUnaligned(as: F.self)
        @inline(__always) func store(_ v: F, _ p: Int) {
            UnsafeMutableRawPointer(lo + (p - from) * stride).storeBytes(of: v.lowHalf, as: SIMD8<Float>.self)
            UnsafeMutableRawPointer(hi + (p - from) * stride).storeBytes(of: v.highHalf, as: SIMD8<Float>.self)
        }
        guard from < to else { return }
        let per = int4 ? 8 : 4
        for b in (from / per)...((to - 1) / per) {
            let lanes = I(truncatingIfNeeded: UnsafeRawPointer(group + b * 64).loadUnaligned(as: SIMD16<UInt32>.self))
            for t in max(0, from - b * per)..<min(per, to - b * per) { store(IntGemm.floats(unpack(lanes, t, int4) &- zv) * sv, b * per + t) }
        }
    }
}

extension PackedIntWeights {
    /// The dequantized weights `(q − zero)·scale`, N×K row-major, read back from the panels (for
    /// tests and diagnostics: equal to `QuantizedWeight.dequantized()` of the packed codes).
    public func dequantized() -> [Float] {
        var out = [Float](repeating: 0, count: n * k)
        let groupBytes = paddedGroup * IntGemm.panelWidth / (storageBits == 4 ? 2 : 1)
        withPointers { data, _, zeros, scales in
            for j in 0..<n {
                let panel = j / IntGemm.panelWidth, c = j % IntGemm.panelWidth
                for g in 0..<groups {
                    let meta = (panel * groups + g) * IntGemm.panelWidth + c
                    let base = data + (panel * groups + g) * groupBytes
                    for p in 0..<groupSize {
                        let q = WeightOnlyGemm.storedCode(base, storageBits == 4, c, p)
                        out[j * k + g * groupSize + p] = Float(q - zeros[meta]) * scales[meta]
                    }
                }
            }
        }
        return out
    }
}

extension Reference {
    /// Weight-only GEMM from grid codes: `Ŵ = (q − zero)·scale` (N×K codes, N×G scales and zeros,
    /// groups of `groupSize` columns), then `Y = X·Ŵᵀ (+ bias)` with a plain triple loop in Double.
    public static func weightOnlyGemm(_ x: [Float], m: Int, codes: [Int32], scales: [Float], zeros: [Int32],
                                      n: Int, k: Int, groupSize: Int, bias: [Float]? = nil) -> [Float] {
        let groups = k / groupSize
        var w = [Float](repeating: 0, count: n * k)
        for j in 0..<n { for p in 0..<k {
            let g = j * groups + p / groupSize
            w[j * k + p] = Float(codes[j * k + p] - zeros[g]) * scales[g]
        } }
        var y = [Float](repeating: 0, count: m * n)
        for i in 0..<m { for j in 0..<n {
            var s = Double(bias?[j] ?? 0)
            for p in 0..<k { s += Double(x[i * k + p]) * Double(w[j * k + p]) }
            y[i * n + j] = Float(s)
        } }
        return y
    }
}
