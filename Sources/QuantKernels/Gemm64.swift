#if arch(x86_64)
import QuantKernelsAVX2
import QuantKernelsAVX512
#endif

/// Dense f64 matrix products for the quantizers' own linear algebra (GPTQ's blocked Cholesky,
/// triangular inverse and lazy batch updates; DuQuant's rotation products), all row-major:
///
///     C (m × n, row stride ldc)  +=  alpha · A · op(B)
///
/// with A m × k (row stride lda) and op(B) = B (k × n, `.kByN`) or Bᵀ (B n × k, `.nByK`).
///
/// BLIS-style like `Gemm`: B packed into k_c × n_r column panels, A into m_r × k_c row panels, a
/// register-blocked micro-kernel (AVX-512: 8×24, AVX2: 4×12, portable: 4×8) sums a tile over one
/// k_c = 128 slab and adds `alpha·tile` to C. Every element of C is the same sequence of
/// operations whatever the thread count (threads own fixed column or row ranges).
public enum Gemm64 {
    /// How B is stored.
    public enum BLayout: Sendable {
        /// B is k × n (row stride ldb): `C += alpha·A·B`.
        case kByN
        /// B is n × k (row stride ldb): `C += alpha·A·Bᵀ`.
        case nByK
    }

    /// Slab depth: a packed 24-wide B panel (24 KB) stays in L1.
    static let kc = 128
    static let mc = 96
    static let nc = 768

    typealias MicroKernel = (Int, UnsafePointer<Double>, UnsafePointer<Double>, UnsafeMutablePointer<Double>, Int, Int, Int, Double) -> Void

    struct Spec {
        var mr: Int, nr: Int
        var kernel: MicroKernel

        static func `for`(_ path: KernelPath, fused: Bool = true) -> Spec {
            #if arch(x86_64)
            switch path {
            case .vnni: return Spec(mr: AVX512F64.mr, nr: AVX512F64.nr, kernel: fused ? AVX512F64.kernel : AVX512F64.kernelUnfused)
            case .avx2: return Spec(mr: AVX2F64.mr, nr: AVX2F64.nr, kernel: fused ? AVX2F64.kernel : AVX2F64.kernelUnfused)
            case .portable: break
            }
            #endif
            return Spec(mr: 4, nr: 8, kernel: portableKernel)
        }
    }

    /// `C += alpha·A·op(B)`; see the type's documentation for the layouts. `fused: false` runs
    /// micro-kernels without fused multiply-add: with `k ≤ 128` (one slab), C = 0 and alpha = 1,
    /// every element is then the plain loop `c += a·b` in index order, bit for bit.
    public static func multiplyAdd(_ a: UnsafePointer<Double>, lda: Int, _ b: UnsafePointer<Double>, ldb: Int, _ layout: BLayout,
                                   into c: UnsafeMutablePointer<Double>, ldc: Int, m: Int, n: Int, k: Int,
                                   alpha: Double = 1, fused: Bool = true, threads: Int? = nil) {
        guard m > 0, n > 0, k > 0 else { return }
        let s = Spec.for(KernelDispatch.active, fused: fused)
        let t = 2 * m * n * k < 1 << 20 ? 1 : max(1, threads ?? Parallel.threadCount)
        let panelsN = (n + s.nr - 1) / s.nr, panelsM = (m + s.mr - 1) / s.mr
        let splitN = panelsN >= t || panelsN >= panelsM
        let tasks = max(1, min(t, splitN ? panelsN : panelsM))
        let box = UncheckedBox((a, b, c))
        Parallel.forEach(tasks, threads: tasks) { task in
            let (a, b, c) = box.value
            if splitN {
                let j0 = task * panelsN / tasks * s.nr, j1 = min(n, (task + 1) * panelsN / tasks * s.nr)
                block(a, lda: lda, b, ldb: ldb, layout, c, ldc: ldc, rows: 0..<m, cols: j0..<j1, k: k, alpha: alpha, s)
            } else {
                let i0 = task * panelsM / tasks * s.mr, i1 = min(m, (task + 1) * panelsM / tasks * s.mr)
                block(a, lda: lda, b, ldb: ldb, layout, c, ldc: ldc, rows: i0..<i1, cols: 0..<n, k: k, alpha: alpha, s)
            }
        }
    }

