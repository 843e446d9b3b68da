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
    /// Timing rounds (the models interleaved in each); rates are the median round's.
    public var rounds = 1
    /// Profile passes (the models interleaved in each); each model's profile is its median-wall pass.
    public var profilePasses: Int?
    public var f32PeakGFLOPS: Double?
    public var intPeakGOPS: Double?
    /// The median read bandwidth measured in the run (before the rounds and at each later round):
    /// the decode bounds use it.
    public var readBandwidthGBs = 0.0
    /// Lowest and highest of those measurements.
    public var readBandwidthRangeGBs: [Double] = []
    /// GEMM rates on the model's shapes: the best of the rounds' measurements.
    public var gemmRates: [MachineLimits.GemmRate] = []
    public var rows: [Row] = []
    public var peakResidentBytes = 0

    /// Weight bytes the model holds in memory now (every copy: f32, Int32 codes, packed, dequantized).
    public struct WeightBytes: Codable, Sendable {
        public var blockLinears = 0, embedding = 0, lmHead = 0
        /// Of `blockLinears`: the f32 weights alone.
        public var blockLinearsFloat = 0
        /// What the block linears take as f32 (4 bytes × in × out): the reference for `blockLinears`.
        public var blockLinearsF32Equivalent = 0
        /// Of `blockLinears`: the packed integer weights.
        public var blockLinearsPacked = 0

        public init(_ m: DecoderModel) {
            for l in m.allSites.flatMap(\.linears) {
                let r = l.residentBytes
                blockLinears += r.float + r.codes + r.packed + r.dequantized
                blockLinearsFloat += r.float
                blockLinearsPacked += r.packed
                blockLinearsF32Equivalent += 4 * l.inFeatures * l.outFeatures
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

    /// A model whose fastest round is more than this fraction faster than its slowest is flagged.
    public static let noisySpread = 0.25

    /// The models whose prefill or decode rounds spread more than `noisySpread` (fastest ÷
    /// slowest), with the larger spread: a busy host, not the code, moved their figures.
    public func noisyRows() -> [(name: String, what: String, spread: Double)] {
        rows.compactMap { r in
            func spread(_ v: [Double]) -> Double { v.count == 2 && v[0] > 0 ? v[1] / v[0] : 1 }
            let (p, d) = (spread(r.prefillRange), spread(r.decodeRange))
            guard max(p, d) > 1 + Self.noisySpread else { return nil }
            return p >= d ? (r.name, "prefill", p) : (r.name, "decode", d)
        }
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
        /// Slowest and fastest round's prefill rate (tokens/s).
        public var prefillRange: [Double] = []
        public var decodeTokensPerSecond = 0.0
        /// Slowest and fastest round's decode rate (tokens/s).
        public var decodeRange: [Double] = []
        public var decodeRatioToFloat = 0.0
        public var decodeBoundTokensPerSecond = 0.0
        public var decodeFractionOfBound = 0.0
        public var bytesReadPerToken = 0
        public var kvCacheBytes = 0
        public var weightBytes: WeightBytes?
        public var residentBytes = 0
        public var profile: [ProfileEntry] = []
        public var profileWallSecondsPerWindow: Double?
        /// Decode's components, seconds per generated token (`seconds` of each entry is per token).
        public var decodeProfile: [ProfileEntry] = []
        public var decodeProfileWallSecondsPerToken: Double?

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
            + "integer dot peak \(intPeakGOPS.map { f($0) } ?? "–") GOP/s, memory read bandwidth \(f(readBandwidthGBs, 2)) GB/s"
            + (readBandwidthRangeGBs.count == 2 ? " (median of the rounds' measurements, \(f(readBandwidthRangeGBs[0], 1))–\(f(readBandwidthRangeGBs[1], 1)))" : "") + "\n"
        if rounds > 1 { out += "GEMM rates: the best of the \(rounds) rounds (each round measures them again)\n" }
        var rates = Table(["GEMM", "m", "k", "n", "GFLOP/s"])
        for r in gemmRates { rates.add([r.kind, String(r.shape.m), String(r.shape.k), String(r.shape.n), f(r.rate)]) }
        out += rates.render() + "\n"
        out += "prefill: \(prefillWindows) windows of \(windowLength) tokens, full forward with lm_head, no scoring; "
            + "decode: \(promptTokens)-token prompt, then \(decodeTokens) tokens one at a time with the KV cache (greedy); "
            + "\(rounds) round(s), every model once per round, rates of the median round (range: slowest–fastest round)\n"
        var t = Table(["variant", "scheme", "prefill tok/s", "range", "× FP", "bound tok/s", "of bound", "int FLOPs",
                       "decode tok/s", "range", "× FP", "bound tok/s", "of bound", "MB read/token", "weights MB (blocks/emb/head)", "blocks ÷ f32", "RSS MB"])
        for r in rows {
            let w = r.weightBytes.map { "\(mb($0.blockLinears)) / \(mb($0.embedding)) / \(mb($0.lmHead))" } ?? "–"
            let ratio = r.weightBytes.map { f(Double($0.blockLinears) / Double(max(1, $0.blockLinearsF32Equivalent)), 2) } ?? "–"
            func range(_ v: [Double], _ digits: Int) -> String { v.count == 2 ? f(v[0], digits) + "–" + f(v[1], digits) : "–" }
            t.add([r.name, r.scheme, f(r.prefillTokensPerSecond), range(r.prefillRange, 1), f(r.prefillRatioToFloat, 2), f(r.prefillBoundTokensPerSecond),
                   f(100 * r.prefillFractionOfBound, 0) + "%", f(100 * r.integerFLOPsShare, 0) + "%",
                   f(r.decodeTokensPerSecond, 2), range(r.decodeRange, 1), f(r.decodeRatioToFloat, 2), f(r.decodeBoundTokensPerSecond, 2),
                   f(100 * r.decodeFractionOfBound, 0) + "%", mb(r.bytesReadPerToken), w, ratio, mb(r.residentBytes)])
        }
        out += t.render() + "\n"
        let noisy = noisyRows()
        if !noisy.isEmpty {
            out += "warning: the host was not quiet: the fastest round beat the slowest by more than "
                + "\(f(100 * ModelBenchmarkReport.noisySpread, 0))% for "
                + noisy.map { "\($0.name) (\($0.what) \(f($0.spread, 2))×)" }.joined(separator: ", ")
                + "; ratios and fractions of bound from this run carry that noise (more --rounds, or a quieter machine)\n"
        }
        out += "bounds: prefill = the forward's FLOPs (causal attention counted) at the GEMM rates above, integer sites at the integer rate; "
            + "decode = (weight bytes + online transforms' matrices read per token + KV cache at the mean context) / read bandwidth. "
            + "Weights MB counts every copy held (f32, Int32 codes, packed, dequantized); variants keep only the packed codes where they run on the integer or weight-only GEMM. Peak RSS \(mb(peakResidentBytes)) MB.\n"
        let profiled = rows.filter { !$0.profile.isEmpty }
        if !profiled.isEmpty {
            let passes = (profilePasses ?? 1) > 1 ? " (each model's median pass of \(profilePasses!), the models interleaved)" : ""
            out += "\nprofile\(passes): one window's prefill forward plus the evaluation's scoring (log-softmax, NLL, KL against FP)\n"
                + ModelBenchmarkReport.profileTable(profiled, unit: "ms per window", entries: \.profile, wall: \.profileWallSecondsPerWindow) + "\n"
            let decoded = profiled.filter { !$0.decodeProfile.isEmpty }
            if !decoded.isEmpty {
                out += "\nprofile\(passes): decode, one generated token after the \(promptTokens)-token prompt\n"
                    + ModelBenchmarkReport.profileTable(decoded, unit: "ms per token", entries: \.decodeProfile,
                                                        wall: \.decodeProfileWallSecondsPerToken) + "\n"
            }
            for r in profiled {
                guard let bound = r.onlineTransformBoundSeconds, bound > 0,
                      let online = r.profile.first(where: { $0.component == "online transforms" }) else { continue }
                out += "\(r.name): online transforms \(f(online.seconds * 1e3)) ms per window, "
                    + "\(f(online.seconds / bound, 2))× the time their FLOPs take at the f32 GEMM rate\n"
            }
        }
        return out
    }

    /// Components (rows, by total time over the variants) × variants: time and share of the wall.
    static func profileTable(_ rows: [Row], unit: String, entries: KeyPath<Row, [ProfileEntry]>,
                             wall: KeyPath<Row, Double?>) -> String {
        func f(_ x: Double, _ d: Int = 1) -> String { String(format: "%.\(d)f", x) }
        let components = Set(rows.flatMap { $0[keyPath: entries].map(\.component) })
        func total(_ c: String) -> Double { rows.reduce(0.0) { $0 + ($1[keyPath: entries].first { $0.component == c }?.seconds ?? 0) } }
        var p = Table(["component (\(unit), share)"] + rows.map(\.name))
        for comp in components.sorted(by: { total($0) > total($1) }) {
            p.add([comp] + rows.map { r in
                guard let e = r[keyPath: entries].first(where: { $0.component == comp }), let w = r[keyPath: wall] else { return "–" }
                return "\(f(e.seconds * 1e3, 2)) (\(f(100 * e.seconds / w, 1))%)"
            })
        }
        p.add(["wall"] + rows.map { r in r[keyPath: wall].map { f($0 * 1e3, 2) } ?? "–" })
        return p.render()
    }
}
