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

    public enum Failure: Error, CustomStringConvertible {
        case unsupported(Int, suggestion: String)
        public var description: String {
            switch self {
            case let .unsupported(n, s): return "no Hadamard construction for n = \(n): \(s)"
            }
        }
    }

    public init(size n: Int) throws {
        precondition(n > 0)
        size = n
        var m = n
        var p = 1
        while m % 2 == 0 { m /= 2; p *= 2 }
        // Try K = m, 2m, 4m, … (each doubling moves a factor 2 out of the WHT part).
        var k = m
        var pw = p
        while true {
            if let (h, name) = HadamardTransform.construct(k) {
                factor = k; factorMatrix = h; construction = name; pow2 = pw
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

    /// `x ← x·Mᵀ` on each of `rows` contiguous rows of length `size`.
    public func apply(_ x: UnsafeMutablePointer<Float>, rows: Int, transpose: Bool = false) {
        let norm = 1 / Float(size).squareRoot()
        Parallel.forEach(rows, threads: rows * size >= 1 << 15 ? nil : 1) { r in
            let row = x + r * size
            var tmp = [Float](repeating: 0, count: factor > 1 ? size : 0)
            for a in 0..<factor { HadamardTransform.fwht(row + a * pow2, pow2) }
            if factor > 1 {
                tmp.withUnsafeMutableBufferPointer { t in
                    for a in 0..<factor {
                        let out = t.baseAddress! + a * pow2
                        for i in 0..<pow2 { out[i] = 0 }
                        for c in 0..<factor {
                            let h = transpose ? factorMatrix[c * factor + a] : factorMatrix[a * factor + c]
                            let src = row + c * pow2
                            if h > 0 { for i in 0..<pow2 { out[i] += src[i] } } else { for i in 0..<pow2 { out[i] -= src[i] } }
                        }
                    }
                    for i in 0..<size { row[i] = t[i] * norm }
                }
            } else {
                for i in 0..<size { row[i] *= norm }
            }
        }
    }

    /// In-place unnormalized Walsh–Hadamard transform of length `n` (a power of two).
    @inline(__always)
    public static func fwht(_ x: UnsafeMutablePointer<Float>, _ n: Int) {
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
