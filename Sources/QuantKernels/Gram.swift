/// Gram matrices `G = XᵀX` of tall row-major matrices (SYRK): GPTQ's Hessian from its calibration
/// inputs X (tokens × in).
///
/// Only the tiles on or above the diagonal are computed, with the f32 GEMM micro-kernels of
/// `Gemm`, and mirrored to the lower triangle: half the multiply-adds of `Gemm.multiply(Xᵀ, Xᵀ)`
/// and no transposed copy of X (a panel of `G`'s rows or columns is a run of contiguous values in
/// every row of X). The reduction over X's rows is cut into slabs exactly as `Gemm` cuts K (and
/// each micro-tile sums its slab in the same order), so `G` equals `Gemm.multiply` of Xᵀ by itself
/// bit for bit on the same kernel path, and every element is computed by the same instructions on
/// any thread count (threads own fixed column panels of G).
public enum Gram {
    /// `g = XᵀX` (k × k, row-major, both triangles written) for `x` (n × k, row-major).
    public static func multiply(_ x: UnsafePointer<Float>, rows n: Int, cols k: Int,
                                into g: UnsafeMutablePointer<Float>, threads: Int? = nil) {
        guard k > 0 else { return }
        guard n > 0 else { g.update(repeating: 0, count: k * k); return }
        let s = Gemm.F32Spec.for(KernelDispatch.active)
        // Slabs of the reduction as `Gemm.BlockLayout` cuts K.
        let slabs = (n + s.kc - 1) / s.kc
        let kc = (n + slabs - 1) / slabs
        let panels = (k + s.nr - 1) / s.nr
        // Column panel q needs rows 0 ..< min(k, (q+1)·nr): its work share.
        func work(_ q: Int) -> Int { min(k, (q + 1) * s.nr) }
        let total = (0..<panels).reduce(0) { $0 + work($1) }
        let t = 2 * n * k * k < 1 << 19 ? 1 : max(1, min(threads ?? Parallel.threadCount, panels))
        // Task boundaries: contiguous panel ranges of about equal work.
        var bounds = [0]
        var acc = 0
        for q in 0..<panels {
            acc += work(q)
            if bounds.count < t && acc * t >= bounds.count * total && q + 1 < panels { bounds.append(q + 1) }
        }
        bounds.append(panels)
        let tasks = bounds.count - 1
        let mc = max(s.mr, s.mc / s.mr * s.mr)
        let box = UncheckedBox((x, g))
        Parallel.forEach(tasks, threads: tasks) { task in
            let (x, g) = box.value
            let q0 = bounds[task], q1 = bounds[task + 1]
            let j0 = q0 * s.nr, j1 = min(k, q1 * s.nr)
            let rowsNeeded = j1
            let pb = alignedFloats((q1 - q0) * s.nr * kc)
            let pa = alignedFloats(mc * kc + 16)
            defer { pb.deallocate(); pa.deallocate() }
            var p0 = 0
            while p0 < n {
                let kcur = min(kc, n - p0)
                // B: this task's column panels of the slab, nr values of a row of X per step.
                for q in q0..<q1 {
                    let c0 = q * s.nr
                    packColumns(x + p0 * k + c0, ld: k, depth: kcur, count: min(s.nr, k - c0), width: s.nr,
                                into: pb + (q - q0) * s.nr * kcur)
                }
                var ic = 0
                while ic < rowsNeeded {
                    let mcur = min(mc, rowsNeeded - ic)
                    // A: rows ic ..< ic+mcur of G = columns of X, in mr-wide panels.
                    var ir = 0
                    while ir < mcur {
                        packColumns(x + p0 * k + ic + ir, ld: k, depth: kcur, count: min(s.mr, mcur - ir), width: s.mr,
                                    into: pa + ir * kcur)
                        ir += s.mr
                    }
                    for q in q0..<q1 {
                        let c0 = q * s.nr, cols = min(s.nr, k - c0)
                        if c0 + cols <= ic { continue }   // tile entirely below the diagonal
                        let bp = UnsafePointer(pb + (q - q0) * s.nr * kcur)
                        var ir = 0
                        // Micro-tiles whose first row is at most the panel's last column.
                        while ir < mcur && ic + ir < c0 + cols {
                            s.kernel(kcur, UnsafePointer(pa + ir * kcur), bp, g + (ic + ir) * k + c0, k,
                                     min(s.mr, mcur - ir), cols, p0 > 0, nil)
                            ir += s.mr
                        }
                    }
                    ic += mcur
                }
                p0 += kcur
            }
        }
        // Mirror the upper triangle into the lower one, in 32×32 tiles.
        for i0 in stride(from: 0, to: k, by: 32) {
            for j0 in stride(from: 0, through: i0, by: 32) {
                for i in i0..<min(i0 + 32, k) {
                    for j in j0..<min(j0 + 32, i) { g[i * k + j] = g[j * k + i] }
                }
            }
        }
    }

