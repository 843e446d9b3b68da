import Foundation
import QuantCore
import Evaluation

/// Scores of one model on the evaluation windows.
struct ScoreSummary: Codable {
    var perplexity: Double
    var perplexityStandardError: Double
    var meanNLL: Double
    var scoredTokens: Int
    /// Paired per-token NLL difference against FP (mean, standard error).
    var deltaNLL: Double
    var deltaNLLStandardError: Double
    var meanKL: Double
    var klStandardError: Double
    var klP99: Double
    var top1Agreement: Double
    var tokensPerSecond: Double
}

struct VariantReport: Codable {
    var name: String
    var scheme: String
    var weights: String
    var activations: String
    var pipeline: [String]
    var sites: [SiteReport]
    var costs: [MethodCost]
    var quantizeSeconds: Double
    var invarianceError: Double
    var log: [String]
    var scores: ScoreSummary?
}

/// Two variants compared on the same tokens: `deltaNLL` = mean NLL(a) − NLL(b) per token, with the
/// standard error of that paired difference. Under two standard errors it is a tie.
struct PairedComparison: Codable {
    var a: String, b: String
    var deltaNLL: Double, standardError: Double
    var verdict: String

    init(a: String, b: String, nllA: [Double], nllB: [Double]) {
        let d = Stats.pairedDifference(nllA, nllB)
        self.a = a; self.b = b; deltaNLL = d.mean; standardError = d.se
        verdict = abs(d.mean) < 2 * d.se ? "tie" : d.mean < 0 ? "\(a) better" : "\(b) better"
    }
}

/// Everything a run measured; rendered as tables on stdout and as JSON with `--json`.
struct RunReport: Codable {
    var recipe: String
    var model: String
    var evaluationText: String
    var protocolDescription: String
    var calibration: String
    var threads: Int
    var float: ScoreSummary?
    var variants: [VariantReport] = []
    var wallSeconds: Double = 0
    /// Every pair of variants (FP excluded: the summary compares each with FP).
    var comparisons: [PairedComparison] = []
    /// Per-token NLLs kept for paired comparisons (not encoded): FP first, then each variant.
    var nll: [[Double]] = []
    /// The scored tokens in the order of `nll`: window index, position of the prediction, and the
    /// predicted (target) token id at position + 1 (not encoded).
    var scoredTokens: [(window: Int, position: Int, target: Int)] = []

    enum CodingKeys: String, CodingKey {
        case recipe, model, evaluationText, protocolDescription, calibration, threads, float, variants, comparisons, wallSeconds
    }

    init(recipe: String, model: String, evaluationText: String, protocolDescription: String, calibration: String, threads: Int) {
        self.recipe = recipe; self.model = model; self.evaluationText = evaluationText
        self.protocolDescription = protocolDescription; self.calibration = calibration; self.threads = threads
    }

    mutating func setScores(_ scores: [TokenScores]) {
        nll = scores.map(\.nll)
        func summary(_ s: TokenScores) -> ScoreSummary {
            let d = Stats.pairedDifference(s.nll, scores[0].nll)
            return ScoreSummary(perplexity: s.perplexity, perplexityStandardError: s.perplexity * s.nllStandardError,
                                meanNLL: s.meanNLL, scoredTokens: s.nll.count, deltaNLL: d.mean, deltaNLLStandardError: d.se,
                                meanKL: s.meanKL, klStandardError: s.klStandardError, klP99: s.klP99,
                                top1Agreement: s.top1Agreement, tokensPerSecond: s.tokensPerSecond)
        }
        float = summary(scores[0])
        for i in variants.indices { variants[i].scores = summary(scores[i + 1]) }
        comparisons = []
        for i in variants.indices { for j in variants.indices where j > i {
            comparisons.append(PairedComparison(a: variants[i].name, b: variants[j].name, nllA: scores[i + 1].nll, nllB: scores[j + 1].nll))
        } }
    }

    /// Every scored token's NLL as tab-separated text, one line per token:
    /// `window  position  target  FP  <variant>…` (position is the predicting position, 0-based in
    /// its window; `scripts/compare_llama_cpp.py` reads this to compare token by token).
    func tokenNLLTable() -> String {
        var out = (["window", "position", "target", "FP"] + variants.map(\.name)).joined(separator: "\t") + "\n"
        for (i, t) in scoredTokens.enumerated() {
            out += "\(t.window)\t\(t.position)\t\(t.target)"
            for column in nll { out += "\t" + String(format: "%.6f", column[i]) }
            out += "\n"
        }
        return out
    }

