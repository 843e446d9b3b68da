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
        if rows <= 4 { return kernel4(kc, a, b, c, ldc, rows, cols, accumulate, bias) }
        if rows <= 8 { return kernel8(kc, a, b, c, ldc, rows, cols, accumulate, bias) }
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
        if rows > 0 { storeRow(c00, c01, c + 0 * ldc, cols, accumulate, bias) }
        if rows > 1 { storeRow(c10, c11, c + 1 * ldc, cols, accumulate, bias) }
        if rows > 2 { storeRow(c20, c21, c + 2 * ldc, cols, accumulate, bias) }
        if rows > 3 { storeRow(c30, c31, c + 3 * ldc, cols, accumulate, bias) }
        if rows > 4 { storeRow(c40, c41, c + 4 * ldc, cols, accumulate, bias) }
        if rows > 5 { storeRow(c50, c51, c + 5 * ldc, cols, accumulate, bias) }
        if rows > 6 { storeRow(c60, c61, c + 6 * ldc, cols, accumulate, bias) }
        if rows > 7 { storeRow(c70, c71, c + 7 * ldc, cols, accumulate, bias) }
        if rows > 8 { storeRow(c80, c81, c + 8 * ldc, cols, accumulate, bias) }
        if rows > 9 { storeRow(c90, c91, c + 9 * ldc, cols, accumulate, bias) }
        if rows > 10 { storeRow(c100, c101, c + 10 * ldc, cols, accumulate, bias) }
        if rows > 11 { storeRow(c110, c111, c + 11 * ldc, cols, accumulate, bias) }
    }

    /// `kernel` for a tile of at most 8 rows (the last tile of 128-row chunks and of 512-token
    /// windows): the same packed layouts and fused multiply-adds per row, so the same bits.
    static func kernel8(_ kc: Int, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
                        _ c: UnsafeMutablePointer<Float>, _ ldc: Int, _ rows: Int, _ cols: Int,
                        _ accumulate: Bool, _ bias: UnsafePointer<Float>?) {
        typealias V = SIMD16<Float>
        var c00 = V(), c01 = V(), c10 = V(), c11 = V(), c20 = V(), c21 = V(), c30 = V(), c31 = V()
        var c40 = V(), c41 = V(), c50 = V(), c51 = V(), c60 = V(), c61 = V(), c70 = V(), c71 = V()
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
            pa += 12; pb += 128
        }
        if rows > 0 { storeRow(c00, c01, c + 0 * ldc, cols, accumulate, bias) }
        if rows > 1 { storeRow(c10, c11, c + 1 * ldc, cols, accumulate, bias) }
        if rows > 2 { storeRow(c20, c21, c + 2 * ldc, cols, accumulate, bias) }
        if rows > 3 { storeRow(c30, c31, c + 3 * ldc, cols, accumulate, bias) }
        if rows > 4 { storeRow(c40, c41, c + 4 * ldc, cols, accumulate, bias) }
        if rows > 5 { storeRow(c50, c51, c + 5 * ldc, cols, accumulate, bias) }
        if rows > 6 { storeRow(c60, c61, c + 6 * ldc, cols, accumulate, bias) }
        if rows > 7 { storeRow(c70, c71, c + 7 * ldc, cols, accumulate, bias) }
    }

    /// `kernel` for a tile of at most 4 rows (a ragged last tile, such as the last 4 of attention's
    /// 64-row query tiles): the same packed layouts and the same fused multiply-adds per row, in a
    /// third of the work, so the same bits.
    static func kernel4(_ kc: Int, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
                        _ c: UnsafeMutablePointer<Float>, _ ldc: Int, _ rows: Int, _ cols: Int,
                        _ accumulate: Bool, _ bias: UnsafePointer<Float>?) {
        typealias V = SIMD16<Float>
        var c00 = V(), c01 = V(), c10 = V(), c11 = V(), c20 = V(), c21 = V(), c30 = V(), c31 = V()
        var pa = a, pb = UnsafeRawPointer(b)
        for _ in 0..<kc {
            let b0 = pb.load(as: V.self), b1 = pb.load(fromByteOffset: 64, as: V.self)
            var x: V
            x = V(repeating: pa[0]); c00.addProduct(x, b0); c01.addProduct(x, b1)
            x = V(repeating: pa[1]); c10.addProduct(x, b0); c11.addProduct(x, b1)
            x = V(repeating: pa[2]); c20.addProduct(x, b0); c21.addProduct(x, b1)
            x = V(repeating: pa[3]); c30.addProduct(x, b0); c31.addProduct(x, b1)
            pa += 12; pb += 128
        }
        if rows > 0 { storeRow(c00, c01, c + 0 * ldc, cols, accumulate, bias) }
        if rows > 1 { storeRow(c10, c11, c + 1 * ldc, cols, accumulate, bias) }
        if rows > 2 { storeRow(c20, c21, c + 2 * ldc, cols, accumulate, bias) }
        if rows > 3 { storeRow(c30, c31, c + 3 * ldc, cols, accumulate, bias) }
    }

    /// Writes one 32-wide tile row (`cols` ≤ 32 valid): `(accumulate ? p : 0) + v (+ bias)`.
    @inline(__always)
    static func storeRow(_ v0: SIMD16<Float>, _ v1: SIMD16<Float>, _ p: UnsafeMutablePointer<Float>, _ cols: Int,
                         _ accumulate: Bool, _ bias: UnsafePointer<Float>?) {
        typealias V = SIMD16<Float>
        if cols == 32 {
            let r = UnsafeMutableRawPointer(p)
            var a = v0, b = v1
            if accumulate { a += r.loadUnaligned(as: V.self); b += r.loadUnaligned(fromByteOffset: 64, as: V.self) }
            if let bias {
                a += UnsafeRawPointer(bias).loadUnaligned(as: V.self)
                b += UnsafeRawPointer(bias).loadUnaligned(fromByteOffset: 64, as: V.self)
            }
            r.storeBytes(of: a, as: V.self); (r + 64).storeBytes(of: b, as: V.self)
        } else {
            for j in 0..<cols {
                var e = j < 16 ? v0[j] : v1[j - 16]
                if accumulate { e += p[j] }
                if let bias { e += bias[j] }
                p[j] = e
            }
        }
    }
}
#endif
