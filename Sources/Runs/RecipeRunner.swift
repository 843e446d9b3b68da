import Foundation
import QuantCore
import LlamaModel
import Evaluation
import Recipes
import QuantKernels
import Reporting

/// Failure classes, mapped to exit codes by front ends: bad input (recipe, model or data file) → 2,
/// a failure while running → 1.
public enum WorkbenchFailure: Error, CustomStringConvertible {
    case badInput(String)
    case runtime(String)
    public var description: String {
        switch self { case .badInput(let s), .runtime(let s): return s }
    }
}

/// The data a run needs, resolved from a recipe: model, tokenized calibration and evaluation.
public struct RunInputs {
    public var model: DecoderModel
    public var calibration: [[Int]]
    public var evaluation: [[Int]]
    public var evalProtocol: PerplexityProtocol
    public var describeText: String
}

/// Executes a recipe: validates every variant against the model first, then for every variant
/// copies the float model, assigns schemes, runs the pipeline and checks function preservation,
/// then evaluates FP and all variants on the same windows.
///
/// ```swift
/// let recipe = try Recipe.load(path: "recipes/quickstart.yaml", registry: registry)
/// let report = try RecipeRunner(recipe: recipe, progress: display.handler).run()
/// print(report.render(perSite: true))
/// ```
public struct RecipeRunner {
    public var recipe: Recipe
    public var progress: ProgressHandler
    /// Where results are stored and reused (nil: compute everything, store nothing).
    public var cache: ResultCache?
    /// false: compute everything but still store the results (`--fresh`).
    public var reuseCached = true
    /// Called with every variant's quantized model right after it is made (e.g. to export it).
    /// A variant for which `needsModel` is true is quantized even when its result is cached.
    public var onQuantized: ((Recipe.Variant, DecoderModel, _ float: DecoderModel, RunModel) throws -> Void)?
    public var needsModel: (Recipe.Variant) -> Bool = { _ in false }

    public init(recipe: Recipe, progress: @escaping ProgressHandler = { _ in }, cache: ResultCache? = nil) {
        self.recipe = recipe; self.progress = progress; self.cache = cache
    }

    /// Checks everything that can be checked without computing: every file the recipe names,
    /// the model, and every variant's schemes and every method's plan at every site. Returns the
    /// loaded model so `run` does not load it twice.
    @discardableResult
    public func validate() throws -> RunModel {
        // The recipe's engine applies to everything this process runs from here on.
        if let e = recipe.engine { ExecutionEngine.current = e }
        try RecipeFiles.check(recipe)
        let loaded = try ModelLoading.load(recipe.model, origin: recipe.origin("model"), progress: progress)
        try validateVariants(on: loaded.model)
        return loaded
    }

    /// Every variant's overrides, group sizes and method plans against the model's shapes. Leaves
    /// the model's schemes as they were.
    func validateVariants(on model: DecoderModel) throws {
        let savedSites = model.allSites.map { ($0.activationScheme, $0.linears.map(\.scheme)) }
        let savedHead = model.lmHead.scheme
        defer {
            for (site, saved) in zip(model.allSites, savedSites) {
                site.activationScheme = saved.0
                for (l, s) in zip(site.linears, saved.1) { l.scheme = s }
            }
            model.lmHead.scheme = savedHead
        }
        let siteNames = Set(model.allSites.map(\.name))
        for name in recipe.reportSites ?? [] where !siteNames.contains(name) {
            throw WorkbenchFailure.badInput(recipe.origin("report.sites") + "no site '\(name)' in this model; sites are named layers.{0…\(model.blocks.count - 1)}.{qkv, o, gate_up, down}")
        }
        for v in recipe.variants {
            _ = try badInput(at: v.location, variant: v.name) { try model.assignSchemes(v.scheme, overrides: v.overrides) }
            for step in v.pipeline {
                let m = try badInput(at: step.location, variant: v.name) { try step.method.init(options: step.options) }
                for s in model.allSites { _ = try badInput(at: step.location, variant: v.name) { try m.plan(site: s, config: model.config) } }
            }
        }
    }

