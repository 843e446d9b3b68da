import Foundation

/// The forward pass as the pipeline needs it. Implemented by the LLaMA forward pass (module
/// LlamaModel). Hidden states are (windows·windowLength) × hidden; attention never crosses a window.
public protocol DecoderRunner {
    /// Embeddings of `tokens` (each inner array one window of equal length).
    func embed(_ model: DecoderModel, windows: [[Int]]) -> Matrix
    /// Runs `block` on `hidden`; returns the block's output hidden states.
    func runBlock(_ block: DecoderBlock, config: DecoderConfig, hidden: Matrix, windowLength: Int, mode: ExecutionMode) -> Matrix
    /// Runs `block` site by site: computes each site's input (before the site's own online
    /// transforms), calls `visit` — which may transform and quantize that site — then continues
    /// with the site as `visit` left it. Returns the block's output.
    func stepThroughBlock(_ block: DecoderBlock, config: DecoderConfig, hidden: Matrix, windowLength: Int, mode: ExecutionMode,
                          visit: (Site, Matrix) throws -> Void) rethrows -> Matrix
    /// Logits (windowLength × vocab per window, stacked) of the whole model.
    func logits(_ model: DecoderModel, windows: [[Int]], mode: ExecutionMode) -> Matrix
}

/// How block i's calibration inputs are produced from blocks 0…i−1.
public enum Propagation: String, Sendable, CaseIterable {
    /// Through the already processed blocks as they will run (weights and activations quantized).
    case quantized
    /// Through the processed blocks with quantized weights and float activations (GPTQ's convention).
    case floatActivations = "float_activations"
    /// Every block calibrated on the float model's inputs.
    case floatModel = "float_model"
}

/// Per-site outcome of a pipeline run.
public struct SiteReport: Sendable, Codable {
    public var site: String
    /// ‖Ŷ−Y‖/‖Y‖ of the site as deployed vs the original float site, on its calibration input.
    public var relativeOutputError: Double
    /// Input outlier statistics before the site's transforms and after them (what the quantizer sees).
    public var inputMaxBefore: Double, inputMaxAfter: Double
    public var channelRatioBefore: Double, channelRatioAfter: Double
    public var transforms: [String]
    public var weights: [String]
    /// ‖Ŵ−W‖/‖W‖ over the site's quantized linears, W the float weights in the site's final basis
    /// (0 when no linear is quantized): the weight half of the error.
    public var weightError: Double = 0
    /// Per-channel and per-position magnitudes, for the sites a report asks to profile.
    public var profile: SiteProfile?
}

/// The magnitudes behind DuQuant's Figure 1 for one site's calibration input: per channel, max |x|
/// over all measured tokens before the site's transforms and after each transform in order; per
/// position in the window, max |x| over channels and windows before and after all transforms
/// (the first-token massive activations show here).
public struct SiteProfile: Sendable, Codable, Equatable {
    /// `stages[0]` is the raw input; `stages[i]` follows `site.transforms[i - 1]`.
    public var stageNames: [String]
    /// stages × channels.
    public var channelAbsMax: [[Float]]
    /// Per position in the window: max |x| before and after all transforms.
    public var positionMaxBefore: [Float]
    public var positionMaxAfter: [Float]

    public init(stageNames: [String], channelAbsMax: [[Float]], positionMaxBefore: [Float], positionMaxAfter: [Float]) {
        self.stageNames = stageNames; self.channelAbsMax = channelAbsMax
        self.positionMaxBefore = positionMaxBefore; self.positionMaxAfter = positionMaxAfter
    }

    /// Measures `x` (windows of `windowLength` rows × in) through `site`'s transforms.
    public static func measure(site: Site, input x: Matrix, windowLength: Int) -> SiteProfile {
        var stages = ["input"], absMax = [x.columnAbsMax()]
        var y = x
        for step in site.transforms {
            step.transform.applyToActivations(&y)
            stages.append(step.description)
            absMax.append(y.columnAbsMax())
        }
        return SiteProfile(stageNames: stages, channelAbsMax: absMax,
                           positionMaxBefore: positionMax(x, windowLength), positionMaxAfter: positionMax(y, windowLength))
    }

    static func positionMax(_ x: Matrix, _ windowLength: Int) -> [Float] {
        guard windowLength > 0 else { return [] }
        var m = [Float](repeating: 0, count: windowLength)
        for r in 0..<x.rows {
            let p = r % windowLength
            for c in 0..<x.cols { m[p] = max(m[p], abs(x.data[r * x.cols + c])) }
        }
        return m
    }
}

public struct MethodCost: Sendable, Codable {
    public var method: String
    public var seconds: Double
    /// Largest working set the method reported or was handed (calibration inputs included), bytes.
    public var peakBytes: Int
}

public struct PipelineReport: Sendable {
    public var sites: [SiteReport] = []
    public var costs: [MethodCost] = []
    public var log: [String] = []
    public var seconds: Double = 0
}

