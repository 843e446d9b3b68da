extension Site {
    /// `x` with every transform of the site applied — the bits of `applyAllTransforms` on the whole
    /// matrix — computed `chunkRows` rows at a time, so that a chunk passes through all the
    /// transforms (sign flips, Hadamards, block rotations, …) while it is in cache instead of each
    /// transform streaming the whole calibration input (65536 rows) through memory. Every transform
    /// acts on rows independently of how many rows it is given (a tail of fewer than 8 rows joins
    /// the chunk before it, so GEMM-based transforms never take their few-row path).
    public func applyingAllTransforms(to x: Matrix, chunkRows: Int = 128) -> Matrix {
        let (rows, cols) = (x.rows, x.cols)
        guard !transforms.isEmpty, rows > chunkRows + 8, cols > 0 else {
            var y = x
            applyAllTransforms(&y)
            return y
        }
        let data = [Float](unsafeUninitializedCapacity: rows * cols) { out, count in
            x.data.withUnsafeBufferPointer { src in
                var r0 = 0
                while r0 < rows {
                    var r1 = min(rows, r0 + chunkRows)
                    if rows - r1 < 8 { r1 = rows }
                    var chunk = Matrix(rows: r1 - r0, cols: cols,
                                       data: Array(UnsafeBufferPointer(start: src.baseAddress! + r0 * cols, count: (r1 - r0) * cols)))
                    applyAllTransforms(&chunk)
                    chunk.data.withUnsafeBufferPointer { c in
                        (out.baseAddress! + r0 * cols).update(from: c.baseAddress!, count: c.count)
                    }
                    r0 = r1
                }
            }
            count = rows * cols
        }
        return Matrix(rows: rows, cols: cols, data: data)
    }
}