    func resolveInputs(_ loaded: RunModel) throws -> RunInputs {
        let model = loaded.model
        let proto: PerplexityProtocol
        switch recipe.evaluation.protocolName {
        case .standard: proto = .standard(seqLen: recipe.evaluation.seqLen)
        case .llamaCpp:
            // The protocol puts BOS first when the model's metadata asks for it; then there must be one.
            if loaded.addsBOS, let tok = loaded.tokenizer {
                do { try tok.requireBOSToken(for: "the llama.cpp protocol") }
                catch { throw WorkbenchFailure.badInput(recipe.origin("model") + "\(error)") }
            }
            proto = .llamaCpp(nCtx: recipe.evaluation.seqLen, bos: loaded.addsBOS ? loaded.bosID : nil)
        }
        var maxWindows = recipe.evaluation.maxWindows
        if let mt = recipe.evaluation.maxTokens { maxWindows = min(maxWindows ?? .max, max(1, mt / proto.windowLength)) }
        var cal: [[Int]] = [], eval: [[Int]], text: String
        if !recipe.variants.isEmpty {
            switch recipe.calibration.source {
            case .synthetic:
                cal = SyntheticModel.tokens(seed: recipe.calibration.seed, windows: recipe.calibration.windows,
                                            length: recipe.calibration.seqLen, vocabSize: model.config.vocabSize)
            case .files(let paths):
                let tokens = try paths.map { try loaded.tokenize(file: $0, origin: recipe.origin("calibration.text")) }
                cal = try CalibrationSampler.windows(from: tokens, files: paths, count: recipe.calibration.windows,
                                                     length: recipe.calibration.seqLen, seed: recipe.calibration.seed)
            }
        }
        switch recipe.evaluation.source {
        case .synthetic:
            let n = maxWindows ?? 8
            progress(.note("sampling \(n) evaluation windows of \(proto.windowLength) tokens from the float model"))
            eval = SyntheticModel.sample(from: model, seed: recipe.seed &+ 1_000_003, windows: n, length: proto.windowLength).map { w in
                if case .llamaCpp(_, let bos?) = proto { var w = w; w[0] = bos; return w }
                return w
            }
            text = "\(n) windows sampled from the float model (seed \(recipe.seed))"
        case .files(let paths):
            var all: [Int] = []
            for p in paths { all += try loaded.tokenize(file: p, origin: recipe.origin("evaluation.text")) }
            eval = proto.windows(all, maxWindows: maxWindows)
            if eval.isEmpty { throw WorkbenchFailure.badInput("\(recipe.origin("evaluation.text"))\(paths.joined(separator: ", ")): \(all.count) tokens is less than one evaluation window of \(proto.windowLength)") }
            text = paths.joined(separator: ", ") + " (\(all.count) tokens)"
        }
        return RunInputs(model: model, calibration: cal, evaluation: eval, evalProtocol: proto, describeText: text)
    }

