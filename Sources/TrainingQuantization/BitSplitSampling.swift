import QuantKernels

/// Bit splitting (BS) of an output gradient G (tokens × out, row-major) into two INT4 halves:
///
///     σ = β²/(2·max|G|) = 98/max|G|  (β = 14),  t = σ·G ∈ [−98, 98]
///     h = clamp(round(t/β), −6, 6),  l = clamp(round(t − β·h + u), −6, 6),  u ~ U(−½, ½)
///     G ≈ (β·h + l)/σ
///
/// u is drawn per element from `KeyedRandom` (stream `.splitRounding`, row = token, column =
/// channel), so the low half is stochastically rounded (unbiased while |t − βh| ≤ 6) and the draws do
/// not depend on the thread count. The split gradient is the 2N × C matrix `[h; l]`: split row r < N
/// is `h_r` (scale β/σ), row N + r is `l_r` (scale 1/σ).
///
/// Stored as one code per element, `c = 14h + l ∈ [−90, 90]`: l ∈ [−6, 6] spans fewer than 14
/// values, so `h = round(c/14)`, `l = c − 14h` recover the halves, and c is what the integer GEMMs
/// multiply when both halves of a token take the integer path (`SampledGradient`).
public struct BitSplit: Sendable {
    public static let beta: Float = 14
    public let rows: Int, cols: Int
    /// `14h + l` per element (N × C).
    public let codes: [Int8]
    /// The halves (N × C each), decoded from `codes`.
    public var high: [Int8] { codes.map { BitSplit.decode($0).high } }
    public var low: [Int8] { codes.map { BitSplit.decode($0).low } }

    /// 14·h of each code c + 90 (c ∈ [−90, 90]); l = c − 14h. A table: hot loops decode per element.
    static let highPart: [Int8] = (0...180).map { (i: Int) -> Int8 in Int8(14 * (i / 14 - 6)) }

    @inline(__always) static func decode(_ c: Int8) -> (high: Int8, low: Int8) {
        let h = (Int(c) + 90) / 14 - 6   // c + 90 = 14(h + 6) + (l + 6), 0 ≤ l + 6 ≤ 12
        return (Int8(h), Int8(Int(c) - 14 * h))
    }
    /// σ; 0 when G is all zero (then h = l = 0).
    public let sigma: Float

    public init(_ g: [Float], rows: Int, cols: Int, random: KeyedRandom, threads: Int? = nil) {
        precondition(g.count == rows * cols)
        self.rows = rows; self.cols = cols
        let m = PerTensor.absMax(g)
        let sigma: Float = m > 0 && m.isFinite ? 98 / m : 0
        self.sigma = sigma
        var codes = [Int8](repeating: 0, count: g.count)
        var sq = [Int](repeating: 0, count: 2 * rows)
        if sigma > 0 {
            g.withUnsafeBufferPointer { gb in codes.withUnsafeMutableBufferPointer { cb in sq.withUnsafeMutableBufferPointer { qb in
                let gp = gb.baseAddress!, cp = cb.baseAddress!, qp = qb.baseAddress!
                Parallel.forEach(rows, threads: g.count >= 1 << 15 ? threads : 1) { r in
                    let (sh, sl) = BitSplit.splitRow(gp + r * cols, cp + r * cols, cols, sigma, random.rowKey(r))
                    qp[r] = Int(sh); qp[rows + r] = Int(sl)
                }
            } } }
        }
        self.codes = codes; squaredCodeNorms = sq
    }

    /// Σ code² of each split row (2N: high rows, then low rows), from the split pass.
    let squaredCodeNorms: [Int]

    /// One row of the split: `h`, `l` codes and their Σ code². Written out (not through
    /// `KeyedRandom.uniform` / `PerTensor.clampRound`) so it compiles to one tight loop; the same
    /// arithmetic as those two (the tests' references use them).
    static func splitRow(_ row: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Int8>,
                         _ cols: Int, _ sigma: Float, _ key: UInt64) -> (Int32, Int32) {
        let beta = BitSplit.beta
        var sh: Int32 = 0, sl: Int32 = 0
        var c = 0
        while c < cols {
            let z = KeyedRandom.block(rowKey: key, c >> 2)
            for e in 0..<min(4, cols - c) {
                let t = row[c + e] * sigma
                let q = t / beta
                let hb = (q > -6 ? (q < 6 ? q : 6) : -6) + 12_582_912
                let hi = hb - 12_582_912
                let u = KeyedRandom.unit(z, e) - 0.5
                let v = t - beta * hi + u
                let lb = (v > -6 ? (v < 6 ? v : 6) : -6) + 12_582_912
                // 1.5·2²³ + k has the bit pattern 0x4B40_0000 + k: the integer without a checked
                // float → int conversion.
                let hq = Int32(bitPattern: hb.bitPattern) &- 0x4B40_0000
                let lq = Int32(bitPattern: lb.bitPattern) &- 0x4B40_0000
                out[c + e] = Int8(truncatingIfNeeded: 14 &* hq &+ lq)
                sh &+= hq &* hq; sl &+= lq &* lq
            }
            c += 4
        }
        return (sh, sl)
    }

