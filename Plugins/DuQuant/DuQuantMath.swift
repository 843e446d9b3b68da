import QuantCore
import QuantKernels

/// The numerical pieces of DuQuant (Lin et al., NeurIPS 2024): base rotation, greedy block
/// rotation, zigzag permutation. Matrices are row-major; activations are tokens × channels and
/// transforms act on the right, `X ← X·R`.
public enum DuQuantMath {
    // MARK: Rotations

    /// The deterministic base rotation `X̃` (b×b, orthogonal) whose **first row is uniform 1/√b**:
    /// start from I_b, left-multiply for i = 0 … b−2 by the Givens rotation in plane (i, i+1) with
    /// `cos = 1/√(i+2)`, `sin = √(i+1)/√(i+2)` (entries (i,i) = (i+1,i+1) = cos, (i,i+1) = −sin,
    /// (i+1,i) = sin), then swap rows 0 ↔ b−1 and columns 0 ↔ b−1. So `e₀·X̃` spreads a lone
    /// outlier in coordinate 0 evenly over all b coordinates.
    public static func baseRotation(_ b: Int) -> [Double] {
        var m = [Double](repeating: 0, count: b * b)
        for i in 0..<b { m[i * b + i] = 1 }
        for i in 0..<(b - 1) {
            let c = 1 / Double(i + 2).squareRoot(), s = Double(i + 1).squareRoot() / Double(i + 2).squareRoot()
            // Rows i and i+1 of G·M.
            for j in 0..<b {
                let a = m[i * b + j], d = m[(i + 1) * b + j]
                m[i * b + j] = c * a - s * d
                m[(i + 1) * b + j] = s * a + c * d
            }
        }
        for j in 0..<b { m.swapAt(j, (b - 1) * b + j) }
        for i in 0..<b { m.swapAt(i * b, i * b + b - 1) }
        return m
    }

    /// A random orthogonal n×n matrix (Gram–Schmidt on a Gaussian matrix, Double).
    public static func randomOrthogonal(_ n: Int, _ rng: inout SeededGenerator) -> [Double] {
        var q = [Double](repeating: 0, count: n * n)
        var r = 0
        while r < n {
            var v = (0..<n).map { _ in rng.nextGaussian() }
            for _ in 0..<2 {   // twice for numerical orthogonality
                for p in 0..<r {
                    var d = 0.0
                    for j in 0..<n { d += q[p * n + j] * v[j] }
                    for j in 0..<n { v[j] -= d * q[p * n + j] }
                }
            }
            let norm = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
            guard norm > 1e-8 else { continue }
            for j in 0..<n { q[r * n + j] = v[j] / norm }
            r += 1
        }
        return q
    }

    /// DuQuant's per-call rotation `Rot = X̃·diag(1, Q′)`, Q′ a random (b−1)×(b−1) orthogonal
    /// matrix: `e₀·Rot = [1/√b, (1/√b)·1ᵀQ′]` moves the energy of coordinate 0 onto all b
    /// coordinates in equal first share and random directions elsewhere.
    public static func randomizedRotation(_ b: Int, _ rng: inout SeededGenerator) -> [Double] {
        let x = baseRotation(b)
        guard b > 1 else { return x }
        let q = randomOrthogonal(b - 1, &rng)
        var out = [Double](repeating: 0, count: b * b)
        for i in 0..<b {
            out[i * b] = x[i * b]
            for j in 1..<b {
                var s = 0.0
                for k in 1..<b { s += x[i * b + k] * q[(k - 1) * (b - 1) + (j - 1)] }
                out[i * b + j] = s
            }
        }
        return out
    }

    /// Which outlier the greedy rotation moves to position 0 of its block, and how the rotation is shared.
    public enum Variant: String, Sendable {
        /// The paper: channel `d = argmax_j max_t |X_tj|`; each block has its own rotation
        /// (block-diagonal), and a step rotates only the block holding the outlier.
        case paper
        /// The released code: `X` reshaped to (T·D/b) × b; the **row** index of the extreme entry
        /// modulo b; one b×b matrix shared by every block (`I ⊗ R`).
        case code
    }

    /// Result of one greedy rotation.
    public struct GreedyResult {
        /// One b×b row-major matrix per block (`paper`), or a single shared one (`code`).
        public var blocks: [[Float]]
        /// Steps kept (the best prefix) and steps evaluated.
        public var keptSteps: Int, evaluatedSteps: Int
        /// Range `max − min` of the whole matrix before and after.
        public var rangeBefore: Float, rangeAfter: Float
    }

