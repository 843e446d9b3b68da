import Foundation
import QuantCore

/// A small LLaMA-shaped model generated deterministically from a seed, so the workbench runs on a
/// fresh machine with no download. It carries the two phenomena the methods target:
/// - **outlier channels**: a few input channels of q/k/v and gate/up are ~10× the others
///   (planted in the RMSNorm weights, as in real LLMs);
/// - **massive activations**: "sink" tokens (ids 0…3) drive one channel of every down_proj input
///   to hundreds of times the median (the phenomenon DuQuant targets).
///
/// Dimensions are deliberately not powers of two (hidden 96 = 12·8, FFN 320 = 20·16).
public enum SyntheticModel {
    public static let config = DecoderConfig(hiddenSize: 96, intermediateSize: 320, layerCount: 4, headCount: 6,
                                             kvHeadCount: 2, headDim: 16, vocabSize: 512, ropeTheta: 10000,
                                             rmsNormEps: 1e-5, ropeLayout: .rotateHalf)
    public static let sinkTokens = 0..<4

    public static func make(seed: UInt64, config c: DecoderConfig = config) -> DecoderModel {
        var rng = SeededGenerator(seed: seed)
        func gaussian(_ rows: Int, _ cols: Int, std: Double) -> Matrix {
            Matrix(rows: rows, cols: cols, data: (0..<(rows * cols)).map { _ in Float(rng.nextGaussian() * std) })
        }
        let d = c.hiddenSize, f = c.intermediateSize
        // The direction sink tokens write into the residual stream.
        var u = (0..<d).map { _ in Float(rng.nextGaussian()) }
        let un = u.reduce(0) { $0 + $1 * $1 }.squareRoot()
        u = u.map { $0 / un }
        var embedding = gaussian(c.vocabSize, d, std: 1)
        for t in sinkTokens { for j in 0..<d { embedding[t, j] = 0.2 * embedding[t, j] + 40 * u[j] } }
        let outlierChannels = (0..<3).map { _ in Int(rng.next() % UInt64(d)) }

        var blocks: [DecoderBlock] = []
        for i in 0..<c.layerCount {
            func linear(_ name: String, _ out: Int, _ inn: Int) -> Linear {
                Linear(name: "layers.\(i).\(name)", weight: gaussian(out, inn, std: 1 / Double(inn).squareRoot()))
            }
            var attnNorm = (0..<d).map { _ in Float(1 + 0.1 * rng.nextGaussian()) }
            var mlpNorm = (0..<d).map { _ in Float(1 + 0.1 * rng.nextGaussian()) }
            for ch in outlierChannels { attnNorm[ch] *= 10; mlpNorm[ch] *= 8 }
            let q = linear("self_attn.q_proj", c.headCount * c.headDim, d)
            let k = linear("self_attn.k_proj", c.kvHeadCount * c.headDim, d)
            let v = linear("self_attn.v_proj", c.kvHeadCount * c.headDim, d)
            let o = linear("self_attn.o_proj", d, c.headCount * c.headDim)
            let gate = linear("mlp.gate_proj", f, d)
            let up = linear("mlp.up_proj", f, d)
            let down = linear("mlp.down_proj", d, f)
            // Massive activation: channel `m` of gate and up both align with the sink direction
            // (undoing the norm's weights), so silu(gate_m)·up_m is huge for sink tokens only.
            let m = Int(rng.next() % UInt64(f))
            for j in 0..<d {
                gate.weight[m, j] = 4 * u[j] / mlpNorm[j]
                up.weight[m, j] = 4 * u[j] / mlpNorm[j]
            }
            for r in 0..<d { down.weight[r, m] = 0.002 * u[r] }
            blocks.append(DecoderBlock(
                index: i, attentionNorm: attnNorm, mlpNorm: mlpNorm,
                qkv: Site(name: "layers.\(i).qkv", kind: .qkv, block: i, linears: [q, k, v]),
                o: Site(name: "layers.\(i).o", kind: .o, block: i, linears: [o]),
                gateUp: Site(name: "layers.\(i).gate_up", kind: .gateUp, block: i, linears: [gate, up]),
                down: Site(name: "layers.\(i).down", kind: .down, block: i, linears: [down])))
        }
        let head = Linear(name: "lm_head", weight: gaussian(c.vocabSize, d, std: 2 / Double(d).squareRoot()))
        return DecoderModel(config: c, embedding: embedding, blocks: blocks,
                            finalNorm: [Float](repeating: 1, count: d), lmHead: head,
                            provenance: "synthetic LLaMA-shaped model (seed \(seed)), f32 weights")
    }

    /// `count` windows of `length` tokens: Zipf-distributed ids, each window starting with a sink
    /// token and with sink tokens sprinkled at ~1% of positions.
    public static func tokens(seed: UInt64, windows count: Int, length: Int, vocabSize: Int = config.vocabSize) -> [[Int]] {
        var rng = SeededGenerator(seed: seed)
        // Zipf(1) over the non-sink ids.
        let ids = Array(sinkTokens.upperBound..<vocabSize)
        var cdf = [Double](), total = 0.0
        for r in 0..<ids.count { total += 1 / Double(r + 1); cdf.append(total) }
        return (0..<count).map { _ in
            (0..<length).map { p in
                if p == 0 || rng.nextUnit() < 0.01 { return Int(rng.next() % UInt64(sinkTokens.count)) }
                let x = rng.nextUnit() * total
                var lo = 0, hi = cdf.count - 1
                while lo < hi { let mid = (lo + hi) / 2; if cdf[mid] < x { lo = mid + 1 } else { hi = mid } }
                return ids[lo]
            }
        }
    }
}

extension SyntheticModel {
    /// `count` windows of `length` tokens sampled from `model` itself (temperature 1, seeded),
    /// each starting with a sink token — "text" whose perplexity under the float model is
    /// meaningful. Without a KV cache this costs about length²/2 token evaluations per window.
    public static func sample(from model: DecoderModel, seed: UInt64, windows count: Int, length: Int) -> [[Int]] {
        var rng = SeededGenerator(seed: seed)
        var windows = (0..<count).map { _ in [Int(rng.next() % UInt64(sinkTokens.count))] }
        let runner = LlamaForward()
        while windows[0].count < length {
            let t = windows[0].count
            let h = runner.finalHidden(model, windows: windows, mode: .float)
            // Only the last position of each window is needed.
            var last = Matrix(zeros: count, h.cols)
            for w in 0..<count { for j in 0..<h.cols { last[w, j] = h[w * t + t - 1, j] } }
            let logits = last.timesTransposed(model.lmHead.weight)
            for w in 0..<count {
                let row = logits.row(w)
                let mx = row.max() ?? 0
                let p = row.map { Double(exp($0 - mx)) }
                var u = rng.nextUnit() * p.reduce(0, +)
                var pick = p.count - 1
                for (i, v) in p.enumerated() { u -= v; if u <= 0 { pick = i; break } }
                windows[w].append(pick)
            }
        }
        return windows
    }
}
