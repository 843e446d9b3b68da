#if arch(x86_64)
import QuantKernelsAVX2
import QuantKernelsAVX512
#endif

/// Integer GEMM `Y = dequant(A)·dequant(W)ᵀ` with int32 accumulation and f32 output:
///
///     y[i, j] = sa[i] · Σ_g sw[j, g] · Σ_{p∈g} (qa[i, p] − za[i]) · (qw[j, p] − zw[j, g])   (+ bias[j])
///
/// A is M×K (tokens × in, one scale/zero per token), W is N×K (out × in, one scale/zero per group of
/// `groupSize` input columns; `groupSize == K` is per channel). The inner sums run on raw codes,
/// `Σ qa·qw`, and are corrected with precomputed sums: `− zw·Σqa − za·Σqw + G·za·zw` per group, so
/// asymmetric activations and weights cost nothing in the inner loop.
///
/// Storage: activation codes are unsigned bytes (symmetric codes shifted by 2^(b−1)); weight codes
/// are signed bytes (int8; asymmetric codes shifted by −128) or nibbles 0…15 (int4, two per byte;
/// symmetric codes shifted by +8). Shifts are folded into the stored zero points, so results are
/// exactly those of the unshifted formula.
///
/// Exactness: the int32 group sums are exact while `groupSize·(2^ba−1)·(2^bw−1) < 2^31` (8-bit ×
/// 8-bit: groups up to 33 000 columns); otherwise they wrap exactly like `Reference.intGemm`.
/// f32 output: `s = Σ_g sw·Float(acc_g)` (g ascending, separate multiply and add), `y = s·sa (+ bias)`.
public enum IntGemm {
    /// Columns per weight panel.
    public static let panelWidth = 16

    /// `Y = A·Wᵀ` into `y` (M×N row-major, overwritten).
    public static func multiply(_ a: QuantizedActivations, _ w: PackedIntWeights, into y: UnsafeMutablePointer<Float>,
                                bias: UnsafePointer<Float>? = nil, threads: Int? = nil) {
        run(a, w, y: y, acc: nil, bias: bias, threads: threads)
    }

    /// Array convenience for `multiply`.
    public static func multiply(_ a: QuantizedActivations, _ w: PackedIntWeights, bias: [Float]? = nil,
                                threads: Int? = nil) -> [Float] {
        overwrittenArray(a.m * w.n) { yb in
            if let bias { bias.withUnsafeBufferPointer { run(a, w, y: yb, acc: nil, bias: $0.baseAddress, threads: threads) } }
            else { run(a, w, y: yb, acc: nil, bias: nil, threads: threads) }
        }
    }

    /// A quantized linear layer in one call: quantizes X (M×K f32, row-major) per token with
    /// `activationGrid`, then `Y = A·Wᵀ (+ bias)` into `y` (M×N).
    public static func linear(_ x: UnsafePointer<Float>, m: Int, weights w: PackedIntWeights, activationGrid: QuantGrid,
                              into y: UnsafeMutablePointer<Float>, bias: UnsafePointer<Float>? = nil, threads: Int? = nil) {
        let a = quantizeActivations(x, m: m, k: w.k, grid: activationGrid, threads: threads)
        multiply(a, w, into: y, bias: bias, threads: threads)
    }

    /// The exact int32 group sums `Σ_{p∈g} (qa[i,p] − za[i])·(qw[j,p] − zw[j,g])` as computed by the
    /// fast path, laid out M×G×N (`[(i·G + g)·N + j]`). For tests and diagnostics.
    public static func accumulators(_ a: QuantizedActivations, _ w: PackedIntWeights, threads: Int? = nil) -> [Int32] {
        var acc = [Int32](repeating: 0, count: a.m * w.groups * w.n)
        var y = [Float](repeating: 0, count: a.m * w.n)
        acc.withUnsafeMutableBufferPointer { ap in y.withUnsafeMutableBufferPointer { yp in
            guard let ab = ap.baseAddress, let yb = yp.baseAddress else { return }
            run(a, w, y: yb, acc: ab, bias: nil, threads: threads)
        } }
        return acc
    }