    /// Validates, then runs every variant and evaluates them all. With `cache`, variants (and FP)
    /// whose results are stored under the same key are reused instead of recomputed.
    public func run() throws -> RunReport {
        let started = Date()
        let loaded = try validate()
        let inputs = try resolveInputs(loaded)
        let fp = inputs.model
        let calibrationText = recipe.variants.isEmpty ? "none (no variant to quantize)"
            : "\(inputs.calibration.count) windows × \(inputs.calibration.first?.count ?? 0) tokens, seed \(recipe.calibration.seed)"
        var report = RunReport(recipe: recipe.file, model: fp.provenance, evaluationText: inputs.describeText,
                               protocolDescription: inputs.evalProtocol.description, calibration: calibrationText,
                               threads: Parallel.threadCount)
        let resolved = ResolvedRecipe(recipe)
        let manifest = try manifest(loaded, inputs)
        for t in manifest.texts {
            if let w = KnownTexts.warning(path: t.path, sha256: t.sha256) { report.warnings.append(w); progress(.note("warning: " + w)) }
        }
        let profiled = recipe.reportSites ?? ["layers.0.down", "layers.\(fp.blocks.count - 1).down"]
        func key(_ kind: String, _ variant: ResolvedRecipe.Variant?) -> String {
            var v = variant
            v?.name = ""
            return ResultCache.key(.init(kind: kind, variant: v, model: manifest.model?.sha256 ?? "synthetic \(resolved.model)",
                                         tokenStream: manifest.tokenStreamSHA256, tool: manifest.tool, engine: manifest.engine,
                                         seed: recipe.seed, evaluationProtocol: manifest.evaluationProtocol,
                                         windowBatch: recipe.evaluation.windowsBatch, invarianceTolerance: recipe.invarianceTolerance,
                                         profiledSites: profiled))
        }
        let keys = resolved.variants.map { key("variant", $0) }, fpKey = key("fp", nil)
        var variantReports = [VariantReport?](repeating: nil, count: recipe.variants.count)
        var scores = [TokenScores?](repeating: nil, count: recipe.variants.count + 1)
        var computed: [(index: Int, model: DecoderModel)] = []
        let runner = LlamaForward()
        for (i, v) in recipe.variants.enumerated() {
            if reuseCached, !needsModel(v), let c = cache?.load(keys[i]), var r = c.variant {
                r.name = v.name
                variantReports[i] = r; scores[i + 1] = c.scores
                report.reused.append(v.name)
                progress(.note("variant \(v.name): reusing the stored result (cache \(keys[i].prefix(12)))"))
                continue
            }
            progress(.note("variant \(v.name): \(v.scheme.label), pipeline [\(v.pipeline.map { $0.method.name }.joined(separator: ", "))]"))
            let (model, variantReport) = try quantize(v, fp: fp, calibration: inputs.calibration, profiled: profiled, runner: runner)
            try onQuantized?(v, model, fp, loaded)
            variantReports[i] = variantReport
            computed.append((i, model))
        }
        if computed.isEmpty, reuseCached, let c = cache?.load(fpKey) {
            scores[0] = c.scores
            report.reused.append("FP")
        } else {
            progress(.note("evaluating FP and \(computed.count) variant(s) on \(inputs.evaluation.count) windows — \(inputs.evalProtocol)"))
            let s: [TokenScores]
            do {
                s = try Evaluator(windowBatch: recipe.evaluation.windowsBatch)
                    .evaluate(float: fp, variants: computed.map(\.model), names: computed.map { recipe.variants[$0.index].name },
                              windows: inputs.evaluation, protocol: inputs.evalProtocol,
                              progress: { progress(.step(task: "evaluation", done: $0, total: $1, unit: "windows")) })
            } catch let f as NumericalFault { throw WorkbenchFailure.runtime(f.description) }
            scores[0] = s[0]
            for (j, c) in computed.enumerated() { scores[c.index + 1] = s[j + 1] }
            if let cache {
                try cache.store(.init(key: fpKey, variant: nil, scores: s[0]))
                for (j, c) in computed.enumerated() { try cache.store(.init(key: keys[c.index], variant: variantReports[c.index], scores: s[j + 1])) }
            }
        }
        report.variants = variantReports.compactMap { $0 }
        report.setScores(scores.compactMap { $0 })
        report.scoredTokens = inputs.evalProtocol.scoredTokens(inputs.evaluation)
        report.resolvedRecipe = resolved
        report.manifest = manifest
        report.wallSeconds = Date().timeIntervalSince(started)
        report.peakResidentBytes = PeakMemory.residentBytes()
        return report
    }

    /// Quantizes one variant without evaluating anything (for `workbench export`): the float
    /// model as loaded and the variant's model.
    public func quantizeOnly(variant name: String) throws -> (loaded: RunModel, variant: Recipe.Variant, model: DecoderModel) {
        guard let v = recipe.variants.first(where: { $0.name == name }) else {
            throw WorkbenchFailure.badInput("\(recipe.file): no variant named '\(name)'; the recipe has \(recipe.variants.map { "'\($0.name)'" }.joined(separator: ", "))")
        }
        var only = self
        only.recipe.variants = [v]
        let loaded = try only.validate()
        let inputs = try only.resolveInputs(loaded)
        let (model, _) = try only.quantize(v, fp: loaded.model, calibration: inputs.calibration, profiled: [], runner: LlamaForward())
        return (loaded, v, model)
    }

