import Foundation
import QuantCore
import QuantKernels

/// GPTQ (Frantar et al., ICLR 2023): column-by-column weight rounding with second-order error
/// feedback. For every member `W` (out × in) of a site, with the site's calibration inputs `X`
/// (tokens × in, in the site's current basis, so GPTQ runs after any transform):
///
///     H = XᵀX / tokens + λ·I,   λ = percdamp · mean(diag H)
///     U = upper Cholesky factor of H⁻¹   (H⁻¹ = UᵀU)
///     for each column i (in act-order if asked):  q_i = Q(w_i),  e = (w_i − q_i)/U_ii,
///                                                w_j −= e·U_ij  for the columns j after i
///
/// with the updates to later column blocks applied lazily, `block_size` columns at a time. Rows
/// are independent given U, so they run in parallel. The fast paths: H from one triangle
/// (`Gram`), U by blocked f64 factorizations and each lazy update as one f64 GEMM (`Gemm64`);
/// `upperCholeskyOfInverseReference` and `quantizeReference` keep the plain loops beside them. Inputs that are always zero (`H_jj = 0`)
/// get `H_jj = 1` and zero weights. When the Cholesky factorization fails, λ is raised ×10 (up to
/// 4 times) and the run log says so. With groups, each group's (scale, zero) is computed from the
/// already error-updated weights when its first column comes up, or from the original weights
/// with `static_groups`. Quantized groups are contiguous input columns, so act-order with groups
/// needs `static_groups: true`. The grid (bits, symmetry, clip) is the layer's weight scheme, so
/// with a diagonal `H` GPTQ returns exactly RTN's codes.
public final class GPTQ: QuantMethod {
    public static let name = "gptq"
    public static let role = MethodRole.weightQuantizer
    public static let summary = "second-order weight rounding (Hessian XᵀX, lazy block updates, act-order, groups)"
    public static let options: [OptionSpec] = [
        OptionSpec("percdamp", .double(0...1), default: .double(0.01), "damping λ as a fraction of the mean diagonal of H"),
        OptionSpec("block_size", .int(1...4096), default: .int(128), "columns per lazy batch update"),
        OptionSpec("act_order", .bool, default: .bool(false), "quantize columns in order of decreasing H_jj"),
        OptionSpec("static_groups", .bool, default: .bool(false), "group parameters from the original weights, before any update"),
    ]

    let percdamp: Double
    let blockSize: Int
    let actOrder: Bool
    let staticGroups: Bool

    public init(options: MethodOptions) throws {
        percdamp = try options.double("percdamp")
        blockSize = try options.int("block_size")
        actOrder = try options.bool("act_order")
        staticGroups = try options.bool("static_groups")
    }

    public var needs: CalibrationNeeds { .inputs }

    public func plan(site: Site, config: DecoderConfig) throws -> SitePlan {
        for l in site.linears where l.scheme.isQuantized {
            if case .group = l.scheme.granularity, actOrder, !staticGroups {
                throw MethodError(method: Self.name, site: site.name,
                                  "act_order with groups needs static_groups: true (quantized groups must stay contiguous input columns)")
            }
        }
        let desc = site.linears.map { "\($0.name): \($0.scheme)" }.joined(separator: "; ")
        return SitePlan(weights: "GPTQ (damp \(percdamp), block \(blockSize)\(actOrder ? ", act-order" : "")\(staticGroups ? ", static groups" : "")) \(desc)")
    }

