import Foundation
import QuantCore
import Recipes
import Reporting
import LlamaModel
import Evaluation

/// The resolved plan of a recipe: every site with its transform chain, schemes, and which method
/// produces what, plus cost estimates: each method's from the model's shapes, the forward passes
/// (calibration propagation, evaluation) from one float window timed on this machine.
public struct Planner {
    public var recipe: Recipe
    public init(recipe: Recipe) { self.recipe = recipe }

    /// Validates the recipe against the model (files, schemes, every method's plan at every
    /// site, as `RecipeRunner.validate` does) and renders the plan.
    public func render() throws -> String {
        try RecipeFiles.check(recipe)
        let loaded = try ModelLoading.load(recipe.model, origin: recipe.origin("model"))
        let fp = loaded.model
        var out = "recipe \(recipe.file): OK\nmodel: \(fp.provenance)\n"
        let c = fp.config
        out += "  hidden \(c.hiddenSize), FFN \(c.intermediateSize), \(c.layerCount) layers, \(c.headCount) heads × \(c.headDim), \(c.kvHeadCount) KV heads, vocab \(c.vocabSize)\n"
        out += "calibration: \(recipe.calibration.windows) windows × \(recipe.calibration.seqLen) tokens, seed \(recipe.calibration.seed)\n"
        out += "evaluation: \(recipe.evaluation.protocolName.rawValue), seq_len \(recipe.evaluation.seqLen)" + (recipe.evaluation.maxWindows.map { ", at most \($0) windows" } ?? "") + "\n"
        out += "engine: \((recipe.engine ?? ExecutionEngine.current).rawValue)" + (recipe.engine == nil ? " (no `engine:` in the recipe)" : "") + "\n"
        let tokens = recipe.calibration.windows * recipe.calibration.seqLen
        let modelBytes = fp.parameterCount * 4
        var totalSeconds = 0.0, passSeconds = 0.0
        let inputs = try RecipeRunner(recipe: recipe).resolveInputs(loaded)
        let rate = ForwardCost.measure(fp, length: min(512, recipe.calibration.seqLen, max(1, inputs.evaluation.first?.count ?? 512)))
        for v in recipe.variants {
            let model = fp.copy()
            let (head, embed) = try wrap { try model.assignSchemes(v.scheme, overrides: v.overrides) }
            let methods = try v.pipeline.map { try $0.method.init(options: $0.options) }
            out += "\nvariant \(v.name): \(v.scheme.label), propagation \(v.propagation.rawValue)\n"
            out += "  pipeline: " + (v.pipeline.isEmpty ? "(none: float weights)" : v.pipeline.map { $0.method.name + ($0.options.values.isEmpty ? "" : "(" + $0.options.values.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ", ") + ")") }.joined(separator: " → ")) + "\n"
            if let a = v.attention { out += "  attention: Q/K/V int\(a.bits) per head per token\(a.hadamardOnHeadDim ? " after Hadamard(head_dim)" : "")\n" }
            out += "  lm_head: \(head)   embed_tokens: \(embed)\n"
            var seconds = 0.0, peak = 0
            let shown = Set(model.blocks.count <= 2 ? model.blocks.map(\.index) : [0, model.blocks.count - 1])
            for b in model.blocks {
                for s in b.sites {
                    var lines: [String] = []
                    for (m, step) in zip(methods, v.pipeline) {
                        let p = try wrap(at: step.location) { try m.plan(site: s, config: model.config) }
                        let e = m.estimate(site: s, tokens: tokens)
                        seconds += e.seconds; peak = max(peak, e.bytes + tokens * s.inFeatures * 4)
                        for t in p.transforms { lines.append("transform \(t) (\(step.method.name))") }
                        if let w = p.weights { lines.append("weights \(w) (\(step.method.name))") }
                        for n in p.notes { lines.append("note: \(n)") }
                    }
                    if shown.contains(b.index) {
                        out += "  \(s.name): in \(s.inFeatures), activations \(s.activationScheme)\n"
                        for l in s.linears { out += "      \(l.name) \(l.outFeatures)×\(l.inFeatures): \(l.scheme)\n" }
                        for l in lines { out += "      \(l)\n" }
                    }
                }
                if b.index == 0 && model.blocks.count > 2 { out += "  … blocks 1–\(model.blocks.count - 2) alike …\n" }
            }
            // While it runs: the float model, this variant (float + quantized copies), the calibration
            // hidden states and the largest site input with its method working set.
            let variantBytes = modelBytes * 2
            out += String(format: "  estimate: methods %.0f s, peak memory while quantizing ≈ %.2f GiB (%d calibration tokens)\n",
                          seconds, Double(modelBytes + variantBytes + peak + tokens * c.hiddenSize * 4) / Double(1 << 30), tokens)
            totalSeconds += seconds
            // Calibration passes: every window through every block when a method needs the inputs,
            // else only the windows the per-site statistics read.
            let needsInputs = Pipeline(methods: methods).needsCalibration
            let propagated = needsInputs ? inputs.calibration.count
                : Pipeline.measuredWindowIndices(windows: inputs.calibration.count, windowLength: recipe.calibration.seqLen).count
            passSeconds += Double(propagated * recipe.calibration.seqLen) * rate.blocksPerToken
        }
        // Evaluation: FP and every variant on every window (at the float rate: an upper bound for
        // variants on the integer kernels), with lm_head and scoring.
        let evalTokens = inputs.evaluation.reduce(0) { $0 + $1.count }
        let evalSeconds = Double((1 + recipe.variants.count) * evalTokens) * rate.evaluationPerToken
        let whole = totalSeconds + passSeconds + evalSeconds
        // Every variant stays in memory until the joint evaluation.
        let evalBytes = modelBytes + recipe.variants.count * modelBytes * 2
        out += "\nwhole run ≈ \(ForwardCost.duration(whole)): " + String(format: "methods %.0f s, calibration passes %.0f s, evaluation %.0f s (%d tokens × %d models); "
                      + "forward timed here: %.0f tok/s through the blocks, %.0f tok/s with lm_head and scoring\n",
                      totalSeconds, passSeconds, evalSeconds, evalTokens, 1 + recipe.variants.count,
                      1 / rate.blocksPerToken, 1 / rate.evaluationPerToken)
        out += String(format: "evaluation holds FP and %d variant(s) ≈ %.2f GiB\n", recipe.variants.count, Double(evalBytes) / Double(1 << 30))
        return out
    }

    func wrap<T>(at loc: SourceLocation? = nil, _ body: () throws -> T) throws -> T {
        do { return try body() }
        catch let e as SchemeError { throw WorkbenchFailure.badInput((loc.map { "\($0): " } ?? "\(recipe.file): ") + e.description) }
        catch let e as MethodError { throw WorkbenchFailure.badInput((loc.map { "\($0): " } ?? "\(recipe.file): ") + e.description) }
    }
}