    typealias Dots = (Int, UnsafePointer<UInt8>, Int, UnsafePointer<UInt8>, Int, Bool, UnsafeMutablePointer<Int32>) -> Void
    typealias Compensate = (Int, UnsafePointer<Int32>, UnsafePointer<Int32>, UnsafePointer<Int32>, UnsafePointer<Float>,
                            UnsafePointer<Int32>, UnsafePointer<Int32>, Int, Int32, UnsafeMutablePointer<Float>, Bool,
                            UnsafeMutablePointer<Int32>?, Int, Int) -> Void
    typealias ByteSums = (UnsafePointer<UInt8>, Int, Int, Int, Int, UnsafeMutablePointer<Int32>) -> Void
    typealias StoreTile = (Int, UnsafePointer<Float>, UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int, Int,
                           UnsafePointer<Float>?) -> Void

    /// One ISA path's tile: raw dot products of `mr` rows × 16 columns, the per-group zero-point
    /// compensation and scaling, and the final store (see `portableCompensate` / `portableStoreTile`).
    struct TileKernel {
        var mr: Int
        var dots: Dots
        var compensate: Compensate = portableCompensate
        var store: StoreTile = portableStoreTile
        var byteSums: ByteSums = portableByteSums
    }

    static func kernel(_ path: KernelPath, int4: Bool, activationBits: Int) -> TileKernel {
        #if arch(x86_64)
        // Both x86 paths share the AVX2 epilogue (it is a small part of the time).
        let compensate: Compensate = {
            AVX2Int.compensate($0, $1, weightZeros: $2, weightSums: $3, weightScales: $4, activationZeros: $5,
                               activationSums: $6, sumStride: $7, groupLength: $8, into: $9, first: $10, acc: $11,
                               accStride: $12, cols: $13)
        }
        let store: StoreTile = { AVX2Int.storeTile($0, $1, activationScales: $2, $3, $4, $5, $6) }
        let byteSums: ByteSums = { AVX2Int.byteSums($0, $1, rows: $2, groups: $3, length: $4, into: $5) }
        switch path {
        case .vnni:
            return TileKernel(mr: AVX512Int.mr, dots: AVX512Int.dots, compensate: compensate, store: store, byteSums: byteSums)
        case .avx2:
            // W4A4: activations ≤ 15 let 16-bit lanes accumulate longer.
            let dots: Dots = int4 && activationBits <= 4 ? { r, ap, lda, wp, st, _, o in AVX2Int.dotsSmall(r, ap, lda, wp, st, o) }
                                                         : AVX2Int.dots
            return TileKernel(mr: AVX2Int.mr, dots: dots, compensate: compensate, store: store, byteSums: byteSums)
        case .portable: break
        }
        #endif
        return TileKernel(mr: 4, dots: portableDots)
    }

