import XCTest
import QuantCore
import QuantKernels
@testable import Training

/// Every op's backward, and the whole tiny model's, against central finite differences in f64.
final class GradientCheckTests: XCTestCase {
    /// Seeded values ~ N(0, std²).
    static func randoms(_ n: Int, seed: UInt64, std: Double = 1, mean: Double = 0) -> [Double] {
        var g = SeededGenerator(seed: seed)
        return (0..<n).map { _ in mean + std * g.nextGaussian() }
    }

    /// Checks `analytic` = ∂f/∂x at `x` on up to `samples` entries by central differences.
    func check(_ name: String, _ x: [Double], analytic: [Double], samples: Int = 40, h: Double = 1e-5,
               file: StaticString = #filePath, line: UInt = #line, _ f: ([Double]) -> Double) {
        XCTAssertEqual(x.count, analytic.count, name, file: file, line: line)
        let stride = max(1, x.count / samples)
        var worst = 0.0
        for i in Swift.stride(from: 0, to: x.count, by: stride) {
            var xp = x, xm = x
            xp[i] += h; xm[i] -= h
            let fd = (f(xp) - f(xm)) / (2 * h)
            let err = abs(fd - analytic[i]) / max(1e-3, abs(fd), abs(analytic[i]))
            worst = max(worst, err)
            XCTAssertLessThan(err, 1e-5, "\(name)[\(i)]: analytic \(analytic[i]) vs finite difference \(fd)", file: file, line: line)
        }
        XCTAssertGreaterThan(analytic.map(abs).max() ?? 0, 1e-6, "\(name): the gradient is all zeros — the check would prove nothing", file: file, line: line)
        _ = worst
    }

    /// `Σ c_i·y_i` — a scalar of an op's output with a generic upstream gradient `c`.
    func project(_ y: [Double], _ c: [Double]) -> Double { zip(y, c).reduce(0) { $0 + $1.0 * $1.1 } }

    func testRMSNorm() {
        let rows = 3, d = 7
        let x = Self.randoms(rows * d, seed: 1), g = Self.randoms(d, seed: 2, std: 0.3, mean: 1), c = Self.randoms(rows * d, seed: 3)
        let fwd = Ops.rmsNorm(x, gamma: g, dim: d, eps: 1e-5)
        let back = Ops.rmsNormBackward(dy: c, x: x, gamma: g, invRMS: fwd.invRMS, dim: d)
        check("dx", x, analytic: back.dx) { project(Ops.rmsNorm($0, gamma: g, dim: d, eps: 1e-5).y, c) }
        check("dgamma", g, analytic: back.dgamma) { project(Ops.rmsNorm(x, gamma: $0, dim: d, eps: 1e-5).y, c) }
    }

    func testRoPEBothLayouts() {
        for layout in [DecoderConfig.RopeLayout.rotateHalf, .interleavedPairs] {
            let heads = 2, hd = 6, L = 4, rows = 8
            let x = Self.randoms(rows * heads * hd, seed: 4), c = Self.randoms(x.count, seed: 5)
            // Backward: the upstream gradient rotated back.
            var dx = c
            Ops.rope(&dx, heads: heads, headDim: hd, windowLength: L, theta: 100, layout: layout, inverse: true)
            check("rope \(layout)", x, analytic: dx) { v in
                var y = v; Ops.rope(&y, heads: heads, headDim: hd, windowLength: L, theta: 100, layout: layout); return project(y, c)
            }
        }
    }

    func testCausalAttentionWithGQA() {
        let s = Ops.AttentionShape(windows: 2, length: 5, heads: 4, kvHeads: 2, headDim: 3)
        let tokens = s.windows * s.length
        let q = Self.randoms(tokens * s.heads * s.headDim, seed: 6), k = Self.randoms(tokens * s.kvHeads * s.headDim, seed: 7)
        let v = Self.randoms(k.count, seed: 8), c = Self.randoms(q.count, seed: 9)
        let fwd = Ops.attention(q: q, k: k, v: v, shape: s)
        let back = Ops.attentionBackward(dout: c, q: q, k: k, v: v, probs: fwd.probs, shape: s)
        check("dq", q, analytic: back.dq) { project(Ops.attention(q: $0, k: k, v: v, shape: s).out, c) }
        check("dk", k, analytic: back.dk) { project(Ops.attention(q: q, k: $0, v: v, shape: s).out, c) }
        check("dv", v, analytic: back.dv) { project(Ops.attention(q: q, k: k, v: $0, shape: s).out, c) }
        // Causality: the first token of a window attends only to itself.
        XCTAssertEqual(fwd.probs[0], 1)
        XCTAssertEqual(fwd.probs[1], 0)
    }

