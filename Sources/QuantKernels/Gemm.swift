#if arch(x86_64)
import QuantKernelsAVX2
import QuantKernelsAVX512
#endif

/// Dense f32 matrix products. Convention everywhere: `Y = X·Wᵀ`, X is M×K (tokens × in),
/// W is N×K (out × in), Y is M×N, all row-major and contiguous.
///
/// Large M: BLIS-style blocking. W is packed into K_c×16 (AVX2, portable: ×8; AVX-512: ×32) column
/// panels, X into M_r×K_c row panels, and a register-blocked micro-kernel updates an M_r×N_r tile of Y
/// per K_c slab. Small M (≤ 4): no packing, each output is a dot product of contiguous rows (GEMV).
/// Work is split over column (or row) chunks; every output element is computed by the same
/// instruction sequence whatever the thread count, so 1 and N threads are bit-identical.
public enum Gemm {
    /// `Y = X·Wᵀ` (+ `bias` broadcast over rows when given). Overwrites `y`.
    public static func multiply(
        _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>,
        m: Int, n: Int, k: Int, bias: UnsafePointer<Float>? = nil, threads: Int? = nil
    ) {
        guard m > 0, n > 0 else { return }
        if k == 0 {
            for i in 0..<m { for j in 0..<n { y[i * n + j] = bias?[j] ?? 0 } }
            return
        }
        let flops = 2 * m * n * k
        let t = flops < 1 << 18 ? 1 : (threads ?? Parallel.threadCount)
        if m <= 4 {
            smallM(x, w, y, m: m, n: n, k: k, bias: bias, threads: t)
        } else {
            packed(x, lda: k, w, y, ldy: n, m: m, n: n, k: k, bias: bias, threads: t, spec: F32Spec.for(KernelDispatch.active))
        }
    }

    /// `Y = X·Wᵀ` with row strides `lda` for X, `ldw` for W (default `k`: contiguous) and `ldy`
    /// for Y; always packed.
    public static func multiplyStrided(_ x: UnsafePointer<Float>, lda: Int, _ w: UnsafePointer<Float>, ldw: Int? = nil,
                                       into y: UnsafeMutablePointer<Float>, ldy: Int, m: Int, n: Int, k: Int,
                                       bias: UnsafePointer<Float>? = nil, threads: Int? = nil) {
        guard m > 0, n > 0 else { return }
        if k == 0 { for i in 0..<m { for j in 0..<n { y[i * ldy + j] = bias?[j] ?? 0 } }; return }
        let t = 2 * m * n * k < 1 << 18 ? 1 : (threads ?? Parallel.threadCount)
        let s = F32Spec.for(KernelDispatch.active), ldw = ldw ?? k
        packed(x, lda: lda, packB: { jc, ncur, pc, kcur, dst in s.pack(w + jc * ldw + pc, ldw, ncur, kcur, s.nr, dst) },
               y, ldy: ldy, m: m, n: n, k: k, bias: bias, threads: t, spec: s)
    }

    /// `Y = X·R` with R given K×N row-major (stride `ldr`), X and Y strided: the product with the
    /// weights' transpose without transposing them. R's panels are packed by plain row copies (a
    /// K×N row already holds `nr` consecutive columns of one reduction step); always packed.
    public static func multiplyKN(_ x: UnsafePointer<Float>, lda: Int, _ r: UnsafePointer<Float>, ldr: Int,
                                  into y: UnsafeMutablePointer<Float>, ldy: Int, m: Int, n: Int, k: Int, threads: Int? = nil) {
        guard m > 0, n > 0 else { return }
        if k == 0 { for i in 0..<m { for j in 0..<n { y[i * ldy + j] = 0 } }; return }
        let t = 2 * m * n * k < 1 << 18 ? 1 : (threads ?? Parallel.threadCount)
        let s = F32Spec.for(KernelDispatch.active)
        packed(x, lda: lda, packB: { jc, ncur, pc, kcur, dst in packKN(r, ldr: ldr, jc, ncur, pc, kcur, nr: s.nr, into: dst) },
               y, ldy: ldy, m: m, n: n, k: k, bias: nil, threads: t, spec: s)
    }

