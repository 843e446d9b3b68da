import Foundation
import QuantCore
import QuantKernels
import Recipes
import TrainingQuantization
import LlamaModel
import ModelFormats

/// A training recipe's runs, executed one after another: the API behind `workbench train`
/// (the CLI only parses arguments and renders).
public struct TrainingSession {
    public let recipe: TrainingRecipe

    public init(recipe: TrainingRecipe) { self.recipe = recipe }

    /// The settings of one run (its output in `output/<run name>`).
    public func settings(for run: TrainingRecipe.Run) -> TrainingSettings {
        let r = recipe
        let model: TrainingSettings.ModelSource
        switch r.model {
        case .scratch(let a):
            model = .scratch(ModelShape(layers: a.layers, hidden: a.hidden, heads: a.heads, kvHeads: a.kvHeads, ffn: a.ffn,
                                        context: a.context, vocab: 256, tied: a.tied))
        case .file(let p): model = .file(p)
        }
        var s = TrainingSettings(model: model, trainText: r.trainText, validationText: r.validationText, steps: r.steps,
                                 batchSize: r.batchSize, seqLen: r.seqLen, learningRate: r.lr, warmup: r.warmup,
                                 minLearningRate: r.minLR, validateEvery: r.validateEvery, validationWindows: r.validationWindows)
        s.validationFromStart = r.validationFromStart
        s.adamW = AdamWSettings(beta1: r.beta1, beta2: r.beta2, eps: r.eps, weightDecay: r.weightDecay)
        s.gradClip = r.gradClip
        s.seed = run.seed
        s.checkpointEvery = r.checkpointEvery
        s.output = r.output.map { $0 + "/" + run.name }
        return s
    }

    /// Creates a run's model, data and layers; bad inputs become recipe errors at the model's or
    /// the run's position in the recipe file.
    public func makeRun(_ run: TrainingRecipe.Run, message: (String) -> Void = { _ in }) throws -> TrainingRun {
        let quantizer: any TrainingQuantizer
        do { quantizer = try run.quantizer.init(options: run.options) } catch {
            throw RecipeError(location: run.location, keyPath: "quantizer", message: "\(error)")
        }
        do {
            return try TrainingRun(name: run.name, settings: settings(for: run), quantizer: quantizer,
                                   quantizerName: run.quantizerSummary, message: message)
        } catch let e as TrainingInputError {
            throw RecipeError(location: e.aboutModel ? recipe.modelLocation : run.location, keyPath: e.aboutModel ? "model" : run.name,
                              message: e.description)
        } catch {
            // A quantizer refusing a layer (e.g. a block size that does not divide a fine-tuned model's width).
            throw RecipeError(location: run.location, keyPath: "quantizer", message: "\(error)")
        }
    }

    /// Runs every run in order; `resume` continues each from its checkpoint when one exists.
    /// Writes `summary.csv` and `loss-curves.svg` in the output folder.
    public func run(resume: Bool, event: (String, TrainingEvent) -> Void) throws -> [TrainingSummary] {
        var out: [TrainingSummary] = []
        for r in recipe.runs {
            let run = try makeRun(r) { event(r.name, .message($0)) }
            event(r.name, .message("run \(r.name): \(run.model.shape), quantizer \(r.quantizerSummary), seed \(r.seed)"))
            do { out.append(try run.run(resume: resume) { event(r.name, $0) }) } catch let e as TrainingInputError {
                throw RecipeError(location: r.location, keyPath: r.name, message: e.description)
            }
            try writeSummary(out)
        }
        return out
    }

    func writeSummary(_ runs: [TrainingSummary]) throws {
        guard let dir = recipe.output else { return }
        try writeFileAtomically(Data(Self.summaryCSV(runs).utf8), to: dir + "/summary.csv")
        try writeFileAtomically(Data(Self.lossCurvesSVG(runs).utf8), to: dir + "/loss-curves.svg")
    }

    // MARK: - Reports

