import Foundation
#if arch(x86_64)
import QuantKernelsAVX2
import QuantKernelsAVX512
#endif

/// Orthonormal Hadamard transforms applied to rows, `x ← x·Mᵀ` with `M = (H_K ⊗ H_{2^m})/√n`.
///
/// `n = K·2^m`, where `H_K` is 1, or a Paley construction (type I: K = q+1, q prime ≡ 3 mod 4;
/// type II: K = 2(q+1), q prime ≡ 1 mod 4). The row is viewed as a K×2^m row-major matrix: a fast
/// Walsh–Hadamard transform runs on each of its K rows, then `H_K` multiplies from the left.
/// Never builds the dense n×n matrix.
public struct HadamardTransform: Sendable {
    public let size: Int
    /// The non-power-of-two factor K and its ±1 matrix (K×K, row-major); K = 1 for 2^m sizes.
    public let factor: Int
    public let factorMatrix: [Float]
    public let construction: String
    let pow2: Int
    /// `QuadPlan`s of `H_K` and `H_Kᵀ` (the inverse), built once.
    let plan: QuadPlan, transposedPlan: QuadPlan

    public enum Failure: Error, CustomStringConvertible {
        case unsupported(Int, suggestion: String)
        public var description: String {
            switch self {
            case let .unsupported(n, s): return "no Hadamard construction for n = \(n): \(s)"
            }
        }
    }

    /// Finds the smallest K (n = K·2^m) with a construction. `maxFactor` rejects constructions whose
    /// K×K factor would cost more than wanted (about K/4 + 2 adds per element, `QuadPlan`; e.g.
    /// 29568 = 924·32 via Paley II q = 461 exists but costs ~233 adds per element) with the same
    /// block-diagonal hint.
    public init(size n: Int, maxFactor: Int = .max) throws {
        precondition(n > 0)
        size = n
        var m = n
        var p = 1
        while m % 2 == 0 { m /= 2; p *= 2 }
        // Try K = m, 2m, 4m, … (each doubling moves a factor 2 out of the WHT part).
        var k = m
        var pw = p
        while true {
            if k <= maxFactor, let (h, name) = HadamardTransform.construct(k) {
                factor = k; factorMatrix = h; construction = name; pow2 = pw
                plan = QuadPlan(h, k: k)
                transposedPlan = QuadPlan((0..<k * k).map { h[($0 % k) * k + $0 / k] }, k: k)
                return
            }
            if pw == 1 { break }
            k *= 2; pw /= 2
        }
        let blocks = (1...12).map { 1 << $0 }.filter { n % $0 == 0 }.last
        throw Failure.unsupported(n, suggestion: blocks.map {
            "use a block-diagonal Hadamard (block_size: \($0)) or a random orthogonal matrix instead" }
            ?? "use a random orthogonal matrix instead")
    }

