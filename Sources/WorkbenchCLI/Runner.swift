import Foundation
import QuantCore
import LlamaModel
import Evaluation
import Recipes
import QuantKernels

/// Failure classes, mapped to exit codes: bad input (recipe, model or data file) → 2, a failure
/// while running → 1.
public enum WorkbenchFailure: Error, CustomStringConvertible {
    case badInput(String)
    case runtime(String)
    public var description: String {
        switch self { case .badInput(let s), .runtime(let s): return s }
    }
}

/// Prints progress to stderr (results go to stdout).
func progress(_ s: String) {
    FileHandle.standardError.write(Data(("· " + s + "\n").utf8))
}

/// The data a run needs, resolved from a recipe: model, tokenized calibration and evaluation.
struct RunInputs {
    var model: DecoderModel
    var calibration: [[Int]]
    var evaluation: [[Int]]
    var evalProtocol: PerplexityProtocol
    var describeText: String
}

/// Executes a recipe: for every variant, copy the float model, assign schemes, run the
/// pipeline, check function preservation, then evaluate all variants on the same windows.
struct RecipeRunner {
    var recipe: Recipe
    var registry: MethodRegistry

    func resolveInputs() throws -> RunInputs {
        let loaded = try ModelLoading.load(recipe.model)
        let model = loaded.model
        let proto: PerplexityProtocol
        switch recipe.evaluation.protocolName {
        case .standard: proto = .standard(seqLen: recipe.evaluation.seqLen)
        case .llamaCpp: proto = .llamaCpp(nCtx: recipe.evaluation.seqLen, bos: loaded.addsBOS ? loaded.bosID : nil)
        }
        var maxWindows = recipe.evaluation.maxWindows
        if let mt = recipe.evaluation.maxTokens { maxWindows = min(maxWindows ?? .max, max(1, mt / proto.windowLength)) }
        let cal: [[Int]], eval: [[Int]], text: String
        switch recipe.calibration.source {
        case .synthetic:
            cal = SyntheticModel.tokens(seed: recipe.calibration.seed, windows: recipe.calibration.windows,
                                        length: recipe.calibration.seqLen, vocabSize: model.config.vocabSize)
        case .files(let paths):
            let tokens = try paths.map { try loaded.tokenize(file: $0) }
            cal = try CalibrationSampler.windows(from: tokens, files: paths, count: recipe.calibration.windows,
                                                 length: recipe.calibration.seqLen, seed: recipe.calibration.seed)
        }
        switch recipe.evaluation.source {
        case .synthetic:
            let n = maxWindows ?? 8
            progress("sampling \(n) evaluation windows of \(proto.windowLength) tokens from the float model")
            eval = SyntheticModel.sample(from: model, seed: recipe.seed &+ 1_000_003, windows: n, length: proto.windowLength).map { w in
                if case .llamaCpp(_, let bos?) = proto { var w = w; w[0] = bos; return w }
                return w
            }
            text = "\(n) windows sampled from the float model (seed \(recipe.seed))"
        case .files(let paths):
            var all: [Int] = []
            for p in paths { all += try loaded.tokenize(file: p) }
            eval = proto.windows(all, maxWindows: maxWindows)
            if eval.isEmpty { throw WorkbenchFailure.badInput("\(paths.joined(separator: ", ")): \(all.count) tokens is less than one evaluation window of \(proto.windowLength)") }
            text = paths.joined(separator: ", ") + " (\(all.count) tokens)"
        }
        return RunInputs(model: model, calibration: cal, evaluation: eval, evalProtocol: proto, describeText: text)
    }

