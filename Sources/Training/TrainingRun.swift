import Foundation
import QuantCore
import QuantKernels
import LlamaModel
import ModelFormats
import TrainingQuantization

/// Everything one training run needs, resolved from a recipe.
public struct TrainingSettings: Sendable {
    public enum ModelSource: Sendable, Equatable {
        /// A new model with a byte-level vocabulary, initialised from the seed.
        case scratch(ModelShape)
        /// A model file to fine-tune with its own tokenizer; nil = the reference model.
        case file(String?)
    }
    public var model: ModelSource
    public var trainText: String
    public var validationText: String
    public var steps: Int
    public var batchSize: Int
    public var seqLen: Int
    public var learningRate: Double
    public var warmup: Int
    public var minLearningRate: Double
    public var adamW = AdamWSettings()
    /// Global gradient-norm clip; 0 = off.
    public var gradClip: Double = 1
    public var seed: UInt64 = 0
    public var validateEvery: Int
    public var validationWindows: Int
    /// Consecutive windows from the start of the validation text instead of evenly spaced ones.
    public var validationFromStart = false
    /// 0 = no checkpoints.
    public var checkpointEvery: Int = 0
    /// The run's folder (curve CSV, checkpoint); nil = nothing written.
    public var output: String?

    public init(model: ModelSource, trainText: String, validationText: String, steps: Int, batchSize: Int, seqLen: Int,
                learningRate: Double, warmup: Int, minLearningRate: Double, validateEvery: Int, validationWindows: Int) {
        self.model = model; self.trainText = trainText; self.validationText = validationText; self.steps = steps
        self.batchSize = batchSize; self.seqLen = seqLen; self.learningRate = learningRate; self.warmup = warmup
        self.minLearningRate = minLearningRate; self.validateEvery = validateEvery; self.validationWindows = validationWindows
    }

    public var schedule: LearningRateSchedule {
        LearningRateSchedule(peak: learningRate, warmup: warmup, minimum: minLearningRate, totalSteps: steps)
    }
}

/// One optimizer step as reported.
public struct StepRecord: Sendable, Equatable {
    /// Steps completed (1-based).
    public var step: Int
    public var loss: Double
    public var learningRate: Double
    /// Before clipping.
    public var gradNorm: Double
    public var seconds: Double
    public var tokensPerSecond: Double
    /// The linear layers' time during this step (summed over layers); the rest is `seconds` minus its total.
    public var linear: LinearTiming
    public var otherSeconds: Double { max(0, seconds - linear.integerGemm - linear.quantize - linear.floatGemm) }
}

/// Validation after a step: mean NLL on the fixed windows with the quantized forward and with
/// the float master weights.
public struct ValidationRecord: Sendable, Equatable {
    public var step: Int
    /// NaN before the first step (float weights only).
    public var quantizedLoss: Double
    public var floatLoss: Double
    /// Same step and the same bits (NaN equals NaN).
    public static func == (a: ValidationRecord, b: ValidationRecord) -> Bool {
        a.step == b.step && a.quantizedLoss.bitPattern == b.quantizedLoss.bitPattern && a.floatLoss.bitPattern == b.floatLoss.bitPattern
    }
}

public enum TrainingEvent {
    case message(String)
    case step(StepRecord)
    case validation(ValidationRecord)
    case checkpoint(String)
}

/// The outcome of a run.
public struct TrainingSummary: Sendable {
    public var name: String
    public var quantizer: String
    public var steps: [StepRecord]
    public var validations: [ValidationRecord]
    /// Unigram baseline on the validation targets (nats per token).
    public var unigramLoss: Double
    /// Tokens are bytes (bits per byte = nats / ln 2).
    public var byteLevel: Bool
    public var parameterCount: Int
    public var resumedFrom: Int?
    /// Median step time over this process's steps (seconds).
    public var medianStepSeconds: Double

    public var finalValidation: ValidationRecord? { validations.last }
    public static func bitsPerByte(_ nats: Double) -> Double { nats / log(2) }
}

