import Foundation
import QuantCore
import Reporting

/// The self-contained HTML report of a run: tables and inline SVG charts, no scripts, and a
/// Content-Security-Policy of `default-src 'none'` so the page can load nothing.
public enum HTMLReport {
    public static func render(_ r: RunReport) -> String {
        var h = """
        <!DOCTYPE html>
        <html lang="en"><head><meta charset="utf-8">
        <meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
        <title>quantwb — \(xmlEscaped(r.recipe))</title>
        <style>
        body{font-family:sans-serif;margin:24px;max-width:1100px;color:#222}
        table{border-collapse:collapse;margin:8px 0 20px}
        th,td{border:1px solid #ccc;padding:3px 8px;text-align:right;font-size:13px}
        th{background:#f3f3f3} td:first-child,th:first-child{text-align:left}
        .meta{font-size:13px;color:#444} figure{margin:8px 0 18px} h2{margin-top:28px}
        </style></head><body>
        <h1>quantwb report — \(xmlEscaped(r.recipe))</h1>
        <p class="meta">model: \(xmlEscaped(r.model))<br>evaluation: \(xmlEscaped(r.evaluationText)) — \(xmlEscaped(r.protocolDescription))<br>
        """
        if !r.variants.isEmpty { h += "calibration: \(xmlEscaped(r.calibration))<br>" }
        if let m = r.manifest {
            h += "code: \(xmlEscaped(m.tool.commit))\(m.tool.dirtyDiffSHA256 == nil ? "" : " (uncommitted changes)") · \(xmlEscaped(m.kernelPath)) · \(m.threads) thread(s) · engine \(xmlEscaped(m.engine)) · seed \(m.seed)<br>"
        }
        for w in r.warnings { h += "<strong>warning: \(xmlEscaped(w))</strong><br>" }
        h += "FP = the model's stored weights as f32. KL is KL(FP ‖ variant) per scored token.</p>\n"
        h += summaryTable(r)
        if !r.comparisons.isEmpty {
            h += "<h2>Paired comparisons (same tokens)</h2>\n"
            h += table(["variant a", "variant b", "ΔNLL a − b", "± se", "verdict (tie: |Δ| < 2 se)"],
                       r.comparisons.map { [$0.a, $0.b, n($0.deltaNLL, 4), n($0.standardError, 4), $0.verdict] })
        }
        h += siteErrorCharts(r)
        h += profileCharts(r)
        h += positionChart(r)
        return h + "</body></html>\n"
    }

    static func n(_ x: Double, _ d: Int) -> String { Format.number(x, d) }

    static func table(_ header: [String], _ rows: [[String]]) -> String {
        var t = "<table><thead><tr>" + header.map { "<th>\(xmlEscaped($0))</th>" }.joined() + "</tr></thead><tbody>\n"
        for row in rows { t += "<tr>" + row.map { "<td>\(xmlEscaped($0))</td>" }.joined() + "</tr>\n" }
        return t + "</tbody></table>\n"
    }

    static func summaryTable(_ r: RunReport) -> String {
        "<h2>Summary (\(r.float?.scoredTokens ?? 0) scored tokens)</h2>\n" + table(RunReport.summaryHeader, r.summaryRows())
    }

    /// `layers.12.down` → (12, "down").
    static func blockAndKind(_ site: String) -> (Int, String)? {
        let parts = site.split(separator: ".")
        guard parts.count == 3, parts[0] == "layers", let i = Int(parts[1]) else { return nil }
        return (i, String(parts[2]))
    }

    static func siteErrorCharts(_ r: RunReport) -> String {
        guard r.variants.contains(where: { !$0.sites.isEmpty }) else { return "" }
        var h = "<h2>Per-site output error across blocks</h2>\n<p class=\"meta\">‖Ŷ−Y‖/‖Y‖ of each site as deployed against the float site, on its calibration input.</p>\n"
        let kinds = SiteKind.allCases.map(\.rawValue)
        for kind in kinds {
            let series = r.variants.map { v in
                LineChart.Series(name: v.name, points: v.sites.compactMap { s in
                    blockAndKind(s.site).flatMap { $0.1 == kind ? (Double($0.0), s.relativeOutputError) : nil }
                })
            }
            guard series.contains(where: { !$0.points.isEmpty }) else { continue }
            h += "<figure>" + LineChart(title: "\(kind) sites", xLabel: "block", yLabel: "relative output error", series: series, markers: true).svg() + "</figure>\n"
        }
        return h
    }

    static func profileCharts(_ r: RunReport) -> String {
        var h = ""
        for v in r.variants {
            for s in v.sites {
                guard let p = s.profile else { continue }
                if h.isEmpty {
                    h = "<h2>Activation magnitudes before and after the transforms</h2>\n<p class=\"meta\">Per channel: max |x| over the measured calibration tokens at the site's input, before its transforms and after each one (DuQuant's Figure 1). Per position: max |x| over channels and windows.</p>\n"
                }
                let stages = zip(p.stageNames, p.channelAbsMax).map { LineChart.Series(name: $0.0, values: $0.1.map(Double.init)) }
                h += "<figure>" + LineChart(title: "\(s.site) — \(v.name): per-channel max |x|", xLabel: "channel", yLabel: "max |x|", series: stages, logY: true).svg() + "</figure>\n"
                let positions = [LineChart.Series(name: "before transforms", values: p.positionMaxBefore.map(Double.init)),
                                 LineChart.Series(name: "after transforms", values: p.positionMaxAfter.map(Double.init))]
                h += "<figure>" + LineChart(title: "\(s.site) — \(v.name): per-position max |x|", xLabel: "position in window", yLabel: "max |x|", series: positions, logY: true).svg() + "</figure>\n"
            }
        }
        return h
    }

    /// Mean ΔNLL (variant − FP) per position bucket of the window.
    static func positionChart(_ r: RunReport) -> String {
        guard r.nll.count > 1, let maxPos = r.scoredTokens.map(\.position).max() else { return "" }
        let buckets = min(32, maxPos + 1)
        let width = Double(maxPos + 1) / Double(buckets)
        var series: [LineChart.Series] = []
        for (vi, v) in r.variants.enumerated() where vi + 1 < r.nll.count {
            var sum = [Double](repeating: 0, count: buckets), count = [Int](repeating: 0, count: buckets)
            for (i, t) in r.scoredTokens.enumerated() {
                let b = min(buckets - 1, Int(Double(t.position) / width))
                sum[b] += r.nll[vi + 1][i] - r.nll[0][i]; count[b] += 1
            }
            series.append(LineChart.Series(name: v.name, points: (0..<buckets).compactMap { b in
                count[b] > 0 ? ((Double(b) + 0.5) * width, sum[b] / Double(count[b])) : nil
            }))
        }
        guard !series.isEmpty else { return "" }
        return "<h2>ΔNLL by position in the window</h2>\n<figure>"
            + LineChart(title: "mean NLL(variant) − NLL(FP) per position bucket", xLabel: "position of the prediction", yLabel: "ΔNLL (nats)", series: series, markers: true).svg()
            + "</figure>\n"
    }
}