    /// `x ← x·Mᵀ` on each of `rows` contiguous rows of length `size` (`transpose`: `x ← x·M`, the
    /// inverse). Per row: SIMD FWHT of each length-2^m segment in place, then `H_K` (or `H_Kᵀ`) times
    /// the K×2^m segment matrix through a `QuadPlan` (about K/4 + 2 adds per element instead of K),
    /// scaled by 1/√n, in place. Rows are independent, so any thread count gives the same bits, and
    /// every path (portable, AVX2, AVX-512) does the same arithmetic, so they give the same bits too.
    ///
    /// `thenFakeQuantize`: fused `Quantizer.fakeQuantize` of each transformed row (groups of
    /// `groupSize` columns) while it is still in L1; bit-identical to calling the two separately.
    public func apply(_ x: UnsafeMutablePointer<Float>, rows: Int, transpose: Bool = false, threads: Int? = nil,
                      thenFakeQuantize fq: (groupSize: Int, grid: QuantGrid)? = nil) {
        if let fq { precondition(fq.groupSize > 0 && size % fq.groupSize == 0, "group size must divide the row length") }
        guard rows > 0 else { return }
        let t = rows * size >= 1 << 15 ? (threads ?? Parallel.threadCount) : 1
        let chunks = min(rows, t)
        let k = factor
        let plan = transpose ? transposedPlan : plan
        let norm = 1 / Float(size).squareRoot()
        let fqSIMD = KernelDispatch.active != .portable
        #if arch(x86_64)
        let simd = KernelDispatch.active != .portable && pow2 >= 8
        let avx512 = KernelDispatch.active == .vnni && pow2 >= 16
        let paley12 = avx512 && k == 12 && factorMatrix == AVX512Hadamard.paley12
        #endif
        plan.signedPick.withUnsafeBufferPointer { pickBuffer in plan.outputSign.withUnsafeBufferPointer { signBuffer in
            let signedPick = pickBuffer.baseAddress!, outputSign = signBuffer.baseAddress!
            Parallel.forEach(chunks, threads: chunks) { c in
                let r0 = c * rows / chunks, r1 = (c + 1) * rows / chunks
                // Quad patterns: 2n floats for the portable path, 64·K for the SIMD ones.
                let patternCount = max(2 * size, 64 * k)
                let patterns = UnsafeMutableRawPointer.allocate(byteCount: patternCount * 4, alignment: 64)
                    .bindMemory(to: Float.self, capacity: patternCount)
                defer { patterns.deallocate() }
                #if arch(x86_64)
                if simd {
                    for r in r0..<r1 {
                        if paley12 {
                            AVX512Hadamard.rowPaley12(x + r * size, pow2, norm, transposed: transpose)
                        } else if avx512 {
                            AVX512Hadamard.row(x + r * size, patterns, signedPick, outputSign, k, pow2, norm)
                        } else {
                            AVX2Hadamard.row(x + r * size, patterns, signedPick, outputSign, k, pow2, norm)
                        }
                        if let fq { Quantizer.fakeQuantizeRow(x + r * size, cols: size, groupSize: fq.groupSize, grid: fq.grid, simd: fqSIMD) }
                    }
                    return
                }
                #endif
                for r in r0..<r1 {
                    applyRow(x + r * size, patterns, signedPick, outputSign, norm)
                    if let fq { Quantizer.fakeQuantizeRow(x + r * size, cols: size, groupSize: fq.groupSize, grid: fq.grid, simd: fqSIMD) }
                }
            }
        } }
    }

    /// The portable row kernel, the reference for the SIMD ones: FWHT of each segment, then
    /// `QuadPlan`'s arithmetic over whole segments (`patterns`: 2n floats).
    func applyRow(_ row: UnsafeMutablePointer<Float>, _ patterns: UnsafeMutablePointer<Float>,
                  _ signedPick: UnsafePointer<Int32>, _ outputSign: UnsafePointer<Float>, _ norm: Float) {
        let k = factor, p = pow2
        for a in 0..<k { HadamardTransform.fwht(row + a * p, p) }
        if k == 1 { RowOps.scale(row, size, by: norm); return }
        let quads = k / 4
        for q in 0..<quads {
            let x0 = row + 4 * q * p, x1 = x0 + p, x2 = x1 + p, x3 = x2 + p, out = patterns + 8 * q * p
            for i in 0..<p {
                let u = x0[i] + x1[i], v = x0[i] - x1[i], w = x2[i] + x3[i], z = x2[i] - x3[i]
                out[i] = u + w; out[p + i] = u - w; out[2 * p + i] = u + z; out[3 * p + i] = u - z
                out[4 * p + i] = v + w; out[5 * p + i] = v - w; out[6 * p + i] = v + z; out[7 * p + i] = v - z
            }
        }
        // Here the eight patterns of quad g sit at 8g…8g+7 (no negated copies): subtract instead.
        @inline(__always) func pattern(_ pick: Int32) -> UnsafePointer<Float> { UnsafePointer(patterns + Int(pick / 16 * 8 + pick % 8) * p) }
        for a in 0..<k {
            let out = row + a * p, pk = signedPick + a * quads
            out.update(from: pattern(pk[0]), count: p)
            for q in 1..<quads { RowOps.accumulate(out, pattern(pk[q]), p, subtract: pk[q] % 16 >= 8) }
            RowOps.scale(out, p, by: outputSign[a] * norm)
        }
    }

