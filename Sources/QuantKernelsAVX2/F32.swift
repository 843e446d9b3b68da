// AVX2 + FMA f32 kernels (compiled with -target-cpu haswell; only call when KernelDispatch says so).
#if arch(x86_64)

public enum AVX2F32 {
    public static let mr = 6, nr = 16

    /// Register-blocked micro-kernel: a 6×16 tile of `C (+)= A·B`.
    ///
    /// `a`: packed A, `kc` steps of 6 floats (rows of the tile); `b`: packed B, `kc` steps of 16
    /// floats (columns). `c` is row-major with stride `ldc`; only `rows × cols` are written.
    /// `accumulate`: add to C instead of overwriting. `bias` (16 floats) is added last when given.
    public static func kernel(_ kc: Int, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
                              _ c: UnsafeMutablePointer<Float>, _ ldc: Int, _ rows: Int, _ cols: Int,
                              _ accumulate: Bool, _ bias: UnsafePointer<Float>?) {
        typealias V = SIMD8<Float>
        var c00 = V(), c01 = V(), c10 = V(), c11 = V(), c20 = V(), c21 = V()
        var c30 = V(), c31 = V(), c40 = V(), c41 = V(), c50 = V(), c51 = V()
        var pa = a, pb = UnsafeRawPointer(b)
        for _ in 0..<kc {
            let b0 = pb.load(as: V.self), b1 = pb.load(fromByteOffset: 32, as: V.self)
            var x = V(repeating: pa[0]); c00.addProduct(x, b0); c01.addProduct(x, b1)
            x = V(repeating: pa[1]); c10.addProduct(x, b0); c11.addProduct(x, b1)
            x = V(repeating: pa[2]); c20.addProduct(x, b0); c21.addProduct(x, b1)
            x = V(repeating: pa[3]); c30.addProduct(x, b0); c31.addProduct(x, b1)
            x = V(repeating: pa[4]); c40.addProduct(x, b0); c41.addProduct(x, b1)
            x = V(repeating: pa[5]); c50.addProduct(x, b0); c51.addProduct(x, b1)
            pa += 6; pb += 64
        }
        withUnsafeTemporaryAllocation(of: V.self, capacity: 12) { t in
            t[0] = c00; t[1] = c01; t[2] = c10; t[3] = c11; t[4] = c20; t[5] = c21
            t[6] = c30; t[7] = c31; t[8] = c40; t[9] = c41; t[10] = c50; t[11] = c51
            store(UnsafePointer(t.baseAddress!), c, ldc, rows, cols, accumulate, bias)
        }
    }

    @inline(__always)
    static func store(_ t: UnsafePointer<SIMD8<Float>>, _ c: UnsafeMutablePointer<Float>, _ ldc: Int, _ rows: Int, _ cols: Int,
                      _ accumulate: Bool, _ bias: UnsafePointer<Float>?) {
        if cols == 16 {
            for i in 0..<rows {
                let p = UnsafeMutableRawPointer(c + i * ldc)
                var v0 = t[2 * i], v1 = t[2 * i + 1]
                if accumulate {
                    v0 += p.loadUnaligned(as: SIMD8<Float>.self)
                    v1 += p.loadUnaligned(fromByteOffset: 32, as: SIMD8<Float>.self)
                }
                if let bias {
                    v0 += UnsafeRawPointer(bias).loadUnaligned(as: SIMD8<Float>.self)
                    v1 += UnsafeRawPointer(bias).loadUnaligned(fromByteOffset: 32, as: SIMD8<Float>.self)
                }
                p.storeBytes(of: v0, as: SIMD8<Float>.self)
                (p + 32).storeBytes(of: v1, as: SIMD8<Float>.self)
            }
        } else {
            for i in 0..<rows {
                let p = c + i * ldc
                for j in 0..<cols {
                    var v = t[2 * i + j / 8][j % 8]
                    if accumulate { v += p[j] }
                    if let bias { v += bias[j] }
                    p[j] = v
                }
            }
        }
    }

    /// Small-M path without packing: `y[i, j] = x_i · w_j` for `m` rows of x (stride `k`) and 4 rows
    /// of W starting at `w` (stride `k`); writes `y[i·ldy + 0..<4]`. Fixed 2×8-lane order per dot.
    public static func dots4(_ x: UnsafePointer<Float>, _ m: Int, _ w: UnsafePointer<Float>, _ k: Int,
                             _ y: UnsafeMutablePointer<Float>, _ ldy: Int) {
        typealias V = SIMD8<Float>
        let w0 = UnsafeRawPointer(w), w1 = UnsafeRawPointer(w + k), w2 = UnsafeRawPointer(w + 2 * k), w3 = UnsafeRawPointer(w + 3 * k)
        for i in 0..<m {
            let xr = UnsafeRawPointer(x + i * k)
            var a0 = V(), a1 = V(), a2 = V(), a3 = V(), b0 = V(), b1 = V(), b2 = V(), b3 = V()
            var p = 0
            while p + 16 <= k {
                let o = p * 4
                let x0 = xr.loadUnaligned(fromByteOffset: o, as: V.self), x1 = xr.loadUnaligned(fromByteOffset: o + 32, as: V.self)
                a0.addProduct(x0, w0.loadUnaligned(fromByteOffset: o, as: V.self)); b0.addProduct(x1, w0.loadUnaligned(fromByteOffset: o + 32, as: V.self))
                a1.addProduct(x0, w1.loadUnaligned(fromByteOffset: o, as: V.self)); b1.addProduct(x1, w1.loadUnaligned(fromByteOffset: o + 32, as: V.self))
                a2.addProduct(x0, w2.loadUnaligned(fromByteOffset: o, as: V.self)); b2.addProduct(x1, w2.loadUnaligned(fromByteOffset: o + 32, as: V.self))
                a3.addProduct(x0, w3.loadUnaligned(fromByteOffset: o, as: V.self)); b3.addProduct(x1, w3.loadUnaligned(fromByteOffset: o + 32, as: V.self))
                p += 16
            }
            var s0 = (a0 + b0).sum(), s1 = (a1 + b1).sum(), s2 = (a2 + b2).sum(), s3 = (a3 + b3).sum()
            let xs = x + i * k
            while p < k {
                s0 += xs[p] * w[p]; s1 += xs[p] * w[k + p]; s2 += xs[p] * w[2 * k + p]; s3 += xs[p] * w[3 * k + p]
                p += 1
            }
            y[i * ldy] = s0; y[i * ldy + 1] = s1; y[i * ldy + 2] = s2; y[i * ldy + 3] = s3
        }
    }
}
#endif