    static func run(_ a: QuantizedActivations, _ w: PackedIntWeights, y: UnsafeMutablePointer<Float>,
                    acc: UnsafeMutablePointer<Int32>?, bias: UnsafePointer<Float>?, threads: Int?,
                    path: KernelPath = KernelDispatch.active) {
        precondition(a.k == w.k, "IntGemm: activations have K = \(a.k), weights K = \(w.k)")
        let m = a.m, n = w.n, groups = w.groups
        guard m > 0, n > 0 else { return }
        let int4 = w.storageBits == 4
        let tile = kernel(path, int4: int4, activationBits: a.grid.bits)
        let mr = tile.mr
        let steps = int4 ? w.paddedGroup / 8 : w.paddedGroup / 4
        let groupBytes = w.paddedGroup * panelWidth / (int4 ? 2 : 1)
        let glen = Int32(truncatingIfNeeded: w.groupSize)
        let ops = 2 * m * n * a.k
        let t = ops < 1 << 18 ? 1 : (threads ?? Parallel.threadCount)
        let panels = w.panels
        let rowBlocks = (m + mr - 1) / mr
        // Deterministic split: column panels when there are enough, else row tiles. Weights too large
        // for the caches (the lm_head: 28 MB at int8) are split by rows instead, so both threads
        // stream the same weights at about the same time and share them through L3.
        let streamsWeights = panels * groups * groupBytes > 8 << 20 && rowBlocks >= 4 * t
        let splitN = !streamsWeights && (panels >= 4 * t || panels >= rowBlocks)
        let tasks = max(1, min(t, splitN ? panels : rowBlocks))
        // Blocking: rows in blocks of `mc` (their codes stay in L2); within a block, each row tile
        // sweeps `bp` panels (256 columns) before the next tile, so the tile's activations stay in
        // L1 and each output row is written in 1 KB runs (one panel per tile wrote 64-byte pieces
        // of 128 rows at once, which cost 25% on the 49 152-column lm_head).
        let mc = 128 / mr * mr, bp = 16
        a.codes.withUnsafeBufferPointer { cp in
        a.scales.withUnsafeBufferPointer { sav in a.storedZeros.withUnsafeBufferPointer { zav in
        w.withPointers { wp, sumW, zW, sW in
            Parallel.forEach(tasks, threads: tasks) { task in
                let (p0, p1) = splitN ? (task * panels / tasks, (task + 1) * panels / tasks) : (0, panels)
                let (i0, i1) = splitN ? (0, m) : (task * rowBlocks / tasks * mr, min(m, (task + 1) * rowBlocks / tasks * mr))
                // Σ of the stored activation codes per (token, weight group) of the current row block,
                // computed by each task for the rows it visits (both tasks, when they split columns).
                let sumA = UnsafeMutablePointer<Int32>.allocate(capacity: mc * groups)
                defer { sumA.deallocate() }
                withUnsafeTemporaryAllocation(of: SIMD16<Int32>.self, capacity: 16) { tmpBuf in
                withUnsafeTemporaryAllocation(of: SIMD16<Float>.self, capacity: 16) { fBuf in
                    let tmp = UnsafeMutableRawPointer(tmpBuf.baseAddress!).assumingMemoryBound(to: Int32.self)
                    let f = fBuf.baseAddress!
                    let fp = UnsafeMutableRawPointer(f).assumingMemoryBound(to: Float.self)
                    /// One tile: rows i..<i+rows × the 16 columns of `panel`, all groups, stored to Y.
                    @inline(__always) func tileAt(_ i: Int, _ rows: Int, _ panel: Int) {
                        let j0 = panel * panelWidth, cols = min(panelWidth, n - j0)
                        let pdata = wp + panel * groups * groupBytes
                        for g in 0..<groups {
                            tile.dots(rows, cp.baseAddress! + i * a.stride + g * w.paddedGroup, a.stride,
                                      pdata + g * groupBytes, steps, int4, tmp)
                            let pg = (panel * groups + g) * panelWidth
                            tile.compensate(rows, tmp, zW + pg, sumW + pg, sW + pg, zav.baseAddress! + i,
                                            sumA + (i - ic) * groups + g, groups, glen, fp, g == 0,
                                            acc.map { $0 + (i * groups + g) * n + j0 }, groups * n, cols)
                        }
                        tile.store(rows, fp, sav.baseAddress! + i, y + i * n + j0, n, cols, bias.map { $0 + j0 })
                    }
                    var ic = i0
                    while ic < i1 {
                        let icEnd = min(i1, ic + mc)
                        tile.byteSums(cp.baseAddress! + ic * a.stride, a.stride, icEnd - ic, groups, w.paddedGroup, sumA)
                        var b0 = p0
                        while b0 < p1 {
                            let b1 = min(p1, b0 + bp)
                            var i = ic
                            while i < icEnd {
                                let rows = min(mr, icEnd - i)
                                for panel in b0..<b1 { tileAt(i, rows, panel) }
                                i += rows
                            }
                            b0 = b1
                        }
                        ic = icEnd
                    }
                } }
            }
        } } } }
    }

    /// Portable `AVX2Int.byteSums`: Σ of `rows` × `groups` runs of `length` bytes (row stride `lda`).
    static func portableByteSums(_ a: UnsafePointer<UInt8>, _ lda: Int, _ rows: Int, _ groups: Int, _ length: Int,
                                 _ out: UnsafeMutablePointer<Int32>) {
        for r in 0..<rows { for g in 0..<groups {
            let p = a + r * lda + g * length
            var s: Int32 = 0
            for t in 0..<length { s &+= Int32(p[t]) }
            out[r * groups + g] = s
        } }
    }