    /// In-place unnormalized Walsh–Hadamard transform of length `n` (a power of two).
    /// Strides ≥ 8 are eight-lane butterflies; the first three stages run inside one SIMD8 register
    /// (three rounds of `(even + odd, even − odd)`, which also undo their own index rotation).
    @inline(__always)
    public static func fwht(_ x: UnsafeMutablePointer<Float>, _ n: Int) {
        if n < 8 { fwhtReference(x, n); return }
        let raw = UnsafeMutableRawPointer(x)
        var i = 0
        while i < n {
            var v = raw.load(fromByteOffset: 4 * i, as: SIMD8<Float>.self)
            v = SIMD8(lowHalf: v.evenHalf + v.oddHalf, highHalf: v.evenHalf - v.oddHalf)
            v = SIMD8(lowHalf: v.evenHalf + v.oddHalf, highHalf: v.evenHalf - v.oddHalf)
            v = SIMD8(lowHalf: v.evenHalf + v.oddHalf, highHalf: v.evenHalf - v.oddHalf)
            raw.storeBytes(of: v, toByteOffset: 4 * i, as: SIMD8<Float>.self)
            i += 8
        }
        var h = 8
        while h < n {
            var b = 0
            while b < n {
                var j = b
                while j < b + h {
                    let u = raw.load(fromByteOffset: 4 * j, as: SIMD8<Float>.self)
                    let w = raw.load(fromByteOffset: 4 * (j + h), as: SIMD8<Float>.self)
                    raw.storeBytes(of: u + w, toByteOffset: 4 * j, as: SIMD8<Float>.self)
                    raw.storeBytes(of: u - w, toByteOffset: 4 * (j + h), as: SIMD8<Float>.self)
                    j += 8
                }
                b += 2 * h
            }
            h *= 2
        }
    }

    /// Scalar FWHT (the definition the SIMD version is tested against).
    public static func fwhtReference(_ x: UnsafeMutablePointer<Float>, _ n: Int) {
        var h = 1
        while h < n {
            var i = 0
            while i < n {
                for j in i..<(i + h) {
                    let a = x[j], b = x[j + h]
                    x[j] = a + b; x[j + h] = a - b
                }
                i += 2 * h
            }
            h *= 2
        }
    }

    /// The dense orthonormal matrix `M = (H_K ⊗ H_{2^m})/√n` (n×n row-major). Reference for tests.
    public func denseMatrix() -> [Float] {
        let n = size, p = pow2, k = factor
        var sylvester = [Float](repeating: 1, count: p * p)
        for i in 0..<p { for j in 0..<p where (i & j).nonzeroBitCount % 2 == 1 { sylvester[i * p + j] = -1 } }
        let norm = 1 / Float(n).squareRoot()
        var m = [Float](repeating: 0, count: n * n)
        for a in 0..<k { for c in 0..<k { for i in 0..<p { for j in 0..<p {
            m[(a * p + i) * n + c * p + j] = factorMatrix[a * k + c] * sylvester[i * p + j] * norm
        } } } }
        return m
    }

    /// The ±1 Hadamard matrix of order k (row-major), or nil when no construction is known here.
    public static func construct(_ k: Int) -> ([Float], String)? {
        if k == 1 { return ([1], "Walsh–Hadamard") }
        if k == 2 { return ([1, 1, 1, -1], "Sylvester") }
        if k % 4 == 0 {
            let q = k - 1
            if isPrime(q) && q % 4 == 3 { return (paleyI(q), "Paley I (q = \(q))") }
            let q2 = k / 2 - 1
            if isPrime(q2) && q2 % 4 == 1 { return (paleyII(q2), "Paley II (q = \(q2))") }
        }
        if k % 2 == 0, let (h, name) = construct(k / 2) {
            let half = k / 2
            var out = [Float](repeating: 0, count: k * k)
            for i in 0..<half { for j in 0..<half {
                let v = h[i * half + j]
                out[i * k + j] = v; out[i * k + j + half] = v
                out[(i + half) * k + j] = v; out[(i + half) * k + j + half] = -v
            } }
            return (out, "Sylvester ⊗ " + name)
        }
        return nil
    }

    static func isPrime(_ n: Int) -> Bool {
        if n < 2 { return false }
        var d = 2
        while d * d <= n { if n % d == 0 { return false }; d += 1 }
        return true
    }

    /// Quadratic character χ(a) mod prime q.
    static func chi(_ a: Int, _ q: Int) -> Int {
        let r = ((a % q) + q) % q
        if r == 0 { return 0 }
        var x = 1, base = r, e = (q - 1) / 2
        while e > 0 { if e & 1 == 1 { x = x * base % q }; base = base * base % q; e >>= 1 }
        return x == 1 ? 1 : -1
    }

