import ArgumentParser
import Foundation
import Recipes
import Reporting
import Runs
import Training
import TrainingQuantization

/// `workbench train RECIPE.yaml [--resume]`: parses, then hands the recipe to `TrainingSession`
/// and renders its events.
struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a LLaMA model (from scratch on bytes, or fine-tune a model file) with a training quantizer.",
        discussion: "Progress goes to stderr; the final comparison to stdout. `workbench check RECIPE.yaml` prints the plan.")
    @Argument(help: "The training recipe (YAML).") var recipe: String
    @Flag(help: "Continue every run from its checkpoint in the output folder (when one exists).") var resume = false
    @Option(help: "Print a progress line every N steps (validations and checkpoints are always printed).") var every: Int = 1
    @Option(name: .customLong("run"), help: "Train only the named run(s) of the recipe (repeatable).") var only: [String] = []

    func run() throws {
        let summaries = try failing { () -> [TrainingSummary] in
            var r = try TrainingRecipe.load(path: recipe, registry: WorkbenchMain.trainingRegistry)
            if !only.isEmpty {
                let names = r.runs.map(\.name)
                if let bad = only.first(where: { !names.contains($0) }) {
                    throw WorkbenchFailure.badInput("\(recipe): no run named '\(bad)'; the recipe's runs: \(names.joined(separator: ", "))")
                }
                r.runs = r.runs.filter { only.contains($0.name) }
            }
            let session = TrainingSession(recipe: r)
            let display = ProgressDisplay()
            var firstStep: [String: Int] = [:]
            return try session.run(resume: resume) { name, event in
                switch event {
                case .message(let m): display.handle(.note(m))
                case .step(let s):
                    if firstStep[name] == nil {
                        // The rate and ETA count from the first step this process runs (a resumed run starts later).
                        firstStep[name] = s.step - 1
                        display.handle(.step(task: name, done: 0, total: r.steps - s.step + 1, unit: "steps"))
                    }
                    guard s.step % max(1, every) == 0 || s.step == r.steps else { return }
                    display.handle(.step(task: name, done: s.step - firstStep[name]!, total: r.steps - firstStep[name]!, unit: "steps",
                                         detail: TrainRender.stepDetail(s)))
                case .validation(let v): display.handle(.note(TrainRender.validationLine(name: name, v, byteLevel: isByteLevel(r))))
                case .checkpoint(let p): display.handle(.note("\(name): checkpoint \(p)"))
                }
            }
        }
        print(TrainRender.table(summaries), terminator: "")
    }
}

private func isByteLevel(_ r: TrainingRecipe) -> Bool { if case .scratch = r.model { return true }; return false }

/// Prints a training recipe's plan for `workbench check`; false when the file is not a training recipe.
func checkTrainingRecipe(_ path: String) throws -> Bool {
    guard TrainingRecipe.isTrainingRecipe(path: path) else { return false }
    let r = try TrainingRecipe.load(path: path, registry: WorkbenchMain.trainingRegistry)
    let display = ProgressDisplay()
    print(try TrainingSession(recipe: r).planDescription(message: { display.handle(.note($0)) }))
    return true
}

enum TrainRender {
    /// The figures shown after a training step's progress bar.
    static func stepDetail(_ s: StepRecord) -> String {
        let lin = s.linear
        return String(format: "step %d · loss %.4f · lr %.2e · |g| %.3f · %.0f tok/s · %.2f s/step (linears: int %.2f, quantize %.2f, f32 %.2f; rest %.2f)",
                      s.step, s.loss, s.learningRate, s.gradNorm, s.tokensPerSecond, s.seconds,
                      lin.integerGemm, lin.quantize, lin.floatGemm, s.otherSeconds)
    }

    static func validationLine(name: String, _ v: ValidationRecord, byteLevel: Bool) -> String {
        func f(_ x: Double) -> String {
            byteLevel ? String(format: "%.4f (%.3f bits/byte, ppl %.2f)", x, TrainingSummary.bitsPerByte(x), exp(x))
                      : String(format: "%.4f (ppl %.2f)", x, exp(x))
        }
        let q = v.quantizedLoss.isFinite ? "quantized forward \(f(v.quantizedLoss)); " : ""
        return "\(name) validation at step \(v.step): \(q)float master weights \(f(v.floatLoss))"
    }

    /// The final comparison, one row per run.
    static func table(_ runs: [TrainingSummary]) -> String {
        guard let first = runs.first else { return "" }
        let bytes = first.byteLevel
        var rows: [[String]] = [["run", "quantizer", "steps", "train loss", "val loss (quant)", "val loss (float)",
                                 bytes ? "bpb (quant)" : "", bytes ? "bpb (float)" : "", "ppl (quant)", "ppl (float)", "s/step",
                                 "linears int/quant/f32", "rest"]]
        for r in runs {
            let v = r.finalValidation
            let total = r.steps.reduce(0) { $0 + $1.seconds }
            let lin = r.steps.reduce(LinearTiming()) { $0 + $1.linear }
            let other = r.steps.reduce(0) { $0 + $1.otherSeconds }
            func pct(_ x: Double) -> String { total > 0 ? String(format: "%.0f%%", 100 * x / total) : "–" }
            func n(_ x: Double?, _ fmt: String = "%.4f") -> String { x.map { String(format: fmt, $0) } ?? "–" }
            rows.append([r.name, r.quantizer, String(r.steps.last?.step ?? 0), n(r.steps.last?.loss),
                         n(v?.quantizedLoss), n(v?.floatLoss),
                         bytes ? n(v.map { TrainingSummary.bitsPerByte($0.quantizedLoss) }, "%.3f") : "",
                         bytes ? n(v.map { TrainingSummary.bitsPerByte($0.floatLoss) }, "%.3f") : "",
                         n(v.map { exp($0.quantizedLoss) }, "%.2f"), n(v.map { exp($0.floatLoss) }, "%.2f"),
                         String(format: "%.2f", r.medianStepSeconds),
                         "\(pct(lin.integerGemm))/\(pct(lin.quantize))/\(pct(lin.floatGemm))", pct(other)])
        }
        let widths = (0..<rows[0].count).map { c in rows.map { $0[c].count }.max() ?? 0 }
        var out = rows.map { row in zip(row, widths).map { $0.0.padding(toLength: $0.1, withPad: " ", startingAt: 0) }.joined(separator: "  ") }
        out.insert(String(repeating: "-", count: out[0].count), at: 1)
        let u = first.unigramLoss
        out.append(bytes ? String(format: "unigram baseline (training-set byte frequencies, add-one smoothing) on the validation windows: %.4f nats = %.3f bits/byte, ppl %.2f", u, TrainingSummary.bitsPerByte(u), exp(u))
                         : String(format: "unigram baseline (training-set token frequencies, add-one smoothing): %.4f nats, ppl %.2f", u, exp(u)))
        out.append("median step time; shares of the total step time: the linear layers' integer GEMMs / quantization / f32 GEMMs, and the rest (attention, norms, lm_head, loss, optimizer)")
        return out.joined(separator: "\n") + "\n"
    }
}