    /// The `PackB` of a K×N row-major R (stride `ldr`): columns `jc ..< jc + ncur`, reduction
    /// steps `pc ..< pc + kcur`, as `⌈ncur/nr⌉` panels of `kcur` rows of `nr` floats (zero-padded).
    static func packKN(_ r: UnsafePointer<Float>, ldr: Int, _ jc: Int, _ ncur: Int, _ pc: Int, _ kcur: Int, nr: Int,
                       into dst: UnsafeMutablePointer<Float>) {
        var d = dst
        var j = 0
        while j < ncur {
            let w = min(nr, ncur - j)
            for step in 0..<kcur {
                (d + step * nr).update(from: r + (pc + step) * ldr + jc + j, count: w)
                if w < nr { (d + step * nr + w).update(repeating: 0, count: nr - w) }
            }
            d += kcur * nr
            j += nr
        }
    }

    // MARK: B packed once for many products

    /// A B operand packed once and used by many products (attention packs each window's K and V
    /// once for all its query tiles). Panel p holds the output columns `p·width ..< p·width + width`
    /// for `steps` reduction steps, `width` floats per step, panel after panel; a product may use
    /// any prefix of the columns and of the steps. `width` is the active path's B panel width.
    public struct PackedPanels {
        public let base: UnsafePointer<Float>
        public let steps: Int, width: Int
        /// Panels already packed at `base` (by `packB` under the same kernel path).
        public init(base: UnsafePointer<Float>, steps: Int, width: Int = Gemm.panelWidth) {
            self.base = base; self.steps = steps; self.width = width
        }
    }

    /// The active path's B panel width (output columns per panel).
    public static var panelWidth: Int { F32Spec.for(KernelDispatch.active).nr }

    /// Floats that packing `columns` output columns over `steps` reduction steps takes (panels
    /// zero-padded to the active path's width).
    public static func packedFloats(columns: Int, steps: Int) -> Int {
        let nr = panelWidth
        return (columns + nr - 1) / nr * nr * steps
    }

    /// Packs W (n × k, row stride `ld`) as the B operand of `Y = X·Wᵀ` into `dst`
    /// (`packedFloats(columns: n, steps: k)` floats).
    public static func packB(transposed w: UnsafePointer<Float>, ld: Int, n: Int, k: Int,
                             into dst: UnsafeMutablePointer<Float>) -> PackedPanels {
        let s = F32Spec.for(KernelDispatch.active)
        s.pack(w, ld, n, k, s.nr, dst)
        return PackedPanels(base: dst, steps: k, width: s.nr)
    }

    /// Packs R (k × n, row stride `ld`) as the B operand of `Y = X·R` into `dst`
    /// (`packedFloats(columns: n, steps: k)` floats).
    public static func packB(kn r: UnsafePointer<Float>, ld: Int, k: Int, n: Int,
                             into dst: UnsafeMutablePointer<Float>) -> PackedPanels {
        let nr = F32Spec.for(KernelDispatch.active).nr
        packKN(r, ldr: ld, 0, n, 0, k, nr: nr, into: dst)
        return PackedPanels(base: dst, steps: k, width: nr)
    }