    /// Quantizes every variant without evaluating (for `bench model` and `generate`): the float
    /// model as loaded, the recipe's evaluation windows, and each variant's model.
    public func quantizeAll() throws -> (loaded: RunModel, evaluation: [[Int]], variants: [(Recipe.Variant, DecoderModel)]) {
        let loaded = try validate()
        let inputs = try resolveInputs(loaded)
        var out: [(Recipe.Variant, DecoderModel)] = []
        for v in recipe.variants {
            progress(.note("variant \(v.name): \(v.scheme.label), pipeline [\(v.pipeline.map { $0.method.name }.joined(separator: ", "))]"))
            out.append((v, try quantize(v, fp: loaded.model, calibration: inputs.calibration, profiled: [], runner: LlamaForward()).0))
        }
        return (loaded, inputs.evaluation, out)
    }

    /// One variant: a copy of the float model with the variant's schemes, its pipeline run, the
    /// lm_head / embedding overrides applied, and the function-preservation check passed.
    func quantize(_ v: Recipe.Variant, fp: DecoderModel, calibration: [[Int]], profiled: [String],
                  runner: LlamaForward) throws -> (DecoderModel, VariantReport) {
        let model = fp.copy()
        let (headScheme, embedScheme) = try badInput(at: v.location, variant: v.name) { try model.assignSchemes(v.scheme, overrides: v.overrides) }
        for b in model.blocks { b.attentionQuantization = v.attention }
        let methods = try v.pipeline.map { step in try badInput(at: step.location, variant: v.name) { try step.method.init(options: step.options) } }
        var pipeline = Pipeline(methods: methods, propagation: v.propagation, seed: recipe.seed)
        pipeline.profiledSites = Set(profiled)
        let pr: PipelineReport
        let task = "\(v.name): quantizing"
        do {
            pr = try pipeline.run(model: model, calibration: calibration, runner: runner,
                                  progress: { progress(.step(task: task, done: $0, total: $1, unit: "blocks")) })
        } catch let e as MethodError { throw WorkbenchFailure.runtime("variant \(v.name): \(e)")
        } catch let f as NumericalFault { throw WorkbenchFailure.runtime(f.in(variant: v.name).description) }
        if headScheme.isQuantized {
            model.lmHead.quantized = QuantizedWeight.roundToNearest(model.lmHead.weight, scheme: headScheme)
        }
        if embedScheme.isQuantized {
            model.embedding = QuantizedWeight.roundToNearest(model.embedding, scheme: embedScheme).dequantized()
        }
        // Function preservation: with rounding off, the transformed model must give the float logits.
        let probe = Array(calibration.prefix(2))
        let invariance = probe.isEmpty ? 0 : FunctionPreservation.maxRelativeLogitError(fp, model, windows: probe, runner: runner)
        if invariance > recipe.invarianceTolerance {
            throw WorkbenchFailure.runtime("variant \(v.name): its transforms change the float model's logits by \(String(format: "%.2e", invariance)) (relative, worst token) > \(recipe.invarianceTolerance); a transform is not function-preserving")
        }
        let r = VariantReport(name: v.name, scheme: v.scheme.label, weights: "\(v.scheme.weights)",
                              activations: "\(v.scheme.activations)", pipeline: v.pipeline.map(\.summary),
                              sites: pr.sites, costs: pr.costs, quantizeSeconds: pr.seconds,
                              invarianceError: invariance, log: pr.log)
        return (model, r)
    }