/// The float forward's cost per token on this machine: the faster of two timed windows (the
/// first also pays for warming caches and the allocator).
struct ForwardCost {
    /// Through the decoder blocks (a calibration pass).
    var blocksPerToken: Double
    /// Blocks, lm_head and log-softmax (an evaluation pass).
    var evaluationPerToken: Double

    static func measure(_ model: DecoderModel, length: Int) -> ForwardCost {
        let window = (0..<length).map { $0 % model.config.vocabSize }
        let runner = LlamaForward()
        func once() -> ForwardCost {
            let t0 = DispatchTime.now().uptimeNanoseconds
            let h = runner.finalHidden(model, windows: [window], mode: .float)
            let t1 = DispatchTime.now().uptimeNanoseconds
            _ = Evaluator().logProbabilities(LlamaForward.lmHead(model, h, mode: .float))
            let t2 = DispatchTime.now().uptimeNanoseconds
            return ForwardCost(blocksPerToken: Double(t1 - t0) / 1e9 / Double(length), evaluationPerToken: Double(t2 - t0) / 1e9 / Double(length))
        }
        let (a, b) = (once(), once())
        return ForwardCost(blocksPerToken: min(a.blocksPerToken, b.blocksPerToken),
                           evaluationPerToken: min(a.evaluationPerToken, b.evaluationPerToken))
    }

    static func duration(_ s: Double) -> String {
        s < 120 ? String(format: "%.0f s", s) : String(format: "%.0f min", s / 60)
    }
}
