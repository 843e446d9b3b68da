import Foundation
import QuantCore
import LlamaModel
import QuantKernels

/// How evaluation text becomes scored token windows. The protocol is printed with every number.
public enum PerplexityProtocol: Sendable, Equatable, CustomStringConvertible {
    /// GPTQ / SmoothQuant / QuaRot / DuQuant convention: tokenize the whole file once, cut it into
    /// non-overlapping windows of `seqLen` tokens (remainder dropped), no BOS per window, score
    /// every next-token prediction (seqLen − 1 per window).
    case standard(seqLen: Int)
    /// llama.cpp's `llama-perplexity`: windows of `nCtx` tokens, the first replaced by BOS when
    /// the model asks for BOS, only the second half of each window scored (nCtx/2 − 1 predictions).
    case llamaCpp(nCtx: Int, bos: Int?)

    public var windowLength: Int {
        switch self { case .standard(let l): return l; case .llamaCpp(let n, _): return n }
    }

    /// First position whose prediction is scored (predicting the token at position + 1).
    public var firstScored: Int {
        switch self { case .standard: return 0; case .llamaCpp(let n, _): return n / 2 }
    }

    public var description: String {
        switch self {
        case .standard(let l): return "standard (seq_len \(l), non-overlapping, no BOS, all \(l - 1) predictions per window)"
        case let .llamaCpp(n, bos): return "llama.cpp (n_ctx \(n), \(bos != nil ? "BOS per window" : "no BOS"), second half scored: \(n - 1 - n / 2) per window)"
        }
    }

    /// The predicting positions scored in `window` (each predicts the token at position + 1).
    public func scoredPositions(_ window: [Int]) -> Range<Int> { firstScored..<(window.count - 1) }

    /// Every scored token of `windows` in evaluation order (the order of `TokenScores.nll`).
    public func scoredTokens(_ windows: [[Int]]) -> [(window: Int, position: Int, target: Int)] {
        windows.enumerated().flatMap { w, win in scoredPositions(win).map { (window: w, position: $0, target: win[$0 + 1]) } }
    }

    /// Cuts `tokens` into evaluation windows, at most `maxWindows`.
    public func windows(_ tokens: [Int], maxWindows: Int? = nil) -> [[Int]] {
        let l = windowLength
        guard l > 1 else { return [] }
        var n = tokens.count / l
        if let m = maxWindows { n = min(n, m) }
        return (0..<n).map { w in
            var win = Array(tokens[(w * l)..<((w + 1) * l)])
            if case .llamaCpp(_, let bos?) = self { win[0] = bos }
            return win
        }
    }
}

/// Per-token statistics of one model on the evaluation windows.
public struct TokenScores: Sendable, Codable {
    /// Negative log-likelihood of every scored token, in window order.
    public var nll: [Double] = []
    /// KL(float ‖ this model) per scored token, and whether the argmax agrees (empty for the float model).
    public var kl: [Double] = []
    public var top1Agree: Int = 0
    /// The first NaN / ±inf met in this model's logits (scoring stopped there); nil when all were finite.
    public var numericalFault: NumericalFault?
    public var seconds: Double = 0
    public var tokensProcessed: Int = 0

    public var meanNLL: Double { nll.isEmpty ? .nan : nll.reduce(0, +) / Double(nll.count) }
    public var perplexity: Double { exp(meanNLL) }
    /// Standard error of the mean NLL; the perplexity's is `ppl · se`.
    public var nllStandardError: Double { Stats.standardError(nll) }
    public var meanKL: Double { kl.isEmpty ? 0 : kl.reduce(0, +) / Double(kl.count) }
    public var klStandardError: Double { Stats.standardError(kl) }
    public var klP99: Double { Stats.percentile(kl, 0.99) }
    public var top1Agreement: Double { kl.isEmpty ? 1 : Double(top1Agree) / Double(kl.count) }
    public var tokensPerSecond: Double { seconds > 0 ? Double(tokensProcessed) / seconds : 0 }
}

public enum Stats {
    public static func standardError(_ x: [Double]) -> Double {
        guard x.count > 1 else { return 0 }
        let m = x.reduce(0, +) / Double(x.count)
        let v = x.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(x.count - 1)
        return (v / Double(x.count)).squareRoot()
    }
    public static func percentile(_ x: [Double], _ p: Double) -> Double {
        guard !x.isEmpty else { return 0 }
        let s = x.sorted()
        return s[min(s.count - 1, Int((p * Double(s.count - 1)).rounded()))]
    }
    /// Mean and standard error of the paired difference a − b (same tokens).
    public static func pairedDifference(_ a: [Double], _ b: [Double]) -> (mean: Double, se: Double) {
        precondition(a.count == b.count)
        let d = zip(a, b).map { $0 - $1 }
        return (d.reduce(0, +) / Double(max(1, d.count)), standardError(d))
    }
}

