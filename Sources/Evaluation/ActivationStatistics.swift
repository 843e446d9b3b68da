import QuantCore
import LlamaModel

/// Per-site input statistics behind the "massive activations" finding: for each block and site,
/// max |x|, the median per-channel absmax, their ratio, and where the largest values sit.
public struct SiteActivationStats: Sendable, Codable {
    public var site: String
    public var maxAbs: Double
    public var medianChannelAbsMax: Double
    public var ratio: Double { medianChannelAbsMax > 0 ? maxAbs / medianChannelAbsMax : 0 }
    /// Channels with the largest absmax, largest first: (channel, absmax).
    public var topChannels: [ChannelValue]
    /// Tokens holding the largest |x|: (position in its window, token id, channel, value).
    public var topTokens: [TokenValue]

    public struct ChannelValue: Sendable, Codable { public var channel: Int; public var absMax: Double }
    public struct TokenValue: Sendable, Codable { public var position: Int; public var token: Int; public var channel: Int; public var value: Double }
}

public enum ActivationStatistics {
    /// Runs `windows` through the float model and collects statistics at every site's input.
    public static func collect(model: DecoderModel, windows: [[Int]], top: Int = 3) -> [SiteActivationStats] {
        let runner = LlamaForward()
        let l = windows.first?.count ?? 0
        let tokens = windows.flatMap { $0 }
        var h = runner.embed(model, windows: windows)
        var out: [SiteActivationStats] = []
        for b in model.blocks {
            h = runner.stepThroughBlock(b, config: model.config, hidden: h, windowLength: l, mode: .float) { site, x in
                out.append(stats(site.name, x, tokens: tokens, windowLength: l, top: top))
            }
        }
        return out
    }

    static func stats(_ name: String, _ x: Matrix, tokens: [Int], windowLength: Int, top: Int) -> SiteActivationStats {
        let cm = x.columnAbsMax()
        let sorted = cm.sorted()
        let median = Double(sorted[sorted.count / 2])
        let channels = cm.indices.sorted { cm[$0] > cm[$1] }.prefix(top).map { SiteActivationStats.ChannelValue(channel: $0, absMax: Double(cm[$0])) }
        // Largest |x| per token, then the top tokens.
        var perToken: [(row: Int, channel: Int, value: Float)] = []
        for r in 0..<x.rows {
            var best = 0
            for c in 0..<x.cols where abs(x[r, c]) > abs(x[r, best]) { best = c }
            perToken.append((r, best, x[r, best]))
        }
        let topRows = perToken.sorted { abs($0.value) > abs($1.value) }.prefix(top).map {
            SiteActivationStats.TokenValue(position: $0.row % windowLength, token: tokens[$0.row], channel: $0.channel, value: Double($0.value))
        }
        return SiteActivationStats(site: name, maxAbs: Double(sorted.last ?? 0), medianChannelAbsMax: median,
                                   topChannels: Array(channels), topTokens: Array(topRows))
    }
}
