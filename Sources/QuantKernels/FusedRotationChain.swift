import Synchronization

/// A site's online rotation chain run as one fused pass (DuQuant's `Λ⁻¹·R₁·P·R₂`):
///
///     x ← ((x ⊙ s) · blockdiag(R₁))[:, perm] · blockdiag(R₂)
///
/// x is rows × cols, row-major. `s` (optional) scales column j by `s_j`; R₁ and R₂ are b×b
/// row-major rotations, one per block of b columns or one shared by all blocks; `perm`
/// (optional, only with R₂) gathers `y_j = z_{perm[j]}`; R₂ is optional.
///
/// Bit-identical to the steps run one after another (`RowOps.scaleColumns`, `blockMultiply`,
/// `permuteColumns`, `blockMultiply`): every product is formed exactly as there (`x_j·s_j` in
/// f32; the same GEMM micro-kernel on the same 128-row chunks, or `weightedRowSum` for ≤ 4 rows,
/// on the same values in the same order). Only the passes over x are merged:
///
/// - More than 4 rows, with R₂: chunks of 128 rows, and per chunk two phases through a temp that
///   holds the R₁ output transposed (features × rows, cache-resident):
///   1. per block, `tempᵀ[blk] = R₁ᵀ·(x ⊙ s)[:, blk]ᵀ`: R₁ᵀ is the packed A operand (packed once
///      per kernel path), the chunk's block of x is packed as the B operand with the scale applied
///      in the packed panels. Each output is the same sum of the same products in the same order
///      as `x·R₁` (an FMA's two factors only trade places), so the same bits.
///   2. per output block, the A panels of `z[:, perm[blk]]` are contiguous runs of `tempᵀ`'s rows
///      (the permutation is a choice of rows, not a gather of scattered columns), times R₂ packed
///      once as the B operand, written straight into x.
///   With fewer than two chunks per thread the two phases run as (chunk, block) items over the
///   threads instead, one dispatch per phase. Without R₂: per chunk and block, `(x ⊙ s)·R₁` into
///   a temp, copied back.
/// - At most 4 rows (decoding): phase 1 (scale, ·R₁) and phase 2 (gather, ·R₂), each one
///   parallel pass with the blocks spread over the threads — what costs is reading the matrices —
///   in scratch the chain keeps (no allocation per call unless two calls overlap).
///
/// Blocks of at most 256 (one GEMM slab); `init` returns nil otherwise.
public final class FusedRotationChain: @unchecked Sendable {
    public let cols: Int
    public let blockSize: Int
    let scale: [Float]?
    let first: [[Float]]
    let permutation: [Int]?
    let second: [[Float]]?
    /// Rows per chunk, as in `RowOps.blockMultiply` (bit-identity depends on it).
    static let chunkRows = 128
    static let decodeRows = 4