/// Evaluates a float model and quantized variants on the same windows, streaming: each window's
/// float log-probabilities are computed once and compared with every variant, so no logit file
/// is stored.
public struct Evaluator {
    public var runner = LlamaForward()
    public var windowBatch: Int

    public init(windowBatch: Int = 1) { self.windowBatch = windowBatch }

    /// Like `evaluate(float:variants:windows:protocol:progress:)`, but throws the first
    /// `NumericalFault` (NaN or ±inf in a model's logits), attributed to `names[i]` for variant i
    /// ("float" for the float model), instead of leaving it in `TokenScores.numericalFault`.
    public func evaluate(float: DecoderModel, variants: [DecoderModel], names: [String], windows: [[Int]],
                         protocol proto: PerplexityProtocol,
                         progress: (_ windowsDone: Int, _ windows: Int) -> Void = { _, _ in }) throws -> [TokenScores] {
        let scores = evaluate(float: float, variants: variants, windows: windows, protocol: proto, progress: progress)
        for (i, s) in scores.enumerated() {
            if let f = s.numericalFault { throw f.in(variant: i == 0 ? "float" : (i - 1 < names.count ? names[i - 1] : "#\(i)")) }
        }
        return scores
    }

    /// Returns one `TokenScores` for the float model followed by one per variant. A model whose
    /// logits hold NaN or ±inf gets `numericalFault` set and is not scored further (its NLL would
    /// be meaningless); prefer the throwing overload with `names`.
    public func evaluate(float: DecoderModel, variants: [DecoderModel], windows: [[Int]], protocol proto: PerplexityProtocol,
                         progress: (_ windowsDone: Int, _ windows: Int) -> Void = { _, _ in }) -> [TokenScores] {
        var scores = [TokenScores](repeating: TokenScores(), count: variants.count + 1)
        var w = 0
        /// Log-probabilities of a batch, or nil after recording the model's first non-finite logit.
        func checked(_ logits: Matrix, _ vi: Int, _ batch: [[Int]]) -> Matrix? {
            let (lp, bad) = logProbabilitiesChecked(logits)
            guard let (row, value) = bad else { return lp }
            let pos = row % max(1, batch.first?.count ?? 1), win = w + row / max(1, batch.first?.count ?? 1)
            scores[vi].numericalFault = NumericalFault(quantity: "logits", site: "lm_head",
                                                       step: "evaluation window \(win), position \(pos)", value: value)
            return nil
        }
        while w < windows.count {
            let batch = Array(windows[w..<min(windows.count, w + windowBatch)])
            progress(w, windows.count)
            var t0 = Date()
            guard scores[0].numericalFault == nil, let fp = checked(runner.logits(float, windows: batch, mode: .float), 0, batch) else { break }
            scores[0].seconds += Date().timeIntervalSince(t0)
            scores[0].tokensProcessed += batch.count * proto.windowLength
            // The float model's probabilities, once for every variant's KL.
            let fpProbabilities = variants.isEmpty ? nil : Profiler.measure("NLL/KL scoring") { Evaluator.probabilities(fp) }
            for (vi, model) in ([nil] + variants.map { Optional($0) }).enumerated() where scores[vi].numericalFault == nil {
                let lp: Matrix
                if let model {
                    t0 = Date()
                    guard let l = checked(runner.logits(model, windows: batch, mode: .quantized), vi, batch) else { continue }
                    lp = l
                    scores[vi].seconds += Date().timeIntervalSince(t0)
                    scores[vi].tokensProcessed += batch.count * proto.windowLength
                } else { lp = fp }
                let (nll, kl, agree) = score(logProbabilities: lp, float: model == nil ? nil : fp, floatProbabilities: fpProbabilities,
                                             batch: batch, protocol: proto)
                scores[vi].nll += nll
                if model != nil {
                    scores[vi].kl += kl
                    scores[vi].top1Agree += agree.filter { $0 }.count
                }
            }
            w += batch.count
        }
        progress(windows.count, windows.count)
        return scores
    }