    func render(perSite: Bool) -> String {
        var out = ""
        out += "model:       \(model)\n"
        out += "evaluation:  \(evaluationText)\n"
        out += "protocol:    \(protocolDescription)\n"
        out += "calibration: \(calibration)\n"
        out += "FP = the model's stored weights as f32 (\(model)); KL is KL(FP ‖ variant) per token.\n\n"
        if perSite {
            for v in variants {
                out += "Per-site relative output error ‖Ŷ−Y‖/‖Y‖ — \(v.name) (\(v.weights); activations \(v.activations))\n"
                var t = Table(["site", "rel. error", "max|x| before", "max/median before", "max|x| after", "max/median after"])
                for s in v.sites {
                    t.add([s.site, f(s.relativeOutputError, 4), f(s.inputMaxBefore, 1), f(s.channelRatioBefore, 1),
                           f(s.inputMaxAfter, 1), f(s.channelRatioAfter, 1)])
                }
                out += t.render() + "\n"
            }
        }
        var t = Table(["variant", "scheme", "pipeline", "ppl", "± se", "ΔNLL vs FP", "± se", "KL", "KL p99", "top-1", "site err (mean)", "quant s", "tok/s"])
        if let s = float {
            t.add(["FP", "W16A16", "—", f(s.perplexity, 3), f(s.perplexityStandardError, 3), "0", "—", "0", "0", "100.0%", "0", "—", f(s.tokensPerSecond, 0)])
        }
        for v in variants {
            guard let s = v.scores else { continue }
            let meanErr = v.sites.isEmpty ? 0 : v.sites.map(\.relativeOutputError).reduce(0, +) / Double(v.sites.count)
            t.add([v.name, v.scheme, v.pipeline.isEmpty ? "—" : v.pipeline.joined(separator: " → "), f(s.perplexity, 3), f(s.perplexityStandardError, 3),
                   f(s.deltaNLL, 4), f(s.deltaNLLStandardError, 4), f(s.meanKL, 4), f(s.klP99, 3),
                   String(format: "%.1f%%", 100 * s.top1Agreement), f(meanErr, 4), f(v.quantizeSeconds, 1), f(s.tokensPerSecond, 0)])
        }
        out += "Summary (\(float?.scoredTokens ?? 0) scored tokens; a ΔNLL within 2 se of another is a tie)\n"
        out += t.render()
        if !comparisons.isEmpty {
            var c = Table(["variant a", "variant b", "ΔNLL a − b", "± se (paired)", "verdict (tie: |Δ| < 2 se)"])
            for p in comparisons { c.add([p.a, p.b, f(p.deltaNLL, 4), f(p.standardError, 4), p.verdict]) }
            out += "\nPaired comparisons (same tokens)\n" + c.render()
        }
        if !variants.isEmpty {
            out += "\nFunction preservation (transforms with rounding off vs FP, worst token's ‖z′−z‖/‖z‖ on calibration windows): "
            out += variants.map { "\($0.name) \(String(format: "%.1e", $0.invarianceError))" }.joined(separator: ", ") + "\n"
        }
        let costs = variants.flatMap { v in v.costs.map { (v.name, $0) } }
        if !costs.isEmpty {
            var c = Table(["variant", "method", "seconds", "peak working set"])
            for (n, m) in costs { c.add([n, m.method, f(m.seconds, 2), bytes(m.peakBytes)]) }
            out += "\nMethod cost\n" + c.render()
        }
        out += String(format: "\nwall time %.1f s, %d thread(s)\n", wallSeconds, threads)
        return out
    }

    func f(_ x: Double, _ digits: Int) -> String {
        if x.isNaN { return "nan" }
        if abs(x) >= 1e5 { return String(format: "%.3e", x) }
        return String(format: "%.\(digits)f", x)
    }
    func bytes(_ b: Int) -> String {
        b >= 1 << 30 ? String(format: "%.2f GiB", Double(b) / Double(1 << 30)) :
        b >= 1 << 20 ? String(format: "%.1f MiB", Double(b) / Double(1 << 20)) : String(format: "%.1f KiB", Double(b) / 1024)
    }
}

/// A plain-text table with aligned columns.
struct Table {
    var header: [String]
    var rows: [[String]] = []
    init(_ header: [String]) { self.header = header }
    mutating func add(_ row: [String]) { rows.append(row) }
    func render() -> String {
        let all = [header] + rows
        let widths = header.indices.map { i in all.map { $0[i].count }.max() ?? 0 }
        func line(_ r: [String]) -> String {
            r.enumerated().map { i, s in s.padding(toLength: widths[i], withPad: " ", startingAt: 0) }.joined(separator: "  ")
                .replacingOccurrences(of: "\\s+$", with: "", options: .regularExpression)
        }
        return ([line(header), widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ")] + rows.map(line)).joined(separator: "\n") + "\n"
    }
}

/// Writes `data` to `path` atomically: a temporary file in the same folder, then a rename.
func writeAtomically(_ data: Data, to path: String) throws {
    let url = URL(fileURLWithPath: path)
    try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
    let tmp = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())")
    try data.write(to: tmp)
    // rename(2) replaces the target atomically: readers see the old file or the new one, never half.
    guard rename(tmp.path, url.path) == 0 else {
        let err = String(cString: strerror(errno))
        try? FileManager.default.removeItem(at: tmp)
        throw WorkbenchFailure.runtime("\(path): cannot write the file (\(err))")
    }
}