    /// Rotations packed for the GEMM of one kernel path: R₂ (or, without R₂, R₁) as B panels of
    /// `nr` columns, `stride` floats per block; with R₂, R₁ᵀ as A panels of `mr` rows, `aStride`
    /// floats per block.
    final class Packed: @unchecked Sendable {
        let nr: Int, mr: Int, stride: Int, aStride: Int
        let first: UnsafeMutablePointer<Float>, second: UnsafeMutablePointer<Float>?
        let firstCount: Int, secondCount: Int
        init(_ chain: FusedRotationChain, _ spec: Gemm.F32Spec) {
            let b = chain.blockSize
            nr = spec.nr; mr = spec.mr
            stride = (b + nr - 1) / nr * nr * b
            aStride = (b + mr - 1) / mr * mr * b
            firstCount = chain.first.count; secondCount = chain.second?.count ?? 0
            if let r2 = chain.second {
                first = Self.packTransposed(chain.first, b: b, spec, stride: aStride)
                second = Self.pack(r2, b: b, nr: nr, stride: stride)
            } else {
                first = Self.pack(chain.first, b: b, nr: nr, stride: stride)
                second = nil
            }
        }
        /// Each b×b matrix as `Gemm.multiplyKN` packs it (one slab, ⌈b/nr⌉ panels), `stride` apart.
        static func pack(_ blocks: [[Float]], b: Int, nr: Int, stride: Int) -> UnsafeMutablePointer<Float> {
            let p = UnsafeMutableRawPointer.allocate(byteCount: blocks.count * stride * 4, alignment: 64)
                .bindMemory(to: Float.self, capacity: blocks.count * stride)
            for (i, m) in blocks.enumerated() {
                m.withUnsafeBufferPointer { Gemm.packKN($0.baseAddress!, ldr: b, 0, b, 0, b, nr: nr, into: p + i * stride) }
            }
            return p
        }
        /// Each b×b matrix's transpose as the A operand (⌈b/mr⌉ panels of `mr` rows, b steps),
        /// `stride` apart; 8 floats of slack for the packer.
        static func packTransposed(_ blocks: [[Float]], b: Int, _ spec: Gemm.F32Spec, stride: Int) -> UnsafeMutablePointer<Float> {
            let count = blocks.count * stride + 8
            let p = UnsafeMutableRawPointer.allocate(byteCount: count * 4, alignment: 64).bindMemory(to: Float.self, capacity: count)
            var t = [Float](repeating: 0, count: b * b)
            for (i, m) in blocks.enumerated() {
                for k in 0..<b { for f in 0..<b { t[f * b + k] = m[k * b + f] } }
                t.withUnsafeBufferPointer { spec.pack($0.baseAddress!, b, b, b, spec.mr, p + i * stride) }
            }
            return p
        }
        deinit { first.deallocate(); second?.deallocate() }
        /// R₁'s block (A panels of R₁ᵀ with R₂, B panels without).
        func first(_ blk: Int) -> UnsafePointer<Float> {
            UnsafePointer(first + (firstCount == 1 ? 0 : blk) * (second == nil ? stride : aStride))
        }
        func second(_ blk: Int) -> UnsafePointer<Float> { UnsafePointer(second! + (secondCount == 1 ? 0 : blk) * stride) }
    }
    private let packedCache = Mutex<Packed?>(nil)
    /// Decode scratch: scaled input, R₁ output, gathered input (each `decodeRows` × cols).
    private let scratch: UnsafeMutablePointer<Float>
    /// R₁'s blocks then R₂'s, b×b row-major each, in one contiguous buffer: a thread's share of
    /// the blocks is one sequential read when decoding. Made on the first decode call.
    final class Contiguous: @unchecked Sendable {
        let buffer: UnsafeMutablePointer<Float>
        init(_ all: [[Float]], b: Int) {
            buffer = UnsafeMutableRawPointer.allocate(byteCount: all.count * b * b * 4, alignment: 64)
                .bindMemory(to: Float.self, capacity: all.count * b * b)
            for (i, m) in all.enumerated() { (buffer + i * b * b).initialize(from: m, count: b * b) }
        }
        deinit { buffer.deallocate() }
    }
    private let contiguousCache = Mutex<Contiguous?>(nil)
    private let scratchBusy = Atomic<Bool>(false)

    /// nil when the shapes do not fit the fused pass (b > 256, b not dividing cols, a block not
    /// b×b, a scale or permutation of the wrong length, a permutation without R₂): run the steps.
    public init?(cols: Int, blockSize b: Int, scale: [Float]? = nil, first: [[Float]], permutation: [Int]? = nil, second: [[Float]]? = nil) {
        func fits(_ m: [[Float]]) -> Bool { (m.count == 1 || m.count == cols / b) && m.allSatisfy { $0.count == b * b } }
        guard b > 0, b <= 256, cols % b == 0, fits(first), second.map(fits) ?? true,
              scale.map({ $0.count == cols }) ?? true, permutation.map({ $0.count == cols && second != nil }) ?? true
        else { return nil }
        self.cols = cols; blockSize = b
        self.scale = scale; self.first = first; self.permutation = permutation; self.second = second
        scratch = .allocate(capacity: 3 * Self.decodeRows * cols)
    }

    deinit { scratch.deallocate() }