    /// The group epilogue, portable reference (`AVX2Int.compensate` documents it): per row r,
    /// `comp = raw − zw·(Σqa − G·za) − Σqw·za` (wrapping int32, equal to the formula above mod 2³²),
    /// `f[r] += sw · Float(comp)` (`f[r] =` for the first group), and `comp` stored to
    /// `acc + r·accStride` when given.
    static func portableCompensate(_ rows: Int, _ raw: UnsafePointer<Int32>, _ zw: UnsafePointer<Int32>,
                                   _ sumW: UnsafePointer<Int32>, _ sw: UnsafePointer<Float>, _ za: UnsafePointer<Int32>,
                                   _ sumA: UnsafePointer<Int32>, _ sumStride: Int, _ glen: Int32,
                                   _ f: UnsafeMutablePointer<Float>, _ first: Bool, _ acc: UnsafeMutablePointer<Int32>?,
                                   _ accStride: Int, _ cols: Int) {
        typealias V = SIMD16<Int32>
        let zwv = UnsafeRawPointer(zw).loadUnaligned(as: V.self), swv = UnsafeRawPointer(sumW).loadUnaligned(as: V.self)
        let scale = UnsafeRawPointer(sw).loadUnaligned(as: SIMD16<Float>.self)
        for r in 0..<rows {
            let u = sumA[r * sumStride] &- glen &* za[r]
            let comp = UnsafeRawPointer(raw + r * 16).loadUnaligned(as: V.self) &- zwv &* u &- swv &* za[r]
            if let acc { for c in 0..<cols { acc[r * accStride + c] = comp[c] } }
            let fr = UnsafeMutableRawPointer(f + r * 16)
            let term = scale * floats(comp)
            fr.storeBytes(of: first ? term : fr.load(as: SIMD16<Float>.self) + term, as: SIMD16<Float>.self)
        }
    }

    /// Portable tile store: `y[r·ldy + c] = f[r·16 + c] · sa[r] (+ bias[c])`.
    static func portableStoreTile(_ rows: Int, _ f: UnsafePointer<Float>, _ sa: UnsafePointer<Float>,
                                  _ y: UnsafeMutablePointer<Float>, _ ldy: Int, _ cols: Int, _ bias: UnsafePointer<Float>?) {
        for r in 0..<rows {
            let v = UnsafeRawPointer(f + r * 16).loadUnaligned(as: SIMD16<Float>.self) * sa[r]
            let o = y + r * ldy
            if let bias { for c in 0..<cols { o[c] = v[c] + bias[c] } } else { for c in 0..<cols { o[c] = v[c] } }
        }
    }

    /// Lane-wise exact Int32 → Float (small ints; written out so it inlines to cvtdq2ps).
    @inline(__always)
    static func floats(_ v: SIMD16<Int32>) -> SIMD16<Float> {
        var r = SIMD16<Float>()
        for i in 0..<16 { r[i] = Float(v[i]) }
        return r
    }

    /// Portable 4×16 tile (Swift SIMD, no ISA-specific code): each 32-bit lane of a 64-byte weight
    /// block holds one column's 4 bytes (int8) or 8 nibbles (int4).
    static func portableDots(_ rows: Int, _ a: UnsafePointer<UInt8>, _ lda: Int, _ w: UnsafePointer<UInt8>,
                             _ steps: Int, _ int4: Bool, _ out: UnsafeMutablePointer<Int32>) {
        typealias V = SIMD16<Int32>
        var acc = (V(), V(), V(), V())
        let rp = (a, a + min(1, rows - 1) * lda, a + min(2, rows - 1) * lda, a + min(3, rows - 1) * lda)
        var pw = UnsafeRawPointer(w)
        var k = 0
        for _ in 0..<steps {
            let block = V(truncatingIfNeeded: pw.loadUnaligned(as: SIMD16<UInt32>.self))
            let per = int4 ? 8 : 4
            for t in 0..<per {
                let col: V = int4 ? (block &>> V(repeating: Int32(8 * (t & 3) + 4 * (t >> 2)))) & V(repeating: 0xF)
                                  : (block &<< V(repeating: Int32(24 - 8 * t))) &>> V(repeating: 24)
                acc.0 &+= col &* Int32(rp.0[k + t]); acc.1 &+= col &* Int32(rp.1[k + t])
                acc.2 &+= col &* Int32(rp.2[k + t]); acc.3 &+= col &* Int32(rp.3[k + t])
            }
            pw += 64; k += per
        }
        let o = UnsafeMutableRawPointer(out)
        o.storeBytes(of: acc.0, as: V.self)
        if rows > 1 { o.storeBytes(of: acc.1, toByteOffset: 64, as: V.self) }
        if rows > 2 { o.storeBytes(of: acc.2, toByteOffset: 128, as: V.self) }
        if rows > 3 { o.storeBytes(of: acc.3, toByteOffset: 192, as: V.self) }
    }

    // MARK: packing