    /// Paley I, order q+1: `H = I + S`, `S = [[0, 1ᵀ], [−1, Q]]`, Q the Jacobsthal matrix.
    static func paleyI(_ q: Int) -> [Float] {
        let n = q + 1
        var h = [Float](repeating: 0, count: n * n)
        for i in 0..<n { for j in 0..<n {
            var s: Int
            if i == 0 && j == 0 { s = 0 } else if i == 0 { s = 1 } else if j == 0 { s = -1 } else { s = chi(j - i, q) }
            if i == j { s += 1 }
            h[i * n + j] = Float(s)
        } }
        return h
    }

    /// Paley II, order 2(q+1): `C = [[0, 1ᵀ], [1, Q]]` (symmetric), each 0 → [[1,−1],[−1,−1]],
    /// each ±1 → ±[[1,1],[1,−1]].
    static func paleyII(_ q: Int) -> [Float] {
        let m = q + 1, n = 2 * m
        var h = [Float](repeating: 0, count: n * n)
        for i in 0..<m { for j in 0..<m {
            let c: Int = (i == 0 && j == 0) ? 0 : (i == 0 || j == 0) ? 1 : chi(j - i, q)
            let blk: [Int] = c == 0 ? [1, -1, -1, -1] : [c, c, c, -c]
            h[(2 * i) * n + 2 * j] = Float(blk[0]); h[(2 * i) * n + 2 * j + 1] = Float(blk[1])
            h[(2 * i + 1) * n + 2 * j] = Float(blk[2]); h[(2 * i + 1) * n + 2 * j + 1] = Float(blk[3])
        } }
        return h
    }
}

extension HadamardTransform {
    private static let cacheLock = NSLock()
    nonisolated(unsafe) private static var cache: [Int: HadamardTransform] = [:]

    /// The transform for `n`, constructed once per process (a large Paley factor takes seconds).
    public static func cached(size n: Int) throws -> HadamardTransform {
        cacheLock.lock(); defer { cacheLock.unlock() }
        if let h = cache[n] { return h }
        let h = try HadamardTransform(size: n)
        cache[n] = h
        return h
    }
}

/// `H·x` for a ±1 matrix H of order K = 4G (every Hadamard order above 2), sharing work between the
/// K outputs: the columns split into G quads, and each quad's inputs x0…x3 give the eight sums
/// `x0 ± x1 ± x2 ± x3` once (u = x0 + x1, v = x0 − x1, w = x2 + x3, z = x2 − x3; patterns
/// u+w, u−w, u+z, u−z, v+w, v−w, v+z, v−z). Row a's quad g is ±pattern, so
///
///     out[a] = ((P_0 ± P_1) ± P_2 … ± P_{G−1}) · (±norm)
///
/// in ascending g: 12 adds per quad plus G − 1 per output, K/4 + 2 per element instead of K. Every
/// Hadamard kernel (portable, AVX2, AVX-512, the generated Paley 12) does exactly this arithmetic.
struct QuadPlan {
    let k: Int
    /// `signedPick[a·G + g]`: row a's pattern in quad g as an index into 16 patterns per quad (the
    /// eight, then their negations): 16g + pattern, + 8 where the pattern is subtracted (g ≥ 1).
    let signedPick: [Int32]
    /// `outputSign[a]`: the sign of row a's quad-0 pattern, which multiplies `norm`.
    let outputSign: [Float]

    /// `h`: K×K ±1, row-major. K = 1 has no plan (empty tables).
    init(_ h: [Float], k: Int) {
        self.k = k
        guard k > 1 else { signedPick = []; outputSign = []; return }
        precondition(k % 4 == 0, "a Hadamard matrix of order \(k) > 2 must have an order divisible by 4")
        let quads = k / 4
        var pick = [Int32](repeating: 0, count: k * quads)
        for a in 0..<k {
            let first = h[a * k]
            for q in 0..<quads {
                let c = a * k + 4 * q, s0 = h[c]
                let r1 = h[c + 1] * s0, r2 = h[c + 2] * s0, r3 = h[c + 3] * s0
                let other = r2 > 0 ? (r3 > 0 ? 0 : 2) : (r3 > 0 ? 3 : 1)
                let subtracted = q > 0 && s0 * first < 0
                pick[a * quads + q] = Int32(16 * q + (r1 > 0 ? 0 : 4) + other + (subtracted ? 8 : 0))
            }
        }
        signedPick = pick
        outputSign = (0..<k).map { h[$0 * k] }
    }
}