    /// Greedy outlier-spreading rotation (DuQuant §3.2 / quantizer.py `rotation`).
    ///
    /// `Rot` is drawn once per call. For step k = 0 … N: record `peak_k = max(Z) − min(Z)` of the
    /// current matrix; take the entry of largest magnitude and its index e in its block (channel
    /// for `paper`, stacked row mod b for `code`); rotate by `R̂ = E_e·Rot·E_e` (E_e swaps
    /// coordinates 0 and e). The kept rotation is the product of the first `k* = argmin peak_k`
    /// steps (k* = 0: identity). On return `z ← z·R` (block-wise), computed by the same block
    /// multiply the site uses at run time.
    ///
    /// Cost per step: `paper` touches only the rotated block (T·b² MACs + T·b to refresh that
    /// block's max/min); `code` rotates every block (T·D·b). The accumulated b×b products are
    /// replayed once at the end for the kept prefix only.
    ///
    /// `reference`: the plain path (each step as per-row axpys, the replay as row-by-row products)
    /// instead of one f32 GEMM per step and one f64 GEMM per replayed step. Both run the same
    /// multiplies and adds in the same order (GEMMs without fused multiply-add), so they give the
    /// same rotations (tests compare them; only the sign of an exact zero may differ).
    public static func greedyRotation(_ z: inout Matrix, blockSize b: Int, steps: Int, variant: Variant,
                                      rng: inout SeededGenerator, reference: Bool = false) -> GreedyResult {
        let (t, d) = (z.rows, z.cols)
        precondition(d % b == 0, "block size \(b) does not divide \(d)")
        let k = d / b
        let rot = randomizedRotation(b, &rng)
        var w = z.data
        var history: [(block: Int, e: Int)] = []
        var best = Float.infinity, bestK = 0, first: Float = 0

        let rotator = StepRotator(rot: rot, b: b, maxRows: variant == .paper ? t : t * k, reference: reference)
        defer { rotator.deallocate() }
        w.withUnsafeMutableBufferPointer { wb in
            let wp = wb.baseAddress!
            // Per-block extremes: value and flat index into w.
            var bmax = [Float](repeating: 0, count: k), bmaxAt = [Int](repeating: 0, count: k)
            var bmin = [Float](repeating: 0, count: k), bminAt = [Int](repeating: 0, count: k)
            func refresh(_ blk: Int) {
                let (mx, ia, mn, ib) = DuQuantMath.extremes(wp + blk * b, rows: t, stride: d, b: b)
                bmax[blk] = mx; bmaxAt[blk] = ia + blk * b; bmin[blk] = mn; bminAt[blk] = ib + blk * b
            }
            for blk in 0..<k { refresh(blk) }

            for step in 0...steps {
                var mxB = 0, mnB = 0
                for blk in 1..<max(k, 1) {
                    if bmax[blk] > bmax[mxB] { mxB = blk }
                    if bmin[blk] < bmin[mnB] { mnB = blk }
                }
                let peak = bmax[mxB] - bmin[mnB]
                if step == 0 { first = peak }
                if peak < best { best = peak; bestK = step }
                if step == steps || t == 0 { break }
                let at = abs(bmax[mxB]) > abs(bmin[mnB]) ? bmaxAt[mxB] : bminAt[mnB]
                let (row, col) = (at / d, at % d)
                switch variant {
                case .paper:
                    // Only the outlier's block: its T rows of b, with row stride D.
                    let blk = col / b, e = col % b
                    rotator.rotate(wp + blk * b, rows: t, stride: d, e: e)
                    refresh(blk)
                    history.append((blk, e))
                case .code:
                    // Stacked view: row r·k + blk of a (T·k) × b matrix; every block rotates.
                    let e = (row * k + col / b) % b
                    rotator.rotate(wp, rows: t * k, stride: b, e: e)
                    for blk in 0..<k { refresh(blk) }
                    history.append((0, e))
                }
            }
        }
        // Replay the kept prefix on the b×b matrices (Double): R ← R·E_e·Rot·E_e.
        let count = variant == .paper ? k : 1
        var acc = [[Double]](repeating: identity(b), count: count)
        if reference || b > 128 {
            replayReference(&acc, history.prefix(bestK), rot: rot, b: b)
        } else {
            // As the reference, a matrix at a time: swap columns 0 and e, multiply by Rot (one f64
            // GEMM without fused multiply-add, one slab: the reference's sums in its order), swap back.
            var next = [Double](repeating: 0, count: b * b)
            for (blk, e) in history.prefix(bestK) {
                acc[blk].withUnsafeMutableBufferPointer { ap in rot.withUnsafeBufferPointer { rp in next.withUnsafeMutableBufferPointer { np in
                    let a = ap.baseAddress!, n = np.baseAddress!
                    for i in 0..<b { (a + i * b).swapAt0(e) }
                    n.update(repeating: 0, count: b * b)
                    Gemm64.multiplyAdd(a, lda: b, rp.baseAddress!, ldb: b, .kByN, into: n, ldc: b, m: b, n: b, k: b, fused: false)
                    for i in 0..<b { (n + i * b).swapAt0(e) }
                } } }
                swap(&acc[blk], &next)
            }
        }
        let blocks = acc.map { $0.map { Float($0) } }
        if bestK > 0 { Transform.blockOrthogonal(blockSize: b, blocks: blocks).applyToActivations(&z) }
        return GreedyResult(blocks: blocks, keptSteps: bestK, evaluatedSteps: history.count + 1,
                            rangeBefore: first, rangeAfter: best)
    }