    /// Packs weight codes from `Quantizer.quantize(w, rows: n, cols: k, groupSize:, grid:)` (N×K Int32
    /// codes, N×G scales and zeros) into 16-column panels. `grid.bits` ≤ 4 packs two codes per byte;
    /// 5…8 one per byte. `groupSize` is K (per channel) or a multiple of 8 dividing K.
    public static func packWeights(codes: [Int32], scales: [Float], zeros: [Int32], n: Int, k: Int, groupSize: Int,
                                   grid: QuantGrid) -> PackedIntWeights {
        PackedIntWeights(codes: codes, scales: scales, zeros: zeros, n: n, k: k, groupSize: groupSize, grid: grid)
    }

    /// Quantizes activations per token (one scale/zero per row of X, M×K row-major) with exactly
    /// `QuantGrid` semantics (`grid.bits` ≤ 8).
    public static func quantizeActivations(_ x: UnsafePointer<Float>, m: Int, k: Int, grid: QuantGrid,
                                           threads: Int? = nil) -> QuantizedActivations {
        QuantizedActivations(x, m: m, k: k, grid: grid, threads: threads)
    }
}

/// Per-token quantized activations in IntGemm's layout: M rows of `stride` (K rounded up to 8)
/// unsigned bytes, zero-padded, plus one scale and zero per row.
public struct QuantizedActivations: @unchecked Sendable {
    public let m: Int, k: Int
    public let grid: QuantGrid
    /// Row stride of `codes` in bytes (K rounded up to a multiple of 8).
    public let stride: Int
    /// Stored codes: `q + offset` with `offset = 2^(bits−1)` for symmetric grids, 0 otherwise.
    public internal(set) var codes: [UInt8]
    public internal(set) var scales: [Float]
    /// Zero points of the grid (unshifted, as `Quantizer.quantize` reports them).
    public internal(set) var zeros: [Int32]
    var storedZeros: [Int32]

    public var offset: Int32 { grid.symmetric ? Int32(1) << (grid.bits - 1) : 0 }

    /// Quantizes X (M×K row-major) per token.
    public init(_ x: UnsafePointer<Float>, m: Int, k: Int, grid: QuantGrid, threads: Int? = nil) {
        self.init(m: m, k: k, grid: grid, threads: threads) { i, _ in x + i * k }
    }

    /// Quantizes per token the M×K rows that `row(i, scratch)` gives: a pointer to row i's K
    /// floats, either written into `scratch` (K floats, reused for the next row on the same thread)
    /// or elsewhere. A producer (a norm, SwiGLU) then quantizes each row while it is in cache and
    /// never stores the f32 matrix. Rows are split over threads as `Parallel.forEach` splits items;
    /// every row's codes are the same whatever the split.
    public init(m: Int, k: Int, grid: QuantGrid, threads: Int? = nil,
                rows row: (_ i: Int, _ scratch: UnsafeMutablePointer<Float>) -> UnsafePointer<Float>) {
        precondition(grid.bits >= 2 && grid.bits <= 8, "IntGemm activations need 2…8 bits")
        self.m = m; self.k = k; self.grid = grid
        let stride = (k + 7) / 8 * 8
        self.stride = stride
        // Every byte is written below (padding bytes as 0), so the storage is not cleared first.
        codes = [UInt8](unsafeUninitializedCapacity: m * stride) { _, n in n = m * stride }
        scales = [Float](repeating: 1, count: m)
        zeros = [Int32](repeating: 0, count: m)
        storedZeros = [Int32](repeating: 0, count: m)
        let off = grid.symmetric ? Int32(1) << (grid.bits - 1) : 0
        let t = min(m, m * k >= 1 << 15 ? (threads ?? Parallel.threadCount) : 1)
        codes.withUnsafeMutableBufferPointer { cb in scales.withUnsafeMutableBufferPointer { sb in
        zeros.withUnsafeMutableBufferPointer { zb in storedZeros.withUnsafeMutableBufferPointer { szb in
            let c = cb.baseAddress!, s = sb.baseAddress!, z = zb.baseAddress!, sz = szb.baseAddress!
            Parallel.forEach(t, threads: t) { chunk in
                let scratch = UnsafeMutablePointer<Float>.allocate(capacity: max(k, 1))
                defer { scratch.deallocate() }
                for i in (chunk * m / t)..<((chunk + 1) * m / t) {
                    let out = c + i * stride
                    if stride > k { (out + k).update(repeating: 0, count: stride - k) }
                    let x = row(i, scratch)
                    let (lo, hi) = Quantizer.minMax(x, k)
                    // A row holding NaN or ±inf gets scale NaN (and zero codes): its outputs are
                    // NaN, never finite garbage.
                    guard lo.isFinite && hi.isFinite else {
                        s[i] = .nan; z[i] = 0; sz[i] = off; out.update(repeating: 0, count: k); continue
                    }
                    let (sc, zp) = grid.parameters(min: lo, max: hi)
                    s[i] = sc; z[i] = zp; sz[i] = zp + off
                    var done = 0
                    #if arch(x86_64)
                    if KernelDispatch.active != .portable {
                        done = AVX2Quant.codesU8(x, k, scale: sc, lo: Float(grid.qmin - zp), hi: Float(grid.qmax - zp), add: zp + off, into: out)
                    }
                    #endif
                    if done < k { Quantizer.codesRun(x, k, grid: grid, scale: sc, zero: zp, offset: off, { j, v in
                        let b = SIMD8<UInt8>(truncatingIfNeeded: v)
                        UnsafeMutableRawPointer(out + j).storeBytes(of: b, as: SIMD8<UInt8>.self)
                    }, { j, q in out[j] = UInt8(truncatingIfNeeded: q) }, from: done) }
                }
            }
        } } } }
    }

