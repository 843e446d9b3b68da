import CQuantCPU
import Foundation

/// Which instruction-set path the kernels use.
///
/// - `portable`: Swift SIMD types only, compiles everywhere (arm64 included).
/// - `avx2`: AVX2 + FMA (f32 6×16 micro-kernel; integer dot products with `vpmaddubsw`/`vpmaddwd`).
/// - `vnni`: AVX-512 + VNNI (f32 12×32 micro-kernel; integer dot products with `vpdpbusd`).
public enum KernelPath: String, CaseIterable, Comparable, Sendable, Codable {
    case portable, avx2, vnni

    public static func < (a: KernelPath, b: KernelPath) -> Bool {
        allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
    }
}

/// Run-time CPU dispatch. The best path the CPU (and this build) supports is chosen once;
/// `QWB_KERNELS=portable|avx2|vnni` forces a path (clamped to what is available).
public enum KernelDispatch {
    /// Paths this process can run, ascending (always contains `.portable`).
    public static let available: [KernelPath] = {
        var paths: [KernelPath] = [.portable]
        #if arch(x86_64)
        let f = qwb_detect_cpu()
        if f.avx2 != 0 { paths.append(.avx2) }
        if f.avx512vnni != 0 { paths.append(.vnni) }
        #endif
        return paths
    }()

    /// The fastest available path that passes `selfTest` (paths this machine cannot exercise in
    /// the test suite, e.g. VNNI on an AVX2-only CI box, are checked here once before first use).
    public static let best: KernelPath = {
        for p in available.reversed() where p == .portable || selfTest(p) { return p }
        return .portable
    }()

    /// Paths whose self-test failed (reported in `summary`).
    public static var rejected: [KernelPath] { available.filter { $0 > best } }