/// A training run: model, data, quantized linears, AdamW; `run` steps it, validates, checkpoints.
public final class TrainingRun {
    public let name: String
    public let settings: TrainingSettings
    public let quantizerName: String
    public let model: TrainableLlama<Float>
    /// The training quantizer's layers, in model order (block by block, q…down).
    public let layers: [any TrainingLinear]
    /// f32 layers for evaluating the float master weights.
    let floatBackends: [[any LinearBackend<Float>]]
    public let train: TokenStream
    public let validation: TokenStream
    public let validationSet: [(tokens: [Int], targets: [Int])]
    public let byteLevel: Bool
    public let optimizer: AdamW
    /// Steps completed.
    public internal(set) var step = 0
    public internal(set) var records: [StepRecord] = []
    public internal(set) var validations: [ValidationRecord] = []

    /// Loads data and model and creates the quantizer's layers. Throws `TrainingInputError` for
    /// bad inputs (missing file, too-short text, a model that cannot be fine-tuned).
    public init(name: String, settings s: TrainingSettings, quantizer: any TrainingQuantizer, quantizerName: String,
                message: (String) -> Void = { _ in }) throws {
        self.name = name; self.settings = s; self.quantizerName = quantizerName
        let params: LlamaParameters<Float>
        var tokenize: (([UInt8]) throws -> [Int])?
        switch s.model {
        case .scratch(let shape):
            if let p = shape.problem { throw TrainingInputError("model: \(p)", aboutModel: true) }
            params = .initialize(shape: shape, seed: s.seed)
            byteLevel = true
        case .file(let path):
            let loaded: LoadedModel
            do {
                let url = try locateReferenceModel(explicit: path, environment: ProcessInfo.processInfo.environment)
                message("loading \(url.path)")
                loaded = try CheckpointLoader.load(url)
            } catch let e as ModelFormatError { throw TrainingInputError(e.description, aboutModel: true) }
            do { params = try .converting(loaded.model) } catch let e as UnusableModel {
                throw TrainingInputError("\(path ?? "the reference model"): cannot be fine-tuned: \(e)", aboutModel: true)
            }
            guard let tok = loaded.tokenizer else { throw TrainingInputError("\(path ?? "the model"): has no tokenizer to read the training text with", aboutModel: true) }
            tokenize = { tok.encode(bytes: $0, parseSpecial: false, addBOS: false) }
            byteLevel = false
        }
        guard s.seqLen <= params.shape.context else {
            throw TrainingInputError("seq_len \(s.seqLen) is longer than the model's context \(params.shape.context)", aboutModel: true)
        }
        train = try TokenStream.load(s.trainText, tokenize: tokenize)
        validation = try TokenStream.load(s.validationText, tokenize: tokenize)
        try train.require(windowLength: s.seqLen, role: "training")
        try validation.require(windowLength: s.seqLen, role: "validation")
        if let bad = (train.tokens + validation.tokens).first(where: { $0 < 0 || $0 >= params.shape.vocab }) {
            throw TrainingInputError("token id \(bad) is outside the model's vocabulary of \(params.shape.vocab)", aboutModel: true)
        }
        validationSet = s.validationFromStart ? validation.consecutiveWindows(count: s.validationWindows, length: s.seqLen)
                                              : validation.evenlySpacedWindows(count: s.validationWindows, length: s.seqLen)
        if validationSet.isEmpty { throw TrainingInputError("\(s.validationText): no validation window of seq_len + 1 tokens fits") }
        var layers: [any TrainingLinear] = []
        var backends: [[any LinearBackend<Float>]] = []
        var floats: [[any LinearBackend<Float>]] = []
        for i in 0..<params.shape.layers {
            var row: [any LinearBackend<Float>] = [], frow: [any LinearBackend<Float>] = []
            for l in params.shape.blockLinears {
                let id = LinearID(layer: i, name: l.name)
                let layer = try quantizer.makeLinear(id: id, inFeatures: l.in, outFeatures: l.out, seed: s.seed)
                layers.append(layer)
                row.append(QuantizedLinearBackend(layer))
                frow.append(QuantizedLinearBackend(FloatLinear(id: id)))
            }
            backends.append(row); floats.append(frow)
        }
        self.layers = layers
        floatBackends = floats
        model = TrainableLlama(parameters: params, linears: backends)
        optimizer = AdamW(settings: s.adamW, parameters: params.all, layers: layers)
    }

