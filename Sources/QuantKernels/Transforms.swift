/// Structured row transforms used by the core's transform chain. Rows are contiguous, row-major.
public enum RowOps {
    /// `x[r, j] ← x[r, j]·s[j]`.
    public static func scaleColumns(_ x: UnsafeMutablePointer<Float>, rows: Int, cols: Int, by s: [Float]) {
        s.withUnsafeBufferPointer { sp in
            for r in 0..<rows { let row = x + r * cols; for j in 0..<cols { row[j] *= sp[j] } }
        }
    }

    /// `x[r, j] ← x[r, perm[j]]` (gather).
    public static func permuteColumns(_ x: UnsafeMutablePointer<Float>, rows: Int, cols: Int, perm: [Int]) {
        var tmp = [Float](repeating: 0, count: cols)
        for r in 0..<rows {
            let row = x + r * cols
            for j in 0..<cols { tmp[j] = row[perm[j]] }
            for j in 0..<cols { row[j] = tmp[j] }
        }
    }

    /// Block-diagonal multiply `x ← x·blockdiag(R_0, R_1, …)`: `blocks` holds one b×b row-major
    /// matrix per block of b columns, or a single matrix shared by every block.
    public static func blockMultiply(_ x: UnsafeMutablePointer<Float>, rows: Int, cols: Int,
                                     blockSize b: Int, blocks: [[Float]], transposeBlocks: Bool = false) {
        precondition(cols % b == 0 && (blocks.count == 1 || blocks.count == cols / b))
        Parallel.forEach(rows, threads: rows * cols * b >= 1 << 20 ? nil : 1) { r in
            var tmp = [Float](repeating: 0, count: b)
            let row = x + r * cols
            for blk in 0..<(cols / b) {
                let m = blocks.count == 1 ? blocks[0] : blocks[blk]
                let p = row + blk * b
                for j in 0..<b {
                    var s: Float = 0
                    if transposeBlocks { for i in 0..<b { s += p[i] * m[j * b + i] } }
                    else { for i in 0..<b { s += p[i] * m[i * b + j] } }
                    tmp[j] = s
                }
                for j in 0..<b { p[j] = tmp[j] }
            }
        }
    }
}
