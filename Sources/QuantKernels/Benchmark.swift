import Foundation
#if arch(x86_64)
import QuantKernelsAVX2
import QuantKernelsAVX512
#endif

/// One measured kernel at one shape and thread count.
public struct KernelBenchmarkRow: Codable, Sendable {
    public var kernel: String
    public var m: Int, k: Int, n: Int, threads: Int
    /// GFLOP/s (f32) or GOP/s (integer; 2 ops per multiply-add).
    public var rate: Double
    /// `rate` / the practical peak of the same instruction class at the same thread count.
    public var fractionOfPeak: Double?
    /// `rate` / own f32 rate at the same shape and threads (integer kernels).
    public var ratioToF32: Double?
    /// f32 only: numpy/OpenBLAS SGEMM GFLOP/s at the same shape and threads, when numpy is present.
    public var openBLAS: Double?
}

/// A row-wise pass (Hadamard, quantization) over a rows×n activation vs one read+write pass over
/// the same bytes.
public struct PassBenchmarkRow: Codable, Sendable {
    public var kernel: String
    public var rows: Int, n: Int, threads: Int
    public var milliseconds: Double, copyMilliseconds: Double
    public var ratio: Double { milliseconds / copyMilliseconds }
}

public struct KernelBenchmarkReport: Codable, Sendable {
    public var path: String
    public var quick: Bool
    /// Practical peaks per thread count: register-only FMA loop (GFLOP/s), integer dot loop (GOP/s).
    public var f32Peak: [Int: Double] = [:], intPeak: [Int: Double] = [:]
    public var intPeakInstruction: String = ""
    public var rows: [KernelBenchmarkRow] = []
    public var passes: [PassBenchmarkRow] = []
    public var notes: [String] = []

    public func json() throws -> Data {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try e.encode(self)
    }

    /// Plain-text table.
    public var text: String {
        func f(_ v: Double?, _ d: Int = 1) -> String { v.map { String(format: "%.\(d)f", $0) } ?? "–" }
        func pad(_ s: String, _ w: Int) -> String { s.count >= w ? s : String(repeating: " ", count: w - s.count) + s }
        var out = "quantwb kernel benchmark — path \(path)\(quick ? " (quick)" : "")\n"
        for t in f32Peak.keys.sorted() {
            out += "peak t=\(t): f32 FMA loop \(f(f32Peak[t])) GFLOP/s, int loop (\(intPeakInstruction)) \(f(intPeak[t])) GOP/s\n"
        }
        out += ["kernel", "M", "K", "N", "thr", "G(FL)OP/s", "of peak", "×f32", "OpenBLAS", "ours/OB"]
            .enumerated().map { pad($1, [8, 6, 6, 7, 4, 10, 8, 6, 9, 8][$0]) }.joined(separator: " ") + "\n"
        for r in rows {
            let cells = [r.kernel, "\(r.m)", "\(r.k)", "\(r.n)", "\(r.threads)", f(r.rate), r.fractionOfPeak.map { String(format: "%.0f%%", 100 * $0) } ?? "–",
                         f(r.ratioToF32, 2), f(r.openBLAS), r.openBLAS.map { String(format: "%.2f", r.rate / $0) } ?? "–"]
            out += cells.enumerated().map { pad($1, [8, 6, 6, 7, 4, 10, 8, 6, 9, 8][$0]) }.joined(separator: " ") + "\n"
        }
        for h in passes {
            out += "\(h.kernel) \(h.rows)×\(h.n) t=\(h.threads): \(f(h.milliseconds, 2)) ms vs read+write pass \(f(h.copyMilliseconds, 2)) ms → \(f(h.ratio, 2))×\n"
        }
        for n in notes { out += "note: \(n)\n" }
        return out
    }
}

/// Kernel throughput on LLM-like shapes (M tokens × K in × N out), for `workbench bench kernels`.
public enum KernelBenchmark {
    public static let shapesKN = [(576, 576), (576, 1536), (1536, 576), (576, 49152)]
    public static let tokens = [1, 512, 2048]

    /// Seconds of the fastest of several runs (at least one, until `budget` seconds are spent).
    static func time(budget: Double, _ body: () -> Void) -> Double {
        body()                                           // warm-up (page faults, caches)
        var best = Double.infinity, spent = 0.0, reps = 0
        while reps < 2 || (spent < budget && reps < 50) {
            let t0 = DispatchTime.now().uptimeNanoseconds
            body()
            let dt = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
            best = min(best, dt); spent += dt; reps += 1
            if dt > budget { break }
        }
        return best
    }