    public var unigramLoss: Double {
        UnigramBaseline(training: train.tokens, vocab: model.shape.vocab).meanLoss(validationSet.flatMap { $0.targets })
    }

    func linearTiming() -> LinearTiming { layers.reduce(LinearTiming()) { $0 + $1.timing } }

    /// Runs one optimizer step (0-based `step`) and returns its record.
    public func trainStep() -> StepRecord {
        let s = settings
        let started = DispatchTime.now()
        let before = linearTiming()
        let batch = train.batch(step: step, count: s.batchSize, length: s.seqLen, seed: s.seed)
        model.zeroGrad()
        for l in layers { l.zeroScalarGradients() }
        let loss = model.loss(tokens: batch.tokens, targets: batch.targets, windowLength: s.seqLen, step: step)
        model.backward(step: step)
        let norm = AdamW.gradientNorm(parameters: model.parameters.all, layers: layers)
        let scale = s.gradClip > 0 && norm > s.gradClip ? s.gradClip / norm : 1
        let lr = s.schedule.rate(at: step)
        optimizer.update(parameters: model.parameters.all, layers: layers, lr: lr, gradScale: scale)
        model.clearTape()
        step += 1
        let seconds = TrainingQuantization.seconds(since: started)
        let after = linearTiming()
        var delta = LinearTiming()
        delta.integerGemm = after.integerGemm - before.integerGemm
        delta.quantize = after.quantize - before.quantize
        delta.floatGemm = after.floatGemm - before.floatGemm
        delta.integerRows = after.integerRows - before.integerRows
        delta.floatRows = after.floatRows - before.floatRows
        let r = StepRecord(step: step, loss: loss, learningRate: lr, gradNorm: norm, seconds: seconds,
                           tokensPerSecond: Double(s.batchSize * s.seqLen) / seconds, linear: delta)
        records.append(r)
        return r
    }

    /// Mean validation NLL with the quantized forward (`float: false`) or the f32 master weights.
    public func validationLoss(float: Bool) -> Double {
        var total = 0.0, count = 0
        let perCall = max(1, settings.batchSize)
        var i = 0
        while i < validationSet.count {
            let chunk = validationSet[i..<min(i + perCall, validationSet.count)]
            let losses = model.tokenLosses(tokens: chunk.flatMap { $0.tokens }, targets: chunk.flatMap { $0.targets },
                                           windowLength: settings.seqLen, step: max(0, step - 1),
                                           backends: float ? floatBackends : model.linears, keepTape: false)
            total += losses.reduce(0, +); count += losses.count
            i += perCall
        }
        return total / Double(count)
    }

    /// Step 0: the float weights only (a quantizer's first forward may initialise state from its
    /// input, e.g. a Hadamard block size, and must see a training batch). `quantizedLoss` is NaN.
    public func validateBeforeTraining() -> ValidationRecord {
        let v = ValidationRecord(step: 0, quantizedLoss: .nan, floatLoss: validationLoss(float: true))
        validations.append(v)
        return v
    }

    public func validate() -> ValidationRecord {
        let v = ValidationRecord(step: step, quantizedLoss: validationLoss(float: false), floatLoss: validationLoss(float: true))
        validations.append(v)
        return v
    }

