import ArgumentParser
import Foundation
import QuantCore
import LlamaModel
import Recipes
import Reporting
import Runs
import Benchmarks

/// `workbench generate`: text from the float model or a recipe's quantized variant.
struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Generate text with the float model or a quantized variant (KV-cache decoding), to see what quantization does to the output.")
    @Option(help: "Model file or folder (default: the reference model). With --recipe, the recipe's model is used.") var model: String?
    @Option(help: "A run recipe whose variant to quantize and generate with.") var recipe: String?
    @Option(help: "The variant of --recipe (omit for the recipe's float model).") var variant: String?
    @Option(help: "The prompt text.") var prompt: String
    @Option(name: .short, help: "New tokens to generate.") var n: Int = 64
    @Option(help: "0 = greedy; otherwise sample from the top-k at this temperature.") var temperature: Double = 0
    @Option(help: "Candidates kept when sampling.") var topK: Int = 40
    @Option(help: "Sampling seed (same seed, same text).") var seed: UInt64 = 0

    func run() throws {
        let display = ProgressDisplay()
        try failing {
            guard n >= 1 && n <= 1 << 16 else { throw WorkbenchFailure.badInput("-n must be 1…65536") }
            guard temperature >= 0 && temperature.isFinite, topK >= 1 else { throw WorkbenchFailure.badInput("--temperature must be ≥ 0 and --top-k ≥ 1") }
            if variant != nil && recipe == nil { throw WorkbenchFailure.badInput("--variant needs --recipe") }
            var loaded: RunModel, m: DecoderModel, mode = ExecutionMode.float, label = "float"
            if let recipe {
                let r = try Recipe.load(path: recipe, registry: WorkbenchMain.registry)
                let runner = RecipeRunner(recipe: r, progress: display.handler)
                if let variant {
                    let q = try runner.quantizeOnly(variant: variant)
                    q.model.compactForInference()
                    (loaded, m, mode, label) = (q.loaded, q.model, .quantized, "\(variant) (\(q.variant.scheme.label))")
                } else {
                    loaded = try runner.validate(); m = loaded.model
                }
            } else {
                loaded = try ModelLoading.loadFile(model, progress: display.handler); m = loaded.model
            }
            let sampler = temperature == 0 ? Sampler.greedy : Sampler(temperature: temperature, topK: topK, seed: seed)
            let r = try TextGeneration(sampler: sampler, maxNewTokens: n).generate(m, mode: mode, tokenizer: loaded, prompt: prompt)
            print(prompt + r.text)
            display.handle(.note(String(format: "%@: %d prompt tokens in %.2f s, %d new tokens at %.1f tok/s (%@)", label, r.promptTokens.count,
                                        r.promptSeconds, r.newTokens.count, r.tokensPerSecond,
                                        temperature == 0 ? "greedy" : "temperature \(temperature), top-\(topK), seed \(seed)")))
        }
    }
}

/// `workbench bench model RECIPE`: prefill and decode of FP and every variant against this
/// machine's limits (see `ModelBenchmark`).
struct BenchModel: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "model",
        abstract: "Prefill and decode speed of the float model and every variant of a recipe, each against the bound this machine's measured limits give it.")
    @Argument(help: "A run recipe (its model, evaluation text and variants).") var recipe: String
    @Option(help: "Also write the results as JSON.") var json: String?
    @Option(help: "Prefill windows timed per model (the recipe's evaluation windows).") var windows: Int = 4
    @Option(help: "Decode prompt length.") var promptTokens: Int = 512
    @Option(help: "Tokens generated one at a time.") var decodeTokens: Int = 128
    @Option(help: "Timing rounds, every model once per round (interleaved); rates are the median round's.") var rounds: Int = 3
    @Flag(help: "Per-component time shares of the prefill and the evaluation's scoring.") var profile = false

    func run() throws {
        let display = ProgressDisplay()
        try failing {
            guard windows >= 1, promptTokens >= 1, decodeTokens >= 1, rounds >= 1 else { throw WorkbenchFailure.badInput("--windows, --prompt-tokens, --decode-tokens and --rounds must be ≥ 1") }
            let r = try Recipe.load(path: recipe, registry: WorkbenchMain.registry)
            var s = ModelBenchmark.Settings()
            s.windows = windows; s.promptTokens = promptTokens; s.decodeTokens = decodeTokens; s.rounds = rounds; s.profile = profile
            let report: ModelBenchmarkReport
            do {
                report = try ModelBenchmark(settings: s, progress: { display.handle(.note($0)) }).run(recipe: r, progress: display.handler)
            } catch let e as BenchmarkError { throw WorkbenchFailure.badInput("\(recipe): \(e)") }
            print(report.text, terminator: "")
            if let json { try writeAtomically(try report.json(), to: json) }
        }
    }
}
