import Foundation
import QuantCore
import QuantKernels

/// One linear layer's training products — forward `Y = X·Wᵀ` and both gradients `∂X = G·W`,
/// `∂W = Gᵀ·X` — timed for the f32 layer (`FloatLinear`) and an INT4 layer in the same run.
public struct TrainingBenchmarkRow: Codable, Sendable {
    /// `hq+bs+lss (sample)`, `hq+bs+lss (skip_zero)`, `int8 rtn`, …
    public var layer: String
    /// `iid` (every token's gradient alike) or `token-scaled` (log-normal per-token gradient scale).
    public var gradient: String
    public var tokens: Int, inFeatures: Int, outFeatures: Int, threads: Int
    /// Best forward + backward time (ms) of the f32 layer and of this layer.
    public var f32Milliseconds: Double, milliseconds: Double
    /// The f32 layer's three GEMMs alone, on operands transposed beforehand (its lower bound).
    public var f32GemmMilliseconds: Double
    /// f32 GEMMs alone / this layer's time.
    public var speedupOverGemms: Double { f32GemmMilliseconds / milliseconds }
    /// f32 time / this layer's time (> 1: faster than f32).
    public var speedup: Double { f32Milliseconds / milliseconds }
    /// The best run's breakdown (ms): integer GEMMs, quantization (Hadamard, LSQ, splitting, sampling,
    /// transposes, packing), f32 GEMMs (rows with p < 1), the rest (copies, scatter, allocation).
    public var integerGemm: Double, quantize: Double, floatGemm: Double, other: Double
    /// Fractions of the 4N split-row decisions (2N rows for each gradient GEMM) on each path.
    public var integerRowFraction: Double, floatRowFraction: Double
}

public struct TrainingBenchmarkReport: Codable, Sendable {
    public var path: String
    public var f32Peak: [Int: Double] = [:], intPeak: [Int: Double] = [:]
    public var intPeakInstruction = ""
    public var rows: [TrainingBenchmarkRow] = []
    public var notes: [String] = []

    public func json() throws -> Data {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try e.encode(self)
    }

    public var text: String {
        func f(_ v: Double, _ d: Int = 1) -> String { String(format: "%.\(d)f", v) }
        func pad(_ s: String, _ w: Int) -> String { s.count >= w ? s : String(repeating: " ", count: w - s.count) + s }
        var out = "quantwb training-layer benchmark — path \(path); forward + ∂X + ∂W, quantization included\n"
        for t in f32Peak.keys.sorted() {
            out += "peak t=\(t): f32 FMA loop \(f(f32Peak[t] ?? 0)) GFLOP/s, int loop (\(intPeakInstruction)) \(f(intPeak[t] ?? 0)) GOP/s\n"
        }
        let widths = [22, 13, 5, 10, 4, 8, 8, 8, 7, 7, 8, 8, 8, 8, 10]
        out += ["layer", "gradient", "N", "in×out", "thr", "f32 ms", "(gemms)", "ms", "×f32", "×gemms", "int ms", "quant ms", "f32g ms", "rest ms", "int/f32 rows"]
            .enumerated().map { pad($1, widths[$0]) }.joined(separator: " ") + "\n"
        for r in rows {
            let cells = [r.layer, r.gradient, "\(r.tokens)", "\(r.inFeatures)×\(r.outFeatures)", "\(r.threads)", f(r.f32Milliseconds),
                         f(r.f32GemmMilliseconds), f(r.milliseconds), f(r.speedup, 2), f(r.speedupOverGemms, 2), f(r.integerGemm), f(r.quantize), f(r.floatGemm), f(r.other),
                         "\(Int((100 * r.integerRowFraction).rounded()))/\(Int((100 * r.floatRowFraction).rounded()))%"]
            out += cells.enumerated().map { pad($1, widths[$0]) }.joined(separator: " ") + "\n"
        }
        for n in notes { out += "note: \(n)\n" }
        return out
    }
}

public enum TrainingBenchmark {
    /// (in, out): SmolLM2-135M's MLP shapes (up/gate and down) and a training-model shape.
    public static let shapes = [(576, 1536), (1536, 576), (384, 1536)]