    /// Steps until `settings.steps`, validating and checkpointing on schedule; `resume` first
    /// loads the run's checkpoint (when there is one).
    public func run(resume: Bool = false, event: (TrainingEvent) -> Void = { _ in }) throws -> TrainingSummary {
        let s = settings
        var resumedFrom: Int?
        if resume, let path = checkpointPath, FileManager.default.fileExists(atPath: path) {
            try restore(from: path)
            resumedFrom = step
            event(.message("\(name): resumed from \(path) at step \(step)"))
        }
        if let out = s.output { try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true) }
        if step == 0 && validations.isEmpty { event(.validation(validateBeforeTraining())) }
        while step < s.steps {
            let r = trainStep()
            event(.step(r))
            if !r.loss.isFinite { event(.message("\(name): the loss is \(r.loss) at step \(step); stopping")); break }
            if step % s.validateEvery == 0 || step == s.steps {
                event(.validation(validate()))
                try writeCurve()
            }
            if s.checkpointEvery > 0, step % s.checkpointEvery == 0 || step == s.steps, let path = checkpointPath {
                try saveCheckpoint(to: path)
                event(.checkpoint(path))
            }
        }
        try writeCurve()
        // Over every step of the run, those of an earlier process (restored from the checkpoint) included.
        let times = records.map(\.seconds).sorted()
        return TrainingSummary(name: name, quantizer: quantizerName, steps: records, validations: validations, unigramLoss: unigramLoss,
                               byteLevel: byteLevel, parameterCount: model.shape.parameterCount, resumedFrom: resumedFrom,
                               medianStepSeconds: times.isEmpty ? 0 : times[times.count / 2])
    }

    public var checkpointPath: String? { settings.output.map { $0 + "/checkpoint.qwbt" } }

    /// `curve.csv` in the output folder: one row per step, validation columns at validation steps.
    public func writeCurve() throws {
        guard let out = settings.output else { return }
        try writeFileAtomically(Data(curveCSV().utf8), to: out + "/curve.csv")
    }

    public func curveCSV() -> String {
        var vals: [Int: ValidationRecord] = [:]
        for v in validations { vals[v.step] = v }
        var lines = ["step,lr,train_loss,grad_norm,val_loss_quantized,val_loss_float,val_bpb_quantized,val_bpb_float,seconds,tokens_per_s,linear_int_gemm_s,linear_quantize_s,linear_f32_gemm_s,other_s,integer_rows,float_rows"]
        func g(_ x: Double) -> String { String(format: "%.6g", x) }
        func g0(_ x: Double) -> String { x.isFinite ? g(x) : "" }
        if let v0 = vals[0] {
            let b = byteLevel ? g(TrainingSummary.bitsPerByte(v0.floatLoss)) : ""
            lines.append(["0", "", "", "", "", g(v0.floatLoss), "", b, "", "", "", "", "", "", "", ""].joined(separator: ","))
        }
        for r in records {
            let v = vals[r.step]
            let vq = v.map { g($0.quantizedLoss) } ?? "", vf = v.map { g($0.floatLoss) } ?? ""
            let bq = v.flatMap { byteLevel ? g(TrainingSummary.bitsPerByte($0.quantizedLoss)) : nil } ?? ""
            let bf = v.flatMap { byteLevel ? g(TrainingSummary.bitsPerByte($0.floatLoss)) : nil } ?? ""
            lines.append([String(r.step), g(r.learningRate), g(r.loss), g(r.gradNorm), vq, vf, bq, bf, g(r.seconds), g(r.tokensPerSecond),
                          g(r.linear.integerGemm), g(r.linear.quantize), g(r.linear.floatGemm), g(r.otherSeconds),
                          String(r.linear.integerRows), String(r.linear.floatRows)].joined(separator: ","))
        }
        return lines.joined(separator: "\n") + "\n"
    }
}

/// Writes `data` to a temporary file beside `path`, then renames it over `path` (never half-written).
public func writeFileAtomically(_ data: Data, to path: String) throws {
    let url = URL(fileURLWithPath: path)
    try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
    let tmp = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())")
    try data.write(to: tmp)
    if rename(tmp.path, url.path) != 0 {
        try? FileManager.default.removeItem(at: tmp)
        throw TrainingInputError("\(path): cannot write (\(String(cString: strerror(errno))))")
    }
}