/// Applies a recipe's methods to a model, block by block and site by site.
public struct Pipeline {
    public var methods: [any QuantMethod]
    public var propagation: Propagation
    public var seed: UInt64
    /// Sites (canonical names) whose `SiteReport.profile` is filled in.
    public var profiledSites: Set<String> = []

    public init(methods: [any QuantMethod], propagation: Propagation = .quantized, seed: UInt64 = 0) {
        self.methods = methods; self.propagation = propagation; self.seed = seed
    }

    public var needsCalibration: Bool { methods.contains { !$0.needs.isEmpty } }

    /// Runs the pipeline on `model` in place. `calibration` holds equal-length token windows.
    public func run(model: DecoderModel, calibration: [[Int]], runner: DecoderRunner,
                    progress: (_ blocksDone: Int, _ blocks: Int) -> Void = { _, _ in }) throws -> PipelineReport {
        if let (i, message) = MethodRole.orderProblem(methods.map { type(of: $0) }) {
            throw MethodError(method: type(of: methods[i]).name, "pipeline step \(i + 1): \(message)")
        }
        var report = PipelineReport()
        let start = Date()
        let windowLength = calibration.first?.count ?? 0
        var costs = [String: (Double, Int)]()
        func charge(_ name: String, _ s: Double, _ b: Int) {
            let c = costs[name] ?? (0, 0)
            costs[name] = (c.0 + s, max(c.1, b))
        }
        for (i, m) in methods.enumerated() {
            let t = Date()
            try m.prepare(model: model, seed: SeededGenerator.derive(seed, "prepare.\(i)"), log: { report.log.append($0) })
            charge(type(of: m).name, Date().timeIntervalSince(t), 0)
        }
        // Methods that need no statistics produce the same model from any calibration set, so only
        // the windows the per-site measurement reads are propagated (the same windows `measure` picks).
        let propagated = needsCalibration ? calibration : Pipeline.measuredWindows(of: calibration)
        var hidden = propagated.isEmpty ? Matrix(zeros: 0, model.config.hiddenSize) : runner.embed(model, windows: propagated)
        for block in model.blocks {
            progress(block.index, model.blocks.count)
            // Capture each site's input through the block's already processed sites, as deployed.
            let process = { (site: Site, raw: Matrix) throws -> Void in
                // The input statistics (before any method) double as the finiteness check of the
                // site's input: its column max |x| is NaN or inf if any sampled value is.
                let sample = Pipeline.measuredSample(raw, windowLength: windowLength)
                let before = OutlierStats.summary(sample)
                if !before.0.isFinite {
                    let first = methods.first.map { "before pipeline step 1 (\(type(of: $0).name))" } ?? "with no pipeline step"
                    throw NumericalFault(quantity: "activations", site: "\(site.name) input", step: "calibration block \(block.index), \(first)",
                                         value: Float(before.0))
                }
                let originals = site.linears.map { ($0.weight, $0.bias) }
                // One calibration of the raw inputs per site; methods after a transform see it
                // through the site's transforms (its statistics derived on first use).
                let rawCalibration = SiteCalibration(inputs: raw, windowLength: windowLength)
                for (mi, method) in methods.enumerated() {
                    let t = Date()
                    var calib: SiteCalibration?
                    if !method.needs.isEmpty {
                        calib = site.transforms.isEmpty ? rawCalibration
                            : SiteCalibration(base: rawCalibration, transforms: site.transforms.map(\.transform))
                    }
                    let ctx = MethodContext(model: model, block: block,
                                            seed: SeededGenerator.derive(seed, "\(mi).\(site.name)"),
                                            log: { report.log.append($0) })
                    do {
                        try method.apply(to: site, calibration: calib, context: ctx)
                    } catch var fault as NumericalFault {
                        fault.step = "calibration block \(block.index), pipeline step \(mi + 1) (\(type(of: method).name))" + (fault.step.isEmpty ? "" : ", \(fault.step)")
                        throw fault
                    }
                    let bytes = (calib.map { $0.rows * $0.features } ?? 0) * 4 + method.estimate(site: site, tokens: raw.rows).bytes
                    charge(type(of: method).name, Date().timeIntervalSince(t), bytes)
                }
                report.sites.append(Pipeline.measure(site: site, sample: sample, before: before, originals: originals,
                                                     windowLength: windowLength, profile: profiledSites.contains(site.name)))
            }
            guard !propagated.isEmpty else {
                // No calibration data: methods that need none still run at every site.
                for site in block.sites { try process(site, Matrix(zeros: 0, site.inFeatures)) }
                continue
            }
            let stepped = try runner.stepThroughBlock(block, config: model.config, hidden: hidden, windowLength: windowLength,
                                                      mode: .quantized, visit: process)
            switch propagation {
            case .quantized: hidden = stepped
            case .floatActivations where block.quantizesActivations:
                hidden = runner.runBlock(block, config: model.config, hidden: hidden, windowLength: windowLength, mode: .quantizedWeights)
            case .floatActivations:
                hidden = stepped   // nothing in the block rounds activations: the same pass, bit for bit
            case .floatModel:
                hidden = runner.runBlock(block, config: model.config, hidden: hidden, windowLength: windowLength, mode: .float)
            }
        }
        report.costs = methods.map { m in
            let name = type(of: m).name
            return MethodCost(method: name, seconds: costs[name]?.0 ?? 0, peakBytes: costs[name]?.1 ?? 0)
        }
        progress(model.blocks.count, model.blocks.count)
        report.seconds = Date().timeIntervalSince(start)
        return report
    }