    func testSwiGLU() {
        let n = 20
        let g = Self.randoms(n, seed: 10, std: 2), u = Self.randoms(n, seed: 11), c = Self.randoms(n, seed: 12)
        let back = Ops.swigluBackward(dy: c, gate: g, up: u)
        check("dgate", g, analytic: back.dgate) { project(Ops.swiglu(gate: $0, up: u), c) }
        check("dup", u, analytic: back.dup) { project(Ops.swiglu(gate: g, up: $0), c) }
    }

    func testCrossEntropy() {
        let rows = 4, vocab = 9
        let z = Self.randoms(rows * vocab, seed: 13, std: 2), targets = [3, 0, 8, 3]
        func mean(_ z: [Double]) -> Double { Ops.crossEntropy(logits: z, targets: targets, vocab: vocab).losses.reduce(0, +) / Double(rows) }
        let probs = Ops.crossEntropy(logits: z, targets: targets, vocab: vocab).probs
        check("dlogits", z, analytic: Ops.crossEntropyBackward(probs: probs, targets: targets, vocab: vocab, scale: 1 / Double(rows)), mean)
    }

    func testEmbeddingWithRepeatedTokens() {
        let vocab = 5, d = 3, tokens = [2, 4, 2, 0]
        let table = Self.randoms(vocab * d, seed: 14), c = Self.randoms(tokens.count * d, seed: 15)
        var dt = [Double](repeating: 0, count: table.count)
        Ops.embedBackward(tokens, dy: c, dim: d, into: &dt)
        check("dtable", table, analytic: dt) { project(Ops.embed(tokens, table: $0, dim: d), c) }
    }

    func testReferenceLinear() {
        let rows = 4, out = 5, inn = 6
        let x = Self.randoms(rows * inn, seed: 16), w = Self.randoms(out * inn, seed: 17), c = Self.randoms(rows * out, seed: 18)
        let l = ReferenceLinear<Double>()
        _ = l.forward(x: x, w: w, outFeatures: out, inFeatures: inn, step: 0)
        let (dx, dw) = l.backward(g: c, step: 0)
        check("dx", x, analytic: dx) { project(ReferenceLinear<Double>().forward(x: $0, w: w, outFeatures: out, inFeatures: inn, step: 0), c) }
        check("dw", w, analytic: dw) { project(ReferenceLinear<Double>().forward(x: x, w: $0, outFeatures: out, inFeatures: inn, step: 0), c) }
    }

    /// A tiny model with non-trivial random weights (norm weights around 1, matrices ~ N(0, 0.5²)).
    static func tinyModel(tied: Bool, layout: DecoderConfig.RopeLayout, seed: UInt64) -> TrainableLlama<Double> {
        let shape = ModelShape(layers: 2, hidden: 8, heads: 4, kvHeads: 2, headDim: 4, ffn: 12, context: 8, vocab: 11, tied: tied,
                               ropeTheta: 50, ropeLayout: layout)
        let p = LlamaParameters<Double>.initialize(shape: shape, seed: seed)
        for (i, t) in p.all.enumerated() {
            t.value = t.decays ? randoms(t.value.count, seed: seed &+ UInt64(i) &* 31, std: 0.5)
                               : randoms(t.value.count, seed: seed &+ UInt64(i) &* 31, std: 0.2, mean: 1)
        }
        return TrainableLlama(referenceParameters: p)
    }

    func testWholeModelEveryParameter() {
        for (tied, layout) in [(true, DecoderConfig.RopeLayout.rotateHalf), (false, .interleavedPairs)] {
            let m = Self.tinyModel(tied: tied, layout: layout, seed: tied ? 20 : 21)
            let L = 5
            let tokens = [1, 4, 4, 9, 0, 10, 2, 3, 3, 7], targets = [4, 4, 9, 0, 5, 2, 3, 3, 7, 1]
            m.zeroGrad()
            _ = m.loss(tokens: tokens, targets: targets, windowLength: L, step: 0)
            m.backward(step: 0)
            for p in m.parameters.all {
                let saved = p.value
                check("\(tied ? "tied" : "untied") \(p.name)", saved, analytic: p.grad, samples: 12) { v in
                    p.value = v
                    defer { p.value = saved }
                    return m.loss(tokens: tokens, targets: targets, windowLength: L, step: 0)
                }
            }
        }
    }
}