    public func apply(to site: Site, calibration: SiteCalibration?, context: MethodContext) throws {
        let members = site.linears.filter { $0.scheme.isQuantized && $0.quantized == nil }
        guard !members.isEmpty else { return }
        _ = try plan(site: site, config: context.model.config)
        guard let calibration, calibration.rows > 0 else {
            throw MethodError(method: Self.name, site: site.name, "no calibration inputs; give the recipe calibration windows")
        }
        let k = site.inFeatures
        // NaN or ±inf in the inputs shows on H's diagonal: checked there, not in a pass of its own.
        var h = try calibration.checkedHessian(site: site.name).data.map(Double.init)
        var dead = [Bool](repeating: false, count: k)
        for j in 0..<k where h[j * k + j] == 0 { h[j * k + j] = 1; dead[j] = true }
        let perm = actOrder ? (0..<k).sorted { h[$0 * k + $0] > h[$1 * k + $1] } : Array(0..<k)
        var hp = h
        if actOrder { for i in 0..<k { for j in 0..<k { hp[i * k + j] = h[perm[i] * k + perm[j]] } } }
        let meanDiag = (0..<k).reduce(0.0) { $0 + hp[$1 * k + $1] } / Double(k)
        var damp = percdamp * meanDiag
        var u: [Double]?
        for attempt in 0..<5 {
            var hd = hp
            for i in 0..<k { hd[i * k + i] += damp }
            if let f = GPTQ.upperCholeskyOfInverse(hd, k) { u = f; break }
            if attempt < 4 {
                context.log("gptq \(site.name): Cholesky failed with damping \(damp); raising it to \(damp * 10)")
                damp = max(damp * 10, 1e-8)
            }
        }
        guard let u else {
            throw MethodError(method: Self.name, site: site.name,
                              "the Hessian is not positive definite even with damping \(damp); use more calibration windows or a larger percdamp")
        }
        for l in members {
            l.quantized = GPTQ.quantize(l.weight, scheme: l.scheme, u: u, perm: perm, dead: dead,
                                        blockSize: blockSize, staticGroups: staticGroups)
        }
    }