    /// Per scored token of `batch`, in window order: the NLL of the next token under `lp`
    /// (log-probabilities, tokens × vocab) and, when the float model's log-probabilities `fp` are
    /// given, KL(FP‖model) and whether both put their maximum on the same token.
    /// `floatProbabilities` is `probabilities(fp)` when the caller scores several models against
    /// the same `fp` (computed here otherwise).
    public func score(logProbabilities lp: Matrix, float fp: Matrix?, floatProbabilities: Matrix? = nil, batch: [[Int]],
                      protocol proto: PerplexityProtocol) -> (nll: [Double], kl: [Double], top1Agree: [Bool]) {
        Profiler.measure("NLL/KL scoring") {
            let pfs = fp.map { floatProbabilities ?? Evaluator.probabilities($0) }
            let v = lp.cols
            var rows: [(window: Int, pos: Int)] = []
            for (bi, win) in batch.enumerated() { for pos in proto.scoredPositions(win) { rows.append((bi, pos)) } }
            var nll = [Double](repeating: 0, count: rows.count), kl = nll
            var agree = [Bool](repeating: false, count: rows.count)
            nll.withUnsafeMutableBufferPointer { np in kl.withUnsafeMutableBufferPointer { kp in agree.withUnsafeMutableBufferPointer { ap in
                let out = UncheckedBox((np.baseAddress!, kp.baseAddress!, ap.baseAddress!))
                Parallel.forEach(rows.count) { i in
                    let (bi, pos) = rows[i]
                    let win = batch[bi]
                    let row = (bi * win.count + pos) * v
                    out.value.0[i] = -Double(lp.data[row + win[pos + 1]])
                    guard let fp, let pfs else { return }
                    var sum = 0.0
                    var amaxF = 0, amaxQ = 0
                    for j in 0..<v {
                        let pf = fp.data[row + j], pq = lp.data[row + j]
                        sum += Double(pfs.data[row + j] * (pf - pq))
                        if pf > fp.data[row + amaxF] { amaxF = j }
                        if pq > lp.data[row + amaxQ] { amaxQ = j }
                    }
                    out.value.1[i] = max(0, sum)
                    out.value.2[i] = amaxF == amaxQ
                }
            } } }
            return (nll, fp == nil ? [] : kl, fp == nil ? [] : agree)
        }
    }

    /// `e^x` per element of log-probabilities (Foundation's `exp`, rows in parallel): the float
    /// model's probabilities in KL(FP‖model) = Σ p_FP·(log p_FP − log p_model).
    public static func probabilities(_ logProbabilities: Matrix) -> Matrix {
        var p = Matrix(zeros: logProbabilities.rows, logProbabilities.cols)
        let v = p.cols
        p.data.withUnsafeMutableBufferPointer { pp in logProbabilities.data.withUnsafeBufferPointer { lp in
            let box = UncheckedBox((pp.baseAddress!, lp.baseAddress!))
            Parallel.forEach(logProbabilities.rows) { r in
                let (p, l) = box.value
                for j in (r * v)..<((r + 1) * v) { p[j] = exp(l[j]) }
            }
        } }
        return p
    }

    /// Row-wise log-softmax (rows in parallel; `VectorMath.exp`, `VectorMath.sumExp`).
    public func logProbabilities(_ logits: Matrix) -> Matrix { logProbabilitiesChecked(logits).0 }

    /// `logProbabilities`, and the first row holding a non-finite logit with that value (found in
    /// the max pass the softmax makes anyway: `Σ x·0` is NaN exactly when some x is NaN or ±inf).
    public func logProbabilitiesChecked(_ logits: Matrix) -> (Matrix, (row: Int, value: Float)?) {
        Profiler.measure("log-softmax") { logProbabilitiesUnprofiled(logits) }
    }

    private func logProbabilitiesUnprofiled(_ logits: Matrix) -> (Matrix, (row: Int, value: Float)?) {
        var out = logits
        let v = logits.cols
        var rowFault = [UInt8](repeating: 0, count: logits.rows)
        out.data.withUnsafeMutableBufferPointer { op in
            logits.data.withUnsafeBufferPointer { lp in rowFault.withUnsafeMutableBufferPointer { fp in
                let box = UncheckedBox((op.baseAddress!, lp.baseAddress!, fp.baseAddress!))
                Parallel.forEach(logits.rows) { r in
                    let (o, l, fault) = box.value
                    let row = l + r * v
                    let (mx, finite) = VectorMath.maximumChecked(row, v)
                    if !finite { fault[r] = 1 }
                    let lse = mx + Float(log(VectorMath.sumExp(row, v, shift: mx)))
                    VectorMath.subtract(row, lse, into: o + r * v, v)
                }
            } }
        }
        guard let r = rowFault.firstIndex(of: 1) else { return (out, nil) }
        let value = logits.data[(r * v)..<((r + 1) * v)].first { !$0.isFinite } ?? .nan
        return (out, (r, value))
    }
}
