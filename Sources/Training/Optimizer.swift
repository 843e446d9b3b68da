import Foundation
import QuantKernels
import TrainingQuantization

/// Learning rate at each step: linear warmup from 0 to `peak` over `warmup` steps, then a cosine
/// from `peak` down to `minimum` at the last step.
public struct LearningRateSchedule: Sendable, Equatable {
    public var peak: Double, warmup: Int, minimum: Double, totalSteps: Int
    public init(peak: Double, warmup: Int, minimum: Double, totalSteps: Int) {
        self.peak = peak; self.warmup = warmup; self.minimum = minimum; self.totalSteps = totalSteps
    }
    /// The rate for 0-based `step`.
    public func rate(at step: Int) -> Double {
        if step < warmup { return peak * Double(step + 1) / Double(warmup) }
        let span = max(1, totalSteps - warmup - 1)
        let progress = min(1, Double(step - warmup) / Double(span))
        return minimum + (peak - minimum) * 0.5 * (1 + cos(Double.pi * progress))
    }
}

public struct AdamWSettings: Sendable, Equatable {
    public var beta1 = 0.9, beta2 = 0.95, eps = 1e-8, weightDecay = 0.1
    public init(beta1: Double = 0.9, beta2: Double = 0.95, eps: Double = 1e-8, weightDecay: Double = 0.1) {
        self.beta1 = beta1; self.beta2 = beta2; self.eps = eps; self.weightDecay = weightDecay
    }
}

/// AdamW (decoupled weight decay) over the model's parameters and the training quantizer's
/// learned scalars. Weight decay applies to matrices only: not to RMSNorm weights, not to the
/// quantizer's scalars (step sizes).
public final class AdamW {
    public let settings: AdamWSettings
    /// First and second moments, one array per parameter (order of `LlamaParameters.all`).
    public var m: [[Float]], v: [[Float]]
    /// Moments of each linear layer's `scalars` (order of the model's layers).
    public var scalarM: [[Float]], scalarV: [[Float]]
    /// Updates done so far (the bias-correction exponent of the next update is `t + 1`).
    public var t = 0

    public init(settings: AdamWSettings, parameters: [Parameter<Float>], layers: [any TrainingLinear]) {
        self.settings = settings
        m = parameters.map { [Float](repeating: 0, count: $0.value.count) }
        v = m
        scalarM = layers.map { [Float](repeating: 0, count: $0.scalars.count) }
        scalarV = scalarM
    }

    /// √(Σ g²) over every parameter gradient and every layer's scalar gradients (Double sums in a
    /// fixed order).
    public static func gradientNorm(parameters: [Parameter<Float>], layers: [any TrainingLinear]) -> Double {
        var total = 0.0
        for p in parameters { total += sumOfSquares(p.grad) }
        for l in layers { for g in l.scalarGradients { total += Double(g) * Double(g) } }
        return total.squareRoot()
    }

    /// Σ x² in fixed slices (partials added in slice order), so the result is the same on any thread count.
    static func sumOfSquares(_ x: [Float]) -> Double {
        let slices = max(1, min(64, x.count / 8192))
        var partial = [Double](repeating: 0, count: slices)
        partial.withUnsafeMutableBufferPointer { pp in
            let out = UncheckedBox(pp.baseAddress!)
            x.withUnsafeBufferPointer { xp in
                let src = UncheckedBox(xp.baseAddress!)
                Parallel.forEach(slices, threads: slices == 1 ? 1 : nil) { s in
                    var acc = 0.0
                    for i in (s * x.count / slices)..<((s + 1) * x.count / slices) { let g = Double(src.value[i]); acc += g * g }
                    out.value[s] = acc
                }
            }
        }
        return partial.reduce(0, +)
    }

    /// One update with learning rate `lr`; every gradient is multiplied by `gradScale` first
    /// (global-norm clipping).
    public func update(parameters: [Parameter<Float>], layers: [any TrainingLinear], lr: Double, gradScale: Double) {
        t += 1
        let b1 = settings.beta1, b2 = settings.beta2
        let c1 = 1 - pow(b1, Double(t)), c2 = 1 - pow(b2, Double(t))
        for (i, p) in parameters.enumerated() {
            let decay = p.decays ? settings.weightDecay : 0
            Self.step(value: &p.value, grad: p.grad, m: &m[i], v: &v[i], lr: lr, decay: decay, gradScale: gradScale,
                      b1: b1, b2: b2, c1: c1, c2: c2, eps: settings.eps)
        }
        for (i, l) in layers.enumerated() {
            var s = l.scalars
            let g = l.scalarGradients
            guard !s.isEmpty else { continue }
            precondition(g.count == s.count, "\(l.id): \(s.count) scalars but \(g.count) scalar gradients")
            if scalarM[i].count != s.count {   // a layer created its scalars on its first forward
                scalarM[i] = [Float](repeating: 0, count: s.count); scalarV[i] = scalarM[i]
            }
            Self.step(value: &s, grad: g, m: &scalarM[i], v: &scalarV[i], lr: lr, decay: 0, gradScale: gradScale,
                      b1: b1, b2: b2, c1: c1, c2: c2, eps: settings.eps)
            l.scalars = s
        }
    }

    /// `m ← β₁m + (1−β₁)g`, `v ← β₂v + (1−β₂)g²`, `w ← w − lr·(m̂/(√v̂ + ε) + λ·w)`, elementwise.
    static func step(value: inout [Float], grad: [Float], m: inout [Float], v: inout [Float], lr: Double, decay: Double,
                     gradScale: Double, b1: Double, b2: Double, c1: Double, c2: Double, eps: Double) {
        let n = value.count
        let slices = max(1, min(64, n / 8192))
        let fb1 = Float(b1), fb2 = Float(b2), fc1 = Float(c1), fc2 = Float(c2), feps = Float(eps)
        let flr = Float(lr), fdecay = Float(decay), fscale = Float(gradScale)
        value.withUnsafeMutableBufferPointer { wp in m.withUnsafeMutableBufferPointer { mp in v.withUnsafeMutableBufferPointer { vp in
            let buf = UncheckedBox((wp.baseAddress!, mp.baseAddress!, vp.baseAddress!))
            grad.withUnsafeBufferPointer { gp in
                let gb = UncheckedBox(gp.baseAddress!)
                Parallel.forEach(slices, threads: slices == 1 ? 1 : nil) { s in
                    let (w, mm, vv) = buf.value
                    for i in (s * n / slices)..<((s + 1) * n / slices) {
                        let g = gb.value[i] * fscale
                        mm[i] = fb1 * mm[i] + (1 - fb1) * g
                        vv[i] = fb2 * vv[i] + (1 - fb2) * g * g
                        let mhat = mm[i] / fc1, vhat = vv[i] / fc2
                        w[i] -= flr * (mhat / (vhat.squareRoot() + feps) + fdecay * w[i])
                    }
                }
            }
        } } }
    }
}
