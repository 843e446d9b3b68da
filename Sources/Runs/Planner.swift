import Foundation
import QuantCore
import Recipes
import Reporting

/// The resolved plan of a recipe: every site with its transform chain, schemes, and which method
/// produces what, plus cost estimates — computed from the model's shapes only.
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
        var totalSeconds = 0.0
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
        }
        // Every variant stays in memory until the joint evaluation.
        let evalBytes = modelBytes + recipe.variants.count * modelBytes * 2
        out += String(format: "\nwhole run: methods ≈ %.0f s; evaluation holds FP and %d variant(s) ≈ %.2f GiB\n",
                      totalSeconds, recipe.variants.count, Double(evalBytes) / Double(1 << 30))
        return out
    }

    func wrap<T>(at loc: SourceLocation? = nil, _ body: () throws -> T) throws -> T {
        do { return try body() }
        catch let e as SchemeError { throw WorkbenchFailure.badInput((loc.map { "\($0): " } ?? "\(recipe.file): ") + e.description) }
        catch let e as MethodError { throw WorkbenchFailure.badInput((loc.map { "\($0): " } ?? "\(recipe.file): ") + e.description) }
    }
}
