import Foundation
import QuantCore
import Evaluation
import Reporting

/// Scores of one model on the evaluation windows.
public struct ScoreSummary: Codable {
    public var perplexity: Double
    public var perplexityStandardError: Double
    public var meanNLL: Double
    public var scoredTokens: Int
    /// Paired per-token NLL difference against FP (mean, standard error).
    public var deltaNLL: Double
    public var deltaNLLStandardError: Double
    public var meanKL: Double
    public var klStandardError: Double
    public var klP99: Double
    public var top1Agreement: Double
    public var tokensPerSecond: Double
}

public struct VariantReport: Codable {
    public var name: String
    public var scheme: String
    public var weights: String
    public var activations: String
    public var pipeline: [String]
    public var sites: [SiteReport]
    public var costs: [MethodCost]
    public var quantizeSeconds: Double
    public var invarianceError: Double
    public var log: [String]
    public var scores: ScoreSummary?
}

/// Two variants compared on the same tokens: `deltaNLL` = mean NLL(a) − NLL(b) per token, with the
/// standard error of that paired difference. Under two standard errors it is a tie.
public struct PairedComparison: Codable {
    public var a: String, b: String
    public var deltaNLL: Double, standardError: Double
    public var verdict: String

    init(a: String, b: String, nllA: [Double], nllB: [Double]) {
        let d = Stats.pairedDifference(nllA, nllB)
        self.a = a; self.b = b; deltaNLL = d.mean; standardError = d.se
        verdict = abs(d.mean) < 2 * d.se ? "tie" : d.mean < 0 ? "\(a) better" : "\(b) better"
    }
}

/// Everything a run measured; rendered as tables on stdout and as JSON with `--json`.
public struct RunReport: Codable {
    public var recipe: String
    public var model: String
    public var evaluationText: String
    public var protocolDescription: String
    public var calibration: String
    public var threads: Int
    public var float: ScoreSummary?
    public var variants: [VariantReport] = []
    public var wallSeconds: Double = 0
    /// What the figures depend on (inputs, code, machine settings).
    public var manifest: RunManifest?
    /// The recipe with every default filled in.
    public var resolvedRecipe: ResolvedRecipe?
    /// Results taken from the result cache instead of computed ("FP" and variant names).
    public var reused: [String] = []
    /// Things the reader must know about the inputs (a known non-canonical text file).
    public var warnings: [String] = []
    /// Peak resident memory of the process when the run ended (getrusage), bytes.
    public var peakResidentBytes: Int = 0
    /// Every pair of variants (FP excluded: the summary compares each with FP).
    public var comparisons: [PairedComparison] = []
    /// Per-token NLLs kept for paired comparisons (not encoded): FP first, then each variant.
    public var nll: [[Double]] = []
    /// The scored tokens in the order of `nll`: window index, position of the prediction, and the
    /// predicted (target) token id at position + 1 (not encoded).
    public var scoredTokens: [(window: Int, position: Int, target: Int)] = []

    enum CodingKeys: String, CodingKey {
        case recipe, model, evaluationText, protocolDescription, calibration, threads, float, variants, comparisons, wallSeconds
        case manifest, resolvedRecipe, reused, warnings, peakResidentBytes
    }

    init(recipe: String, model: String, evaluationText: String, protocolDescription: String, calibration: String, threads: Int) {
        self.recipe = recipe; self.model = model; self.evaluationText = evaluationText
        self.protocolDescription = protocolDescription; self.calibration = calibration; self.threads = threads
    }

    public mutating func setScores(_ scores: [TokenScores]) {
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
    public func tokenNLLTable() -> String {
        var out = (["window", "position", "target", "FP"] + variants.map(\.name)).joined(separator: "\t") + "\n"
        for (i, t) in scoredTokens.enumerated() {
            out += "\(t.window)\t\(t.position)\t\(t.target)"
            for column in nll { out += "\t" + String(format: "%.6f", column[i]) }
            out += "\n"
        }
        return out
    }

    public func render(perSite: Bool) -> String {
        var out = ""
        out += "model:       \(model)\n"
        out += "evaluation:  \(evaluationText)\n"
        out += "protocol:    \(protocolDescription)\n"
        if !variants.isEmpty { out += "calibration: \(calibration)\n" }
        for w in warnings { out += "warning: \(w)\n" }
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
        var t = Table(Self.summaryHeader)
        for row in summaryRows() { t.add(row) }
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
        if !reused.isEmpty { out += "\nReused from the result cache (not recomputed): \(reused.joined(separator: ", "))\n" }
        out += String(format: "\nwall time %.1f s, %d thread(s), peak resident memory %@\n", wallSeconds, threads, Format.bytes(peakResidentBytes))
        return out
    }

    /// The comparison table (text and HTML reports): FP, then every scored variant.
    public static let summaryHeader = ["variant", "scheme", "pipeline", "ppl", "± se", "ΔNLL vs FP", "± se", "KL", "KL p99",
                                       "top-1", "site err (mean)", "quant s", "tok/s"]

    public func summaryRows() -> [[String]] {
        var rows: [[String]] = []
        if let s = float {
            rows.append(["FP", "W16A16", "—", f(s.perplexity, 3), f(s.perplexityStandardError, 3), "0", "—", "0", "0", "100.0%", "0", "—", f(s.tokensPerSecond, 0)])
        }
        for v in variants {
            guard let s = v.scores else { continue }
            let meanErr = v.sites.isEmpty ? 0 : v.sites.map(\.relativeOutputError).reduce(0, +) / Double(v.sites.count)
            rows.append([v.name, v.scheme, v.pipeline.isEmpty ? "—" : v.pipeline.joined(separator: " → "), f(s.perplexity, 3), f(s.perplexityStandardError, 3),
                         f(s.deltaNLL, 4), f(s.deltaNLLStandardError, 4), f(s.meanKL, 4), f(s.klP99, 3),
                         String(format: "%.1f%%", 100 * s.top1Agreement), f(meanErr, 4), f(v.quantizeSeconds, 1), f(s.tokensPerSecond, 0)])
        }
        return rows
    }

    func f(_ x: Double, _ digits: Int) -> String { Format.number(x, digits) }
    func bytes(_ b: Int) -> String { Format.bytes(b) }
}