    /// Scale of split row r: β/σ for the high half, 1/σ for the low half (0 when σ = 0).
    public func rowScale(_ r: Int) -> Float { sigma > 0 ? (r < rows ? BitSplit.beta : 1) / sigma : 0 }

    /// ‖split row r‖₂ with its scale (f64), for r in 0..<2N.
    public func rowNorms() -> [Double] {
        (0..<(2 * rows)).map { Double(squaredCodeNorms[$0]).squareRoot() * Double(rowScale($0)) }
    }

    /// The dequantized `(β·h + l)/σ` (N × C), for references and f32 fallbacks.
    public var dequantized: [Float] {
        guard sigma > 0 else { return [Float](repeating: 0, count: codes.count) }
        return codes.map { Float($0) / sigma }
    }
}

/// Leverage-score sampling (LSS) of the 2N split rows for one gradient GEMM.
public enum LSSMode: String, Sendable, CaseIterable {
    /// The paper: keep about half the rows, Bernoulli(p) with p ∝ leverage score (iteratively clipped
    /// to ≤ 1), kept rows divided by p.
    case sample
    /// The released code: p = 1 for every row with a non-zero score, 0 otherwise (exact, no sampling).
    case skipZero = "skip_zero"
}

public enum LeverageSampling {
    /// Probabilities for `scores` (n split rows): `p = score·n/(2·Σscore)` (Σp = n/2), then while some
    /// p > 1: clip to 1 and rescale the p < 1 so the total stays n/2 (the released Python reference's
    /// loop, including its stops: at most n/2 rows clipped, or when the remaining scores are all 0).
    /// When the rows clipped to 1 use the whole budget the others get p = 0 (as in the reference:
    /// the estimator is then biased; `sample` stays unbiased whenever that does not happen).
    public static func probabilities(_ scores: [Double], mode: LSSMode) -> [Double] {
        if mode == .skipZero { return scores.map { $0 > 0 ? 1 : 0 } }
        let n = scores.count
        let total = scores.reduce(0, +)
        guard total > 0 else { return [Double](repeating: 0, count: n) }
        var p = scores.map { $0 * Double(n) / (2 * total) }
        let budget = Double(n / 2)
        var clipped = 0
        while (p.max() ?? 0) > 1 && Double(clipped) < Double(n) / 2 {
            var smallSum = 0.0, smallMax = 0.0, small = 0
            for v in p where v < 1 { smallSum += v; smallMax = max(smallMax, v); small += 1 }
            clipped = n - small
            for i in 0..<n where p[i] > 1 { p[i] = 1 }
            if smallMax == 0 { break }
            let f = (budget - Double(clipped)) / smallSum
            for i in 0..<n where p[i] < 1 { p[i] *= f }
        }
        return p
    }

    /// Bernoulli draws: row r is kept when `p == 1`, or `p > 0` and `u_r < p` (u: `random.uniformDouble(row: r)`, 53 bits).
    public static func keep(_ p: [Double], random: KeyedRandom) -> [Bool] {
        p.indices.map { r in p[r] >= 1 || (p[r] > 0 && random.uniformDouble(row: r) < p[r]) }
    }
}

/// One gradient GEMM's share of a bit-split, sampled output gradient, per token i:
///
///     Ĝ_i = (β·h_i·[h kept, p = 1] + l_i·[l kept, p = 1])/σ            → `integer` (8-bit codes 14h + l ∈ [−90, 90])
///         + β·h_i/(σ·p_h)·[h kept, p < 1] + l_i/(σ·p_l)·[l kept, p < 1]   → `float` rows
///
/// The two INT4 halves of a token are one signed code `14h + l`: the integer GEMM of the combined
/// code gives exactly `14·Σh·w + Σl·w` (int32), i.e. the paper's two INT4 GEMMs summed, in one
/// pass (the kernels multiply 8-bit activation bytes anyway).
public struct SampledGradient: Sendable {
    public let rows: Int, cols: Int
    /// Tokens with an integer part, and their codes (|integerTokens| × C, 8 bits, scale 1/σ).
    public let integerTokens: [Int]
    public let integer: IntCodes
    /// Tokens with an f32 part, and the rescaled rows (|floatTokens| × C).
    public let floatTokens: [Int]
    public let float: [Float]
    /// Split rows (of 2N) taking each path; the rest were dropped (zero, or not drawn).
    public let integerRowCount: Int, floatRowCount: Int