    /// `Y = X·B` on one thread, B packed once (its first `n` columns and first `k` steps), X and Y
    /// strided. The same K slabs and micro-kernel calls as `multiplyStrided` / `multiplyKN`
    /// packing B themselves, so the same bits.
    ///
    /// Causal products (attention's tiles, rows r = 0 ..< m of a tile starting at position
    /// `causalOffset`) skip work that is zero or not needed:
    /// - `causal: .columns(offset)`: row r needs only the columns < offset + r + 1; micro-tiles
    ///   past every row's last needed column are not computed (those entries are left as they were).
    /// - `causal: .steps(offset)`: X's row r is zero at steps ≥ offset + r + 1; each micro-tile
    ///   stops at its last row's limit. Those steps would only add exact zeros (for finite B), so
    ///   the bits are the same.
    public static func multiplyPacked(_ x: UnsafePointer<Float>, lda: Int, _ b: PackedPanels,
                                      into y: UnsafeMutablePointer<Float>, ldy: Int, m: Int, n: Int, k: Int,
                                      causal: Causal? = nil) {
        guard m > 0, n > 0 else { return }
        if k == 0 { for i in 0..<m { (y + i * ldy).update(repeating: 0, count: n) }; return }
        let s = F32Spec.for(KernelDispatch.active)
        precondition(b.width == s.nr && k <= b.steps, "multiplyPacked: B packed for another kernel path or too few steps")
        let kc = BlockLayout(n: n, k: k, s).kc
        let mc = min(s.mc, (m + s.mr - 1) / s.mr * s.mr)
        let pa = UnsafeMutableRawPointer.allocate(byteCount: (mc * kc + 8) * 4, alignment: 64).bindMemory(to: Float.self, capacity: mc * kc + 8)
        defer { pa.deallocate() }
        var ic = 0
        while ic < m {
            let mcur = min(mc, m - ic)
            var pc = 0
            while pc < k {
                let kcur = min(kc, k - pc)
                s.pack(x + ic * lda + pc, lda, mcur, kcur, s.mr, pa)
                microTiles(s, pa, rows: mcur, steps: kcur, b.base + pc * s.nr, panelStride: b.steps * s.nr, y + ic * ldy, ldy: ldy,
                           cols: n, accumulate: pc > 0, bias: nil, causal: causal, firstRow: ic, firstStep: pc)
                pc += kcur
            }
            ic += mcur
        }
    }

    /// Which part of a causal product `multiplyPacked` may skip (see there).
    public enum Causal: Sendable {
        case columns(offset: Int), steps(offset: Int)
        var offset: Int { switch self { case .columns(let o), .steps(let o): return o } }
    }

    /// One packed A block (`rows` × `steps`, panels of `mr` rows) times one B slab (panels of `nr`
    /// columns, `panelStride` floats apart) into Y (`rows` × `cols` from `y`): every micro-tile,
    /// column panels outer. `accumulate` adds to Y (a later K slab); `bias` (the last slab) is
    /// added once. With `causal`, micro-tiles skip what `multiplyPacked` documents (`firstRow`: the
    /// block's first row in the product, `firstStep`: the slab's first step).
    @inline(__always)
    static func microTiles(_ s: F32Spec, _ pa: UnsafePointer<Float>, rows: Int, steps: Int, _ bslab: UnsafePointer<Float>,
                           panelStride: Int, _ y: UnsafeMutablePointer<Float>, ldy: Int, cols: Int, accumulate: Bool,
                           bias: UnsafePointer<Float>?, causal: Causal? = nil, firstRow: Int = 0, firstStep: Int = 0) {
        var jr = 0
        while jr < cols {
            let width = min(s.nr, cols - jr)
            let bp = bslab + jr / s.nr * panelStride
            var ir = 0
            while ir < rows {
                let tileRows = min(s.mr, rows - ir)
                var kEff = steps, skip = false
                if let causal {
                    // One past the last position (column, or step of this slab) the tile's last row reaches.
                    let limit = causal.offset + firstRow + ir + tileRows
                    switch causal {
                    case .columns: skip = jr >= limit
                    case .steps: kEff = min(steps, limit - firstStep); skip = kEff <= 0 && accumulate   // C += 0
                    }
                }
                if !skip {
                    s.kernel(max(kEff, 0), pa + ir * steps, bp, y + ir * ldy + jr, ldy, tileRows, width, accumulate, bias.map { $0 + jr })
                }
                ir += s.mr
            }
            jr += s.nr
        }
    }