    /// GPTQ on one weight matrix, given the upper factor `u` (k×k, in permuted column order).
    ///
    /// The fast path of `quantizeReference` (same arithmetic up to summation order): all rows at
    /// once as one f64 matrix `X` (rows × k, permuted columns). Inside a block of `blockSize`
    /// columns every row runs the column loop on its own (fixed row chunks over threads), 32
    /// columns at a time with one GEMM for the rest of the block after each 32; after the block,
    /// the accumulated errors `E` (rows × block) update the remaining columns in one f64 GEMM,
    /// `X[:, i2:] −= E·U[i1:i2, i2:]`.
    public static func quantize(_ w: Matrix, scheme: WeightScheme, u: [Double], perm: [Int], dead: [Bool],
                                blockSize: Int, staticGroups: Bool) -> QuantizedWeight {
        let rows = w.rows, k = w.cols
        let grid = scheme.grid
        let g = scheme.groupSize(cols: k)
        let groups = k / g
        let bs = min(blockSize, k)
        var codes = [Int32](repeating: 0, count: rows * k)
        var params = [(Float, Int32)](repeating: (1, 0), count: rows * groups)
        let dynamicGroups = groups > 1 && !staticGroups
        // Group parameters fixed up front: per tensor from the whole original matrix, per channel
        // or static groups from the original row.
        if case .tensor = scheme.granularity {
            let (lo, hi) = w.data.withUnsafeBufferPointer { Quantizer.minMax($0.baseAddress!, $0.count) }
            let t = grid.parameters(min: lo, max: hi)
            for i in 0..<params.count { params[i] = t }
        }
        var x = [Double](repeating: 0, count: rows * k)
        var errs = [Double](repeating: 0, count: rows * bs)
        let chunk = 8, chunks = (rows + chunk - 1) / chunk
        // Sub-blocks of 32 columns inside a block: the column loop updates only its sub-block, one
        // GEMM the rest of the block. With dynamic groups only when every group starts a sub-block
        // or lies inside one (so a group's parameters see the same updated weights as without).
        let sub = bs % 32 == 0 && (!dynamicGroups || g % 32 == 0 || 32 % g == 0) ? 32 : bs
        let isTensor: Bool = { if case .tensor = scheme.granularity { return true }; return false }()
        w.data.withUnsafeBufferPointer { wp in u.withUnsafeBufferPointer { up in
        x.withUnsafeMutableBufferPointer { xp in errs.withUnsafeMutableBufferPointer { ep in
        codes.withUnsafeMutableBufferPointer { cp in params.withUnsafeMutableBufferPointer { pp in
            let box = UncheckedBox((wp.baseAddress!, up.baseAddress!, xp.baseAddress!, ep.baseAddress!, cp.baseAddress!, pp.baseAddress!))
            // Rows in permuted column order, dead inputs zeroed; fixed group parameters.
            Parallel.forEach(chunks) { c in
                let (w, _, x, _, _, params) = box.value
                for r in (c * chunk)..<min(rows, (c + 1) * chunk) {
                    let orig = w + r * k, xr = x + r * k
                    for i in 0..<k { xr[i] = dead[perm[i]] ? 0 : Double(orig[perm[i]]) }
                    if !isTensor && !dynamicGroups {
                        for gi in 0..<groups {
                            var lo = Float.infinity, hi = -Float.infinity
                            for j in (gi * g)..<((gi + 1) * g) { lo = min(lo, orig[j]); hi = max(hi, orig[j]) }
                            params[r * groups + gi] = grid.parameters(min: lo, max: hi)
                        }
                    }
                }
            }
            var i1 = 0
            while i1 < k {
                let i2 = min(k, i1 + bs)
                var s1 = i1
                while s1 < i2 {
                let s2 = min(i2, s1 + sub)
                Parallel.forEach(chunks) { c in
                    let (_, u, x, errs, codesOut, params) = box.value
                    for r in (c * chunk)..<min(rows, (c + 1) * chunk) {
                        let xr = x + r * k
                        for i in s1..<s2 {
                            let col = perm[i], gi = col / g
                            if dynamicGroups && i % g == 0 {
                                // No act-order here (plan forbids it), so columns i..<i+g are group gi.
                                var lo = Float.infinity, hi = -Float.infinity
                                for j in i..<(i + g) { lo = min(lo, Float(xr[j])); hi = max(hi, Float(xr[j])) }
                                params[r * groups + gi] = grid.parameters(min: lo, max: hi)
                            }
                            let (s, z) = params[r * groups + gi]
                            let q = grid.quantize(Float(xr[i]), scale: s, zero: z)
                            codesOut[r * k + col] = q
                            let e = (xr[i] - Double(grid.dequantize(q, scale: s, zero: z))) / u[i * k + i]
                            errs[r * bs + (i - i1)] = e
                            if e != 0 { let ui = u + i * k; for j in (i + 1)..<s2 { xr[j] -= e * ui[j] } }
                        }
                    }
                }
                // The rest of the block from this sub-block: X[:, s2:i2] −= E_sub·U[s1:s2, s2:i2].
                if s2 < i2 {
                    let (_, u, x, errs, _, _) = box.value
                    Gemm64.multiplyAdd(errs + (s1 - i1), lda: bs, u + s1 * k + s2, ldb: k, .kByN, into: x + s2, ldc: k,
                                       m: rows, n: i2 - s2, k: s2 - s1, alpha: -1)
                }
                s1 = s2
                }
                // Lazy batch update of the remaining columns: X[:, i2:] −= E·U[i1:i2, i2:].
                if i2 < k {
                    let (_, u, x, errs, _, _) = box.value
                    Gemm64.multiplyAdd(errs, lda: bs, u + i1 * k + i2, ldb: k, .kByN, into: x + i2, ldc: k,
                                       m: rows, n: k - i2, k: i2 - i1, alpha: -1)
                }
                i1 = i2
            }
        } } } } } }
        return QuantizedWeight(rows: rows, cols: k, groupSize: g, grid: grid, codes: codes,
                               scales: params.map(\.0), zeros: params.map(\.1), producedBy: name)
    }