    /// The plain replay: for every row of the block's matrix, `row ← row·E_e·Rot·E_e` as axpys.
    static func replayReference(_ acc: inout [[Double]], _ history: ArraySlice<(block: Int, e: Int)>, rot: [Double], b: Int) {
        var row = [Double](repeating: 0, count: b)
        for (blk, e) in history {
            var m = acc[blk]
            m.withUnsafeMutableBufferPointer { mp in rot.withUnsafeBufferPointer { rp in row.withUnsafeMutableBufferPointer { yp in
                for i in 0..<b {
                    let a = mp.baseAddress! + i * b
                    let y = yp.baseAddress!
                    a.swapAt0(e)
                    for j in 0..<b { y[j] = 0 }
                    for q in 0..<b {
                        let v = a[q], r = rp.baseAddress! + q * b
                        if v != 0 { for j in 0..<b { y[j] += v * r[j] } }
                    }
                    for j in 0..<b { a[j] = y[j] }
                    a.swapAt0(e)
                }
            } } }
            acc[blk] = m
        }
    }

    /// Largest and smallest value of `rows` rows of `b` values starting `stride` apart, with the
    /// offset (row·stride + column) of the first occurrence of each in row-major order — what
    /// `extremesReference` returns, in two vector passes: the extremes, then their first occurrences.
    static func extremes(_ x: UnsafePointer<Float>, rows: Int, stride: Int, b: Int) -> (Float, Int, Float, Int) {
        guard b % 8 == 0, rows > 0 else { return extremesReference(x, rows: rows, stride: stride, b: b) }
        typealias V = SIMD8<Float>
        var vmx = V(repeating: -.infinity), vmn = V(repeating: .infinity)
        for r in 0..<rows {
            let p = UnsafeRawPointer(x + r * stride)
            var j = 0
            while j < b {
                let v = p.loadUnaligned(fromByteOffset: 4 * j, as: V.self)
                vmx.replace(with: v, where: v .> vmx)
                vmn.replace(with: v, where: v .< vmn)
                j += 8
            }
        }
        var mx = -Float.infinity, mn = Float.infinity
        for l in 0..<8 { if vmx[l] > mx { mx = vmx[l] }; if vmn[l] < mn { mn = vmn[l] } }
        func first(_ target: Float) -> Int {
            let t = V(repeating: target)
            for r in 0..<rows {
                let p = x + r * stride
                var j = 0
                while j < b {
                    if any(UnsafeRawPointer(p + j).loadUnaligned(as: V.self) .== t) {
                        for q in j..<(j + 8) where p[q] == target { return r * stride + q }
                    }
                    j += 8
                }
            }
            return 0
        }
        return (mx, mx > -.infinity ? first(mx) : 0, mn, mn < .infinity ? first(mn) : 0)
    }

    /// The plain scan `extremes` replaces (the greedy loop's original per-block refresh).
    static func extremesReference(_ x: UnsafePointer<Float>, rows: Int, stride: Int, b: Int) -> (Float, Int, Float, Int) {
        var mx = -Float.infinity, mn = Float.infinity, ia = 0, ib = 0
        for r in 0..<rows {
            for j in 0..<b {
                let v = x[r * stride + j]
                if v > mx { mx = v; ia = r * stride + j }
                if v < mn { mn = v; ib = r * stride + j }
            }
        }
        return (mx, ia, mn, ib)
    }

    /// One greedy step's rotation `x ← x·E_e·Rot·E_e` on `rows` rows of b values starting `stride`
    /// apart, computed as the reference does — swap coordinates 0 and e, multiply by Rot, swap
    /// back — with the product as one f32 GEMM without fused multiply-add
    /// (`Gemm.multiplyStridedUnfused`, W = Rotᵀ): the same sums as `rotateRows`' axpys in the same
    /// order, so the greedy choices do not move. `reference` (or b > 256, more than one GEMM
    /// slab) runs `rotateRows` itself.
    final class StepRotator {
        let b: Int, reference: Bool
        let rotF: [Float]
        let rotT: UnsafeMutablePointer<Float>, y: UnsafeMutablePointer<Float>

        init(rot: [Double], b: Int, maxRows: Int, reference: Bool) {
            self.b = b; self.reference = reference || b > 256
            rotF = rot.map { Float($0) }
            rotT = .allocate(capacity: b * b)
            for i in 0..<b { for j in 0..<b { rotT[j * b + i] = Float(rot[i * b + j]) } }
            y = .allocate(capacity: max(1, maxRows * b))
        }

