import QuantKernels

/// An invertible linear map `T` on a site's input features.
///
/// Activations go `X ← X·T` (online, at run time) and every member weight goes
/// `W ← W·T⁻ᵀ` (offline), so `(X·T)·(W·T⁻ᵀ)ᵀ = X·Wᵀ`. For orthogonal `T` both sides apply the same map.
/// Rows are contiguous; `cols` is the feature dimension.
public enum Transform: Sendable {
    /// `T = diag(s)`: `x_j ← x_j·s_j`, `W_{:,j} ← W_{:,j}/s_j` (SmoothQuant uses `s = 1/smoothing`).
    case scale([Float])
    /// `x'_j = x_{perm[j]}`.
    case permutation([Int])
    /// `T = blockdiag(R_0, R_1, …)`, each R orthogonal b×b row-major; one matrix means shared by all blocks.
    case blockOrthogonal(blockSize: Int, blocks: [[Float]])
    /// `T = diag(signs)·Mᵀ`, `M = (H_K ⊗ H_{2^m})/√n` orthonormal, applied by a fast transform;
    /// `blockSize` < n applies it block-diagonally (the INT4-training paper's form).
    case hadamard(size: Int, blockSize: Int, signs: [Float]?)
    /// Any orthogonal `T` (n×n row-major).
    case orthogonal(Matrix)

    public var kindName: String {
        switch self {
        case .scale: return "scale"
        case .permutation: return "permutation"
        case .blockOrthogonal(let b, let blocks): return "block-orthogonal(b=\(b)\(blocks.count == 1 ? ", shared" : ""))"
        case let .hadamard(n, b, signs): return (b == n ? "hadamard(\(n))" : "block-hadamard(\(b))") + (signs != nil ? "·random-signs" : "")
        case .orthogonal(let m): return "orthogonal(\(m.rows))"
        }
    }

    /// `x ← x·T` for a tokens × features matrix.
    public func applyToActivations(_ x: inout Matrix) { apply(&x, inverseTranspose: false) }

    /// `w ← w·T⁻ᵀ` for an out × in weight matrix.
    public func foldIntoWeights(_ w: inout Matrix) { apply(&w, inverseTranspose: true) }

    /// `x ← x·T⁻¹` (undo an activation transform).
    public func invertActivations(_ x: inout Matrix) {
        switch self {
        case .scale(let s): Transform.scale(s.map { 1 / $0 }).applyToActivations(&x)
        case .permutation(let p):
            var inv = [Int](repeating: 0, count: p.count)
            for (j, src) in p.enumerated() { inv[src] = j }
            Transform.permutation(inv).applyToActivations(&x)
        default:
            // Orthogonal: T⁻¹ = Tᵀ.
            applyTransposed(&x)
        }
    }

    private func apply(_ x: inout Matrix, inverseTranspose: Bool) {
        let (rows, cols) = (x.rows, x.cols)
        guard rows > 0 else { return }
        x.data.withUnsafeMutableBufferPointer { buf in
            let p = buf.baseAddress!
            switch self {
            case .scale(let s):
                precondition(s.count == cols, "scale transform of size \(s.count) on \(cols) features")
                RowOps.scaleColumns(p, rows: rows, cols: cols, by: inverseTranspose ? s.map { 1 / $0 } : s)
            case .permutation(let perm):
                precondition(perm.count == cols)
                RowOps.permuteColumns(p, rows: rows, cols: cols, perm: perm)
            case let .blockOrthogonal(b, blocks):
                RowOps.blockMultiply(p, rows: rows, cols: cols, blockSize: b, blocks: blocks)
            case let .hadamard(n, b, signs):
                precondition(n == cols)
                if let signs { RowOps.scaleColumns(p, rows: rows, cols: cols, by: signs) }
                let h = try! HadamardTransform.cached(size: b)
                h.apply(p, rows: rows * (cols / b))
            case .orthogonal(let m):
                precondition(m.rows == cols)
                var y = [Float](repeating: 0, count: rows * cols)
                // x·T = x·(Tᵀ)ᵀ: the GEMM takes W = Tᵀ.
                let tt = m.transposed
                tt.data.withUnsafeBufferPointer { t in
                    Gemm.multiply(UnsafePointer(p), t.baseAddress!, into: &y, m: rows, n: cols, k: cols)
                }
                for i in 0..<y.count { p[i] = y[i] }
            }
        }
    }

    private func applyTransposed(_ x: inout Matrix) {
        let (rows, cols) = (x.rows, x.cols)
        guard rows > 0 else { return }
        x.data.withUnsafeMutableBufferPointer { buf in
            let p = buf.baseAddress!
            switch self {
            case let .blockOrthogonal(b, blocks):
                RowOps.blockMultiply(p, rows: rows, cols: cols, blockSize: b, blocks: blocks, transposeBlocks: true)
            case let .hadamard(_, b, signs):
                let h = try! HadamardTransform.cached(size: b)
                h.apply(p, rows: rows * (cols / b), transpose: true)
                if let signs { RowOps.scaleColumns(p, rows: rows, cols: cols, by: signs) }
            case .orthogonal(let m):
                var y = [Float](repeating: 0, count: rows * cols)
                m.data.withUnsafeBufferPointer { t in
                    Gemm.multiply(UnsafePointer(p), t.baseAddress!, into: &y, m: rows, n: cols, k: cols)
                }
                for i in 0..<y.count { p[i] = y[i] }
            default: fatalError("unreachable")
            }
        }
    }
}

/// Where a transform runs.
public enum TransformPlacement: Sendable, Equatable, CustomStringConvertible {
    /// Applied to the activations at run time.
    case online
    /// Folded offline into the named operation that produces the site's input (an RMSNorm weight,
    /// or the output rows of a linear such as `up_proj`); costs nothing at run time.
    case folded(into: String)

    public var description: String {
        switch self {
        case .online: return "online"
        case .folded(let into): return "folded into \(into)"
        }
    }
}

/// One step of a site's transform chain, with the method that added it.
public struct TransformStep: Sendable {
    public var transform: Transform
    public var placement: TransformPlacement
    public var addedBy: String
    public init(_ transform: Transform, placement: TransformPlacement = .online, addedBy: String) {
        self.transform = transform; self.placement = placement; self.addedBy = addedBy
    }
    public var description: String { "\(transform.kindName) [\(placement)] by \(addedBy)" }
}