    public static func summaryCSV(_ runs: [TrainingSummary]) -> String {
        var lines = ["run,quantizer,steps,final_train_loss,val_loss_quantized,val_loss_float,val_bpb_quantized,val_bpb_float,val_ppl_quantized,val_ppl_float,unigram_loss,unigram_bpb,median_step_s,linear_int_gemm_share,linear_quantize_share,linear_f32_gemm_share,other_share"]
        func g(_ x: Double) -> String { String(format: "%.6g", x) }
        for r in runs {
            let v = r.finalValidation
            let total = r.steps.reduce(0) { $0 + $1.seconds }
            let lin = r.steps.reduce(LinearTiming()) { $0 + $1.linear }
            let other = r.steps.reduce(0) { $0 + $1.otherSeconds }
            func share(_ x: Double) -> String { total > 0 ? g(x / total) : "" }
            let bpb: (Double) -> String = { r.byteLevel ? g(TrainingSummary.bitsPerByte($0)) : "" }
            var cells: [String] = [r.name, "\"\(r.quantizer)\"", String(r.steps.count), g(r.steps.last?.loss ?? .nan)]
            if let v {
                cells += [g(v.quantizedLoss), g(v.floatLoss), bpb(v.quantizedLoss), bpb(v.floatLoss), g(exp(v.quantizedLoss)), g(exp(v.floatLoss))]
            } else {
                cells += ["", "", "", "", "", ""]
            }
            cells += [g(r.unigramLoss), bpb(r.unigramLoss), g(r.medianStepSeconds)]
            cells += [share(lin.integerGemm), share(lin.quantize), share(lin.floatGemm), share(other)]
            lines.append(cells.joined(separator: ","))
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// Training loss (thin), validation loss with the quantized forward (thick, with points) and,
    /// where it differs, with the float master weights (dashed) of every run against the step,
    /// with the unigram baseline dashed gray.
    public static func lossCurvesSVG(_ runs: [TrainingSummary]) -> String {
        let w = 760.0, h = 440.0, left = 60.0, right = 170.0, top = 20.0, bottom = 40.0
        let maxStep = Double(runs.map { $0.steps.last?.step ?? 1 }.max() ?? 1)
        let losses = runs.flatMap { $0.steps.map(\.loss) + $0.validations.map(\.floatLoss) + [$0.unigramLoss] }.filter { $0.isFinite }
        let lo = max(0, (losses.min() ?? 0) - 0.1), hi = (losses.max() ?? 1) + 0.1
        func x(_ s: Double) -> Double { left + (w - left - right) * s / max(1, maxStep) }
        func y(_ l: Double) -> Double { top + (h - top - bottom) * (1 - (min(max(l, lo), hi) - lo) / max(1e-9, hi - lo)) }
        let colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(w))\" height=\"\(Int(h))\" font-family=\"sans-serif\" font-size=\"11\">\n"
        s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        s += "<line x1=\"\(left)\" y1=\"\(h - bottom)\" x2=\"\(w - right)\" y2=\"\(h - bottom)\" stroke=\"black\"/>\n"
        s += "<line x1=\"\(left)\" y1=\"\(top)\" x2=\"\(left)\" y2=\"\(h - bottom)\" stroke=\"black\"/>\n"
        for i in 0...4 {
            let l = lo + (hi - lo) * Double(i) / 4
            s += "<text x=\"\(left - 5)\" y=\"\(y(l) + 4)\" text-anchor=\"end\">\(String(format: "%.2f", l))</text>\n"
            let st = maxStep * Double(i) / 4
            s += "<text x=\"\(x(st))\" y=\"\(h - bottom + 15)\" text-anchor=\"middle\">\(Int(st))</text>\n"
        }
        s += "<text x=\"\((left + w - right) / 2)\" y=\"\(h - 5)\" text-anchor=\"middle\">step</text>\n"
        s += "<text x=\"14\" y=\"\((top + h - bottom) / 2)\" transform=\"rotate(-90 14 \((top + h - bottom) / 2))\" text-anchor=\"middle\">loss (nats/token)</text>\n"
        for (i, r) in runs.enumerated() {
            let c = colors[i % colors.count]
            let train = r.steps.filter { $0.loss.isFinite }.map { "\(x(Double($0.step))),\(y($0.loss))" }.joined(separator: " ")
            s += "<polyline fill=\"none\" stroke=\"\(c)\" stroke-opacity=\"0.35\" stroke-width=\"1\" points=\"\(train)\"/>\n"
            // Validation with the quantized forward (the model as trained; the float weights before step 1),
            // and — dashed — with the float master weights where they differ.
            let quantized = r.validations.map { ($0.step, $0.quantizedLoss.isFinite ? $0.quantizedLoss : $0.floatLoss) }.filter { $0.1.isFinite }
            let val = quantized.map { "\(x(Double($0.0))),\(y($0.1))" }.joined(separator: " ")
            s += "<polyline fill=\"none\" stroke=\"\(c)\" stroke-width=\"2\" points=\"\(val)\"/>\n"
            for (step, l) in quantized { s += "<circle cx=\"\(x(Double(step)))\" cy=\"\(y(l))\" r=\"2.5\" fill=\"\(c)\"/>\n" }
            if r.validations.contains(where: { $0.quantizedLoss.isFinite && abs($0.quantizedLoss - $0.floatLoss) > 1e-6 }) {
                let fl = r.validations.filter { $0.floatLoss.isFinite }.map { "\(x(Double($0.step))),\(y($0.floatLoss))" }.joined(separator: " ")
                s += "<polyline fill=\"none\" stroke=\"\(c)\" stroke-width=\"1.5\" stroke-dasharray=\"5 3\" points=\"\(fl)\"/>\n"
            }
            s += "<text x=\"\(w - right + 10)\" y=\"\(top + 14 * Double(i + 1))\" fill=\"\(c)\">\(r.name)</text>\n"
        }
        if let u = runs.first?.unigramLoss {
            s += "<line x1=\"\(left)\" y1=\"\(y(u))\" x2=\"\(w - right)\" y2=\"\(y(u))\" stroke=\"gray\" stroke-dasharray=\"4 3\"/>\n"
            s += "<text x=\"\(w - right + 10)\" y=\"\(top + 14 * Double(runs.count + 1))\" fill=\"gray\">unigram</text>\n"
        }
        s += "<text x=\"\(w - right + 10)\" y=\"\(top + 14 * Double(runs.count + 3))\" fill=\"black\">thin: train loss</text>\n"
        s += "<text x=\"\(w - right + 10)\" y=\"\(top + 14 * Double(runs.count + 4))\" fill=\"black\">thick: validation</text>\n"
        s += "<text x=\"\(w - right + 10)\" y=\"\(top + 14 * Double(runs.count + 5))\" fill=\"black\">(quantized forward)</text>\n"
        s += "<text x=\"\(w - right + 10)\" y=\"\(top + 14 * Double(runs.count + 6))\" fill=\"black\">dashed: validation</text>\n"
        s += "<text x=\"\(w - right + 10)\" y=\"\(top + 14 * Double(runs.count + 7))\" fill=\"black\">(float master weights)</text>\n"
        return s + "</svg>\n"
    }

    // MARK: - Plan

    /// The plan `workbench check` prints: parameters, FLOPs per step, formats per product, memory.
    public func planDescription(message: (String) -> Void = { _ in }) throws -> String {
        let r = recipe
        let shape: ModelShape
        switch r.model {
        case .scratch:
            guard case .scratch(let s) = settings(for: r.runs[0]).model else { fatalError() }
            shape = s
        case .file(let p):
            do {
                let url = try locateReferenceModel(explicit: p, environment: ProcessInfo.processInfo.environment)
                message("reading \(url.path)")
                shape = try LlamaParameters<Float>.converting(try CheckpointLoader.load(url).model).shape
            } catch let e as ModelFormatError {
                throw RecipeError(location: r.modelLocation, keyPath: "model", message: e.description)
            } catch let e as UnusableModel {
                throw RecipeError(location: r.modelLocation, keyPath: "model", message: "cannot be fine-tuned: \(e)")
            }
        }
        let tokens = r.batchSize * r.seqLen, L = r.seqLen, windows = r.batchSize
        let linearFlops = 6.0 * Double(shape.linearParameterCount) * Double(tokens)
        let headFlops = 6.0 * Double(shape.vocab * shape.hidden) * Double(tokens)
        // QKᵀ and P·V on full L×L blocks: forward 2 products, backward 4.
        let attentionFlops = 6.0 * 2.0 * Double(L * L * shape.headDim * shape.heads * windows * shape.layers)
        let total = linearFlops + headFlops + attentionFlops
        let perTokenLayer = 4 * shape.hidden + 2 * shape.qWidth + 2 * shape.kvWidth + 3 * shape.ffn + shape.heads * L + 2
        let activationBytes = 4.0 * Double(tokens) * (Double(shape.layers * perTokenLayer) + Double(2 * shape.vocab + 2 * shape.hidden))
        let parameterBytes = 16.0 * Double(shape.parameterCount)
        func gb(_ x: Double) -> String { String(format: "%.2f GB", x / 1e9) }
        func gf(_ x: Double) -> String { String(format: "%.1f GFLOP", x / 1e9) }
        let fileSize: (String) -> String = { p in
            ((try? FileManager.default.attributesOfItem(atPath: p)[.size] as? Int) ?? nil).map { "\($0) bytes" } ?? "?"
        }
        var lines: [String] = []
        lines.append("training recipe \(r.file)")
        switch r.model {
        case .scratch: lines.append("model        from scratch, byte-level vocabulary (256), seed-initialised (GPT-2 style: N(0, 0.02²), residual outputs /√(2·layers))")
        case .file(let p): lines.append("model        fine-tune \(p ?? "the reference model") with its tokenizer")
        }
        lines.append("             \(shape)")
        lines.append("parameters   \(shape.parameterCount) (\(shape.linearParameterCount) in the block linears)")
        lines.append("data         train \(r.trainText) (\(fileSize(r.trainText))), validation \(r.validationText) (\(fileSize(r.validationText)))")
        lines.append("steps        \(r.steps) × batch \(r.batchSize) × seq_len \(r.seqLen) = \(r.steps * tokens) training tokens")
        lines.append("schedule     lr \(r.lr), linear warmup \(r.warmup) steps, cosine to \(r.minLR); AdamW β1 \(r.beta1) β2 \(r.beta2) ε \(r.eps) weight decay \(r.weightDecay) (matrices only: not RMSNorm weights, not quantizer scalars); clip \(r.gradClip > 0 ? "global norm \(r.gradClip)" : "off")")
        lines.append("validation   every \(r.validateEvery) steps on \(r.validationWindows) fixed windows \(r.validationFromStart ? "one after another from the start" : "spread evenly over the file"), quantized forward and float master weights (float only before the first step); unigram baseline")
        lines.append("checkpoints  \(r.checkpointEvery > 0 ? "every \(r.checkpointEvery) steps" : "none")\(r.output.map { " in \($0)/<run>/checkpoint.qwbt" } ?? "")")
        lines.append("output       \(r.output.map { "\($0)/<run>/curve.csv, \($0)/summary.csv, \($0)/loss-curves.svg" } ?? "none (no `output`)")")
        lines.append(String(format: "FLOPs/step   %@ (block linears %@, lm_head %@, attention QKᵀ and P·V %@)", gf(total), gf(linearFlops), gf(headFlops), gf(attentionFlops)))
        lines.append("memory       ≈ \(gb(parameterBytes + activationBytes)): weights + gradients + AdamW moments \(gb(parameterBytes)), saved activations \(gb(activationBytes)) (f32 layers; a quantizer's own saved codes come on top)")
        lines.append("f32 always   embedding, RMSNorm, RoPE, attention QKᵀ and softmax·V, lm_head\(shape.tied ? " (tied to the embedding)" : ""), cross-entropy")
        lines.append("runs")
        for run in r.runs {
            let q = try run.quantizer.init(options: run.options)
            lines.append("  \(run.name): seed \(run.seed), quantizer \(run.quantizerSummary)")
            lines.append("      q/k/v/o, gate/up/down (\(7 * shape.layers) linears): \(q.planDescription)")
        }
        return lines.joined(separator: "\n")
    }
}
