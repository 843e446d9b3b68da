/// A plain-text table with aligned columns (the text report's tables).
public struct Table {
    public var header: [String]
    public var rows: [[String]] = []
    public init(_ header: [String]) { self.header = header }
    public mutating func add(_ row: [String]) { rows.append(row) }

    public func render() -> String {
        let all = [header] + rows
        let widths = header.indices.map { i in all.map { i < $0.count ? $0[i].count : 0 }.max() ?? 0 }
        func line(_ r: [String]) -> String {
            var s = header.indices.map { i in (i < r.count ? r[i] : "").padding(toLength: widths[i], withPad: " ", startingAt: 0) }
                .joined(separator: "  ")
            while s.last == " " { s.removeLast() }
            return s
        }
        return ([line(header), widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ")] + rows.map(line))
            .joined(separator: "\n") + "\n"
    }
}

/// Number formatting shared by the text, CSV and HTML reports.
public enum Format {
    /// `digits` decimals; `nan` for NaN; scientific from 1e5 up.
    public static func number(_ x: Double, _ digits: Int) -> String {
        if x.isNaN { return "nan" }
        if x.isInfinite { return x > 0 ? "inf" : "-inf" }
        if abs(x) >= 1e5 { return String(format: "%.3e", x) }
        return String(format: "%.\(digits)f", x)
    }

    /// Bytes as KiB / MiB / GiB.
    public static func bytes(_ b: Int) -> String {
        b >= 1 << 30 ? String(format: "%.2f GiB", Double(b) / Double(1 << 30)) :
        b >= 1 << 20 ? String(format: "%.1f MiB", Double(b) / Double(1 << 20)) : String(format: "%.1f KiB", Double(b) / 1024)
    }

    /// Seconds as `42 s`, `3 min 05 s` or `1 h 02 min`.
    public static func duration(_ s: Double) -> String {
        guard s.isFinite, s >= 0 else { return "?" }
        let t = Int(s.rounded())
        if t < 60 { return "\(t) s" }
        if t < 3600 { return String(format: "%d min %02d s", t / 60, t % 60) }
        return String(format: "%d h %02d min", t / 3600, (t % 3600) / 60)
    }
}