    // MARK: small M (GEMV)

    /// Each W row read once, for all `m` tokens; contiguous ranges of rows per work item.
    static func smallM(_ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                       m: Int, n: Int, k: Int, bias: UnsafePointer<Float>?, threads: Int) {
        let chunks = min(n, 64)
        let path = KernelDispatch.active
        Parallel.forEach(chunks, threads: threads) { c in
            let j0 = c * n / chunks, j1 = (c + 1) * n / chunks
            #if arch(x86_64)
            if path != .portable {
                AVX2F32.rowDots(x, m, w + j0 * k, k, rows: j1 - j0, y + j0, n)
                if let bias { for i in 0..<m { for j in j0..<j1 { y[i * n + j] += bias[j] } } }
                return
            }
            #endif
            for j in j0..<j1 { for i in 0..<m { y[i * n + j] = dot(x + i * k, w + j * k, k) + (bias?[j] ?? 0) } }
        }
    }

    // MARK: packed (BLIS-style)

    typealias MicroKernel = (Int, UnsafePointer<Float>, UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int, Int, Int,
                             Bool, UnsafePointer<Float>?) -> Void

    /// Micro-kernel and blocking parameters of one ISA path.
    struct F32Spec {
        var mr: Int, nr: Int, kc: Int, mc: Int, nc: Int
        var kernel: MicroKernel
        /// Packs (src, ld, count, depth, width, dst) like `packPanels`.
        var pack: (UnsafePointer<Float>, Int, Int, Int, Int, UnsafeMutablePointer<Float>) -> Void = {
            packPanels($0, ld: $1, count: $2, depth: $3, width: $4, into: $5)
        }

        static func `for`(_ path: KernelPath) -> F32Spec {
            #if arch(x86_64)
            switch path {
            case .vnni:
                // A panels 12 wide, B panels 32 wide: both packed with AVX2 transposes.
                return F32Spec(mr: AVX512F32.mr, nr: AVX512F32.nr, kc: 256, mc: 144, nc: 3072, kernel: AVX512F32.kernel,
                               pack: AVX2F32.pack)
            case .avx2:
                return F32Spec(mr: AVX2F32.mr, nr: AVX2F32.nr, kc: 256, mc: 144, nc: 3072, kernel: AVX2F32.kernel,
                               pack: AVX2F32.pack)
            case .portable: break
            }
            #endif
            return F32Spec(mr: 4, nr: 8, kc: 256, mc: 128, nc: 2048, kernel: portableKernel)
        }
    }

    /// Writes the packed B panels of W for columns `jc ..< jc + ncur` (absolute) and reduction
    /// indices `pc ..< pc + kcur` into `dst`: `⌈ncur/nr⌉` panels of `kcur` steps of `nr` floats,
    /// zero-padded past `ncur` (the layout of `packPanels` with `width = nr`).
    typealias PackB = (_ jc: Int, _ ncur: Int, _ pc: Int, _ kcur: Int, _ dst: UnsafeMutablePointer<Float>) -> Void

    static func packed(_ x: UnsafePointer<Float>, lda: Int, _ w: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                       ldy: Int, m: Int, n: Int, k: Int, bias: UnsafePointer<Float>?, threads t: Int, spec s: F32Spec) {
        packed(x, lda: lda, packB: { jc, ncur, pc, kcur, dst in s.pack(w + jc * k + pc, k, ncur, kcur, s.nr, dst) },
               y, ldy: ldy, m: m, n: n, k: k, bias: bias, threads: t, spec: s)
    }