        func deallocate() { rotT.deallocate(); y.deallocate() }

        func rotate(_ x: UnsafeMutablePointer<Float>, rows: Int, stride: Int, e: Int) {
            if reference {
                rotF.withUnsafeBufferPointer { DuQuantMath.rotateRows(x, rows: rows, stride: stride, b: b, e: e, rot: $0.baseAddress!) }
                return
            }
            if e != 0 { for r in 0..<rows { let p = x + r * stride; let v = p[0]; p[0] = p[e]; p[e] = v } }
            Gemm.multiplyStridedUnfused(UnsafePointer(x), lda: stride, UnsafePointer(rotT), into: y, ldy: b, m: rows, n: b, k: b)
            for r in 0..<rows {
                let p = x + r * stride
                p.update(from: y + r * b, count: b)
                if e != 0 { let v = p[0]; p[0] = p[e]; p[e] = v }
            }
        }
    }

    static func identity(_ b: Int) -> [Double] {
        var m = [Double](repeating: 0, count: b * b)
        for i in 0..<b { m[i * b + i] = 1 }
        return m
    }

    // MARK: Permutation

    /// Zigzag permutation (quantizer.py `permutation_zigzag`): sort channels by magnitude `m_j`
    /// descending, deal them to the K = D/b blocks in the order 0, 1, …, K−1, K−1, …, 0, 0, 1, …
    /// (each turn block takes two in a row), sort each block descending, and concatenate.
    /// Applying it gathers columns: `x′_j = x_{perm[j]}`. Equalizes per-block magnitude sums.
    public static func zigzagPermutation(magnitudes m: [Float], blockSize b: Int) -> [Int] {
        let d = m.count
        precondition(d % b == 0)
        let k = d / b
        let order = (0..<d).sorted { m[$0] != m[$1] ? m[$0] > m[$1] : $0 < $1 }
        var blocks = [[Int]](repeating: [], count: k)
        for (i, ch) in order.enumerated() {
            let pos = i % (2 * k)
            blocks[pos < k ? pos : 2 * k - 1 - pos].append(ch)
        }
        return blocks.flatMap { blk in blk.sorted { m[$0] != m[$1] ? m[$0] > m[$1] : $0 < $1 } }
    }

    // MARK: Smoothing

    /// DuQuant's smoothing factors (duquant.py): `s_j = max(a_j, 1e-5)^α / max(w_j, 1e-5)^{1−α}`,
    /// clamped ≥ 1e-5, with `a_j` the input channel absmax and `w_j = max_i |W_ij|` of **one**
    /// linear (q_proj for q/k/v, up_proj for gate/up). Activations become `x/s`, weights `W·diag(s)`.
    public static func smoothingFactors(activationAbsMax a: [Float], weight: Matrix, alpha: Double) -> [Float] {
        let wmax = weight.columnAbsMax()
        return zip(a, wmax).map { aj, wj in
            let s = pow(Double(max(aj, 1e-5)), alpha) / pow(Double(max(wj, 1e-5)), 1 - alpha)
            return Float(max(s, 1e-5))
        }
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension UnsafeMutablePointer where Pointee == Double {
    /// Swaps elements 0 and e.
    @inline(__always) func swapAt0(_ e: Int) { let v = self[0]; self[0] = self[e]; self[e] = v }
}

extension DuQuantMath {
    /// In place, for `rows` rows of b values starting `stride` apart: `x ← x·E_e·Rot·E_e`
    /// (swap coordinates 0 and e, multiply by Rot, swap back). The product runs as row-axpys
    /// `y += x_i·Rot_i`, which vectorize along the row; threads split the rows of large steps.
    static func rotateRows(_ x: UnsafeMutablePointer<Float>, rows: Int, stride: Int, b: Int, e: Int, rot: UnsafePointer<Float>) {
        let chunks = rows * b * b >= 1 << 22 ? max(1, min(Parallel.threadCount, rows / 64)) : 1
        let box = UncheckedBox((x, rot))
        Parallel.forEach(chunks, threads: chunks) { c in
            let (x, rot) = box.value
            let y = UnsafeMutablePointer<Float>.allocate(capacity: b)
            defer { y.deallocate() }
            for row in (c * rows / chunks)..<((c + 1) * rows / chunks) {
                let p = x + row * stride
                var v = p[0]; p[0] = p[e]; p[e] = v
                y.update(repeating: 0, count: b)
                for i in 0..<b {
                    let xi = p[i]
                    if xi == 0 { continue }
                    let ri = rot + i * b
                    for j in 0..<b { y[j] += xi * ri[j] }
                }
                p.update(from: y, count: b)
                v = p[0]; p[0] = p[e]; p[e] = v
            }
        }
    }
}