    /// Wraps codes already computed with `grid` (M×K Int32, one scale and zero per row).
    public init(codes q: [Int32], scales: [Float], zeros: [Int32], m: Int, k: Int, grid: QuantGrid) {
        precondition(q.count == m * k && scales.count == m && zeros.count == m)
        self.m = m; self.k = k; self.grid = grid
        stride = (k + 7) / 8 * 8
        let off = grid.symmetric ? Int32(1) << (grid.bits - 1) : 0
        var c = [UInt8](repeating: 0, count: m * stride)
        for i in 0..<m { for p in 0..<k { c[i * stride + p] = UInt8(truncatingIfNeeded: q[i * k + p] + off) } }
        codes = c; self.scales = scales; self.zeros = zeros; storedZeros = zeros.map { $0 + off }
    }

    /// Wraps symmetric codes already stored as bytes `code + 2^(bits−1)`, M rows of
    /// `QuantizedActivations.stride(k)` bytes (padding bytes 0), one scale per row.
    public init(storedCodes: [UInt8], m: Int, k: Int, scales: [Float], grid: QuantGrid) {
        precondition(grid.symmetric && grid.bits >= 2 && grid.bits <= 8, "IntGemm activations need a symmetric 2…8-bit grid here")
        precondition(storedCodes.count == m * QuantizedActivations.stride(k) && scales.count == m, "IntGemm: shape mismatch")
        self.m = m; self.k = k; self.grid = grid
        stride = QuantizedActivations.stride(k)
        codes = storedCodes; self.scales = scales
        zeros = [Int32](repeating: 0, count: m)
        storedZeros = [Int32](repeating: Int32(1) << (grid.bits - 1), count: m)
    }

    /// Row stride in bytes for K columns (K rounded up to a multiple of 8).
    public static func stride(_ k: Int) -> Int { (k + 7) / 8 * 8 }

    /// The grid codes (unshifted, M×K Int32).
    public var unpackedCodes: [Int32] {
        var out = [Int32](repeating: 0, count: m * k)
        for i in 0..<m { for p in 0..<k { out[i * k + p] = Int32(codes[i * stride + p]) - offset } }
        return out
    }
}

/// Weights in IntGemm's panel layout (see `IntGemm`). Immutable; share freely between threads.
///
/// Panel `P` (columns 16P…16P+15) holds, group after group, `paddedGroup/4` 64-byte blocks (int8:
/// byte `4c + t` = code of column c at k = 4s + t) or `paddedGroup/8` blocks (int4: low nibble of
/// byte `4c + t` at k = 8s + t, high nibble at k = 8s + 4 + t). Per (panel, group, column): Σ of
/// stored codes, stored zero point and scale (zero for padding columns).
public final class PackedIntWeights: @unchecked Sendable {
    public let n: Int, k: Int, groupSize: Int, groups: Int
    public let grid: QuantGrid
    /// 4 (two codes per byte) or 8.
    public let storageBits: Int
    /// Group length rounded up to the k-block (only the single-group case is ever padded).
    public let paddedGroup: Int
    public var panels: Int { (n + IntGemm.panelWidth - 1) / IntGemm.panelWidth }
    let data: UnsafeMutableRawPointer
    let sumW: [Int32], zeroW: [Int32], scaleW: [Float]