    /// Runs small integer, f32 and weight-only GEMMs on `path` and compares them with the portable
    /// path: the int32 group sums must be identical and the f32 products within rounding. Never
    /// reads `active`.
    public static func selfTest(_ path: KernelPath) -> Bool {
        if path == .portable { return true }
        let (m, n, k, gs) = (11, 37, 96, 32)
        var seed: UInt32 = 12345
        func next(_ r: Int32) -> Int32 { seed = seed &* 1_664_525 &+ 1_013_904_223; return Int32(seed >> 8) % r }
        for (ag, wg) in [(QuantGrid(bits: 8, symmetric: false), QuantGrid(bits: 8, symmetric: true)),
                         (QuantGrid(bits: 4, symmetric: false), QuantGrid(bits: 4, symmetric: false)),
                         (QuantGrid(bits: 8, symmetric: true), QuantGrid(bits: 4, symmetric: true))] {
            let aCodes = (0..<(m * k)).map { _ in ag.qmin + next(ag.qmax - ag.qmin + 1) }
            let wCodes = (0..<(n * k)).map { _ in wg.qmin + next(wg.qmax - wg.qmin + 1) }
            let aZ = (0..<m).map { _ in ag.symmetric ? 0 : next(ag.qmax + 1) }
            let wZ = (0..<(n * k / gs)).map { _ in wg.symmetric ? 0 : next(wg.qmax + 1) }
            let a = QuantizedActivations(codes: aCodes, scales: [Float](repeating: 0.5, count: m), zeros: aZ, m: m, k: k, grid: ag)
            let w = IntGemm.packWeights(codes: wCodes, scales: [Float](repeating: 0.25, count: n * k / gs), zeros: wZ,
                                        n: n, k: k, groupSize: gs, grid: wg)
            var got = [Int32](repeating: 0, count: m * (k / gs) * n), want = got
            var y = [Float](repeating: 0, count: m * n)
            for (p, out) in [(path, 0), (KernelPath.portable, 1)] {
                var acc = [Int32](repeating: 0, count: got.count)
                acc.withUnsafeMutableBufferPointer { ap in y.withUnsafeMutableBufferPointer { yp in
                    IntGemm.run(a, w, y: yp.baseAddress!, acc: ap.baseAddress!, bias: nil, threads: 1, path: p)
                } }
                if out == 0 { got = acc } else { want = acc }
            }
            if got != want { return false }
        }
        // f32: packed path on both kernels.
        let x = (0..<(m * k)).map { _ in Float(next(2001) - 1000) / 1000 }
        let wf = (0..<(n * k)).map { _ in Float(next(2001) - 1000) / 1000 }
        var y0 = [Float](repeating: 0, count: m * n), y1 = y0
        for (p, out) in [(path, 0), (KernelPath.portable, 1)] {
            var y = [Float](repeating: 0, count: m * n)
            x.withUnsafeBufferPointer { xp in wf.withUnsafeBufferPointer { wp in y.withUnsafeMutableBufferPointer { yp in
                Gemm.packed(xp.baseAddress!, lda: k, wp.baseAddress!, yp.baseAddress!, ldy: n, m: m, n: n, k: k, bias: nil,
                            threads: 1, spec: Gemm.F32Spec.for(p))
            } } }
            if out == 0 { y0 = y } else { y1 = y }
        }
        for i in 0..<(m * n) where abs(y0[i] - y1[i]) > 1e-3 { return false }
        // Weight-only: the GEMV (3 rows) and the slab dequantizer (11 rows), int8 and int4 groups.
        // (Codes drawn here: `Quantizer` reads `active`, whose initializer runs this test.)
        for (grid, gs) in [(QuantGrid(bits: 8, symmetric: true), k), (QuantGrid(bits: 4, symmetric: false), gs)] {
            let codes = (0..<(n * k)).map { _ in grid.qmin + next(grid.qmax - grid.qmin + 1) }
            let zeros = (0..<(n * k / gs)).map { _ in grid.symmetric ? 0 : next(grid.qmax + 1) }
            let scales = (0..<(n * k / gs)).map { _ in Float(1 + next(100)) / 1000 }
            let pw = IntGemm.packWeights(codes: codes, scales: scales, zeros: zeros, n: n, k: k, groupSize: gs, grid: grid)
            for rows in [3, m] {
                var out = [[Float]](repeating: [Float](repeating: 0, count: rows * n), count: 2)
                for (p, o) in [(path, 0), (KernelPath.portable, 1)] {
                    x.withUnsafeBufferPointer { xp in out[o].withUnsafeMutableBufferPointer { yp in
                        WeightOnlyGemm.run(xp.baseAddress!, m: rows, pw, yp.baseAddress!, bias: nil, threads: 1, path: p)
                    } }
                }
                for i in 0..<(rows * n) where !(abs(out[0][i] - out[1][i]) <= 1e-3) { return false }
            }
        }
        return true
    }

    /// The path kernels use now. Defaults to `best`, or `QWB_KERNELS` when set. Tests may assign
    /// it (assigning a path that is not available traps).
    nonisolated(unsafe) public static var active: KernelPath = {
        if let s = ProcessInfo.processInfo.environment["QWB_KERNELS"], let p = KernelPath(rawValue: s.lowercased()) {
            return available.contains(p) ? p : best   // a forced path skips the self-test
        }
        return best
    }() {
        didSet { precondition(available.contains(active), "kernel path \(active) is not available on this CPU") }
    }

    /// Runs `body` with `active` temporarily set to `path` (not thread-safe; for tests and benchmarks).
    public static func with<R>(_ path: KernelPath, _ body: () throws -> R) rethrows -> R {
        let saved = active
        active = path
        defer { active = saved }
        return try body()
    }

    /// One line for logs: active path and what the CPU offers.
    public static var summary: String {
        "kernels: \(active.rawValue) (available: \(available.map(\.rawValue).joined(separator: ", "))"
            + (rejected.isEmpty ? ")" : "; failed self-test: \(rejected.map(\.rawValue).joined(separator: ", ")))")
    }
}