    /// Runs every kernel (or only those named in `only`: "f32", "int", "weightonly", "hadamard", "openblas") on the
    /// standard shapes for each thread count in `threads`. `quick` uses fewer shapes and repetitions.
    public static func run(threads: [Int] = [1, 2], quick: Bool = false, only: Set<String>? = nil) -> KernelBenchmarkReport {
        func wants(_ s: String) -> Bool { only?.contains(s) ?? true }
        let path = KernelDispatch.active
        var report = KernelBenchmarkReport(path: path.rawValue, quick: quick)
        let budget = quick ? 0.05 : 0.25
        (report.f32Peak, report.intPeak, report.intPeakInstruction) = peaks(threads: threads, quick: quick)
        let ms = quick ? [1, 512] : tokens
        let kn = quick ? Array(shapesKN.prefix(3)) : shapesKN
        var rng: UInt64 = 0x1234_5678
        func rand() -> Float { rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17; return Float(Int64(rng >> 40) - (1 << 23)) / Float(1 << 23) }
        let maxM = ms.max()!, maxK = kn.map(\.0).max()!, maxN = kn.map(\.1).max()!
        let x = (0..<(maxM * maxK)).map { _ in rand() }
        var y = [Float](repeating: 0, count: maxM * maxN)
        let g8 = QuantGrid(bits: 8, symmetric: true), g4 = QuantGrid(bits: 4, symmetric: true)
        let g4w = QuantGrid(bits: 4, symmetric: false)
        for (k, n) in kn {
            let w = (0..<(n * k)).map { _ in rand() }
            let q8 = w.withUnsafeBufferPointer { Quantizer.quantize($0.baseAddress!, rows: n, cols: k, groupSize: k, grid: g8) }
            let p8 = IntGemm.packWeights(codes: q8.codes, scales: q8.scales, zeros: q8.zeros, n: n, k: k, groupSize: k, grid: g8)
            let q4 = w.withUnsafeBufferPointer { Quantizer.quantize($0.baseAddress!, rows: n, cols: k, groupSize: k, grid: g4) }
            let p4 = IntGemm.packWeights(codes: q4.codes, scales: q4.scales, zeros: q4.zeros, n: n, k: k, groupSize: k, grid: g4)
            // Weight-only W4A16 as usually deployed: asymmetric groups of 32 (divides every K here).
            let q4g = w.withUnsafeBufferPointer { Quantizer.quantize($0.baseAddress!, rows: n, cols: k, groupSize: 32, grid: g4w) }
            let p4g = IntGemm.packWeights(codes: q4g.codes, scales: q4g.scales, zeros: q4g.zeros, n: n, k: k, groupSize: 32, grid: g4w)
            for m in ms {
                let a8 = x.withUnsafeBufferPointer { IntGemm.quantizeActivations($0.baseAddress!, m: m, k: k, grid: g8) }
                let a4 = x.withUnsafeBufferPointer { IntGemm.quantizeActivations($0.baseAddress!, m: m, k: k, grid: g4) }
                let ops = 2.0 * Double(m) * Double(n) * Double(k)
                let b = m * n * k > 1 << 30 ? 0 : budget
                // Weight-only rows at decode (M = 1) and prefill (M = 512) sizes.
                let weightOnly = wants("weightonly") && (m == 1 || m == 512)
                for t in threads {
                    if !wants("f32") && !wants("int") && !weightOnly { continue }
                    let sf = x.withUnsafeBufferPointer { xp in w.withUnsafeBufferPointer { wp in y.withUnsafeMutableBufferPointer { yp in
                        time(budget: b) { Gemm.multiply(xp.baseAddress!, wp.baseAddress!, into: yp.baseAddress!, m: m, n: n, k: k, threads: t) }
                    } } }
                    let rf = ops / sf / 1e9
                    let pf = report.f32Peak[t], pi = report.intPeak[t]
                    report.rows.append(KernelBenchmarkRow(kernel: "f32", m: m, k: k, n: n, threads: t, rate: rf,
                                                          fractionOfPeak: pf.map { rf / $0 }))
                    if wants("int") {
                        let s8 = y.withUnsafeMutableBufferPointer { yp in time(budget: b) { IntGemm.multiply(a8, p8, into: yp.baseAddress!, threads: t) } }
                        let s4 = y.withUnsafeMutableBufferPointer { yp in time(budget: b) { IntGemm.multiply(a4, p4, into: yp.baseAddress!, threads: t) } }
                        let r8 = ops / s8 / 1e9, r4 = ops / s4 / 1e9
                        report.rows.append(KernelBenchmarkRow(kernel: "W8A8", m: m, k: k, n: n, threads: t, rate: r8,
                                                              fractionOfPeak: pi.map { r8 / $0 }, ratioToF32: r8 / rf))
                        report.rows.append(KernelBenchmarkRow(kernel: "W4A4", m: m, k: k, n: n, threads: t, rate: r4,
                                                              fractionOfPeak: pi.map { r4 / $0 }, ratioToF32: r4 / rf))
                    }
                    if weightOnly {
                        // f32 activations × integer weights: rates against the f32 peak.
                        for (name, pw) in [("W8A16", p8), ("W4A16", p4), ("W4A16g32", p4g)] {
                            let s = x.withUnsafeBufferPointer { xp in y.withUnsafeMutableBufferPointer { yp in
                                time(budget: b) { WeightOnlyGemm.multiply(xp.baseAddress!, m: m, pw, into: yp.baseAddress!, threads: t) }
                            } }
                            let r = ops / s / 1e9
                            report.rows.append(KernelBenchmarkRow(kernel: name, m: m, k: k, n: n, threads: t, rate: r,
                                                                  fractionOfPeak: pf.map { r / $0 }, ratioToF32: r / rf))
                        }
                    }
                }
            }
        }
        // Hadamard on a 2048×1536 activation (K = 12 Paley × 128 WHT) vs a read+write pass.
        let hr = quick ? 512 : 2048, hn = 1536
        if wants("hadamard"), let h = try? HadamardTransform(size: hn) {
            var a = (0..<(hr * hn)).map { _ in rand() }
            var dst = [Float](repeating: 0, count: hr * hn)
            let g4 = QuantGrid(bits: 4, symmetric: false)
            let kernels: [(String, (UnsafeMutablePointer<Float>, Int) -> Void)] = [
                ("hadamard [\(h.construction)]", { h.apply($0, rows: hr, threads: $1) }),
                ("hadamard+fakequant int4 g128", { h.apply($0, rows: hr, threads: $1, thenFakeQuantize: (groupSize: 128, grid: g4)) }),
                ("fakequant int4 g128", { Quantizer.fakeQuantize($0, rows: hr, cols: hn, groupSize: 128, grid: g4, threads: $1) }),
                ("quantize act int8/token", { _ = IntGemm.quantizeActivations(UnsafePointer($0), m: hr, k: hn, grid: g8, threads: $1) }),
            ]
            for t in threads {
                let sc = a.withUnsafeBufferPointer { ap in dst.withUnsafeMutableBufferPointer { dp in
                    time(budget: budget) {
                        let src = ap.baseAddress!, d = dp.baseAddress!
                        Parallel.forEach(t, threads: t) { c in
                            let lo = c * hr * hn / t, hi = (c + 1) * hr * hn / t
                            (d + lo).update(from: src + lo, count: hi - lo)
                        }
                    }
                } }
                for (name, body) in kernels {
                    let sh = a.withUnsafeMutableBufferPointer { ap in time(budget: budget) { body(ap.baseAddress!, t) } }
                    report.passes.append(PassBenchmarkRow(kernel: name, rows: hr, n: hn, threads: t,
                                                          milliseconds: sh * 1e3, copyMilliseconds: sc * 1e3))
                }
            }
        }
        if wants("openblas") { addOpenBLAS(&report, threads: threads, ms: ms, kn: kn, quick: quick) }
        for t in threads where t > 1 {
            if let p1 = report.f32Peak[1], let pt = report.f32Peak[t], pt < 0.75 * Double(t) * p1 {
                report.notes.append("the \(t)-thread peak loop reached only \(String(format: "%.2f", pt / p1))× the 1-thread one: other processes share the cores, so \(t)-thread rows are not representative")
            }
        }
        if path != .vnni {
            report.notes.append("no AVX-512 VNNI on this CPU: integer kernels use the \(path.rawValue) path; the int peak is the \(report.intPeakInstruction) loop")
        }
        if wants("int") {
            report.notes.append("integer rows time the GEMM on pre-quantized activations (per-token quantization not included)")
        }
        if wants("weightonly") {
            report.notes.append("weight-only rows (W8A16, W4A16: per channel, symmetric; W4A16g32: asymmetric groups of 32) take f32 activations and IntGemm's packed weights; of peak = of the f32 FMA peak")
        }
        return report
    }