    /// The blocked product with W supplied by `packB` (f32 rows, or dequantized integer codes).
    static func packed(_ x: UnsafePointer<Float>, lda: Int, packB: PackB, _ y: UnsafeMutablePointer<Float>,
                       ldy: Int, m: Int, n: Int, k: Int, bias: UnsafePointer<Float>?, threads t: Int, spec s: F32Spec) {
        // Split the longer dimension into `t` chunks aligned to the tile size.
        let panelsN = (n + s.nr - 1) / s.nr, panelsM = (m + s.mr - 1) / s.mr
        // Splitting N makes every thread pack all of X; splitting M would make every thread pack all
        // of W, so W is then packed once, by all threads together, into a shared buffer.
        let splitN = panelsM < 2 * t || (n >= m && panelsN >= t)
        let tasks = max(1, min(t, splitN ? panelsN : panelsM))
        let layout = BlockLayout(n: n, k: k, s)
        var shared: UnsafeMutablePointer<Float>? = nil
        if !splitN && tasks > 1 && layout.resident && k * panelsN * s.nr <= 4 << 20 {   // ≤ 16 MB
            let packedW = UnsafeMutablePointer<Float>.allocate(capacity: k * panelsN * s.nr)
            // Units of work: (column block, K slab); each writes its own part of the buffer.
            let blocks = (n + layout.nc - 1) / layout.nc
            Parallel.forEach(blocks * layout.slabs, threads: tasks) { unit in
                let jc = unit / layout.slabs * layout.nc, pc = unit % layout.slabs * layout.kc
                guard pc < k else { return }
                let ncur = min(layout.nc, n - jc), ncr = (ncur + s.nr - 1) / s.nr * s.nr
                packB(jc, ncur, pc, min(layout.kc, k - pc), packedW + jc * k + pc * ncr)
            }
            shared = packedW
        }
        defer { shared?.deallocate() }
        Parallel.forEach(tasks, threads: tasks) { task in
            if splitN {
                let j0 = task * panelsN / tasks * s.nr, j1 = min(n, (task + 1) * panelsN / tasks * s.nr)
                block(x, lda: lda, packB: packB, j0: j0, y + j0, m: m, n: j1 - j0, k: k, ldy: ldy, bias: bias.map { $0 + j0 }, s)
            } else {
                let i0 = task * panelsM / tasks * s.mr, i1 = min(m, (task + 1) * panelsM / tasks * s.mr)
                block(x + i0 * lda, lda: lda, packB: packB, j0: 0, y + i0 * ldy, m: i1 - i0, n: n, k: k, ldy: ldy, bias: bias, s,
                      packedW: shared.map { UnsafePointer($0) })
            }
        }
    }

    /// How `block` cuts K into slabs and N into column blocks.
    ///
    /// Small K: W is packed a ≤ 1024-column block at a time for all K slabs at once (≤ 4 MB,
    /// "resident") and each M_c×N_c block of Y is finished over all slabs while it is in L2. Large K:
    /// classic slab-outer order. Resident blocks are of equal width (576 columns: one block, not
    /// 512 + 64: every block repacks X, and a narrow last block pays that for little work). Packed,
    /// resident block `jc` (its first column) starts at `jc·k` and holds its slabs one after another
    /// (slab `pc` at `pc·ncr`, `ncr` the block width rounded up to panels).
    struct BlockLayout {
        var slabs: Int, kc: Int, nc: Int, resident: Bool

        init(n: Int, k: Int, _ s: F32Spec) {
            slabs = (k + s.kc - 1) / s.kc
            kc = (k + slabs - 1) / slabs              // even slabs: 576 → 3 × 192
            let nPanels = (n + s.nr - 1) / s.nr, nBlocks = (nPanels * s.nr + 1023) / 1024
            let ncResident = (nPanels + nBlocks - 1) / nBlocks * s.nr
            resident = k * ncResident * 4 <= 4 << 20
            nc = resident ? ncResident : min(s.nc, nPanels * s.nr)
        }
    }