    /// Block `blk`'s matrix of R₁ (`second`: R₂), b×b row-major, in `matrices`.
    private func matrix(_ matrices: Contiguous, second isSecond: Bool, _ blk: Int) -> UnsafePointer<Float> {
        let b = blockSize, m = isSecond ? second! : first
        return UnsafePointer(matrices.buffer + ((isSecond ? first.count : 0) + (m.count == 1 ? 0 : blk)) * b * b)
    }

    private func packed(_ spec: Gemm.F32Spec) -> Packed {
        packedCache.withLock { cache in
            if let p = cache, p.nr == spec.nr, p.mr == spec.mr { return p }
            let p = Packed(self, spec)
            cache = p
            return p
        }
    }

    /// `x ← chain(x)` for rows × cols row-major x. Same bits for any `threads`.
    public func apply(_ x: UnsafeMutablePointer<Float>, rows: Int, threads: Int? = nil) {
        guard rows > 0 else { return }
        let t = max(1, threads ?? Parallel.threadCount)
        if rows <= Self.decodeRows { return decode(x, rows: rows, threads: t) }
        let spec = Gemm.F32Spec.for(KernelDispatch.active)
        let packed = packed(spec)
        let b = blockSize, nb = cols / b, cols = cols
        let chunks = (rows + Self.chunkRows - 1) / Self.chunkRows
        let xb = UncheckedBox(x)
        // Per chunk: the R₁ output (cols floats per row) and one operand panel (A or B, ≤ 128 × b
        // rounded up to whole panels, plus the packer's slack).
        let panelFloats = (Self.chunkRows + max(spec.mr, spec.nr)) * b + 8
        let chunkFloats = Self.chunkRows * cols
        if t == 1 || chunks >= 2 * t {
            Parallel.forEach(chunks, threads: t) { c in
                let r0 = c * Self.chunkRows, n = min(Self.chunkRows, rows - r0)
                let temp = UnsafeMutablePointer<Float>.allocate(capacity: chunkFloats + panelFloats)
                defer { temp.deallocate() }
                let xc = xb.value + r0 * cols, panel = temp + chunkFloats
                if second == nil {
                    for blk in 0..<nb { firstOnly(xc, n, blk, temp, panel, packed, spec) }
                } else {
                    for blk in 0..<nb { rotateFirst(xc, n, blk, temp, panel, packed, spec) }
                    for blk in 0..<nb { rotateSecond(xc, n, blk, temp, panel, packed, spec) }
                }
            }
            return
        }
        // Few chunks: (chunk, block) items over the threads, every chunk's R₁ output in one temp.
        let temp = UnsafeMutablePointer<Float>.allocate(capacity: chunks * chunkFloats)
        defer { temp.deallocate() }
        let tb = UncheckedBox(temp)
        for phase in second != nil ? [1, 2] : [1] {
            Parallel.forEach(chunks * nb, threads: t) { item in
                let c = item / nb, blk = item % nb
                let r0 = c * Self.chunkRows, n = min(Self.chunkRows, rows - r0)
                let panel = UnsafeMutablePointer<Float>.allocate(capacity: panelFloats)
                defer { panel.deallocate() }
                let xc = xb.value + r0 * cols, tc = tb.value + c * chunkFloats
                if second == nil { firstOnly(xc, n, blk, tc, panel, packed, spec) }
                else if phase == 1 { rotateFirst(xc, n, blk, tc, panel, packed, spec) }
                else { rotateSecond(xc, n, blk, tc, panel, packed, spec) }
            }
        }
    }