    init(codes: [Int32], scales: [Float], zeros: [Int32], n: Int, k: Int, groupSize: Int, grid: QuantGrid) {
        precondition(grid.bits >= 2 && grid.bits <= 8, "IntGemm weights need 2…8 bits")
        precondition(groupSize > 0 && k % groupSize == 0 && (groupSize == k || groupSize % 8 == 0),
                     "IntGemm: group size must be K or a multiple of 8 dividing K")
        let groups = k / max(groupSize, 1)
        precondition(codes.count == n * k && scales.count == n * groups && zeros.count == n * groups, "IntGemm: shape mismatch")
        self.n = n; self.k = k; self.groupSize = groupSize; self.groups = groups; self.grid = grid
        let sb = grid.bits <= 4 ? 4 : 8
        storageBits = sb
        paddedGroup = (groupSize + 7) / 8 * 8
        // stored = code + off: int8 signed bytes (asym −128), int4 nibbles 0…15 (sym +8).
        let off: Int32 = sb == 8 ? (grid.symmetric ? 0 : -128) : (grid.symmetric ? 8 : 0)
        let pw = IntGemm.panelWidth
        let panels = (n + pw - 1) / pw
        let groupBytes = paddedGroup * pw / (sb == 4 ? 2 : 1)
        let bytes = max(64, panels * groups * groupBytes)
        data = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        data.initializeMemory(as: UInt8.self, repeating: 0, count: bytes)
        var sums = [Int32](repeating: 0, count: panels * groups * pw)
        var zs = [Int32](repeating: 0, count: panels * groups * pw)
        var ss = [Float](repeating: 0, count: panels * groups * pw)
        let d = data.assumingMemoryBound(to: UInt8.self)
        for j in 0..<n {
            let panel = j / pw, c = j % pw
            for g in 0..<groups {
                let base = d + (panel * groups + g) * groupBytes
                var s: Int32 = 0
                for p in 0..<groupSize {
                    let v = codes[j * k + g * groupSize + p] + off
                    s &+= v
                    if sb == 8 {
                        base[(p / 4) * 64 + 4 * c + p % 4] = UInt8(truncatingIfNeeded: v)
                    } else {
                        let idx = (p / 8) * 64 + 4 * c + p % 4
                        base[idx] |= UInt8(truncatingIfNeeded: v & 0xF) << (p % 8 >= 4 ? 4 : 0)
                    }
                }
                let e = (panel * groups + g) * pw + c
                sums[e] = s; zs[e] = zeros[j * groups + g] + off; ss[e] = scales[j * groups + g]
            }
        }
        sumW = sums; zeroW = zs; scaleW = ss
    }

    deinit { data.deallocate() }

    /// Bytes held in memory: the packed codes plus the per-(panel, group, column) sums, zeros and scales.
    public var byteCount: Int {
        let groupBytes = paddedGroup * IntGemm.panelWidth / (storageBits == 4 ? 2 : 1)
        return max(64, panels * groups * groupBytes) + 4 * (sumW.count + zeroW.count + scaleW.count)
    }

