// AVX-512 f32 micro-kernel without fused multiply-add (compiled with -target-cpu cascadelake;
// only call it when KernelDispatch reports `.vnni`).
#if arch(x86_64)

public enum AVX512F32Unfused {
    public static let mr = AVX512F32.mr, nr = AVX512F32.nr

    /// `AVX512F32.kernel` with every step a rounded multiply, then a rounded add
    /// (`c = c + a·b`, p in order): the sums of a plain scalar loop `y += x·r`, bit for bit.
    public static func kernel(_ kc: Int, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
                              _ c: UnsafeMutablePointer<Float>, _ ldc: Int, _ rows: Int, _ cols: Int,
                              _ accumulate: Bool, _ bias: UnsafePointer<Float>?) {
        typealias V = SIMD16<Float>
        var c00 = V(), c01 = V(), c10 = V(), c11 = V(), c20 = V(), c21 = V(), c30 = V(), c31 = V(), c40 = V(), c41 = V(), c50 = V(), c51 = V(), c60 = V(), c61 = V(), c70 = V(), c71 = V(), c80 = V(), c81 = V(), c90 = V(), c91 = V(), c100 = V(), c101 = V(), c110 = V(), c111 = V()
        var pa = a, pb = UnsafeRawPointer(b)
        for _ in 0..<kc {
            let b0 = pb.load(as: V.self), b1 = pb.load(fromByteOffset: 64, as: V.self)
            var x: V
            x = V(repeating: pa[0]); c00 = c00 + x * b0; c01 = c01 + x * b1
            x = V(repeating: pa[1]); c10 = c10 + x * b0; c11 = c11 + x * b1
            x = V(repeating: pa[2]); c20 = c20 + x * b0; c21 = c21 + x * b1
            x = V(repeating: pa[3]); c30 = c30 + x * b0; c31 = c31 + x * b1
            x = V(repeating: pa[4]); c40 = c40 + x * b0; c41 = c41 + x * b1
            x = V(repeating: pa[5]); c50 = c50 + x * b0; c51 = c51 + x * b1
            x = V(repeating: pa[6]); c60 = c60 + x * b0; c61 = c61 + x * b1
            x = V(repeating: pa[7]); c70 = c70 + x * b0; c71 = c71 + x * b1
            x = V(repeating: pa[8]); c80 = c80 + x * b0; c81 = c81 + x * b1
            x = V(repeating: pa[9]); c90 = c90 + x * b0; c91 = c91 + x * b1
            x = V(repeating: pa[10]); c100 = c100 + x * b0; c101 = c101 + x * b1
            x = V(repeating: pa[11]); c110 = c110 + x * b0; c111 = c111 + x * b1
            pa += 12; pb += 128
        }
        if rows > 0 { AVX512F32.storeRow(c00, c01, c + 0 * ldc, cols, accumulate, bias) }
        if rows > 1 { AVX512F32.storeRow(c10, c11, c + 1 * ldc, cols, accumulate, bias) }
        if rows > 2 { AVX512F32.storeRow(c20, c21, c + 2 * ldc, cols, accumulate, bias) }
        if rows > 3 { AVX512F32.storeRow(c30, c31, c + 3 * ldc, cols, accumulate, bias) }
        if rows > 4 { AVX512F32.storeRow(c40, c41, c + 4 * ldc, cols, accumulate, bias) }
        if rows > 5 { AVX512F32.storeRow(c50, c51, c + 5 * ldc, cols, accumulate, bias) }
        if rows > 6 { AVX512F32.storeRow(c60, c61, c + 6 * ldc, cols, accumulate, bias) }
        if rows > 7 { AVX512F32.storeRow(c70, c71, c + 7 * ldc, cols, accumulate, bias) }
        if rows > 8 { AVX512F32.storeRow(c80, c81, c + 8 * ldc, cols, accumulate, bias) }
        if rows > 9 { AVX512F32.storeRow(c90, c91, c + 9 * ldc, cols, accumulate, bias) }
        if rows > 10 { AVX512F32.storeRow(c100, c101, c + 10 * ldc, cols, accumulate, bias) }
        if rows > 11 { AVX512F32.storeRow(c110, c111, c + 11 * ldc, cols, accumulate, bias) }
    }
}
#endif