    public init(split: BitSplit, p: [Double], keep: [Bool]) {
        let n = split.rows, c = split.cols
        rows = n; cols = c
        var intTokens: [Int] = [], fTokens: [Int] = []
        var ni = 0, nf = 0
        for i in 0..<n {
            let hInt = keep[i] && p[i] >= 1, lInt = keep[n + i] && p[n + i] >= 1
            let hF = keep[i] && p[i] < 1, lF = keep[n + i] && p[n + i] < 1
            if hInt || lInt { intTokens.append(i); ni += (hInt ? 1 : 0) + (lInt ? 1 : 0) }
            if hF || lF { fTokens.append(i); nf += (hF ? 1 : 0) + (lF ? 1 : 0) }
        }
        // Every non-zero split row on the integer path (skip_zero, usually): the codes are the split's
        // own `14h + l` for every token (all-zero rows add nothing), no copy.
        let allInteger = (0..<(2 * n)).allSatisfy { r in (keep[r] && p[r] >= 1) || split.squaredCodeNorms[r] == 0 }
        if allInteger {
            integerTokens = Array(0..<n); floatTokens = []; float = []
            integer = IntCodes(rows: n, cols: c, bits: 8, codes: split.codes, scale: split.sigma > 0 ? 1 / split.sigma : 0)
            integerRowCount = ni; floatRowCount = 0
            return
        }
        var intCodes = [Int8](repeating: 0, count: intTokens.count * c)
        var fRows = [Float](repeating: 0, count: fTokens.count * c)
        split.codes.withUnsafeBufferPointer { sb in BitSplit.highPart.withUnsafeBufferPointer { hb in
        intCodes.withUnsafeMutableBufferPointer { ib in fRows.withUnsafeMutableBufferPointer { fb in
        intTokens.withUnsafeBufferPointer { tb in
            let sp = sb.baseAddress!, hp = hb.baseAddress!, ip = ib.baseAddress!, fp = fb.baseAddress!, tp = tb.baseAddress!
            // Integer rows: 14h + l (|·| ≤ 90), or one half alone.
            Parallel.forEach(intTokens.count, threads: intTokens.count * c >= 1 << 15 ? nil : 1) { o in
                let i = tp[o]
                let hInt = keep[i] && p[i] >= 1, lInt = keep[n + i] && p[n + i] >= 1
                let src = i * c, dst = o * c
                if hInt && lInt { (ip + dst).update(from: sp + src, count: c); return }
                for j in 0..<c {
                    let code = sp[src + j], h14 = hp[Int(code) + 90]
                    ip[dst + j] = hInt ? h14 : code &- h14
                }
            }
            fTokens.withUnsafeBufferPointer { fb in
                let ft = fb.baseAddress!
                Parallel.forEach(fTokens.count, threads: fTokens.count * c >= 1 << 15 ? nil : 1) { o in
                    let i = ft[o]
                    let sh = keep[i] && p[i] < 1 ? Float(Double(split.rowScale(i)) / p[i]) : 0
                    let sl = keep[n + i] && p[n + i] < 1 ? Float(Double(split.rowScale(n + i)) / p[n + i]) : 0
                    // h = round(c/14) exactly (|l/14| ≤ 0.43, no ties), in floats so the loop vectorizes.
                    for j in 0..<c {
                        let cf = Float(sp[i * c + j])
                        let h = (cf * (1 / 14) + 12_582_912) - 12_582_912
                        fp[o * c + j] = sh * h + sl * (cf - 14 * h)
                    }
                }
            }
        } } } } }
        integerTokens = intTokens; floatTokens = fTokens; float = fRows
        integer = IntCodes(rows: intTokens.count, cols: c, bits: 8, codes: intCodes, scale: split.sigma > 0 ? 1 / split.sigma : 0)
        integerRowCount = ni; floatRowCount = nf
    }

    /// Ĝ as a dense N × C f32 matrix (integer part dequantized plus the float part).
    public var dense: [Float] {
        var g = [Float](repeating: 0, count: rows * cols)
        for (o, i) in integerTokens.enumerated() { for j in 0..<cols { g[i * cols + j] = Float(integer.codes[o * cols + j]) * integer.scale } }
        for (o, i) in floatTokens.enumerated() { for j in 0..<cols { g[i * cols + j] += float[o * cols + j] } }
        return g
    }
}