    /// Practical peaks of the active path per thread count (every thread runs the register-only
    /// loop): f32 FMA GFLOP/s, integer dot GOP/s, and the integer instruction's name.
    public static func peaks(threads: [Int], quick: Bool = false) -> (f32: [Int: Double], int: [Int: Double], instruction: String) {
        var f32: [Int: Double] = [:], int: [Int: Double] = [:]
        let (fl, io, name) = peakLoops(KernelDispatch.active)
        for t in threads {
            let iters = quick ? 1_000_000 : 2_000_000
            if let fl {
                let s = time(budget: 0.3) { Parallel.forEach(t, threads: t) { _ in _ = fl(iters) } }
                f32[t] = Double(t * iters) * fl(0).perIter / s / 1e9
            }
            if let io {
                let s = time(budget: 0.3) { Parallel.forEach(t, threads: t) { _ in _ = io(iters) } }
                int[t] = Double(t * iters) * io(0).perIter / s / 1e9
            }
        }
        return (f32, int, name)
    }

    /// (f32 loop, int loop, int instruction name); each loop returns (result, ops per iteration).
    typealias PeakLoop = (Int) -> (value: Double, perIter: Double)

    static func peakLoops(_ path: KernelPath) -> (PeakLoop?, PeakLoop?, String) {
        #if arch(x86_64)
        switch path {
        case .vnni:
            // Ops count a multiply and an add each, as the GEMM rows do (2·M·N·K): 12 FMAs × 16 lanes × 2;
            // 12 vpdpbusd × 64 u8·s8 products × 2.
            return ({ (Double(AVX512F32.peakLoop($0)), 384) }, { (Double(AVX512Int.peakLoop($0)), 1536) }, "vpdpbusd")
        case .avx2:
            // 12 FMAs × 8 lanes × 2; 8 vpmaddubsw × 32 u8·s8 products × 2.
            return ({ (Double(AVX2F32.peakLoop($0)), 192) }, { (Double(AVX2Int.peakLoop($0)), 512) }, "vpmaddubsw+vpaddw")
        case .portable: break
        }
        #endif
        return (nil, nil, "none")
    }

