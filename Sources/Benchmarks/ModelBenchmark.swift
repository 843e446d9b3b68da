import Foundation
import QuantCore
import QuantKernels
import LlamaModel
import Evaluation
import Runs
import Recipes
import Reporting

/// `workbench bench model`: prefill and decode speed of the float model and each variant, on the
/// same tokens, in one run, each against the bound this machine's measured limits give it.
///
/// - Prefill: windows of L tokens (the recipe's evaluation windows), the full forward including
///   lm_head, no scoring (llama-bench's pp512). Bound: the forward's FLOPs (causal attention
///   counted) at the GEMM rates measured here on the model's shapes, integer sites at the integer
///   GEMM's rate — the Amdahl bound of the variant's mix of f32 and integer work.
/// - Decode: a prompt of `promptTokens`, then `decodeTokens` tokens generated greedily one at a
///   time with the KV cache (llama-bench's tg128). Bound: (weight bytes + KV-cache bytes read per
///   token) / (memory read bandwidth measured here).
public struct ModelBenchmark {
    public struct Settings: Sendable {
        /// Prefill windows timed per model (after one warm-up window).
        public var windows = 4
        public var promptTokens = 512
        public var decodeTokens = 128
        /// Timing rounds: each round times every model once (prefill windows, then a decode), the
        /// models interleaved, so a slow spell of a shared machine falls on all of them; figures are
        /// the median round's.
        public var rounds = 3
        /// Per-component time shares of the prefill (and the evaluation's scoring).
        public var profile = false
        /// Shorter measurements (tests).
        public var quick = false
        public init() {}
    }

    public struct Model {
        public var name: String
        public var scheme: String
        public var model: DecoderModel
        public var mode: ExecutionMode
        public init(name: String, scheme: String, model: DecoderModel, mode: ExecutionMode) {
            self.name = name; self.scheme = scheme; self.model = model; self.mode = mode
        }
    }

    public var settings: Settings
    public var progress: (String) -> Void

    public init(settings: Settings = Settings(), progress: @escaping (String) -> Void = { _ in }) {
        self.settings = settings; self.progress = progress
    }

    /// Quantizes every variant of `recipe` and benchmarks the float model and each variant on the
    /// recipe's evaluation windows.
    public func run(recipe: Recipe, progress handler: @escaping ProgressHandler = { _ in }) throws -> ModelBenchmarkReport {
        // Each variant keeps only what its forward reads (packed codes where it runs on the integer
        // or weight-only GEMM), as a runtime would hold it.
        let (loaded, windows, variants) = try RecipeRunner(recipe: recipe, progress: handler)
            .quantizeAll(then: { $0.compactForInference() })
        let fp = Model(name: "FP", scheme: "f32 (\(loaded.model.provenance))", model: loaded.model, mode: .float)
        return try run([fp] + variants.map { Model(name: $0.0.name, scheme: $0.0.scheme.label, model: $0.1, mode: .quantized) },
                       windows: windows, progress: handler)
    }

