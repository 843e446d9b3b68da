import Foundation
import QuantCore
import Reporting

/// The output folder of a run. Every file is written to a temporary name and renamed, so a run
/// killed midway leaves the previous complete files (or none), never a half-written one.
///
/// - `results.json`: every figure, the resolved recipe and the manifest (`--json FILE` writes
///   the same document)
/// - `report.txt`: the printed tables
/// - `sites.csv`: per variant and site, output and weight error and input outlier statistics
/// - `tokens.tsv`: every scored token's NLL, FP and each variant
/// - `report.html`: the self-contained report (inline SVG, no scripts, loads nothing)
public enum RunOutput {
    public static let files = ["results.json", "report.txt", "sites.csv", "tokens.tsv", "report.html"]

    /// The folder a run writes to: the `--output` argument, else the recipe's `output:`, else
    /// `runs/<recipe file name without extension>`.
    public static func folder(argument: String?, recipeOutput: String?, recipeFile: String) -> String {
        if let argument { return argument }
        if let recipeOutput { return recipeOutput }
        let stem = URL(fileURLWithPath: recipeFile).deletingPathExtension().lastPathComponent
        return "runs/" + (stem.isEmpty ? "run" : stem)
    }

    public static func resultsJSON(_ report: RunReport) throws -> Data {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        enc.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return try enc.encode(report)
    }

    /// Writes every file of the folder.
    public static func write(_ report: RunReport, to dir: String) throws {
        try writeAtomically(resultsJSON(report), to: dir + "/results.json")
        try writeAtomically(report.render(perSite: true), to: dir + "/report.txt")
        try writeAtomically(sitesCSV(report), to: dir + "/sites.csv")
        try writeAtomically(report.tokenNLLTable(), to: dir + "/tokens.tsv")
        try writeAtomically(HTMLReport.render(report), to: dir + "/report.html")
    }

    /// One row per variant and site.
    public static func sitesCSV(_ report: RunReport) -> String {
        var out = "variant,site,relative_output_error,weight_error,input_max_before,max_over_median_before,input_max_after,max_over_median_after,transforms\n"
        for v in report.variants {
            for s in v.sites {
                let fields = [v.name, s.site, g(s.relativeOutputError), g(s.weightError), g(s.inputMaxBefore), g(s.channelRatioBefore),
                              g(s.inputMaxAfter), g(s.channelRatioAfter), s.transforms.joined(separator: "; ")]
                out += fields.map(csvField).joined(separator: ",") + "\n"
            }
        }
        return out
    }

    static func g(_ x: Double) -> String { String(format: "%.6g", x) }

    /// RFC 4180 quoting: fields with a comma, quote or line break are quoted, quotes doubled.
    static func csvField(_ s: String) -> String {
        guard s.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return s }
        return "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}
