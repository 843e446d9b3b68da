// AVX-512 (+VNNI) kernels, compiled with -target-cpu cascadelake. Only call them when
// KernelDispatch reports `.vnni` (AVX-512 F/BW/DQ/VL + VNNI present and enabled by the OS).
#if arch(x86_64)

public enum AVX512F32 {
    public static let mr = 12, nr = 32

    /// Register-blocked micro-kernel: a 12×32 tile of `C (+)= A·B` (24 zmm accumulators).
    /// Layouts as `AVX2F32.kernel`: `a` = `kc` steps of 12 floats, `b` = `kc` steps of 32 floats.
    public static func kernel(_ kc: Int, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
                              _ c: UnsafeMutablePointer<Float>, _ ldc: Int, _ rows: Int, _ cols: Int,
                              _ accumulate: Bool, _ bias: UnsafePointer<Float>?) {
        typealias V = SIMD16<Float>
        var c00 = V(), c01 = V(), c10 = V(), c11 = V(), c20 = V(), c21 = V(), c30 = V(), c31 = V(), c40 = V(), c41 = V(), c50 = V(), c51 = V(), c60 = V(), c61 = V(), c70 = V(), c71 = V(), c80 = V(), c81 = V(), c90 = V(), c91 = V(), c100 = V(), c101 = V(), c110 = V(), c111 = V()
        var pa = a, pb = UnsafeRawPointer(b)
        for _ in 0..<kc {
            let b0 = pb.load(as: V.self), b1 = pb.load(fromByteOffset: 64, as: V.self)
            var x: V
            x = V(repeating: pa[0]); c00.addProduct(x, b0); c01.addProduct(x, b1)
            x = V(repeating: pa[1]); c10.addProduct(x, b0); c11.addProduct(x, b1)
            x = V(repeating: pa[2]); c20.addProduct(x, b0); c21.addProduct(x, b1)
            x = V(repeating: pa[3]); c30.addProduct(x, b0); c31.addProduct(x, b1)
            x = V(repeating: pa[4]); c40.addProduct(x, b0); c41.addProduct(x, b1)
            x = V(repeating: pa[5]); c50.addProduct(x, b0); c51.addProduct(x, b1)
            x = V(repeating: pa[6]); c60.addProduct(x, b0); c61.addProduct(x, b1)
            x = V(repeating: pa[7]); c70.addProduct(x, b0); c71.addProduct(x, b1)
            x = V(repeating: pa[8]); c80.addProduct(x, b0); c81.addProduct(x, b1)
            x = V(repeating: pa[9]); c90.addProduct(x, b0); c91.addProduct(x, b1)
            x = V(repeating: pa[10]); c100.addProduct(x, b0); c101.addProduct(x, b1)
            x = V(repeating: pa[11]); c110.addProduct(x, b0); c111.addProduct(x, b1)
            pa += 12; pb += 128
        }
        withUnsafeTemporaryAllocation(of: V.self, capacity: 24) { t in
            t[0] = c00; t[1] = c01
            t[2] = c10; t[3] = c11
            t[4] = c20; t[5] = c21
            t[6] = c30; t[7] = c31
            t[8] = c40; t[9] = c41
            t[10] = c50; t[11] = c51
            t[12] = c60; t[13] = c61
            t[14] = c70; t[15] = c71
            t[16] = c80; t[17] = c81
            t[18] = c90; t[19] = c91
            t[20] = c100; t[21] = c101
            t[22] = c110; t[23] = c111
            for i in 0..<rows {
                let p = c + i * ldc
                if cols == 32 {
                    let r = UnsafeMutableRawPointer(p)
                    var v0 = t[2 * i], v1 = t[2 * i + 1]
                    if accumulate { v0 += r.loadUnaligned(as: V.self); v1 += r.loadUnaligned(fromByteOffset: 64, as: V.self) }
                    if let bias {
                        v0 += UnsafeRawPointer(bias).loadUnaligned(as: V.self)
                        v1 += UnsafeRawPointer(bias).loadUnaligned(fromByteOffset: 64, as: V.self)
                    }
                    r.storeBytes(of: v0, as: V.self); (r + 64).storeBytes(of: v1, as: V.self)
                } else {
                    for j in 0..<cols {
                        var v = t[2 * i + j / 16][j % 16]
                        if accumulate { v += p[j] }
                        if let bias { v += bias[j] }
                        p[j] = v
                    }
                }
            }
        }
    }
}
#endif
