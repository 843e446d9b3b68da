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

    /// Small-M path without packing (GEMV): `y[i·ldy + j] = x_i · w_j` for `m` rows of x (stride
    /// `k`) and `rows` rows of W from `w` (stride `k`). One W row at a time, for every x row while
    /// it is in L1: a single memory stream, which the hardware prefetcher keeps up with (four
    /// interleaved rows ran at half the read bandwidth). Fixed order per dot: four 16-lane
    /// accumulators over 64-value steps, then 16-value steps into the first, then the scalar tail.
    public static func rowDots(_ x: UnsafePointer<Float>, _ m: Int, _ w: UnsafePointer<Float>, _ k: Int, rows: Int,
                               _ y: UnsafeMutablePointer<Float>, _ ldy: Int) {
        typealias V = SIMD16<Float>
        for j in 0..<rows {
            let wr = w + j * k
            for i in 0..<m {
                let xr = x + i * k
                var a0 = V(), a1 = V(), a2 = V(), a3 = V()
                var p = 0
                while p + 64 <= k {
                    a0 += UnsafeRawPointer(xr + p).loadUnaligned(as: V.self) * UnsafeRawPointer(wr + p).loadUnaligned(as: V.self)
                    a1 += UnsafeRawPointer(xr + p + 16).loadUnaligned(as: V.self) * UnsafeRawPointer(wr + p + 16).loadUnaligned(as: V.self)
                    a2 += UnsafeRawPointer(xr + p + 32).loadUnaligned(as: V.self) * UnsafeRawPointer(wr + p + 32).loadUnaligned(as: V.self)
                    a3 += UnsafeRawPointer(xr + p + 48).loadUnaligned(as: V.self) * UnsafeRawPointer(wr + p + 48).loadUnaligned(as: V.self)
                    p += 64
                }
                while p + 16 <= k {
                    a0 += UnsafeRawPointer(xr + p).loadUnaligned(as: V.self) * UnsafeRawPointer(wr + p).loadUnaligned(as: V.self)
                    p += 16
                }
                var s = ((a0 + a1) + (a2 + a3)).sum()
                while p < k { s += xr[p] * wr[p]; p += 1 }
                y[i * ldy + j] = s
            }
        }
    }
}
#endif