    /// The plain reference of `quantize` (row by row, the lazy updates as axpys), kept readable
    /// beside the fast path; tests compare the two.
    public static func quantizeReference(_ w: Matrix, scheme: WeightScheme, u: [Double], perm: [Int], dead: [Bool],
                                         blockSize: Int, staticGroups: Bool) -> QuantizedWeight {
        let rows = w.rows, k = w.cols
        let grid = scheme.grid
        let g = scheme.groupSize(cols: k)
        let groups = k / g
        var codes = [Int32](repeating: 0, count: rows * k)
        var scales = [Float](repeating: 1, count: rows * groups)
        var zeros = [Int32](repeating: 0, count: rows * groups)
        // Per-tensor: one (scale, zero) from the whole original matrix.
        var tensorParams: (Float, Int32)?
        if case .tensor = scheme.granularity {
            let (lo, hi) = w.data.withUnsafeBufferPointer { Quantizer.minMax($0.baseAddress!, $0.count) }
            tensorParams = grid.parameters(min: lo, max: hi)
        }
        let chunk = 8
        codes.withUnsafeMutableBufferPointer { cp in scales.withUnsafeMutableBufferPointer { sp in zeros.withUnsafeMutableBufferPointer { zp in
            let out = UncheckedBox((cp.baseAddress!, sp.baseAddress!, zp.baseAddress!))
            Parallel.forEach((rows + chunk - 1) / chunk) { c in
                let (codesOut, scalesOut, zerosOut) = out.value
                for r in (c * chunk)..<min(rows, (c + 1) * chunk) {
                    let orig = w.row(r)
                    let base = orig.startIndex
                    // The row in permuted column order, dead inputs zeroed.
                    var x = [Double](repeating: 0, count: k)
                    for i in 0..<k { x[i] = dead[perm[i]] ? 0 : Double(orig[base + perm[i]]) }
                    // Group parameters: fixed up front (channel, tensor, static groups) or on the fly.
                    var params = [(Float, Int32)](repeating: (1, 0), count: groups)
                    func fromOriginal(_ gi: Int) -> (Float, Int32) {
                        var lo = Float.infinity, hi = -Float.infinity
                        for j in (gi * g)..<((gi + 1) * g) { lo = min(lo, orig[base + j]); hi = max(hi, orig[base + j]) }
                        return grid.parameters(min: lo, max: hi)
                    }
                    let dynamicGroups = groups > 1 && !staticGroups
                    if let t = tensorParams { params = [(Float, Int32)](repeating: t, count: groups) }
                    else if !dynamicGroups { for gi in 0..<groups { params[gi] = fromOriginal(gi) } }
                    var errs = [Double](repeating: 0, count: blockSize)
                    var i1 = 0
                    while i1 < k {
                        let i2 = min(k, i1 + blockSize)
                        for i in i1..<i2 {
                            let col = perm[i], gi = col / g
                            if dynamicGroups && i % g == 0 {
                                // No act-order here (plan forbids it), so columns i..<i+g are group gi.
                                var lo = Float.infinity, hi = -Float.infinity
                                for j in i..<(i + g) { lo = min(lo, Float(x[j])); hi = max(hi, Float(x[j])) }
                                params[gi] = grid.parameters(min: lo, max: hi)
                            }
                            let (s, z) = params[gi]
                            let q = grid.quantize(Float(x[i]), scale: s, zero: z)
                            codesOut[r * k + col] = q
                            let e = (x[i] - Double(grid.dequantize(q, scale: s, zero: z))) / u[i * k + i]
                            errs[i - i1] = e
                            if e != 0 { for j in (i + 1)..<i2 { x[j] -= e * u[i * k + j] } }
                        }
                        // Lazy batch update of the remaining columns.
                        if i2 < k {
                            for t in 0..<(i2 - i1) where errs[t] != 0 {
                                let e = errs[t], urow = (i1 + t) * k
                                for j in i2..<k { x[j] -= e * u[urow + j] }
                            }
                        }
                        i1 = i2
                    }
                    for gi in 0..<groups { scalesOut[r * groups + gi] = params[gi].0; zerosOut[r * groups + gi] = params[gi].1 }
                }
            }
        } } }
        return QuantizedWeight(rows: rows, cols: k, groupSize: g, grid: grid, codes: codes, scales: scales, zeros: zeros, producedBy: name)
    }

    /// `U` with `H⁻¹ = UᵀU`, U upper triangular (k×k row-major), or nil when `H` is not positive definite.
    ///
    /// The blocked fast path of `upperCholeskyOfInverseReference` (same maths, summation order
    /// differs): with `J` the reversal permutation, the lower Cholesky factor `L′` of `J·H·J`
    /// (`blockedCholesky`) gives `H = R·Rᵀ` with `R = J·L′·J` upper triangular, so `U = R⁻¹ =
    /// J·L′⁻¹·J`, and `L′⁻¹` comes from `blockedLowerInverse`. Both run their bulk as f64 GEMMs.
    public static func upperCholeskyOfInverse(_ h: [Double], _ k: Int) -> [Double]? {
        var a = reversed(h, k)
        guard blockedCholesky(&a, k) else { return nil }
        return reversed(blockedLowerInverse(a, k), k)
    }