    /// Runs every model (the first is the float reference for ratios) on `windows` (each of the
    /// same length; the first also gives the decode prompt). `handler` gets the timing rounds'
    /// and profile passes' steps (rate and ETA).
    public func run(_ models: [Model], windows: [[Int]], progress handler: @escaping ProgressHandler = { _ in }) throws -> ModelBenchmarkReport {
        guard let first = models.first, let w0 = windows.first, !w0.isEmpty else {
            throw BenchmarkError("bench model needs a model and at least one evaluation window")
        }
        let c = first.model.config
        let L = w0.count
        let prompt = Array(w0.prefix(settings.promptTokens))
        guard prompt.count == settings.promptTokens else {
            throw BenchmarkError("the first evaluation window has \(w0.count) tokens; the decode prompt needs \(settings.promptTokens)")
        }
        let timed = Array(windows.prefix(settings.windows))
        let threads = Parallel.threadCount
        var report = ModelBenchmarkReport(threads: threads, kernelPath: KernelDispatch.active.rawValue, cpu: KernelDispatch.summary,
                                          model: first.model.provenance, windowLength: L, prefillWindows: timed.count,
                                          promptTokens: prompt.count, decodeTokens: settings.decodeTokens)
        report.rounds = max(1, settings.rounds)

        // Machine limits, measured now on this model's shapes.
        progress("measuring this machine's limits (GEMM rates on the model's shapes, memory read bandwidth)")
        let budget = settings.quick ? 0.02 : 0.25
        let peaks = KernelBenchmark.peaks(threads: [threads], quick: settings.quick)
        report.f32PeakGFLOPS = peaks.f32[threads]; report.intPeakGOPS = peaks.int[threads]
        report.readBandwidthGBs = MachineLimits.readBandwidth(bytes: settings.quick ? 64 << 20 : 512 << 20, threads: threads) / 1e9   // and again each round
        // GEMM rates on the model's shapes, in first-use order; measured again each round and the
        // best kept (the limit is what the kernels reach when the host leaves them alone).
        var rates: [RateKey: Double] = [:], rateOrder: [RateKey] = []
        func rate(_ kind: MachineLimits.Kind, _ s: MachineLimits.Shape) -> Double {
            let key = RateKey(kind: kind, shape: s)
            if let r = rates[key] { return r }
            let r = MachineLimits.gemmRate(kind, s, threads: threads, budget: budget)
            rates[key] = r
            rateOrder.append(key)
            return r
        }

        let evaluator = Evaluator()
        let meanContext = prompt.count + settings.decodeTokens / 2
        var rows: [ModelBenchmarkReport.Row] = []
        var decoders: [LlamaDecoder] = []
        let runner = LlamaForward()
        var works: [Work] = []
        let transformShape = MachineLimits.Shape(m: L, k: c.hiddenSize, n: c.hiddenSize)
        for m in models {
            let work = Work.of(m.model, mode: m.mode, windowLength: L)
            works.append(work)
            var row = ModelBenchmarkReport.Row(name: m.name, scheme: m.scheme)
            row.prefillFLOPsPerToken = work.flops.reduce(0) { $0 + $1.flops } / Double(L)
            row.integerFLOPsShare = work.flops.filter { $0.kind != .f32 }
                .reduce(0) { $0 + $1.flops } / (row.prefillFLOPsPerToken * Double(L))
            for f in work.flops { _ = rate(f.kind, f.shape) }
            if work.transformFLOPs > 0 { _ = rate(.f32, transformShape) }
            row.bytesReadPerToken = work.weightBytesReadPerToken + LlamaDecoder.cacheBytesRead(c, positions: meanContext)
            _ = runner.logits(m.model, windows: [timed[0]], mode: m.mode)          // warm-up: packs / dequantizes once
            decoders.append(LlamaDecoder(model: m.model, mode: m.mode, capacity: prompt.count + settings.decodeTokens))
            row.weightBytes = ModelBenchmarkReport.WeightBytes(m.model)
            row.residentBytes = PeakMemory.currentResidentBytes()
            rows.append(row)
        }

        /// The prompt, then `decodeTokens` greedy tokens one at a time; seconds of the generation.
        func generate(_ decoder: LlamaDecoder, profiled: Bool = false) throws -> Double {
            decoder.reset()
            var logits = try decoder.append(prompt)
            var next = Sampler.greedy
            let t0 = DispatchTime.now().uptimeNanoseconds
            if profiled { Profiler.start() }
            for _ in 0..<settings.decodeTokens { logits = try decoder.append([next.pick(logits.data)]) }
            return Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
        }

        // Timing rounds, the models interleaved; per model the median round's rates.
        let rounds = max(1, settings.rounds)
        var prefillRates = [[Double]](repeating: [], count: models.count), decodeRates = prefillRates
        let bandwidthBytes = settings.quick ? 64 << 20 : 512 << 20
        var bandwidths = [report.readBandwidthGBs]
        for round in 0..<rounds {
            // The host's memory bandwidth varies over minutes: measured again each round, and the
            // decode bound taken at the median measurement (as the rates are the median round's).
            if round > 0 {
                bandwidths.append(MachineLimits.readBandwidth(bytes: bandwidthBytes, threads: threads, passes: 2) / 1e9)
                progress("round \(round + 1)/\(rounds): GEMM rates on the model's shapes again")
                for key in rateOrder { rates[key] = max(rates[key]!, MachineLimits.gemmRate(key.kind, key.shape, threads: threads, budget: budget)) }
            }
            for (i, m) in models.enumerated() {
                handler(.step(task: "bench: \(rounds) timing round(s)", done: round * models.count + i, total: rounds * models.count,
                              unit: "model runs", detail: "round \(round + 1), \(m.name): prefill \(timed.count) × \(L) tokens, decode \(prompt.count) + \(settings.decodeTokens) tokens"))
                var seconds = 0.0
                for w in timed {
                    let t0 = DispatchTime.now().uptimeNanoseconds
                    _ = runner.logits(m.model, windows: [w], mode: m.mode)
                    seconds += Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
                }
                prefillRates[i].append(Double(timed.count * L) / seconds)
                decodeRates[i].append(Double(settings.decodeTokens) / (try generate(decoders[i])))
            }
        }
        handler(.step(task: "bench: \(rounds) timing round(s)", done: rounds * models.count, total: rounds * models.count, unit: "model runs"))
        func median(_ v: [Double]) -> Double {
            let s = v.sorted()
            return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
        }
        report.readBandwidthGBs = median(bandwidths)
        report.readBandwidthRangeGBs = [bandwidths.min()!, bandwidths.max()!]
        report.gemmRates = rateOrder.map { .init(kind: $0.kind.description, shape: $0.shape, threads: threads, rate: rates[$0]!) }
        for i in rows.indices {
            // Prefill bound: every GEMM at the (best measured) rate of its kind and shape.
            let boundSeconds = works[i].flops.reduce(0.0) { $0 + $1.flops / (rates[RateKey(kind: $1.kind, shape: $1.shape)]! * 1e9) }
            rows[i].prefillBoundTokensPerSecond = Double(L) / boundSeconds
            if works[i].transformFLOPs > 0 {
                rows[i].onlineTransformBoundSeconds = works[i].transformFLOPs / (rates[RateKey(kind: .f32, shape: transformShape)]! * 1e9)
            }
            rows[i].decodeBoundTokensPerSecond = report.readBandwidthGBs * 1e9 / Double(rows[i].bytesReadPerToken)
            rows[i].prefillTokensPerSecond = median(prefillRates[i])
            rows[i].decodeTokensPerSecond = median(decodeRates[i])
            rows[i].prefillRange = [prefillRates[i].min()!, prefillRates[i].max()!]
            rows[i].decodeRange = [decodeRates[i].min()!, decodeRates[i].max()!]
            rows[i].prefillRatioToFloat = rows[i].prefillTokensPerSecond / rows[0].prefillTokensPerSecond
            rows[i].prefillFractionOfBound = rows[i].prefillTokensPerSecond / rows[i].prefillBoundTokensPerSecond
            rows[i].decodeRatioToFloat = rows[i].decodeTokensPerSecond / rows[0].decodeTokensPerSecond
            rows[i].decodeFractionOfBound = rows[i].decodeTokensPerSecond / rows[i].decodeBoundTokensPerSecond
            rows[i].kvCacheBytes = decoders[i].cacheBytes
        }

        // Profile passes (up to 3), the models interleaved as in the timing rounds; per model the
        // pass with the median wall time is reported (prefill and decode separately), so a slow
        // spell during one model's pass does not make its components' figures.
        typealias Pass = (parts: [String: Double], wall: Double)
        let passes = settings.profile ? min(rounds, 3) : 0
        if passes > 0 { report.profilePasses = passes }
        var prefillPasses = [[Pass]](repeating: [], count: models.count), decodePasses = prefillPasses
        let fpLogProbs = passes > 0 ? timed.map { evaluator.logProbabilities(runner.logits(models[0].model, windows: [$0], mode: .float)) } : []
        let proto = PerplexityProtocol.standard(seqLen: L)
        for pass in 0..<passes {
            var fpProbabilities: [Matrix] = []
            for (i, m) in models.enumerated() {
                handler(.step(task: "bench: \(passes) profile pass(es)", done: pass * models.count + i, total: passes * models.count,
                              unit: "model runs", detail: "pass \(pass + 1), \(m.name): the prefill, the evaluation's scoring and the decode"))
                let t0 = DispatchTime.now().uptimeNanoseconds
                Profiler.start()
                for (wi, w) in timed.enumerated() {
                    let lp = evaluator.logProbabilities(runner.logits(m.model, windows: [w], mode: m.mode))
                    // As the evaluation does: the float model's probabilities once per window (charged to FP), for every variant's KL.
                    if i == 0 { fpProbabilities.append(Profiler.measure("NLL/KL scoring") { Evaluator.probabilities(lp) }) }
                    _ = evaluator.score(logProbabilities: lp, float: i == 0 ? nil : fpLogProbs[wi],
                                        floatProbabilities: i == 0 ? nil : fpProbabilities[wi], batch: [w], protocol: proto)
                }
                let parts = Profiler.stop()
                prefillPasses[i].append((parts, Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9))
                // Decode: the same prompt, then the same number of tokens, under the profiler.
                let decodeWall = try generate(decoders[i], profiled: true)
                decodePasses[i].append((Profiler.stop(), decodeWall))
            }
        }
        if passes > 0 { handler(.step(task: "bench: \(passes) profile pass(es)", done: passes * models.count, total: passes * models.count, unit: "model runs")) }
        /// Seconds per unit of each component in the median-wall pass, and what no component measured.
        func medianPass(_ p: [Pass], per units: Double) -> (components: [ModelBenchmarkReport.ProfileEntry], wall: Double?) {
            let pass = p.sorted { $0.wall < $1.wall }[p.count / 2]
            var components = pass.parts.map { ModelBenchmarkReport.ProfileEntry(component: $0.key, seconds: $0.value / units) }
                .sorted { $0.seconds > $1.seconds }
            components.append(.init(component: "other (not in a measured component)",
                                    seconds: max(0, pass.wall - pass.parts.values.reduce(0, +)) / units))
            return (components, pass.wall / units)
        }
        for i in rows.indices where passes > 0 {
            (rows[i].profile, rows[i].profileWallSecondsPerWindow) = medianPass(prefillPasses[i], per: Double(timed.count))
            (rows[i].decodeProfile, rows[i].decodeProfileWallSecondsPerToken) = medianPass(decodePasses[i], per: Double(settings.decodeTokens))
        }
        report.rows = rows
        report.peakResidentBytes = PeakMemory.residentBytes()
        return report
    }