    /// One thread's part: `Y[0..<m, 0..<n] = X·Wᵀ` with row strides `lda` for X and `ldy` for Y, for
    /// the columns `j0 ..< j0 + n` of W (`packB` takes absolute columns; `y` and `bias` start at j0).
    /// `packedW`: all of W already packed in the resident layout of `BlockLayout`.
    static func block(_ x: UnsafePointer<Float>, lda: Int, packB: PackB, j0: Int, _ y: UnsafeMutablePointer<Float>,
                      m: Int, n: Int, k: Int, ldy: Int, bias: UnsafePointer<Float>?, _ s: F32Spec,
                      packedW: UnsafePointer<Float>? = nil) {
        guard m > 0, n > 0 else { return }
        let layout = BlockLayout(n: n, k: k, s)
        let kc = layout.kc, nc = layout.nc, resident = layout.resident
        let mc = min(s.mc, (m + s.mr - 1) / s.mr * s.mr)
        let pa = UnsafeMutableRawPointer.allocate(byteCount: (mc * kc + 8) * 4, alignment: 64).bindMemory(to: Float.self, capacity: mc * kc + 8)
        let pbCount = packedW != nil && resident ? 1 : nc * (resident ? k : kc)
        let pb = UnsafeMutableRawPointer.allocate(byteCount: pbCount * 4, alignment: 64).bindMemory(to: Float.self, capacity: pbCount)
        defer { pa.deallocate(); pb.deallocate() }

        /// One packed A block (rows ic…, slab pc) against one packed B slab: all micro-tiles.
        @inline(__always) func tiles(_ ic: Int, _ mcur: Int, _ jc: Int, _ ncur: Int, _ pc: Int, _ kcur: Int,
                                     _ bslab: UnsafeMutablePointer<Float>) {
            microTiles(s, pa, rows: mcur, steps: kcur, bslab, panelStride: s.nr * kcur, y + ic * ldy + jc, ldy: ldy, cols: ncur,
                       accumulate: pc > 0, bias: pc + kcur == k ? bias.map { $0 + jc } : nil)
        }

        var jc = 0
        while jc < n {
            let ncur = min(nc, n - jc)
            let ncr = (ncur + s.nr - 1) / s.nr * s.nr
            if resident {
                var pc = 0
                // This column block of W, packed for all K slabs: shared, or packed here into `pb`.
                let packedBlock = packedW.map { UnsafeMutablePointer(mutating: $0 + jc * k) } ?? pb
                if packedW == nil {
                    while pc < k {
                        let kcur = min(kc, k - pc)
                        packB(j0 + jc, ncur, pc, kcur, pb + pc * ncr)
                        pc += kcur
                    }
                }
                var ic = 0
                while ic < m {
                    let mcur = min(mc, m - ic)
                    pc = 0
                    while pc < k {
                        let kcur = min(kc, k - pc)
                        s.pack(x + ic * lda + pc, lda, mcur, kcur, s.mr, pa)
                        tiles(ic, mcur, jc, ncur, pc, kcur, packedBlock + pc * ncr)
                        pc += kcur
                    }
                    ic += mcur
                }
            } else {
                var pc = 0
                while pc < k {
                    let kcur = min(kc, k - pc)
                    packB(j0 + jc, ncur, pc, kcur, pb)
                    var ic = 0
                    while ic < m {
                        let mcur = min(mc, m - ic)
                        s.pack(x + ic * lda + pc, lda, mcur, kcur, s.mr, pa)
                        tiles(ic, mcur, jc, ncur, pc, kcur, pb)
                        ic += mcur
                    }
                    pc += kcur
                }
            }
            jc += ncur
        }
    }

    /// Packs `count` rows of a row-major matrix (stride `ld`), `depth` columns each, into panels of
    /// `width` rows stored column by column: panel p holds `depth` steps of `width` values
    /// (rows p·width ..< p·width+width, zero-padded past `count`).
    static func packPanels(_ src: UnsafePointer<Float>, ld: Int, count: Int, depth: Int, width: Int,
                           into dst: UnsafeMutablePointer<Float>) {
        var r0 = 0
        var out = dst
        while r0 < count {
            let rows = min(width, count - r0)
            for r in 0..<rows {
                let s = src + (r0 + r) * ld
                var o = out + r
                for p in 0..<depth { o.pointee = s[p]; o += width }
            }
            if rows < width {
                for r in rows..<width { var o = out + r; for _ in 0..<depth { o.pointee = 0; o += width } }
            }
            out += width * depth
            r0 += width
        }
    }