    func run() throws -> RunReport {
        let started = Date()
        let inputs = try resolveInputs()
        let fp = inputs.model
        var report = RunReport(recipe: recipe.file, model: fp.provenance, evaluationText: inputs.describeText,
                               protocolDescription: inputs.evalProtocol.description,
                               calibration: "\(inputs.calibration.count) windows × \(inputs.calibration.first?.count ?? 0) tokens, seed \(recipe.calibration.seed)",
                               threads: Parallel.threadCount)
        var models: [DecoderModel] = []
        let runner = LlamaForward()
        for v in recipe.variants {
            progress("variant \(v.name): \(v.scheme.label), pipeline [\(v.pipeline.map { $0.method.name }.joined(separator: ", "))]")
            let model = fp.copy()
            let (headScheme, embedScheme) = try badInput { try model.assignSchemes(v.scheme, overrides: v.overrides) }
            for b in model.blocks { b.attentionQuantization = v.attention }
            let methods = try v.pipeline.map { try $0.method.init(options: $0.options) }
            for (m, step) in zip(methods, v.pipeline) {
                for s in model.allSites { _ = try badInput(at: step.location) { try m.plan(site: s, config: model.config) } }
            }
            let pipeline = Pipeline(methods: methods, propagation: v.propagation, seed: recipe.seed)
            let pr: PipelineReport
            do {
                pr = try pipeline.run(model: model, calibration: inputs.calibration,
                                      runner: runner, progress: { progress("  \(v.name): \($0)") })
            } catch let e as MethodError { throw WorkbenchFailure.runtime("variant \(v.name): \(e)") }
            if headScheme.isQuantized {
                model.lmHead.quantized = QuantizedWeight.roundToNearest(model.lmHead.weight, scheme: headScheme)
            }
            if embedScheme.isQuantized {
                model.embedding = QuantizedWeight.roundToNearest(model.embedding, scheme: embedScheme).dequantized()
            }
            // Function preservation: with rounding off, the transformed model must give the float logits.
            let probe = Array(inputs.calibration.prefix(2))
            let invariance = probe.isEmpty ? 0 : FunctionPreservation.maxRelativeLogitError(fp, model, windows: probe, runner: runner)
            if invariance > recipe.invarianceTolerance {
                throw WorkbenchFailure.runtime("variant \(v.name): its transforms change the float model's logits by \(String(format: "%.2e", invariance)) (relative, worst token) > \(recipe.invarianceTolerance); a transform is not function-preserving")
            }
            report.variants.append(VariantReport(name: v.name, scheme: v.scheme.label, weights: "\(v.scheme.weights)",
                                                 activations: "\(v.scheme.activations)",
                                                 pipeline: v.pipeline.map(\.summary),
                                                 sites: pr.sites, costs: pr.costs, quantizeSeconds: pr.seconds,
                                                 invarianceError: invariance, log: pr.log))
            models.append(model)
        }
        progress("evaluating FP and \(models.count) variant(s) on \(inputs.evaluation.count) windows — \(inputs.evalProtocol)")
        let scores = Evaluator(windowBatch: recipe.evaluation.windowsBatch)
            .evaluate(float: fp, variants: models, windows: inputs.evaluation, protocol: inputs.evalProtocol, progress: progress)
        report.setScores(scores)
        report.scoredTokens = inputs.evalProtocol.scoredTokens(inputs.evaluation)
        report.wallSeconds = Date().timeIntervalSince(started)
        return report
    }

    func badInput<T>(at loc: SourceLocation? = nil, _ body: () throws -> T) throws -> T {
        do { return try body() } catch let e as SchemeError {
            throw WorkbenchFailure.badInput((loc.map { "\($0): " } ?? "\(recipe.file): ") + e.description)
        } catch let e as MethodError {
            throw WorkbenchFailure.badInput((loc.map { "\($0): " } ?? "\(recipe.file): ") + e.description)
        }
    }
}

/// Checks that transforms leave the float model's function unchanged.
public enum FunctionPreservation {
    /// max over tokens of ‖z′ − z‖/‖z‖, z the float model's logits, z′ the transformed model's
    /// logits with rounding off (float weights in the transformed basis, float activations).
    public static func maxRelativeLogitError(_ reference: DecoderModel, _ transformed: DecoderModel, windows: [[Int]],
                                             runner: LlamaForward) -> Double {
        let z = runner.logits(reference, windows: windows, mode: .float)
        let z2 = runner.logits(transformed, windows: windows, mode: .float)
        var worst = 0.0
        for r in 0..<z.rows {
            var num = 0.0, den = 0.0
            for j in 0..<z.cols {
                let a = Double(z[r, j]), b = Double(z2[r, j])
                num += (a - b) * (a - b); den += a * a
            }
            worst = max(worst, den > 0 ? (num / den).squareRoot() : num.squareRoot())
        }
        return worst
    }
}