    /// `J·m·J` (k×k): rows and columns in reverse order (lower triangular ↔ upper triangular).
    static func reversed(_ m: [Double], _ k: Int) -> [Double] {
        [Double](unsafeUninitializedCapacity: k * k) { out, count in
            m.withUnsafeBufferPointer { src in
                for i in 0..<k {
                    let s = src.baseAddress! + (k - 1 - i) * k, o = out.baseAddress! + i * k
                    for j in 0..<k { o[j] = s[k - 1 - j] }
                }
            }
            count = k * k
        }
    }

    /// Panel width of the blocked factorizations.
    static let factorBlock = 64

    /// In place: the lower Cholesky factor of the symmetric `a` (k×k row-major; the strict upper
    /// triangle is zeroed), or false when a pivot is not positive and finite. Right-looking, in
    /// panels of `factorBlock` columns: factor the diagonal block, solve the rows below it
    /// (`L₂₁ = A₂₁·L₁₁⁻ᵀ`), then `A₂₂ −= L₂₁·L₂₁ᵀ` on and below the diagonal, both as f64 GEMMs
    /// over fixed row blocks.
    public static func blockedCholesky(_ a: inout [Double], _ k: Int) -> Bool {
        let nb = factorBlock
        return a.withUnsafeMutableBufferPointer { ap -> Bool in
            let a = ap.baseAddress!
            let box = UncheckedBox(a)
            var j0 = 0
            while j0 < k {
                let jb = min(nb, k - j0), j1 = j0 + jb
                // Diagonal block (its earlier panels already subtracted).
                for i in j0..<j1 {
                    for j in j0...i {
                        let s = a[i * k + j] - fastDot(a + i * k + j0, a + j * k + j0, j - j0)
                        if i == j {
                            guard s > 0, s.isFinite else { return false }
                            a[i * k + i] = s.squareRoot()
                        } else {
                            a[i * k + j] = s / a[j * k + j]
                        }
                    }
                }
                guard j1 < k else { break }
                // Panel below: L₂₁ = A₂₁·L₁₁⁻ᵀ, with L₁₁⁻¹ by substitution and the product as one f64
                // GEMM per fixed row chunk (into a scratch copy of A₂₁).
                let below = k - j1, chunk = 96
                var inv = [Double](repeating: 0, count: jb * jb)
                for i in 0..<jb {
                    let d = 1 / a[(j0 + i) * k + j0 + i]
                    inv[i * jb + i] = d
                    for j in 0..<i {
                        var s = 0.0
                        for p in j..<i { s += a[(j0 + i) * k + j0 + p] * inv[p * jb + j] }
                        inv[i * jb + j] = -s * d
                    }
                }
                inv.withUnsafeBufferPointer { ip in
                    let ib = UncheckedBox(ip.baseAddress!)
                    Parallel.forEach((below + chunk - 1) / chunk) { c in
                        let a = box.value, inv = ib.value
                        let r0 = j1 + c * chunk, r1 = min(k, r0 + chunk)
                        var a21 = [Double](repeating: 0, count: (r1 - r0) * jb)
                        a21.withUnsafeMutableBufferPointer { tp in
                            let t = tp.baseAddress!
                            for i in r0..<r1 {
                                (t + (i - r0) * jb).update(from: a + i * k + j0, count: jb)
                                (a + i * k + j0).update(repeating: 0, count: jb)
                            }
                            Gemm64.multiplyAdd(t, lda: jb, inv, ldb: jb, .nByK, into: a + r0 * k + j0, ldc: k,
                                               m: r1 - r0, n: jb, k: jb, threads: 1)
                        }
                    }
                }
                // Trailing update of the lower triangle, row block by row block (rows r0..<r1,
                // columns j1..<r1); blocks dealt in zig-zag order so that contiguous halves of the
                // list carry equal work.
                let rb = 96, blocks = (below + rb - 1) / rb
                let order = (0..<blocks).map { $0 % 2 == 0 ? $0 / 2 : blocks - 1 - $0 / 2 }
                Parallel.forEach(blocks) { item in
                    let a = box.value
                    let r0 = j1 + order[item] * rb, r1 = min(k, r0 + rb)
                    Gemm64.multiplyAdd(a + r0 * k + j0, lda: k, a + j1 * k + j0, ldb: k, .nByK, into: a + r0 * k + j1, ldc: k,
                                       m: r1 - r0, n: r1 - j1, k: jb, alpha: -1, threads: 1)
                }
                j0 = j1
            }
            for i in 0..<k { for j in (i + 1)..<k { a[i * k + j] = 0 } }
            return true
        }
    }