    /// Phase 1 of a chunk (n rows of x from `xc`), block `blk`: `tempᵀ[c0 ..< c0 + b, 0 ..< n] =
    /// R₁ᵀ·(x ⊙ s)[:, blk]ᵀ`, rows of `tempᵀ` n floats apart. The chunk's block of x is packed as
    /// B panels (`nr` rows of x each, b steps) and scaled there, step by step.
    private func rotateFirst(_ xc: UnsafeMutablePointer<Float>, _ n: Int, _ blk: Int, _ tempT: UnsafeMutablePointer<Float>,
                             _ panel: UnsafeMutablePointer<Float>, _ packed: Packed, _ spec: Gemm.F32Spec) {
        let b = blockSize, c0 = blk * b, nr = spec.nr
        spec.pack(xc + c0, cols, n, b, nr, panel)
        if let scale {
            // Step k of every panel (nr floats, a multiple of 8 on every path) times s[c0 + k].
            precondition(nr % 8 == 0, "B panels of \(nr) floats")
            let raw = UnsafeMutableRawPointer(panel), steps = (n + nr - 1) / nr * b
            scale.withUnsafeBufferPointer { s in
                for step in 0..<steps {
                    let c = SIMD8<Float>(repeating: s[c0 + step % b])
                    for v in stride(from: 4 * step * nr, to: 4 * (step + 1) * nr, by: 32) {
                        raw.storeBytes(of: raw.load(fromByteOffset: v, as: SIMD8<Float>.self) * c, toByteOffset: v, as: SIMD8<Float>.self)
                    }
                }
            }
        }
        Gemm.microTiles(spec, packed.first(blk), rows: b, steps: b, panel, panelStride: b * nr, tempT + c0 * n, ldy: n,
                        cols: n, accumulate: false, bias: nil)
    }

    /// Phase 2 of a chunk, output block `blk`: `x[:, blk] = z[:, perm[blk]]·R₂`. Step k of the A
    /// panels (`mr` rows of the chunk) is row `perm[c0 + k]` of `tempᵀ`, copied as it is.
    private func rotateSecond(_ xc: UnsafeMutablePointer<Float>, _ n: Int, _ blk: Int, _ tempT: UnsafeMutablePointer<Float>,
                              _ panel: UnsafeMutablePointer<Float>, _ packed: Packed, _ spec: Gemm.F32Spec) {
        let b = blockSize, c0 = blk * b, mr = spec.mr
        func gather(_ perm: UnsafePointer<Int>?) {
            var dst = panel, r0 = 0
            while r0 < n {
                let rows = min(mr, n - r0)
                for k in 0..<b {
                    RowOps.copyPadded(tempT + (perm?[c0 + k] ?? c0 + k) * n + r0, rows, into: dst, width: mr)
                    dst += mr
                }
                r0 += mr
            }
        }
        if let permutation { permutation.withUnsafeBufferPointer { gather($0.baseAddress!) } } else { gather(nil) }
        Gemm.microTiles(spec, panel, rows: n, steps: b, packed.second(blk), panelStride: b * spec.nr, xc + c0, ldy: cols,
                        cols: b, accumulate: false, bias: nil)
    }

    /// Without R₂, block `blk` of a chunk (n rows of x from `xc`): `x[:, blk] = (x ⊙ s)[:, blk]·R₁`
    /// through `temp` (its block is read by no other block).
    private func firstOnly(_ xc: UnsafeMutablePointer<Float>, _ n: Int, _ blk: Int, _ temp: UnsafeMutablePointer<Float>,
                           _ panel: UnsafeMutablePointer<Float>, _ packed: Packed, _ spec: Gemm.F32Spec) {
        let b = blockSize, c0 = blk * b
        var a = UnsafePointer(xc + c0), lda = cols
        if let scale {
            scale.withUnsafeBufferPointer { s in
                for i in 0..<n {
                    (panel + i * b).update(from: xc + i * cols + c0, count: b)
                    RowOps.multiply(panel + i * b, s.baseAddress! + c0, b)
                }
            }
            a = UnsafePointer(panel); lda = b
        }
        gemm(a, lda: lda, packed.first(blk), into: temp + c0, m: n, spec)
        for i in 0..<n { (xc + i * cols + c0).update(from: temp + i * cols + c0, count: b) }
    }

