#if arch(x86_64)
import QuantKernelsAVX2
import QuantKernelsAVX512
#endif

extension Gemm {
    /// `Y = X·Wᵀ` like `multiplyStrided`, on micro-kernels without fused multiply-add: with
    /// `k ≤ 256` (one reduction slab) every output is `((0 + x₀w₀) + x₁w₁) + …` rounded step by
    /// step in index order — the sum a plain scalar loop `y += x·w` computes, bit for bit. For
    /// algorithms whose discrete decisions (an argmax, a kept-step count) must not move when the
    /// loop becomes a GEMM (DuQuant's greedy rotation).
    public static func multiplyStridedUnfused(_ x: UnsafePointer<Float>, lda: Int, _ w: UnsafePointer<Float>,
                                              into y: UnsafeMutablePointer<Float>, ldy: Int, m: Int, n: Int, k: Int,
                                              threads: Int? = nil) {
        guard m > 0, n > 0 else { return }
        if k == 0 { for i in 0..<m { for j in 0..<n { y[i * ldy + j] = 0 } }; return }
        let t = 2 * m * n * k < 1 << 18 ? 1 : (threads ?? Parallel.threadCount)
        var spec = F32Spec.for(KernelDispatch.active)
        #if arch(x86_64)
        switch KernelDispatch.active {
        case .vnni: spec.kernel = AVX512F32Unfused.kernel
        case .avx2: spec.kernel = AVX2F32Unfused.kernel
        case .portable: break   // the portable kernel multiplies, then adds
        }
        #endif
        packed(x, lda: lda, w, y, ldy: ldy, m: m, n: n, k: k, bias: nil, threads: t, spec: spec)
    }
}

extension Reference {
    /// `Y = X·Wᵀ` as the plain loop `y += x·w` in f32, index order (what
    /// `Gemm.multiplyStridedUnfused` must equal bit for bit when k ≤ 256).
    public static func gemmUnfused(_ x: [Float], _ w: [Float], m: Int, n: Int, k: Int) -> [Float] {
        var y = [Float](repeating: 0, count: m * n)
        for i in 0..<m { for j in 0..<n {
            var s: Float = 0
            for p in 0..<k { s = s + x[i * k + p] * w[j * k + p] }
            y[i * n + j] = s
        } }
        return y
    }
}
