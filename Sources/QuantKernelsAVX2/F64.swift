// AVX2 + FMA f64 micro-kernel for `Gemm64` (compiled with -target-cpu haswell; only call it when
// KernelDispatch says so).
#if arch(x86_64)

public enum AVX2F64 {
    public static let mr = 4, nr = 12

    /// A 4×12 tile of `C += alpha·(A·B)` (12 ymm accumulators): `a` = `kc` steps of 4 doubles,
    /// `b` = `kc` steps of 12 doubles (32-byte aligned); only `rows × cols` of C are written.
    public static func kernel(_ kc: Int, _ a: UnsafePointer<Double>, _ b: UnsafePointer<Double>,
                              _ c: UnsafeMutablePointer<Double>, _ ldc: Int, _ rows: Int, _ cols: Int, _ alpha: Double) {
        typealias V = SIMD4<Double>
        var c00 = V(), c01 = V(), c02 = V(), c10 = V(), c11 = V(), c12 = V()
        var c20 = V(), c21 = V(), c22 = V(), c30 = V(), c31 = V(), c32 = V()
        var pa = a, pb = UnsafeRawPointer(b)
        for _ in 0..<kc {
            let b0 = pb.load(as: V.self), b1 = pb.load(fromByteOffset: 32, as: V.self), b2 = pb.load(fromByteOffset: 64, as: V.self)
            var x: V
            x = V(repeating: pa[0]); c00.addProduct(x, b0); c01.addProduct(x, b1); c02.addProduct(x, b2)
            x = V(repeating: pa[1]); c10.addProduct(x, b0); c11.addProduct(x, b1); c12.addProduct(x, b2)
            x = V(repeating: pa[2]); c20.addProduct(x, b0); c21.addProduct(x, b1); c22.addProduct(x, b2)
            x = V(repeating: pa[3]); c30.addProduct(x, b0); c31.addProduct(x, b1); c32.addProduct(x, b2)
            pa += 4; pb += 96
        }
        if rows > 0 { store(c00, c01, c02, c, cols, alpha) }
        if rows > 1 { store(c10, c11, c12, c + ldc, cols, alpha) }
        if rows > 2 { store(c20, c21, c22, c + 2 * ldc, cols, alpha) }
        if rows > 3 { store(c30, c31, c32, c + 3 * ldc, cols, alpha) }
    }

    /// `kernel` with every step a rounded multiply, then a rounded add (`c = c + a·b`, p in
    /// order): the sums of a plain scalar loop `y += x·r`, bit for bit.
    public static func kernelUnfused(_ kc: Int, _ a: UnsafePointer<Double>, _ b: UnsafePointer<Double>,
                              _ c: UnsafeMutablePointer<Double>, _ ldc: Int, _ rows: Int, _ cols: Int, _ alpha: Double) {
        typealias V = SIMD4<Double>
        var c00 = V(), c01 = V(), c02 = V(), c10 = V(), c11 = V(), c12 = V()
        var c20 = V(), c21 = V(), c22 = V(), c30 = V(), c31 = V(), c32 = V()
        var pa = a, pb = UnsafeRawPointer(b)
        for _ in 0..<kc {
            let b0 = pb.load(as: V.self), b1 = pb.load(fromByteOffset: 32, as: V.self), b2 = pb.load(fromByteOffset: 64, as: V.self)
            var x: V
            x = V(repeating: pa[0]); c00 = c00 + x * b0; c01 = c01 + x * b1; c02 = c02 + x * b2
            x = V(repeating: pa[1]); c10 = c10 + x * b0; c11 = c11 + x * b1; c12 = c12 + x * b2
            x = V(repeating: pa[2]); c20 = c20 + x * b0; c21 = c21 + x * b1; c22 = c22 + x * b2
            x = V(repeating: pa[3]); c30 = c30 + x * b0; c31 = c31 + x * b1; c32 = c32 + x * b2
            pa += 4; pb += 96
        }
        if rows > 0 { store(c00, c01, c02, c, cols, alpha) }
        if rows > 1 { store(c10, c11, c12, c + ldc, cols, alpha) }
        if rows > 2 { store(c20, c21, c22, c + 2 * ldc, cols, alpha) }
        if rows > 3 { store(c30, c31, c32, c + 3 * ldc, cols, alpha) }
    }

    /// `p[j] = p[j] + alpha·v[j]` for the `cols` ≤ 12 valid columns (multiply, then add).
    @inline(__always)
    static func store(_ v0: SIMD4<Double>, _ v1: SIMD4<Double>, _ v2: SIMD4<Double>, _ p: UnsafeMutablePointer<Double>,
                      _ cols: Int, _ alpha: Double) {
        typealias V = SIMD4<Double>
        let al = V(repeating: alpha)
        if cols == 12 {
            let r = UnsafeMutableRawPointer(p)
            let s0 = r.loadUnaligned(as: V.self) + al * v0
            let s1 = r.loadUnaligned(fromByteOffset: 32, as: V.self) + al * v1
            let s2 = r.loadUnaligned(fromByteOffset: 64, as: V.self) + al * v2
            r.storeBytes(of: s0, as: V.self); r.storeBytes(of: s1, toByteOffset: 32, as: V.self)
            r.storeBytes(of: s2, toByteOffset: 64, as: V.self)
        } else {
            for j in 0..<cols {
                let e = j < 4 ? v0[j] : j < 8 ? v1[j - 4] : v2[j - 8]
                p[j] = p[j] + alpha * e
            }
        }
    }
}
#endif