    /// `Y (m × b, stride cols) = A (m × b, stride lda) · R` with R pre-packed: the call
    /// `Gemm.multiplyKN` makes for one block, without repacking R.
    @inline(__always)
    private func gemm(_ a: UnsafePointer<Float>, lda: Int, _ r: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>,
                      m: Int, _ spec: Gemm.F32Spec) {
        Gemm.block(a, lda: lda, packB: { _, _, _, _, _ in preconditionFailure("R is pre-packed") }, j0: 0, y,
                   m: m, n: blockSize, k: blockSize, ldy: cols, bias: nil, spec, packedW: r)
    }

    /// ≤ 4 rows: weighted sums of the rotations' rows (`RowOps.blockMultiply`'s decode path),
    /// blocks over the threads, one dispatch per phase.
    private func decode(_ x: UnsafeMutablePointer<Float>, rows: Int, threads t: Int) {
        let owned = scratchBusy.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged
        let buf = owned ? scratch : .allocate(capacity: 3 * Self.decodeRows * cols)
        defer { if owned { scratchBusy.store(false, ordering: .releasing) } else { buf.deallocate() } }
        let b = blockSize, nb = cols / b, cols = cols
        let xb = UncheckedBox(x), sb = UncheckedBox(buf)
        let matrices = contiguousCache.withLock { cache in
            if let c = cache { return c }
            let c = Contiguous(first + (second ?? []), b: b)
            cache = c
            return c
        }
        Parallel.forEach(nb, threads: t) { blk in
            let c0 = blk * b, scaled = sb.value, out = sb.value + rows * cols
            for i in 0..<rows {
                var w = UnsafePointer(xb.value + i * cols + c0)
                if let scale {
                    (scaled + i * cols + c0).update(from: w, count: b)
                    scale.withUnsafeBufferPointer { RowOps.multiply(scaled + i * cols + c0, $0.baseAddress! + c0, b) }
                    w = UnsafePointer(scaled + i * cols + c0)
                }
                VectorMath.weightedRowSum(matrix(matrices, second: false, blk), ld: b, weights: w, count: b, width: b, into: out + i * cols + c0)
                if second == nil { (xb.value + i * cols + c0).update(from: out + i * cols + c0, count: b) }
            }
        }
        guard let second else { return }
        Parallel.forEach(nb, threads: t) { blk in
            let c0 = blk * b, out = sb.value + rows * cols, gathered = sb.value + 2 * rows * cols
            for i in 0..<rows {
                var w = UnsafePointer(out + i * cols + c0)
                if let permutation {
                    let src = out + i * cols, dst = gathered + i * cols + c0
                    permutation.withUnsafeBufferPointer { p in for j in 0..<b { dst[j] = src[p[c0 + j]] } }
                    w = UnsafePointer(dst)
                }
                VectorMath.weightedRowSum(matrix(matrices, second: true, blk), ld: b, weights: w, count: b, width: b, into: xb.value + i * cols + c0)
            }
        }
    }

    /// The steps one after another (`RowOps`), the unfused path the chain must equal bit for bit.
    public func applySteps(_ x: UnsafeMutablePointer<Float>, rows: Int, threads: Int? = nil) {
        if let scale { RowOps.scaleColumns(x, rows: rows, cols: cols, by: scale, threads: threads) }
        RowOps.blockMultiply(x, rows: rows, cols: cols, blockSize: blockSize, blocks: first, threads: threads)
        if let permutation { RowOps.permuteColumns(x, rows: rows, cols: cols, perm: permutation, threads: threads) }
        if let second { RowOps.blockMultiply(x, rows: rows, cols: cols, blockSize: blockSize, blocks: second, threads: threads) }
    }

    /// Scalar reference (products in Double, `blockMultiplyReference`).
    public func reference(_ x: [Float], rows: Int) -> [Float] {
        var y = x
        if let scale { for i in y.indices { y[i] *= scale[i % cols] } }
        y = RowOps.blockMultiplyReference(y, rows: rows, cols: cols, blockSize: blockSize, blocks: first)
        if let permutation { y = (0..<y.count).map { y[($0 / cols) * cols + permutation[$0 % cols]] } }
        if let second { y = RowOps.blockMultiplyReference(y, rows: rows, cols: cols, blockSize: blockSize, blocks: second) }
        return y
    }
}
