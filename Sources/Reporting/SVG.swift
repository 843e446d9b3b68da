import Foundation

/// Escapes text for XML / HTML content and attribute values.
public func xmlEscaped(_ s: String) -> String {
    var out = ""
    out.reserveCapacity(s.count)
    for ch in s {
        switch ch {
        case "&": out += "&amp;"
        case "<": out += "&lt;"
        case ">": out += "&gt;"
        case "\"": out += "&quot;"
        case "'": out += "&#39;"
        default: out.append(ch)
        }
    }
    return out
}

/// A line chart rendered as a standalone inline `<svg>` element: axes with ticks, one polyline
/// path per series, a legend. No scripts, no external resources. Used by the run report
/// (per-site error, activation magnitudes, ΔNLL by position) and the training loss curves.
public struct LineChart {
    public struct Series {
        public var name: String
        public var points: [(x: Double, y: Double)]
        public init(name: String, points: [(x: Double, y: Double)]) { self.name = name; self.points = points }
        public init(name: String, values: [Double]) {
            self.init(name: name, points: values.enumerated().map { (Double($0.offset), $0.element) })
        }
    }

    public var title: String
    public var xLabel: String
    public var yLabel: String
    public var series: [Series]
    /// A logarithmic y axis (non-positive values are left out of the path).
    public var logY = false
    /// Draw each point as a dot too (for short series such as per-block errors).
    public var markers = false
    public var width = 720
    public var height = 300

    public init(title: String, xLabel: String, yLabel: String, series: [Series], logY: Bool = false, markers: Bool = false) {
        self.title = title; self.xLabel = xLabel; self.yLabel = yLabel; self.series = series; self.logY = logY; self.markers = markers
    }

    /// Colours that stay distinguishable for the first eight series (Okabe–Ito), then repeat.
    public static let palette = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"]

    static let margin = (left: 64.0, right: 16.0, top: 28.0, bottom: 44.0)

    public func svg() -> String {
        let m = Self.margin
        let plotW = Double(width) - m.left - m.right
        let legendRows = (series.count + 2) / 3
        let plotH = Double(height) - m.top - m.bottom - Double(legendRows) * 16
        func ty(_ y: Double) -> Double? { logY ? (y > 0 && y.isFinite ? log10(y) : nil) : (y.isFinite ? y : nil) }
        let xs = series.flatMap { $0.points.map(\.x) }.filter(\.isFinite)
        let ys = series.flatMap { $0.points.compactMap { ty($0.y) } }
        var (x0, x1) = (xs.min() ?? 0, xs.max() ?? 1)
        var (y0, y1) = (ys.min() ?? 0, ys.max() ?? 1)
        if x1 <= x0 { x1 = x0 + 1 }
        if !logY { y0 = min(y0, 0) }
        if y1 <= y0 { y1 = y0 + 1 }
        let pad = (y1 - y0) * 0.05
        y1 += pad
        if logY { y0 -= pad }
        func px(_ x: Double) -> Double { m.left + (x - x0) / (x1 - x0) * plotW }
        func py(_ v: Double) -> Double { m.top + plotH - (v - y0) / (y1 - y0) * plotH }

        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" width=\"\(width)\" height=\"\(height)\" viewBox=\"0 0 \(width) \(height)\" font-family=\"sans-serif\" font-size=\"11\">"
        s += "<title>\(xmlEscaped(title))</title>"
        s += "<text x=\"\(f(m.left))\" y=\"16\" font-size=\"13\" font-weight=\"bold\">\(xmlEscaped(title))</text>"
        s += "<rect x=\"\(f(m.left))\" y=\"\(f(m.top))\" width=\"\(f(plotW))\" height=\"\(f(plotH))\" fill=\"none\" stroke=\"#999\"/>"
        for t in Self.ticks(x0, x1) {
            s += "<line x1=\"\(f(px(t)))\" y1=\"\(f(m.top + plotH))\" x2=\"\(f(px(t)))\" y2=\"\(f(m.top + plotH + 4))\" stroke=\"#666\"/>"
            s += "<text x=\"\(f(px(t)))\" y=\"\(f(m.top + plotH + 16))\" text-anchor=\"middle\">\(Self.label(t))</text>"
        }
        for t in Self.ticks(y0, y1) {
            s += "<line x1=\"\(f(m.left - 4))\" y1=\"\(f(py(t)))\" x2=\"\(f(m.left + plotW))\" y2=\"\(f(py(t)))\" stroke=\"#ddd\"/>"
            s += "<text x=\"\(f(m.left - 6))\" y=\"\(f(py(t) + 4))\" text-anchor=\"end\">\(logY ? Self.label(pow(10, t)) : Self.label(t))</text>"
        }
        s += "<text x=\"\(f(m.left + plotW / 2))\" y=\"\(f(m.top + plotH + 32))\" text-anchor=\"middle\">\(xmlEscaped(xLabel))</text>"
        s += "<text transform=\"translate(14 \(f(m.top + plotH / 2))) rotate(-90)\" text-anchor=\"middle\">\(xmlEscaped(yLabel + (logY ? " (log scale)" : "")))</text>"
        for (i, se) in series.enumerated() {
            let colour = Self.palette[i % Self.palette.count]
            var d = "", pen = false
            for p in se.points {
                guard p.x.isFinite, let v = ty(p.y) else { pen = false; continue }
                d += (pen ? "L" : "M") + f(px(p.x)) + " " + f(py(v))
                pen = true
            }
            s += "<path class=\"series\" data-series=\"\(xmlEscaped(se.name))\" d=\"\(d)\" fill=\"none\" stroke=\"\(colour)\" stroke-width=\"1.5\"/>"
            if markers {
                for p in se.points { if p.x.isFinite, let v = ty(p.y) { s += "<circle cx=\"\(f(px(p.x)))\" cy=\"\(f(py(v)))\" r=\"2.5\" fill=\"\(colour)\"/>" } }
            }
            let lx = m.left + Double(i % 3) * (plotW / 3), ly = Double(height) - Double(legendRows - i / 3) * 16 + 4
            s += "<rect x=\"\(f(lx))\" y=\"\(f(ly - 9))\" width=\"12\" height=\"3\" fill=\"\(colour)\"/>"
            s += "<text x=\"\(f(lx + 16))\" y=\"\(f(ly - 4))\">\(xmlEscaped(se.name))</text>"
        }
        return s + "</svg>"
    }

    func f(_ v: Double) -> String { String(format: "%.1f", v) }

    /// About five round tick values covering [lo, hi].
    static func ticks(_ lo: Double, _ hi: Double) -> [Double] {
        let span = hi - lo
        guard span > 0, span.isFinite else { return [lo] }
        let raw = span / 5
        let mag = pow(10, floor(log10(raw)))
        let step = [1.0, 2, 5, 10].map { $0 * mag }.first { $0 >= raw } ?? 10 * mag
        var t = ceil(lo / step) * step, out: [Double] = []
        while t <= hi + step * 1e-9 && out.count < 12 { out.append(abs(t) < step * 1e-9 ? 0 : t); t += step }
        return out
    }

    static func label(_ v: Double) -> String {
        if v == 0 { return "0" }
        let a = abs(v)
        if a >= 1e4 || a < 1e-3 { return String(format: "%.0e", v) }
        if a >= 10 || v == v.rounded() { return String(format: "%.0f", v) }
        return String(format: a >= 1 ? "%.1f" : "%.3g", v)
    }
}
