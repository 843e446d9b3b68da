import QuantKernels

/// The Hadamard quantizer's transform: `x ← x·H` with `H = I ⊗ H_g`, `H_g` the normalized
/// Sylvester Hadamard matrix of size g (a power of two; no random signs). `H_g` is symmetric and
/// orthonormal, so `H⁻¹ = H` and the same call undoes it. g = 1 is the identity (plain LSQ).
/// Runs on the kernels' Hadamard (`HadamardTransform`, a fast Walsh–Hadamard transform per block),
/// rows are independent: same bits on any thread count.
public struct BlockHadamard: Sendable {
    public let blockSize: Int
    let transform: HadamardTransform?

    /// Block sizes the paper searches (`dynamic`): 1, 2, 4, …, 1024.
    public static let searchSizes = (0...10).map { 1 << $0 }

    public init(blockSize g: Int) throws {
        precondition(g >= 1 && g & (g - 1) == 0, "block size must be a power of two")
        blockSize = g
        transform = g == 1 ? nil : try HadamardTransform(size: g)
    }

    /// Applies `H` to every row of x (rows × cols, row-major; g must divide cols) in place.
    public func apply(_ x: inout [Float], cols: Int, threads: Int? = nil) {
        precondition(cols % blockSize == 0, "block size \(blockSize) does not divide \(cols)")
        guard let transform, !x.isEmpty else { return }
        let blocks = x.count / blockSize
        x.withUnsafeMutableBufferPointer { transform.apply($0.baseAddress!, rows: blocks, threads: threads) }
    }

    /// `dynamic`: the block size g (a power of two ≤ 1024 dividing `cols`, 1 included) with the smallest
    /// `‖X̂ − X‖·‖Ŵ − W‖`, where X̂ = Q(X·H)·H⁻¹ with an LSQ-initialised per-tensor `bits` grid (as the
    /// paper's first-step search). H is orthonormal, so `‖X̂ − X‖ = ‖Q(X·H) − X·H‖`, computed in f64.
    /// Ties keep the smaller g. Returns the chosen g and every candidate's error product.
    public static func search(x: [Float], w: [Float], cols: Int, bits: Int = 4) throws -> (blockSize: Int, errors: [(Int, Double)]) {
        var best: (Int, Double)?
        var all: [(Int, Double)] = []
        for g in searchSizes where cols % g == 0 {
            let h = try BlockHadamard(blockSize: g)
            var xh = x, wh = w
            h.apply(&xh, cols: cols); h.apply(&wh, cols: cols)
            let e = quantizationError(xh, bits: bits) * quantizationError(wh, bits: bits)
            all.append((g, e))
            if best == nil || e < best!.1 { best = (g, e) }
        }
        return (best?.0 ?? 1, all)
    }

    /// `‖Q(v) − v‖` for the LSQ-initialised per-tensor grid, in f64.
    static func quantizationError(_ v: [Float], bits: Int) -> Double {
        let step = PerTensor.lsqInitialStep(v, bits: bits)
        let q = PerTensor.quantize(v, rows: 1, cols: v.count, step: step, bits: bits)
        var s = 0.0
        for i in 0..<v.count { let d = Double(q.codes[i]) * Double(step) - Double(v[i]); s += d * d }
        return s.squareRoot()
    }
}