    /// Runs numpy (OpenBLAS) SGEMM `x @ w.T` on the same shapes in a subprocess per thread count.
    static func addOpenBLAS(_ report: inout KernelBenchmarkReport, threads: [Int], ms: [Int], kn: [(Int, Int)], quick: Bool) {
        let shapes = kn.flatMap { (k, n) in ms.map { "(\($0),\(k),\(n))" } }.joined(separator: ",")
        let script = """
        import numpy as np, time, sys
        rng = np.random.default_rng(0)
        for (m, k, n) in [\(shapes)]:
            x = rng.standard_normal((m, k), dtype=np.float32); w = rng.standard_normal((n, k), dtype=np.float32)
            y = x @ w.T; best = 1e9; spent = 0.0; reps = 0
            while reps < 2 or (spent < \(quick ? 0.05 : 0.25) and reps < 50):
                t0 = time.perf_counter(); y = x @ w.T; dt = time.perf_counter() - t0
                best = min(best, dt); spent += dt; reps += 1
                if dt > 0.25: break
            print(m, k, n, 2.0 * m * n * k / best / 1e9, flush=True)
        """
        for t in threads {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            p.arguments = ["python3", "-c", script]
            var env = ProcessInfo.processInfo.environment
            for key in ["OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"] { env[key] = "\(t)" }
            p.environment = env
            let pipe = Pipe()
            p.standardOutput = pipe
            p.standardError = FileHandle.nullDevice
            do { try p.run() } catch { report.notes.append("numpy/OpenBLAS comparison skipped: \(error)"); return }
            let data = pipe.fileHandleForReading.readDataToEndOfFile()
            p.waitUntilExit()
            guard p.terminationStatus == 0 else { report.notes.append("numpy/OpenBLAS comparison skipped (python3 -c 'import numpy' failed)"); return }
            for line in String(decoding: data, as: UTF8.self).split(separator: "\n") {
                let f = line.split(separator: " ")
                guard f.count == 4, let m = Int(f[0]), let k = Int(f[1]), let n = Int(f[2]), let r = Double(f[3]) else { continue }
                if let i = report.rows.firstIndex(where: { $0.kernel == "f32" && $0.m == m && $0.k == k && $0.n == n && $0.threads == t }) {
                    report.rows[i].openBLAS = r
                }
            }
        }
    }
}
