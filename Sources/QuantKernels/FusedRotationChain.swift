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
/// - More than 4 rows: chunks of 128 rows. Per chunk, each block of x (scaled into a 128 × b
///   panel when `s` is given) times R₁ goes into a chunk temp (128 × cols, cache-resident); then
///   for each output block the permuted columns are gathered from the temp into a 128 × b panel,
///   multiplied by R₂ and written straight into x. The rotations are packed into GEMM panels once
///   (per kernel path), not per chunk. With fewer than two chunks per thread the two phases run
///   as (chunk, block) items over the threads instead, one dispatch per phase.
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

    /// Rotations packed for the GEMM of the kernel path whose panel width is `nr`.
    final class Packed: @unchecked Sendable {
        let nr: Int, stride: Int
        let first: UnsafeMutablePointer<Float>, second: UnsafeMutablePointer<Float>?
        let firstCount: Int, secondCount: Int
        init(_ chain: FusedRotationChain, nr: Int) {
            let b = chain.blockSize, stride = (b + nr - 1) / nr * nr * b
            self.nr = nr
            self.stride = stride
            first = Self.pack(chain.first, b: b, nr: nr, stride: stride); firstCount = chain.first.count
            second = chain.second.map { Self.pack($0, b: b, nr: nr, stride: stride) }; secondCount = chain.second?.count ?? 0
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
        deinit { first.deallocate(); second?.deallocate() }
        func first(_ blk: Int) -> UnsafePointer<Float> { UnsafePointer(first + (firstCount == 1 ? 0 : blk) * stride) }
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

    private func packed(nr: Int) -> Packed {
        packedCache.withLock { cache in
            if let p = cache, p.nr == nr { return p }
            let p = Packed(self, nr: nr)
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
        let packed = packed(nr: spec.nr)
        let b = blockSize, nb = cols / b, cols = cols
        let chunks = (rows + Self.chunkRows - 1) / Self.chunkRows
        let xb = UncheckedBox(x)
        if t == 1 || chunks >= 2 * t {
            Parallel.forEach(chunks, threads: t) { c in
                let r0 = c * Self.chunkRows, n = min(Self.chunkRows, rows - r0)
                let temp = UnsafeMutablePointer<Float>.allocate(capacity: n * cols + n * b)
                defer { temp.deallocate() }
                let xc = xb.value + r0 * cols, panel = temp + n * cols
                for blk in 0..<nb { phase1(xc, n, blk, temp, panel, packed, spec) }
                if second != nil { for blk in 0..<nb { phase2(xc, n, blk, temp, panel, packed, spec) } }
            }
            return
        }
        // Few chunks: (chunk, block) items over the threads, the whole R₁ output in one temp.
        let temp = UnsafeMutablePointer<Float>.allocate(capacity: rows * cols)
        defer { temp.deallocate() }
        let tb = UncheckedBox(temp)
        for phase in second != nil ? [1, 2] : [1] {
            Parallel.forEach(chunks * nb, threads: t) { item in
                let c = item / nb, blk = item % nb
                let r0 = c * Self.chunkRows, n = min(Self.chunkRows, rows - r0)
                let panel = UnsafeMutablePointer<Float>.allocate(capacity: n * b)
                defer { panel.deallocate() }
                if phase == 1 {
                    phase1(xb.value + r0 * cols, n, blk, tb.value + r0 * cols, panel, packed, spec)
                } else {
                    phase2(xb.value + r0 * cols, n, blk, tb.value + r0 * cols, panel, packed, spec)
                }
            }
        }
    }

    /// Block `blk` of a chunk (n rows of x from `xc`): `temp[:, blk] = (x ⊙ s)[:, blk]·R₁`; without
    /// R₂ the result goes on into x (its block is read by no other block).
    private func phase1(_ xc: UnsafeMutablePointer<Float>, _ n: Int, _ blk: Int, _ temp: UnsafeMutablePointer<Float>,
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
        if second == nil { for i in 0..<n { (xc + i * cols + c0).update(from: temp + i * cols + c0, count: b) } }
    }

    /// Output block `blk` of a chunk: `x[:, blk] = temp[:, perm[blk]]·R₂`.
    private func phase2(_ xc: UnsafeMutablePointer<Float>, _ n: Int, _ blk: Int, _ temp: UnsafeMutablePointer<Float>,
                        _ panel: UnsafeMutablePointer<Float>, _ packed: Packed, _ spec: Gemm.F32Spec) {
        let b = blockSize, c0 = blk * b
        var a = UnsafePointer(temp + c0), lda = cols
        if let permutation {
            permutation.withUnsafeBufferPointer { p in
                let pb = p.baseAddress! + c0
                for i in 0..<n {
                    let src = temp + i * cols, dst = panel + i * b
                    for j in 0..<b { dst[j] = src[pb[j]] }
                }
            }
            a = UnsafePointer(panel); lda = b
        }
        gemm(a, lda: lda, packed.second(blk), into: xc + c0, m: n, spec)
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