    /// Rows of the calibration input used for the per-site statistics: evenly spaced whole
    /// windows, at most this many rows (the statistics need far fewer rows than the methods).
    public static let measureRows = 4096

    /// Indices of the whole windows (out of `windows` of `windowLength` rows) that the per-site
    /// statistics read: all of them up to `measureRows` rows, else evenly spaced ones.
    public static func measuredWindowIndices(windows: Int, windowLength: Int) -> [Int] {
        guard windows * windowLength > measureRows, windowLength > 0 else { return Array(0..<windows) }
        let keep = max(1, measureRows / windowLength)
        return (0..<keep).map { $0 * windows / keep }
    }

    /// The calibration windows the per-site statistics read.
    static func measuredWindows(of calibration: [[Int]]) -> [[Int]] {
        let indices = measuredWindowIndices(windows: calibration.count, windowLength: calibration.first?.count ?? 0)
        return indices.map { calibration[$0] }
    }

    /// The deterministic sample of whole windows of a site's calibration input that the per-site
    /// statistics read (the whole input when it is small).
    static func measuredSample(_ full: Matrix, windowLength: Int) -> Matrix {
        guard windowLength > 0 else { return full }
        let indices = measuredWindowIndices(windows: full.rows / windowLength, windowLength: windowLength)
        guard indices.count * windowLength < full.rows else { return full }
        let width = windowLength * full.cols
        var rows: [Float] = []
        rows.reserveCapacity(indices.count * width)
        for w in indices { rows += full.data[(w * width)..<((w + 1) * width)] }
        return Matrix(rows: indices.count * windowLength, cols: full.cols, data: rows)
    }

    /// Relative output error and outlier statistics of a processed site on `sample` (its measured
    /// calibration input); `before` is `OutlierStats.summary(sample)`, taken before the methods ran.
    static func measure(site: Site, sample rawInput: Matrix, before: (Double, Double), originals: [(Matrix, [Float]?)],
                        windowLength: Int = 0, profile: Bool = false) -> SiteReport {
        var num = 0.0, den = 0.0
        var deployedInput = rawInput
        for step in site.transforms where step.placement != .online { step.transform.applyToActivations(&deployedInput) }
        let outs = rawInput.rows > 0 ? site.forward(deployedInput, mode: .quantized) : []
        for (i, y) in outs.enumerated() {
            let ref = rawInput.timesTransposed(originals[i].0, bias: originals[i].1)
            for j in 0..<y.data.count {
                let d = Double(y.data[j]) - Double(ref.data[j])
                num += d * d; den += Double(ref.data[j]) * Double(ref.data[j])
            }
        }
        var after = rawInput
        site.applyAllTransforms(&after)
        let (mb, rb) = before
        let (ma, ra) = OutlierStats.summary(after)
        var wNum = 0.0, wDen = 0.0
        for l in site.linears where l.quantized != nil {
            let q = l.effectiveWeight(quantized: true)
            for j in 0..<q.data.count {
                let d = Double(q.data[j]) - Double(l.weight.data[j])
                wNum += d * d; wDen += Double(l.weight.data[j]) * Double(l.weight.data[j])
            }
        }
        return SiteReport(site: site.name, relativeOutputError: den > 0 ? (num / den).squareRoot() : 0,
                          inputMaxBefore: mb, inputMaxAfter: ma, channelRatioBefore: rb, channelRatioAfter: ra,
                          transforms: site.transforms.map { $0.description },
                          weights: site.linears.map { "\($0.name): " + ($0.quantized.map { "\($0.grid) g\($0.groupSize) by \($0.producedBy)" } ?? "float") },
                          weightError: wDen > 0 ? (wNum / wDen).squareRoot() : 0,
                          profile: profile && rawInput.rows > 0 ? SiteProfile.measure(site: site, input: rawInput, windowLength: windowLength) : nil)
    }
}

/// Outlier statistics of an activation matrix (tokens × channels).
public enum OutlierStats {
    /// (max |x|, max |x| / median per-channel absmax). The max is NaN or +inf when `x` holds a
    /// non-finite value (a finiteness check for free).
    public static func summary(_ x: Matrix) -> (Double, Double) {
        guard x.rows > 0 else { return (0, 0) }
        let cm = x.columnAbsMax()
        if let bad = cm.first(where: { !$0.isFinite }) { return (Double(bad), .nan) }
        let mx = Double(cm.max() ?? 0)
        let sorted = cm.sorted()
        let median = Double(sorted[sorted.count / 2])
        return (mx, median > 0 ? mx / median : 0)
    }
}