    struct RateKey: Hashable { var kind: MachineLimits.Kind; var shape: MachineLimits.Shape }

    /// What one window's forward computes and reads, by kind of arithmetic.
    struct Work {
        var flops: [(kind: MachineLimits.Kind, shape: MachineLimits.Shape, flops: Double)] = []
        var transformFLOPs = 0.0
        var weightBytesReadPerToken = 0

        static func of(_ model: DecoderModel, mode: ExecutionMode, windowLength L: Int) -> Work {
            var w = Work()
            let c = model.config
            func add(_ linears: [Linear], _ activations: ActivationScheme) {
                let arithmetic = Site.arithmetic(linears, activations: activations, mode: mode)
                for l in linears {
                    let shape = MachineLimits.Shape(m: L, k: l.inFeatures, n: l.outFeatures)
                    var kind = MachineLimits.Kind.f32
                    if let p = l.packedForIntegerGemm {
                        let bits = p.storageBits
                        if arithmetic == .integer { kind = .integer(weightBits: bits, activationBits: activations.bits) }
                        if arithmetic == .weightOnly { kind = .weightOnly(weightBits: bits) }
                    }
                    w.flops.append((kind, shape, shape.flops))
                    w.weightBytesReadPerToken += l.bytesReadPerToken(arithmetic)
                }
            }
            for site in model.allSites {
                add(site.linears, site.activationScheme)
                if mode != .float {
                    for t in site.transforms where t.placement == .online {
                        w.transformFLOPs += Double(L) * Work.flopsPerRow(t.transform, features: site.inFeatures)
                        w.weightBytesReadPerToken += Work.parameterBytes(t.transform)
                    }
                }
            }
            add([model.lmHead], model.lmHeadActivations)
            w.weightBytesReadPerToken += 4 * c.hiddenSize   // one embedding row
            // Causal attention: QKᵀ and P·V over the visible positions only, per head and block.
            let attention = 2.0 * 2.0 * Double(c.headDim) * Double(L) * Double(L + 1) / 2 * Double(c.headCount * c.layerCount)
            let attnShape = MachineLimits.Shape(m: L, k: c.headDim, n: L)
            w.flops.append((.f32, attnShape, attention))
            w.flops.append((.f32, MachineLimits.Shape(m: L, k: c.hiddenSize, n: c.hiddenSize), w.transformFLOPs))
            return w
        }

        /// Bytes an online transform reads per token besides the activations: its matrices
        /// (DuQuant's rotations are about two thirds of a W4 model's block weights), scales, indices.
        static func parameterBytes(_ t: Transform) -> Int {
            switch t {
            case .scale(let s): return 4 * s.count
            case .permutation(let p): return MemoryLayout<Int>.size * p.count
            case .blockOrthogonal(_, let blocks): return 4 * blocks.reduce(0) { $0 + $1.count }
            case .hadamard(_, _, let signs): return 4 * (signs?.count ?? 0)
            case .orthogonal(let m): return 4 * m.data.count
            }
        }

        /// Arithmetic of one online transform per token row of `features` values.
        static func flopsPerRow(_ t: Transform, features n: Int) -> Double {
            switch t {
            case .scale: return Double(n)
            case .permutation: return 0
            case .blockOrthogonal(let b, _): return 2 * Double(b) * Double(n)
            case .hadamard(_, let b, _): return Double(n) * log2(Double(max(2, b)))
            case .orthogonal: return 2 * Double(n) * Double(n)
            }
        }
    }
}

public struct BenchmarkError: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}