    /// `L⁻¹` (lower, k×k row-major) of a lower triangular `l` with a positive diagonal (its strict
    /// upper triangle is not read). Block row by block row (`factorBlock` rows): the diagonal block
    /// by substitution, then for every block column J to its left, in parallel,
    /// `M_IJ = −M_II · (L[I, J..<I] · M[J..<I, J])` as two f64 GEMMs.
    public static func blockedLowerInverse(_ l: [Double], _ k: Int) -> [Double] {
        let nb = factorBlock
        var m = [Double](repeating: 0, count: k * k)
        l.withUnsafeBufferPointer { lp in m.withUnsafeMutableBufferPointer { mp in
            let box = UncheckedBox((lp.baseAddress!, mp.baseAddress!))
            let (l, m) = box.value
            var i0 = 0
            while i0 < k {
                let ib = min(nb, k - i0), i1 = i0 + ib
                // M_II = L_II⁻¹ row by row: M_ii = 1/L_ii, M_ij = −(Σ_{j≤p<i} L_ip·M_pj)/L_ii.
                for i in i0..<i1 {
                    let d = 1 / l[i * k + i]
                    m[i * k + i] = d
                    for j in i0..<i {
                        var s = 0.0
                        for p in j..<i { s += l[i * k + p] * m[p * k + j] }
                        m[i * k + j] = -s * d
                    }
                }
                let blocksLeft = i0 / nb
                let order = (0..<blocksLeft).map { $0 % 2 == 0 ? $0 / 2 : blocksLeft - 1 - $0 / 2 }
                Parallel.forEach(blocksLeft) { item in
                    let (l, m) = box.value
                    let j0 = order[item] * nb
                    // T = L[I, j0..<i0] · M[j0..<i0, J]  (ib × nb), then M_IJ = −M_II·T.
                    var t = [Double](repeating: 0, count: ib * nb)
                    t.withUnsafeMutableBufferPointer { tp in
                        let t = tp.baseAddress!
                        Gemm64.multiplyAdd(l + i0 * k + j0, lda: k, m + j0 * k + j0, ldb: k, .kByN, into: t, ldc: nb,
                                           m: ib, n: nb, k: i0 - j0, threads: 1)
                        Gemm64.multiplyAdd(m + i0 * k + i0, lda: k, t, ldb: nb, .kByN, into: m + i0 * k + j0, ldc: k,
                                           m: ib, n: nb, k: ib, alpha: -1, threads: 1)
                    }
                }
                i0 = i1
            }
        } }
        return m
    }