    /// Packs symmetric codes stored *K-major* (one group, `groupSize == k`): the code of output
    /// column j at reduction index p is `src[row(p)·ld + j]`, with `row(p) = rows[p]` when `rows` is
    /// given (a gather) and p otherwise. This is the layout of the second operand of the gradient
    /// GEMMs (`∂X = G·W`: W is out × in, K = out; `∂W = Gᵀ·X`: X is tokens × in, K = tokens), so it
    /// packs without a transpose. One scale per column. Same panels as `init(codes:…)` (tested).
    public init(kMajor src: UnsafePointer<Int8>, ld: Int, rows: UnsafePointer<Int>? = nil, n: Int, k: Int,
                scales: [Float], grid: QuantGrid) {
        precondition(grid.symmetric && grid.bits >= 2 && grid.bits <= 8 && k > 0 && scales.count == n,
                     "IntGemm: K-major packing takes symmetric codes, K > 0, one scale per column")
        self.n = n; self.k = k; groupSize = k; groups = 1; self.grid = grid
        let sb = grid.bits <= 4 ? 4 : 8
        storageBits = sb
        let paddedGroup = (k + 7) / 8 * 8
        self.paddedGroup = paddedGroup
        let off: Int32 = sb == 8 ? 0 : 8
        let pw = IntGemm.panelWidth
        let panels = (n + pw - 1) / pw
        let groupBytes = paddedGroup * pw / (sb == 4 ? 2 : 1)
        let bytes = max(64, panels * groupBytes)
        let raw = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        raw.initializeMemory(as: UInt8.self, repeating: 0, count: bytes)
        data = raw
        var sums = [Int32](repeating: 0, count: panels * pw)
        let d = raw.assumingMemoryBound(to: UInt8.self)
        let kPerBlock = sb == 4 ? 8 : 4
        sums.withUnsafeMutableBufferPointer { sp in
            let sums = sp.baseAddress!
            Parallel.forEach(panels, threads: n * k >= 1 << 16 ? nil : 1) { panel in
                let j0 = panel * pw, cols = min(pw, n - j0)
                var colSum = [Int32](repeating: 0, count: pw)
                for s in 0..<(paddedGroup / kPerBlock) {
                    let block = d + panel * groupBytes + s * 64
                    for t in 0..<kPerBlock {
                        let p = s * kPerBlock + t
                        guard p < k else { break }
                        let row = src + (rows.map { $0[p] } ?? p) * ld + j0
                        // int4: t < 4 → low nibble of byte 4c + t, t ≥ 4 → high nibble of byte 4c + t − 4.
                        for c in 0..<cols {
                            let v = Int32(row[c]) + off
                            colSum[c] &+= v
                            if sb == 8 {
                                block[4 * c + t] = UInt8(truncatingIfNeeded: v)
                            } else {
                                block[4 * c + (t & 3)] |= UInt8(truncatingIfNeeded: v & 0xF) << (t >= 4 ? 4 : 0)
                            }
                        }
                    }
                }
                for c in 0..<cols { sums[j0 + c] = colSum[c] }
            }
        }
        sumW = sums
        zeroW = (0..<(panels * pw)).map { $0 < n ? off : 0 }
        scaleW = (0..<(panels * pw)).map { $0 < n ? scales[$0] : 0 }
    }


    func withPointers<R>(_ body: (UnsafePointer<UInt8>, UnsafePointer<Int32>, UnsafePointer<Int32>, UnsafePointer<Float>) -> R) -> R {
        sumW.withUnsafeBufferPointer { s in zeroW.withUnsafeBufferPointer { z in scaleW.withUnsafeBufferPointer { sc in
            body(UnsafePointer(data.assumingMemoryBound(to: UInt8.self)), s.baseAddress!, z.baseAddress!, sc.baseAddress!)
        } } }
    }

    /// Bytes of packed codes (excluding per-group metadata).
    public var codeBytes: Int { panels * groups * paddedGroup * IntGemm.panelWidth / (storageBits == 4 ? 2 : 1) }
}

extension Reference {
    /// Scalar integer GEMM straight from grid codes (A: M×K, one scale/zero per row; W: N×K, N×G
    /// scales/zeros): returns the M×G×N int32 group sums and the M×N f32 output, evaluated in the
    /// same float order as the fast path: `s = Σ_g sw·Float(acc_g)` (g ascending), `y = s·sa + bias`.
    public static func intGemm(aCodes: [Int32], aScales: [Float], aZeros: [Int32],
                               wCodes: [Int32], wScales: [Float], wZeros: [Int32],
                               m: Int, n: Int, k: Int, groupSize: Int, bias: [Float]? = nil) -> (acc: [Int32], y: [Float]) {
        let groups = k / groupSize
        var acc = [Int32](repeating: 0, count: m * groups * n)
        var y = [Float](repeating: 0, count: m * n)
        for i in 0..<m { for j in 0..<n {
            var s: Float = 0
            for g in 0..<groups {
                var t = 0
                for p in (g * groupSize)..<((g + 1) * groupSize) {
                    t += Int(aCodes[i * k + p] - aZeros[i]) * Int(wCodes[j * k + p] - wZeros[j * groups + g])
                }
                let a32 = Int32(truncatingIfNeeded: t)
                acc[(i * groups + g) * n + j] = a32
                s += wScales[j * groups + g] * Float(a32)
            }
            y[i * n + j] = s * aScales[i] + (bias?[j] ?? 0)
        } }
        return (acc, y)
    }
}