    func manifest(_ loaded: RunModel, _ inputs: RunInputs) throws -> RunManifest {
        var texts: [String] = []
        if !recipe.variants.isEmpty, case .files(let f) = recipe.calibration.source { texts += f }
        if case .files(let f) = recipe.evaluation.source { texts += f }
        var modelDigest: RunManifest.FileDigest?
        if let url = loaded.url {
            var isDir: ObjCBool = false
            FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir)
            modelDigest = isDir.boolValue ? try RunManifest.digest(folder: url.path) : try RunManifest.digest(url.path)
        }
        return RunManifest(model: modelDigest, texts: try texts.map { try RunManifest.digest($0) },
                           tokenStreamSHA256: RunManifest.tokenStreamDigest(inputs.calibration, inputs.evaluation),
                           tool: RunManifest.toolVersion, kernelPath: KernelDispatch.active.rawValue,
                           cpu: KernelDispatch.summary, threads: Parallel.threadCount,
                           engine: ExecutionEngine.current.rawValue, seed: recipe.seed,
                           evaluationProtocol: inputs.evalProtocol.description)
    }

    /// Maps scheme and method errors to bad input at the recipe line that caused them.
    func badInput<T>(at loc: SourceLocation, variant: String, _ body: () throws -> T) throws -> T {
        let prefix = "\(loc): " + (variant.isEmpty ? "" : "variant \(variant): ")
        do { return try body() } catch let e as SchemeError {
            throw WorkbenchFailure.badInput(prefix + e.description)
        } catch let e as MethodError {
            throw WorkbenchFailure.badInput(prefix + e.description)
        }
    }
}

/// The process's resident set size: its peak so far, and now.
public enum PeakMemory {
    /// Resident bytes now (Linux `/proc/self/statm`; 0 where unavailable).
    public static func currentResidentBytes() -> Int {
        guard let s = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
        let f = s.split(separator: " ")
        guard f.count > 1, let pages = Int(f[1]) else { return 0 }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }

    public static func residentBytes() -> Int {
        var usage = rusage()
        #if os(Linux)
        guard getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage) == 0 else { return 0 }
        return Int(usage.ru_maxrss) * 1024   // KiB on Linux
        #else
        guard getrusage(RUSAGE_SELF, &usage) == 0 else { return 0 }
        return Int(usage.ru_maxrss)          // bytes on Darwin
        #endif
    }
}

/// Checks, before anything is loaded or computed, that every file a recipe names can be read.
public enum RecipeFiles {
    public static func check(_ recipe: Recipe) throws {
        if case .file(let path?) = recipe.model {
            guard !path.isEmpty else { throw WorkbenchFailure.badInput(recipe.origin("model") + "the model path is empty; give a .gguf file, a Hugging Face folder, `reference` or `synthetic`") }
            guard FileManager.default.fileExists(atPath: path) else {
                throw WorkbenchFailure.badInput(recipe.origin("model") + "model file not found: '\(path)' (paths in a recipe are relative to the directory you run the workbench in; `reference` locates SmolLM2-135M)")
            }
        }
        var texts: [(String, Recipe.TextSource)] = [("evaluation.text", recipe.evaluation.source)]
        if !recipe.variants.isEmpty { texts.insert(("calibration.text", recipe.calibration.source), at: 0) }
        for (key, source) in texts {
            guard case .files(let paths) = source else { continue }
            for p in paths { try checkTextFile(p, origin: recipe.origin(key)) }
        }
    }

    /// A readable, non-empty regular file.
    public static func checkTextFile(_ path: String, origin: String) throws {
        var isDir: ObjCBool = false
        guard !path.isEmpty else { throw WorkbenchFailure.badInput(origin + "the text file path is empty") }
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw WorkbenchFailure.badInput(origin + "text file not found: '\(path)'" + (origin.isEmpty ? "" : " (paths in a recipe are relative to the directory you run the workbench in)"))
        }
        guard !isDir.boolValue else { throw WorkbenchFailure.badInput(origin + "'\(path)' is a folder, not a text file") }
        guard FileManager.default.isReadableFile(atPath: path) else { throw WorkbenchFailure.badInput(origin + "'\(path)' cannot be read (permissions)") }
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