    /// The plain reference of `upperCholeskyOfInverse` (unblocked Cholesky, back substitution by
    /// axpys), kept readable beside the fast path; tests compare the two.
    public static func upperCholeskyOfInverseReference(_ h: [Double], _ k: Int) -> [Double]? {
        var reversed = [Double](repeating: 0, count: k * k)
        for i in 0..<k { for j in 0..<k { reversed[i * k + j] = h[(k - 1 - i) * k + (k - 1 - j)] } }
        guard let lr = cholesky(reversed, k) else { return nil }
        var r = [Double](repeating: 0, count: k * k)
        for i in 0..<k { for j in i..<k { r[i * k + j] = lr[(k - 1 - i) * k + (k - 1 - j)] } }
        // U = R⁻¹ by back substitution, bottom row first: U_ii = 1/R_ii and, for j > i,
        // U_ij = −(Σ_{i<p≤j} R_ip·U_pj)/R_ii — accumulated as axpys over the finished rows p of U.
        var u = [Double](repeating: 0, count: k * k)
        var acc = [Double](repeating: 0, count: k)
        u.withUnsafeMutableBufferPointer { up in
            acc.withUnsafeMutableBufferPointer { ap in
                let u = up.baseAddress!, acc = ap.baseAddress!
                for i in stride(from: k - 1, through: 0, by: -1) {
                    for j in i..<k { acc[j] = 0 }
                    for p in (i + 1)..<k {
                        let c = r[i * k + p]
                        if c == 0 { continue }
                        let row = u + p * k
                        for j in p..<k { acc[j] += c * row[j] }
                    }
                    let d = 1 / r[i * k + i]
                    u[i * k + i] = d
                    for j in (i + 1)..<k { u[i * k + j] = -acc[j] * d }
                }
            }
        }
        return u
    }

    /// Lower Cholesky factor (row-major), or nil if a pivot is not positive and finite.
    /// The inner products run in eight interleaved partial sums (contiguous rows, vectorizable).
    public static func cholesky(_ a: [Double], _ k: Int) -> [Double]? {
        var l = [Double](repeating: 0, count: k * k)
        let ok = l.withUnsafeMutableBufferPointer { lp -> Bool in
            let l = lp.baseAddress!
            for i in 0..<k {
                for j in 0...i {
                    let s = a[i * k + j] - dot(l + i * k, l + j * k, j)
                    if i == j {
                        guard s > 0, s.isFinite else { return false }
                        l[i * k + i] = s.squareRoot()
                    } else {
                        l[i * k + j] = s / l[j * k + j]
                    }
                }
            }
            return true
        }
        return ok ? l : nil
    }

    /// `Σ_{p<n} x[p]·y[p]` in eight interleaved partial sums (multiply, then add: this module is
    /// built for the baseline ISA, where a fused multiply-add is a library call), then the tail.
    @inline(__always)
    static func fastDot(_ x: UnsafePointer<Double>, _ y: UnsafePointer<Double>, _ n: Int) -> Double {
        var v = SIMD8<Double>()
        var p = 0
        while p + 8 <= n {
            v += UnsafeRawPointer(x + p).loadUnaligned(as: SIMD8<Double>.self) * UnsafeRawPointer(y + p).loadUnaligned(as: SIMD8<Double>.self)
            p += 8
        }
        var s = v.sum()
        while p < n { s += x[p] * y[p]; p += 1 }
        return s
    }

    /// `Σ_{p<n} x[p]·y[p]` in eight interleaved partial sums, then the tail.
    @inline(__always)
    static func dot(_ x: UnsafePointer<Double>, _ y: UnsafePointer<Double>, _ n: Int) -> Double {
        var v = SIMD8<Double>()
        var p = 0
        while p + 8 <= n {
            v.addProduct(UnsafeRawPointer(x + p).loadUnaligned(as: SIMD8<Double>.self),
                         UnsafeRawPointer(y + p).loadUnaligned(as: SIMD8<Double>.self))
            p += 8
        }
        var s = v.sum()
        while p < n { s += x[p] * y[p]; p += 1 }
        return s
    }

    /// The Hessian (tokens·k² FLOPs, one triangle, at ~150 GFLOP/s of f32 GEMM) plus the f64
    /// factorizations and column updates (~1.5·k³ + 2·rows·k² FLOPs at ~40 GFLOP/s); rates of a
    /// 2-core AVX-512 machine.
    public func estimate(site: Site, tokens: Int) -> (seconds: Double, bytes: Int) {
        let k = Double(site.inFeatures)
        let rows = Double(site.linears.reduce(0) { $0 + $1.outFeatures })
        let hessian = Double(tokens) * k * k / 150e9
        return (hessian + (1.5 * k * k * k + 2 * rows * k * k) / 40e9, site.inFeatures * site.inFeatures * 8 * 4)
    }
}
