/// Structured row transforms used by the core's transform chain. Rows are contiguous, row-major.
public enum RowOps {
    /// `x[r, j] ← x[r, j]·s[j]` (eight-lane SIMD, rows split over threads).
    public static func scaleColumns(_ x: UnsafeMutablePointer<Float>, rows: Int, cols: Int, by s: [Float], threads: Int? = nil) {
        precondition(s.count == cols)
        s.withUnsafeBufferPointer { sp in
            guard let sb = sp.baseAddress else { return }
            Parallel.forEach(rows, threads: rows * cols >= 1 << 16 ? threads : 1) { r in multiply(x + r * cols, sb, cols) }
        }
    }

    /// `x[r, j] ← x[r, perm[j]]` (gather).
    public static func permuteColumns(_ x: UnsafeMutablePointer<Float>, rows: Int, cols: Int, perm: [Int], threads: Int? = nil) {
        precondition(perm.count == cols)
        perm.withUnsafeBufferPointer { pp in
            guard let pb = pp.baseAddress else { return }
            let t = rows * cols >= 1 << 16 ? (threads ?? Parallel.threadCount) : 1
            let chunks = max(1, min(rows, t))
            Parallel.forEach(chunks, threads: chunks) { c in
                let tmp = UnsafeMutablePointer<Float>.allocate(capacity: cols)
                defer { tmp.deallocate() }
                for r in (c * rows / chunks)..<((c + 1) * rows / chunks) {
                    let row = x + r * cols
                    for j in 0..<cols { tmp[j] = row[pb[j]] }
                    row.update(from: tmp, count: cols)
                }
            }
        }
    }

    /// Block-diagonal multiply `x ← x·blockdiag(R_0, R_1, …)`: `blocks` holds one b×b row-major
    /// matrix per block of b columns, or a single matrix shared by every block
    /// (`transposeBlocks`: use `R_iᵀ`). Rows go in chunks of `chunkRows` (fixed, so results do not
    /// depend on the thread count), one chunk per work item. Inside a chunk every block is a
    /// single-threaded packed GEMM (`x·R` as `multiplyKN`, `x·Rᵀ` as `multiplyStrided`: neither
    /// transposes R). At most 4 rows (decoding) skip packing — `x·R` as weighted sums of R's rows,
    /// `x·Rᵀ` as dot products with them — and spread the blocks over the threads instead (what
    /// costs is reading the matrices). One parallel pass per call.
    public static func blockMultiply(_ x: UnsafeMutablePointer<Float>, rows: Int, cols: Int,
                                     blockSize b: Int, blocks: [[Float]], transposeBlocks: Bool = false, threads: Int? = nil) {
        precondition(b > 0 && cols % b == 0 && (blocks.count == 1 || blocks.count == cols / b))
        precondition(blocks.allSatisfy { $0.count == b * b }, "blockMultiply: each block must be b×b")
        guard rows > 0 else { return }
        let chunkRows = 128, blockCount = cols / b
        let t = 2 * rows * cols * b < 1 << 18 ? 1 : (threads ?? Parallel.threadCount)
        let xb = UncheckedBox(x)
        @inline(__always) func matrix<R>(_ blk: Int, _ body: (UnsafePointer<Float>) -> R) -> R {
            blocks[blocks.count == 1 ? 0 : blk].withUnsafeBufferPointer { body($0.baseAddress!) }
        }
        if rows <= 4 {
            // Decoding: no packing, and the blocks (their matrices are what is read) over the threads.
            Parallel.forEach(blockCount, threads: t) { blk in
                let tmp = UnsafeMutablePointer<Float>.allocate(capacity: 2 * rows * b)
                defer { tmp.deallocate() }
                let xc = xb.value + blk * b, input = tmp + rows * b
                for i in 0..<rows { (input + i * b).update(from: xc + i * cols, count: b) }
                matrix(blk) { r in
                    if transposeBlocks {
                        Gemm.multiply(input, r, into: tmp, m: rows, n: b, k: b, threads: 1)
                    } else {
                        for i in 0..<rows { VectorMath.weightedRowSum(r, ld: b, weights: input + i * b, count: b, width: b, into: tmp + i * b) }
                    }
                }
                for i in 0..<rows { (xc + i * cols).update(from: tmp + i * b, count: b) }
            }
            return
        }
        let chunks = (rows + chunkRows - 1) / chunkRows
        Parallel.forEach(chunks, threads: t) { c in
            let r0 = c * chunkRows, n = min(chunkRows, rows - r0)
            let tmp = UnsafeMutablePointer<Float>.allocate(capacity: n * b)
            defer { tmp.deallocate() }
            let xc = xb.value + r0 * cols
            for blk in 0..<blockCount {
                matrix(blk) { r in
                    if transposeBlocks {
                        Gemm.multiplyStrided(xc + blk * b, lda: cols, r, into: tmp, ldy: b, m: n, n: b, k: b, threads: 1)
                    } else {
                        Gemm.multiplyKN(xc + blk * b, lda: cols, r, ldr: b, into: tmp, ldy: b, m: n, n: b, k: b, threads: 1)
                    }
                }
                for i in 0..<n { (xc + i * cols + blk * b).update(from: tmp + i * b, count: b) }
            }
        }
    }

