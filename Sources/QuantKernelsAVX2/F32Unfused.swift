// AVX2 f32 micro-kernel without fused multiply-add (compiled with -target-cpu haswell; only call
// it when KernelDispatch says so).
#if arch(x86_64)

public enum AVX2F32Unfused {
    public static let mr = AVX2F32.mr, nr = AVX2F32.nr

    /// `AVX2F32.kernel` with every step a rounded multiply, then a rounded add (`c = c + a·b`,
    /// p in order): the sums of a plain scalar loop `y += x·r`, bit for bit.
    public static func kernel(_ kc: Int, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
                              _ c: UnsafeMutablePointer<Float>, _ ldc: Int, _ rows: Int, _ cols: Int,
                              _ accumulate: Bool, _ bias: UnsafePointer<Float>?) {
        typealias V = SIMD8<Float>
        var c00 = V(), c01 = V(), c10 = V(), c11 = V(), c20 = V(), c21 = V()
        var c30 = V(), c31 = V(), c40 = V(), c41 = V(), c50 = V(), c51 = V()
        var pa = a, pb = UnsafeRawPointer(b)
        for _ in 0..<kc {
            let b0 = pb.load(as: V.self), b1 = pb.load(fromByteOffset: 32, as: V.self)
            var x = V(repeating: pa[0]); c00 = c00 + x * b0; c01 = c01 + x * b1
            x = V(repeating: pa[1]); c10 = c10 + x * b0; c11 = c11 + x * b1
            x = V(repeating: pa[2]); c20 = c20 + x * b0; c21 = c21 + x * b1
            x = V(repeating: pa[3]); c30 = c30 + x * b0; c31 = c31 + x * b1
            x = V(repeating: pa[4]); c40 = c40 + x * b0; c41 = c41 + x * b1
            x = V(repeating: pa[5]); c50 = c50 + x * b0; c51 = c51 + x * b1
            pa += 6; pb += 64
        }
        withUnsafeTemporaryAllocation(of: V.self, capacity: 12) { t in
            t[0] = c00; t[1] = c01; t[2] = c10; t[3] = c11; t[4] = c20; t[5] = c21
            t[6] = c30; t[7] = c31; t[8] = c40; t[9] = c41; t[10] = c50; t[11] = c51
            AVX2F32.store(UnsafePointer(t.baseAddress!), c, ldc, rows, cols, accumulate, bias)
        }
    }
}
#endif