    /// Portable 4×8 micro-kernel (Swift SIMD, separate multiply and add, no FMA assumed).
    static func portableKernel(_ kc: Int, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
                               _ c: UnsafeMutablePointer<Float>, _ ldc: Int, _ rows: Int, _ cols: Int,
                               _ accumulate: Bool, _ bias: UnsafePointer<Float>?) {
        typealias V = SIMD8<Float>
        var c0 = V(), c1 = V(), c2 = V(), c3 = V()
        var pa = a, pb = UnsafeRawPointer(b)
        for _ in 0..<kc {
            let bv = pb.load(as: V.self)
            c0 += V(repeating: pa[0]) * bv; c1 += V(repeating: pa[1]) * bv
            c2 += V(repeating: pa[2]) * bv; c3 += V(repeating: pa[3]) * bv
            pa += 4; pb += 32
        }
        let tile = (c0, c1, c2, c3)
        for i in 0..<rows {
            let v = i == 0 ? tile.0 : i == 1 ? tile.1 : i == 2 ? tile.2 : tile.3
            let p = c + i * ldc
            for j in 0..<cols {
                var e = v[j]
                if accumulate { e += p[j] }
                if let bias { e += bias[j] }
                p[j] = e
            }
        }
    }

    /// Σ a[i]·b[i] with a fixed 16-lane accumulation order (multiply, then add).
    @inline(__always)
    public static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ k: Int) -> Float {
        var acc = SIMD16<Float>(repeating: 0)
        var i = 0
        while i + 16 <= k {
            let va = UnsafeRawPointer(a + i).loadUnaligned(as: SIMD16<Float>.self)
            let vb = UnsafeRawPointer(b + i).loadUnaligned(as: SIMD16<Float>.self)
            acc += va * vb
            i += 16
        }
        var s = acc.sum()
        while i < k { s += a[i] * b[i]; i += 1 }
        return s
    }

    /// Array convenience: returns `X·Wᵀ` as a new M×N array.
    public static func multiply(_ x: [Float], _ w: [Float], m: Int, n: Int, k: Int, bias: [Float]? = nil,
                                threads: Int? = nil) -> [Float] {
        precondition(x.count == m * k && w.count == n * k, "Gemm.multiply: shape mismatch")
        if k == 0 { return (0..<(m * n)).map { bias?[$0 % n] ?? 0 } }
        return overwrittenArray(m * n) { yb in
            x.withUnsafeBufferPointer { xp in w.withUnsafeBufferPointer { wp in
                let (xb, wb) = (xp.baseAddress!, wp.baseAddress!)
                if let bias {
                    bias.withUnsafeBufferPointer { bp in
                        multiply(xb, wb, into: yb, m: m, n: n, k: k, bias: bp.baseAddress!, threads: threads)
                    }
                } else {
                    multiply(xb, wb, into: yb, m: m, n: n, k: k, threads: threads)
                }
            } }
        }
    }
}

/// Scalar references kept beside the fast paths (llm.c style). Tests compare against these.
public enum Reference {
    /// `Y = X·Wᵀ` with a plain triple loop, accumulated in Double.
    public static func gemm(_ x: [Float], _ w: [Float], m: Int, n: Int, k: Int) -> [Float] {
        var y = [Float](repeating: 0, count: m * n)
        for i in 0..<m { for j in 0..<n {
            var s = 0.0
            for p in 0..<k { s += Double(x[i * k + p]) * Double(w[j * k + p]) }
            y[i * n + j] = Float(s)
        } }
        return y
    }
}