    /// Scalar reference of `blockMultiply`.
    public static func blockMultiplyReference(_ x: [Float], rows: Int, cols: Int, blockSize b: Int, blocks: [[Float]],
                                              transposeBlocks: Bool = false) -> [Float] {
        var y = x
        for r in 0..<rows { for blk in 0..<(cols / b) {
            let m = blocks.count == 1 ? blocks[0] : blocks[blk]
            for j in 0..<b {
                var s = 0.0
                for i in 0..<b { s += Double(x[r * cols + blk * b + i]) * Double(transposeBlocks ? m[j * b + i] : m[i * b + j]) }
                y[r * cols + blk * b + j] = Float(s)
            }
        } }
        return y
    }

    // MARK: SIMD row helpers

    /// `p[i] ← p[i]·s[i]`.
    @inline(__always)
    static func multiply(_ p: UnsafeMutablePointer<Float>, _ s: UnsafePointer<Float>, _ n: Int) {
        let rp = UnsafeMutableRawPointer(p), rs = UnsafeRawPointer(s)
        var i = 0
        while i + 8 <= n {
            let v = rp.loadUnaligned(fromByteOffset: 4 * i, as: SIMD8<Float>.self) * rs.loadUnaligned(fromByteOffset: 4 * i, as: SIMD8<Float>.self)
            rp.storeBytes(of: v, toByteOffset: 4 * i, as: SIMD8<Float>.self)
            i += 8
        }
        while i < n { p[i] *= s[i]; i += 1 }
    }

    /// `p[i] ← p[i]·c`.
    @inline(__always)
    static func scale(_ p: UnsafeMutablePointer<Float>, _ n: Int, by c: Float) { scale(p, into: p, n, by: c) }

    /// `dst[i] ← src[i]·c`.
    @inline(__always)
    static func scale(_ src: UnsafePointer<Float>, into dst: UnsafeMutablePointer<Float>, _ n: Int, by c: Float) {
        let rs = UnsafeRawPointer(src), rd = UnsafeMutableRawPointer(dst), cv = SIMD8<Float>(repeating: c)
        var i = 0
        while i + 8 <= n {
            rd.storeBytes(of: rs.loadUnaligned(fromByteOffset: 4 * i, as: SIMD8<Float>.self) * cv, toByteOffset: 4 * i, as: SIMD8<Float>.self)
            i += 8
        }
        while i < n { dst[i] = src[i] * c; i += 1 }
    }

    /// `dst[0 ..< count] ← src[0 ..< count]`, `dst[count ..< width] ← 0` (one packed GEMM panel step).
    @inline(__always)
    static func copyPadded(_ src: UnsafePointer<Float>, _ count: Int, into dst: UnsafeMutablePointer<Float>, width: Int) {
        let rs = UnsafeRawPointer(src), rd = UnsafeMutableRawPointer(dst)
        var i = 0
        while i + 8 <= count {
            rd.storeBytes(of: rs.loadUnaligned(fromByteOffset: 4 * i, as: SIMD8<Float>.self), toByteOffset: 4 * i, as: SIMD8<Float>.self)
            i += 8
        }
        while i + 4 <= count {
            rd.storeBytes(of: rs.loadUnaligned(fromByteOffset: 4 * i, as: SIMD4<Float>.self), toByteOffset: 4 * i, as: SIMD4<Float>.self)
            i += 4
        }
        while i < count { dst[i] = src[i]; i += 1 }
        while i < width { dst[i] = 0; i += 1 }
    }

    /// `out ← out + src` (`subtract`: `out − src`).
    @inline(__always)
    static func accumulate(_ out: UnsafeMutablePointer<Float>, _ src: UnsafePointer<Float>, _ n: Int, subtract: Bool) {
        let ro = UnsafeMutableRawPointer(out), rs = UnsafeRawPointer(src)
        var i = 0
        while i + 8 <= n {
            let o = ro.loadUnaligned(fromByteOffset: 4 * i, as: SIMD8<Float>.self), v = rs.loadUnaligned(fromByteOffset: 4 * i, as: SIMD8<Float>.self)
            ro.storeBytes(of: subtract ? o - v : o + v, toByteOffset: 4 * i, as: SIMD8<Float>.self)
            i += 8
        }
        while i < n { out[i] = subtract ? out[i] - src[i] : out[i] + src[i]; i += 1 }
    }
}
