import QuantCore

/// Deterministic random matrices for tests.
public func randomMatrix(_ rows: Int, _ cols: Int, seed: UInt64, std: Double = 1) -> Matrix {
    var g = SeededGenerator(seed: seed)
    return Matrix(rows: rows, cols: cols, data: (0..<(rows * cols)).map { _ in Float(g.nextGaussian() * std) })
}

/// A random orthogonal n×n matrix (Gram–Schmidt on a Gaussian matrix, in Double).
public func randomOrthogonal(_ n: Int, seed: UInt64) -> Matrix {
    var g = SeededGenerator(seed: seed)
    var q = [[Double]]()
    while q.count < n {
        var v = (0..<n).map { _ in g.nextGaussian() }
        for u in q { let d = zip(u, v).reduce(0) { $0 + $1.0 * $1.1 }; v = zip(v, u).map { $0 - d * $1 } }
        let norm = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
        if norm > 1e-6 { q.append(v.map { $0 / norm }) }
    }
    return Matrix(rows: n, cols: n, data: q.flatMap { $0.map(Float.init) })
}
