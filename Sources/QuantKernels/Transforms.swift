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
    /// depend on the thread count), one chunk per work item; inside a chunk every block is a
    /// single-threaded packed f32 GEMM. One parallel pass per call, not one per block.
    public static func blockMultiply(_ x: UnsafeMutablePointer<Float>, rows: Int, cols: Int,
                                     blockSize b: Int, blocks: [[Float]], transposeBlocks: Bool = false, threads: Int? = nil) {
        precondition(b > 0 && cols % b == 0 && (blocks.count == 1 || blocks.count == cols / b))
        precondition(blocks.allSatisfy { $0.count == b * b }, "blockMultiply: each block must be b×b")
        guard rows > 0 else { return }
        // Gemm computes Y = X·Wᵀ, so W = R_iᵀ for x·R_i and W = R_i for x·R_iᵀ.
        let ws: [Float] = transposeBlocks ? blocks.flatMap { $0 } : blocks.flatMap { r in
            var t = [Float](repeating: 0, count: b * b)
            for i in 0..<b { for j in 0..<b { t[j * b + i] = r[i * b + j] } }
            return t
        }
        let chunkRows = 32
        let chunks = (rows + chunkRows - 1) / chunkRows
        let t = 2 * rows * cols * b < 1 << 18 ? 1 : (threads ?? Parallel.threadCount)
        let xb = UncheckedBox(x)
        ws.withUnsafeBufferPointer { wp in
            let w = wp.baseAddress!
            Parallel.forEach(chunks, threads: t) { c in
                let r0 = c * chunkRows, n = min(chunkRows, rows - r0)
                let tmp = UnsafeMutablePointer<Float>.allocate(capacity: n * b)
                defer { tmp.deallocate() }
                let xc = xb.value + r0 * cols
                for blk in 0..<(cols / b) {
                    let wblk = w + (blocks.count == 1 ? 0 : blk * b * b)
                    Gemm.multiplyStrided(xc + blk * b, lda: cols, wblk, into: tmp, ldy: b, m: n, n: b, k: b, threads: 1)
                    for r in 0..<n { (xc + r * cols + blk * b).update(from: tmp + r * b, count: b) }
                }
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