    /// One task: the rows × cols part of C (absolute indices).
    static func block(_ a: UnsafePointer<Double>, lda: Int, _ b: UnsafePointer<Double>, ldb: Int, _ layout: BLayout,
                      _ c: UnsafeMutablePointer<Double>, ldc: Int, rows: Range<Int>, cols: Range<Int>, k: Int,
                      alpha: Double, _ s: Spec) {
        guard !rows.isEmpty, !cols.isEmpty else { return }
        let mcr = (mc + s.mr - 1) / s.mr * s.mr
        let ncr = (nc + s.nr - 1) / s.nr * s.nr
        let pa = alignedDoubles(mcr * kc), pb = alignedDoubles(ncr * kc)
        defer { pa.deallocate(); pb.deallocate() }
        var jc = cols.lowerBound
        while jc < cols.upperBound {
            let ncur = min(ncr, cols.upperBound - jc)
            var pc = 0
            while pc < k {
                let kcur = min(kc, k - pc)
                // B panels: kcur steps of nr values (columns jc + …), zero-padded.
                var jr = 0
                while jr < ncur {
                    let w = min(s.nr, ncur - jr)
                    let dst = pb + jr * kcur
                    switch layout {
                    case .kByN:
                        for p in 0..<kcur {
                            (dst + p * s.nr).update(from: b + (pc + p) * ldb + jc + jr, count: w)
                            if w < s.nr { (dst + p * s.nr + w).update(repeating: 0, count: s.nr - w) }
                        }
                    case .nByK:
                        for q in 0..<s.nr {
                            if q < w {
                                let src = b + (jc + jr + q) * ldb + pc
                                for p in 0..<kcur { dst[p * s.nr + q] = src[p] }
                            } else {
                                for p in 0..<kcur { dst[p * s.nr + q] = 0 }
                            }
                        }
                    }
                    jr += s.nr
                }
                var ic = rows.lowerBound
                while ic < rows.upperBound {
                    let mcur = min(mcr, rows.upperBound - ic)
                    // A panels: kcur steps of mr values (rows ic + …), zero-padded.
                    var ir = 0
                    while ir < mcur {
                        let h = min(s.mr, mcur - ir)
                        let dst = pa + ir * kcur
                        for r in 0..<s.mr {
                            if r < h {
                                let src = a + (ic + ir + r) * lda + pc
                                for p in 0..<kcur { dst[p * s.mr + r] = src[p] }
                            } else {
                                for p in 0..<kcur { dst[p * s.mr + r] = 0 }
                            }
                        }
                        ir += s.mr
                    }
                    var jr = 0
                    while jr < ncur {
                        let w = min(s.nr, ncur - jr)
                        var ir = 0
                        while ir < mcur {
                            s.kernel(kcur, UnsafePointer(pa + ir * kcur), UnsafePointer(pb + jr * kcur),
                                     c + (ic + ir) * ldc + jc + jr, ldc, min(s.mr, mcur - ir), w, alpha)
                            ir += s.mr
                        }
                        jr += s.nr
                    }
                    ic += mcur
                }
                pc += kcur
            }
            jc += ncur
        }
    }

    /// Portable 4×8 micro-kernel (Swift SIMD, separate multiply and add): `C += alpha·(A·B)` on
    /// one tile, A and B packed as in `block`.
    static func portableKernel(_ kc: Int, _ a: UnsafePointer<Double>, _ b: UnsafePointer<Double>,
                               _ c: UnsafeMutablePointer<Double>, _ ldc: Int, _ rows: Int, _ cols: Int, _ alpha: Double) {
        typealias V = SIMD8<Double>
        var c0 = V(), c1 = V(), c2 = V(), c3 = V()
        var pa = a, pb = UnsafeRawPointer(b)
        for _ in 0..<kc {
            let bv = pb.loadUnaligned(as: V.self)
            c0 += V(repeating: pa[0]) * bv; c1 += V(repeating: pa[1]) * bv
            c2 += V(repeating: pa[2]) * bv; c3 += V(repeating: pa[3]) * bv
            pa += 4; pb += 64
        }
        @inline(__always) func store(_ v: V, _ p: UnsafeMutablePointer<Double>) {
            for j in 0..<cols { p[j] = p[j] + alpha * v[j] }
        }
        if rows > 0 { store(c0, c) }
        if rows > 1 { store(c1, c + ldc) }
        if rows > 2 { store(c2, c + 2 * ldc) }
        if rows > 3 { store(c3, c + 3 * ldc) }
    }

    static func alignedDoubles(_ count: Int) -> UnsafeMutablePointer<Double> {
        UnsafeMutableRawPointer.allocate(byteCount: max(1, count) * 8, alignment: 64).bindMemory(to: Double.self, capacity: max(1, count))
    }

    /// Array convenience: returns `A·op(B)` (m × n) for contiguous A (m × k) and B.
    public static func multiply(_ a: [Double], _ b: [Double], _ layout: BLayout, m: Int, n: Int, k: Int,
                                threads: Int? = nil) -> [Double] {
        precondition(a.count == m * k && b.count == n * k, "Gemm64.multiply: shape mismatch")
        var c = [Double](repeating: 0, count: m * n)
        a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in c.withUnsafeMutableBufferPointer { cp in
            guard let ab = ap.baseAddress, let bb = bp.baseAddress, let cb = cp.baseAddress else { return }
            multiplyAdd(ab, lda: k, bb, ldb: layout == .kByN ? n : k, layout, into: cb, ldc: n, m: m, n: n, k: k, threads: threads)
        } } }
        return c
    }
}

extension Reference {
    /// `A·op(B)` (m × n) with a plain triple loop.
    public static func gemm64(_ a: [Double], _ b: [Double], _ layout: Gemm64.BLayout, m: Int, n: Int, k: Int) -> [Double] {
        var c = [Double](repeating: 0, count: m * n)
        for i in 0..<m { for j in 0..<n {
            var s = 0.0
            for p in 0..<k { s += a[i * k + p] * (layout == .kByN ? b[p * n + j] : b[j * k + p]) }
            c[i * n + j] = s
        } }
        return c
    }
}