    /// Array convenience: `XᵀX` (k × k) of `x` (n × k).
    public static func multiply(_ x: [Float], rows n: Int, cols k: Int, threads: Int? = nil) -> [Float] {
        precondition(x.count == n * k, "Gram.multiply: \(x.count) values for \(n) × \(k)")
        var g = [Float](repeating: 0, count: k * k)
        x.withUnsafeBufferPointer { xp in g.withUnsafeMutableBufferPointer { gp in
            guard let xb = xp.baseAddress, let gb = gp.baseAddress else { return }
            multiply(xb, rows: n, cols: k, into: gb, threads: threads)
        } }
        return g
    }

    /// Packs `depth` rows of X (stride `ld`), `count` contiguous values each, as `depth` steps of
    /// `width` floats (zero-padded past `count`): the packed-panel layout of `Gemm.packPanels` for
    /// the transposed matrix.
    static func packColumns(_ src: UnsafePointer<Float>, ld: Int, depth: Int, count: Int, width: Int,
                            into dst: UnsafeMutablePointer<Float>) {
        // Full panels of the widths the micro-kernels use: vector copies (a `memcpy` call per
        // 48-byte run would cost more than the copy).
        if count == width && (width == 32 || width == 16 || width == 12 || width == 8) {
            for p in 0..<depth {
                let s = UnsafeRawPointer(src + p * ld), o = UnsafeMutableRawPointer(dst + p * width)
                switch width {
                case 32:
                    o.storeBytes(of: s.loadUnaligned(as: SIMD16<Float>.self), as: SIMD16<Float>.self)
                    o.storeBytes(of: s.loadUnaligned(fromByteOffset: 64, as: SIMD16<Float>.self), toByteOffset: 64, as: SIMD16<Float>.self)
                case 16:
                    o.storeBytes(of: s.loadUnaligned(as: SIMD16<Float>.self), as: SIMD16<Float>.self)
                case 12:
                    o.storeBytes(of: s.loadUnaligned(as: SIMD8<Float>.self), as: SIMD8<Float>.self)
                    o.storeBytes(of: s.loadUnaligned(fromByteOffset: 32, as: SIMD4<Float>.self), toByteOffset: 32, as: SIMD4<Float>.self)
                default:
                    o.storeBytes(of: s.loadUnaligned(as: SIMD8<Float>.self), as: SIMD8<Float>.self)
                }
            }
            return
        }
        for p in 0..<depth {
            let o = dst + p * width
            o.update(from: src + p * ld, count: count)
            if count < width { (o + count).update(repeating: 0, count: width - count) }
        }
    }

    /// 64-byte aligned floats (the micro-kernels load packed panels with aligned vector loads).
    static func alignedFloats(_ count: Int) -> UnsafeMutablePointer<Float> {
        UnsafeMutableRawPointer.allocate(byteCount: max(1, count) * 4, alignment: 64).bindMemory(to: Float.self, capacity: max(1, count))
    }
}

extension Reference {
    /// `XᵀX` (k × k) of `x` (n × k) with a plain triple loop, accumulated in Double.
    public static func gram(_ x: [Float], rows n: Int, cols k: Int) -> [Float] {
        var g = [Float](repeating: 0, count: k * k)
        for i in 0..<k { for j in 0..<k {
            var s = 0.0
            for t in 0..<n { s += Double(x[t * k + i]) * Double(x[t * k + j]) }
            g[i * k + j] = Float(s)
        } }
        return g
    }
}