    /// Times every layer kind on every shape at every thread count. `tokens` = batch × sequence length.
    public static func run(threads: [Int] = [1, 2], tokens: Int = 4096, quick: Bool = false,
                           shapes: [(Int, Int)] = TrainingBenchmark.shapes) -> TrainingBenchmarkReport {
        var report = TrainingBenchmarkReport(path: KernelDispatch.active.rawValue)
        (report.f32Peak, report.intPeak, report.intPeakInstruction) = KernelBenchmark.peaks(threads: threads, quick: quick)
        let reps = quick ? 2 : 5
        let layers: [(String, (LinearID, Int, Int) throws -> any TrainingLinear)] = [
            ("hq+bs+lss (sample)", { try HQLinear(id: $0, inFeatures: $1, outFeatures: $2, seed: 1, forward: .hq(blockSize: 32), backward: .bitSplit(.sample)) }),
            ("hq+bs+lss (skip_zero)", { try HQLinear(id: $0, inFeatures: $1, outFeatures: $2, seed: 1, forward: .hq(blockSize: 32), backward: .bitSplit(.skipZero)) }),
        ]
        for (cin, cout) in shapes {
            var rng: UInt64 = 0x2545_F491_4F6C_DD1D
            func normal() -> Float {
                rng = KeyedRandom.mix(rng); let u = max(Double(rng >> 11) / Double(1 << 53), 1e-12)
                rng = KeyedRandom.mix(rng); let v = Double(rng >> 11) / Double(1 << 53)
                return Float((-2 * log(u)).squareRoot() * cos(2 * .pi * v))
            }
            let x = Matrix(rows: tokens, cols: cin, data: (0..<(tokens * cin)).map { _ in normal() })
            let w = Matrix(rows: cout, cols: cin, data: (0..<(cout * cin)).map { _ in normal() * 0.05 })
            let iid = Matrix(rows: tokens, cols: cout, data: (0..<(tokens * cout)).map { _ in normal() * 1e-3 })
            // Per-token scale exp(1.5·z): a few tokens carry most of the gradient, as in training.
            let tokenScale = (0..<tokens).map { _ in Float(exp(1.5 * Double(normal()))) }
            let scaled = Matrix(rows: tokens, cols: cout, data: (0..<(tokens * cout)).map { iid.data[$0] * tokenScale[$0 / cout] })
            for t in threads {
                let saved = Parallel.threadCount
                Parallel.threadCount = t
                defer { Parallel.threadCount = saved }
                let id = LinearID(layer: 0, name: "bench")
                let f32 = FloatLinear(id: id)
                let f32ms = best(reps) { step in _ = f32.forward(x: x, w: w, step: step); _ = f32.backward(g: iid, step: step) }.ms
                let (wT, gT, xT) = (w.transposed, iid.transposed, x.transposed)
                var y = [Float](repeating: 0, count: tokens * max(cin, cout) + cout * cin)
                let gemmMs = best(reps) { _ in
                    y.withUnsafeMutableBufferPointer { yp in
                        let o = yp.baseAddress!
                        Gemm.multiply(x.data, w.data, into: o, m: tokens, n: cout, k: cin)
                        Gemm.multiply(iid.data, wT.data, into: o, m: tokens, n: cin, k: cout)
                        Gemm.multiply(gT.data, xT.data, into: o, m: cout, n: cin, k: tokens)
                    }
                }.ms
                for (gname, g) in [("iid", iid), ("token-scaled", scaled)] {
                    for (name, make) in layers {
                        guard let layer = try? make(id, cin, cout) else { continue }
                        let r = best(reps, layer: layer) { step in _ = layer.forward(x: x, w: w, step: step); _ = layer.backward(g: g, step: step) }
                        let d = r.timing
                        let decisions = Double(4 * tokens)
                        report.rows.append(TrainingBenchmarkRow(
                            layer: name, gradient: gname, tokens: tokens, inFeatures: cin, outFeatures: cout, threads: t,
                            f32Milliseconds: f32ms, milliseconds: r.ms, f32GemmMilliseconds: gemmMs, integerGemm: d.integerGemm * 1e3, quantize: d.quantize * 1e3,
                            floatGemm: d.floatGemm * 1e3, other: r.ms - (d.integerGemm + d.quantize + d.floatGemm) * 1e3,
                            integerRowFraction: Double(d.integerRows) / decisions, floatRowFraction: Double(d.floatRows) / decisions))
                    }
                }
            }
        }
        report.notes.append("f32 layer: the same three products on the shared f32 GEMM (FloatLinear, with its transposes), iid gradient; (gemms): its three GEMMs alone on operands transposed beforehand; rows are the best of \(reps) runs")
        report.notes.append("HQ uses block size 32 (the paper's fixed g); `dynamic` only adds a search on the first step")
        report.notes.append("int/f32 rows: % of the 4N split-row decisions (2N per gradient GEMM) taking the integer / f32 path; the rest are dropped (zero or not drawn)")
        for t in threads where t > 1 {
            if let p1 = report.f32Peak[1], let pt = report.f32Peak[t], pt < 0.75 * Double(t) * p1 {
                report.notes.append("the \(t)-thread peak loop reached only \(String(format: "%.2f", pt / p1))× the 1-thread one: other processes share the cores")
            }
        }
        return report
    }

    /// Fastest of `reps` runs (after a warm-up); with a layer, that run's timing delta.
    static func best(_ reps: Int, layer: (any TrainingLinear)? = nil, _ body: (Int) -> Void) -> (ms: Double, timing: LinearTiming) {
        body(0)
        var bestMs = Double.infinity, bestTiming = LinearTiming()
        for step in 1...reps {
            let before = layer?.timing ?? LinearTiming()
            let t0 = DispatchTime.now()
            body(step)
            let ms = seconds(since: t0) * 1e3
            if ms < bestMs {
                bestMs = ms
                let after = layer?.timing ?? LinearTiming()
                bestTiming = LinearTiming()
                bestTiming.integerGemm = after.integerGemm - before.integerGemm
                bestTiming.quantize = after.quantize - before.quantize
                bestTiming.floatGemm = after.floatGemm - before.floatGemm
                bestTiming.integerRows = after.integerRows - before.integerRows
                bestTiming.floatRows = after.floatRows - before.floatRows
            }
        }
        return (bestMs, bestTiming)
    }
}
