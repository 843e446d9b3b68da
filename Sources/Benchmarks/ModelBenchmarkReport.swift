import Foundation
import QuantCore
import QuantKernels
import Reporting

/// The figures of one `bench model` run (written as JSON with `--json`).
public struct ModelBenchmarkReport: Codable, Sendable {
    public var threads: Int
    public var kernelPath: String
    public var cpu: String
    public var model: String
    public var windowLength: Int
    public var prefillWindows: Int
    public var promptTokens: Int
    public var decodeTokens: Int
    public var f32PeakGFLOPS: Double?
    public var intPeakGOPS: Double?
    public var readBandwidthGBs = 0.0
    public var gemmRates: [MachineLimits.GemmRate] = []
    public var rows: [Row] = []
    public var peakResidentBytes = 0

    /// Weight bytes the model holds in memory now (every copy: f32, Int32 codes, packed, dequantized).
    public struct WeightBytes: Codable, Sendable {
        public var blockLinears = 0, embedding = 0, lmHead = 0
        /// Of `blockLinears`: the f32 weights alone (what an f32 model holds).
        public var blockLinearsFloat = 0
        /// Of `blockLinears`: the packed integer weights.
        public var blockLinearsPacked = 0

        public init(_ m: DecoderModel) {
            for l in m.allSites.flatMap(\.linears) {
                let r = l.residentBytes
                blockLinears += r.float + r.codes + r.packed + r.dequantized
                blockLinearsFloat += r.float
                blockLinearsPacked += r.packed
            }
            embedding = 4 * m.embedding.data.count
            let h = m.lmHead.residentBytes
            lmHead = h.float + h.codes + h.packed + h.dequantized
        }
    }

    public struct ProfileEntry: Codable, Sendable {
        public var component: String
        /// Per window.
        public var seconds: Double
    }

    public struct Row: Codable, Sendable {
        public var name: String
        public var scheme: String
        public var prefillTokensPerSecond = 0.0
        public var prefillRatioToFloat = 0.0
        public var prefillBoundTokensPerSecond = 0.0
        public var prefillFractionOfBound = 0.0
        public var prefillFLOPsPerToken = 0.0
        public var integerFLOPsShare = 0.0
        /// Seconds per window the online transforms would take at the f32 GEMM rate.
        public var onlineTransformBoundSeconds: Double?
        public var decodeTokensPerSecond = 0.0
        public var decodeRatioToFloat = 0.0
        public var decodeBoundTokensPerSecond = 0.0
        public var decodeFractionOfBound = 0.0
        public var bytesReadPerToken = 0
        public var kvCacheBytes = 0
        public var weightBytes: WeightBytes?
        public var residentBytes = 0
        public var profile: [ProfileEntry] = []
        public var profileWallSecondsPerWindow: Double?

        public init(name: String, scheme: String) { self.name = name; self.scheme = scheme }
    }

    public func json() throws -> Data {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try e.encode(self)
    }

    public var text: String {
        func f(_ x: Double, _ d: Int = 1) -> String { String(format: "%.\(d)f", x) }
        func mb(_ b: Int) -> String { String(format: "%.1f", Double(b) / 1e6) }
        var out = "bench model — \(model)\n"
        out += "\(cpu); \(threads) thread(s)\n"
        out += "machine limits measured in this run: f32 FMA peak \(f32PeakGFLOPS.map { f($0) } ?? "–") GFLOP/s, "
            + "integer dot peak \(intPeakGOPS.map { f($0) } ?? "–") GOP/s, memory read bandwidth \(f(readBandwidthGBs, 2)) GB/s\n"
        var rates = Table(["GEMM", "m", "k", "n", "GFLOP/s"])
        for r in gemmRates { rates.add([r.kind, String(r.shape.m), String(r.shape.k), String(r.shape.n), f(r.rate)]) }
        out += rates.render() + "\n"
        out += "prefill: \(prefillWindows) windows of \(windowLength) tokens, full forward with lm_head, no scoring; "
            + "decode: \(promptTokens)-token prompt, then \(decodeTokens) tokens one at a time with the KV cache (greedy)\n"
        var t = Table(["variant", "scheme", "prefill tok/s", "× FP", "bound tok/s", "of bound", "int FLOPs",
                       "decode tok/s", "× FP", "bound tok/s", "of bound", "MB read/token", "weights MB (blocks/emb/head)", "RSS MB"])
        for r in rows {
            let w = r.weightBytes.map { "\(mb($0.blockLinears)) / \(mb($0.embedding)) / \(mb($0.lmHead))" } ?? "–"
            t.add([r.name, r.scheme, f(r.prefillTokensPerSecond), f(r.prefillRatioToFloat, 2), f(r.prefillBoundTokensPerSecond),
                   f(100 * r.prefillFractionOfBound, 0) + "%", f(100 * r.integerFLOPsShare, 0) + "%",
                   f(r.decodeTokensPerSecond, 2), f(r.decodeRatioToFloat, 2), f(r.decodeBoundTokensPerSecond, 2),
                   f(100 * r.decodeFractionOfBound, 0) + "%", mb(r.bytesReadPerToken), w, mb(r.residentBytes)])
        }
        out += t.render() + "\n"
        out += "bounds: prefill = the forward's FLOPs (causal attention counted) at the GEMM rates above, integer sites at the integer rate; "
            + "decode = (weight bytes read per token + KV cache at the mean context) / read bandwidth. "
            + "Weights MB counts every copy held (f32, Int32 codes, packed, dequantized). Peak RSS \(mb(peakResidentBytes)) MB.\n"
        let profiled = rows.filter { !$0.profile.isEmpty }
        if !profiled.isEmpty {
            let components = Set(profiled.flatMap { $0.profile.map(\.component) })
            let order = components.sorted { a, b in
                let sa = profiled.reduce(0.0) { $0 + ($1.profile.first { $0.component == a }?.seconds ?? 0) }
                let sb = profiled.reduce(0.0) { $0 + ($1.profile.first { $0.component == b }?.seconds ?? 0) }
                return sa > sb
            }
            var p = Table(["component (ms per window, share)"] + profiled.map(\.name))
            for comp in order {
                p.add([comp] + profiled.map { r in
                    guard let e = r.profile.first(where: { $0.component == comp }), let wall = r.profileWallSecondsPerWindow else { return "–" }
                    return "\(f(e.seconds * 1e3)) (\(f(100 * e.seconds / wall, 1))%)"
                })
            }
            p.add(["wall"] + profiled.map { r in r.profileWallSecondsPerWindow.map { f($0 * 1e3) } ?? "–" })
            out += "\nprofile: one window's prefill forward plus the evaluation's scoring (log-softmax, NLL, KL against FP)\n" + p.render() + "\n"
            for r in profiled {
                guard let bound = r.onlineTransformBoundSeconds, bound > 0,
                      let online = r.profile.first(where: { $0.component == "online transforms" }) else { continue }
                out += "\(r.name): online transforms \(f(online.seconds * 1e3)) ms per window, "
                    + "\(f(online.seconds / bound, 2))× the time their FLOPs take at the f32 GEMM rate\n"
            }
        }
        return out
    }
}
