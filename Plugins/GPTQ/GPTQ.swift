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
/// are independent given U, so they run in parallel. Inputs that are always zero (`H_jj = 0`)
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
        guard let calibration, calibration.inputs.rows > 0 else {
            throw MethodError(method: Self.name, site: site.name, "no calibration inputs; give the recipe calibration windows")
        }
        let k = site.inFeatures
        // NaN or ±inf in the inputs shows on H's diagonal: checked there, not in a pass of its own.
        var h = try calibration.checkedHessian(site: site.name).data.map(Double.init)
        var dead = [Bool](repeating: false, count: k)
        for j in 0..<k where h[j * k + j] == 0 { h[j * k + j] = 1; dead[j] = true }
        let perm = actOrder ? (0..<k).sorted { h[$0 * k + $0] > h[$1 * k + $1] } : Array(0..<k)
        var hp = [Double](repeating: 0, count: k * k)
        for i in 0..<k { for j in 0..<k { hp[i * k + j] = h[perm[i] * k + perm[j]] } }
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
    public static func quantize(_ w: Matrix, scheme: WeightScheme, u: [Double], perm: [Int], dead: [Bool],
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
    /// One Cholesky and one triangular inverse: with `J` the reversal permutation, the lower Cholesky
    /// factor `L′` of `J·H·J` gives `H = R·Rᵀ` with `R = J·L′·J` upper triangular, so
    /// `H⁻¹ = R⁻ᵀ·R⁻¹` and `U = R⁻¹` (upper, positive diagonal: the same U as the Cholesky of `H⁻¹`).
    public static func upperCholeskyOfInverse(_ h: [Double], _ k: Int) -> [Double]? {
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

    public func estimate(site: Site, tokens: Int) -> (seconds: Double, bytes: Int) {
        let k = Double(site.inFeatures)
        let rows = Double(site.linears.reduce(0) { $0 + $1.outFeatures })
        return ((1.5 * k * k * k + rows * k * k) / 2e9, site.inFeatures * site.inFeatures * 8 * 4)
    }
}
