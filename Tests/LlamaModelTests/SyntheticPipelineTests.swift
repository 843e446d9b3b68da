import XCTest
import QuantCore
import LlamaModel
import TestSupport

/// The forward pass and the pipeline on the built-in synthetic model.
final class SyntheticPipelineTests: XCTestCase {
    let runner = LlamaForward()

    func testPlantedPhenomenaArePresent() {
        let model = SyntheticModel.make(seed: 0)
        let windows = SyntheticModel.tokens(seed: 1, windows: 2, length: 64)
        let h = runner.embed(model, windows: windows)
        let down = runner.siteInput(model.blocks[0], config: model.config, hidden: h, windowLength: 64, site: .down, mode: .float)
        let (mx, ratio) = OutlierStats.summary(down)
        XCTAssertGreaterThan(ratio, 50, "massive activation at the down_proj input (max \(mx))")
        let qkv = runner.siteInput(model.blocks[0], config: model.config, hidden: h, windowLength: 64, site: .qkv, mode: .float)
        XCTAssertGreaterThan(OutlierStats.summary(qkv).1, 4, "outlier channels at the q/k/v input")
    }

    func testSameSeedSameModel() {
        XCTAssertEqual(SyntheticModel.make(seed: 3).blocks[1].down.linears[0].weight, SyntheticModel.make(seed: 3).blocks[1].down.linears[0].weight)
        XCTAssertNotEqual(SyntheticModel.make(seed: 3).embedding, SyntheticModel.make(seed: 4).embedding)
    }

    func testAttentionIsCausalAndWindowsAreIndependent() {
        let model = SyntheticModel.make(seed: 0)
        let w = SyntheticModel.tokens(seed: 2, windows: 2, length: 16)
        let both = runner.logits(model, windows: w, mode: .float)
        let first = runner.logits(model, windows: [w[0]], mode: .float)
        XCTAssertLessThan(both.rows(0..<16).relativeError(to: first), 1e-6)
        // Changing a later token does not change earlier logits.
        var changed = w[0]; changed[10] = (changed[10] + 7) % 512
        let c = runner.logits(model, windows: [changed], mode: .float)
        XCTAssertLessThan(c.rows(0..<10).relativeError(to: first.rows(0..<10)), 1e-6)
        XCTAssertGreaterThan(c.rows(10..<16).relativeError(to: first.rows(10..<16)), 1e-4)
    }

    func testRopeLayoutsAgreeUnderTheRowPermutation() {
        // llama.cpp's GGUF converter permutes q/k rows so that interleaved-pair RoPE on the
        // permuted weights equals rotate-half RoPE on the original weights.
        var x = randomMatrix(8, 2 * 16, seed: 9)   // 8 tokens, 2 heads of 16
        var perm = x
        // rotate-half index i ↔ interleaved index: (i < 8) → 2i, (i ≥ 8) → 2(i−8)+1
        for t in 0..<8 { for h in 0..<2 { for i in 0..<16 {
            let j = i < 8 ? 2 * i : 2 * (i - 8) + 1
            perm[t, h * 16 + j] = x[t, h * 16 + i]
        } } }
        LlamaForward.applyRope(&x, heads: 2, headDim: 16, windowLength: 8, theta: 10000, layout: .rotateHalf)
        LlamaForward.applyRope(&perm, heads: 2, headDim: 16, windowLength: 8, theta: 10000, layout: .interleavedPairs)
        for t in 0..<8 { for h in 0..<2 { for i in 0..<16 {
            let j = i < 8 ? 2 * i : 2 * (i - 8) + 1
            XCTAssertEqual(perm[t, h * 16 + j], x[t, h * 16 + i], accuracy: 1e-5)
        } } }
    }

    func testPipelineQuantizesEverySiteAndReportsErrors() throws {
        let fp = SyntheticModel.make(seed: 0)
        let model = fp.copy()
        _ = try model.assignSchemes(QuantScheme(weights: WeightScheme(bits: 4), activations: ActivationScheme(bits: 8)), overrides: [])
        let cal = SyntheticModel.tokens(seed: 5, windows: 2, length: 32)
        let report = try Pipeline(methods: [QuantizeAll()]).run(model: model, calibration: cal, runner: runner)
        XCTAssertEqual(report.sites.count, 16)
        for s in report.sites { XCTAssertGreaterThan(s.relativeOutputError, 0); XCTAssertLessThan(s.relativeOutputError, 1) }
        XCTAssertTrue(model.allSites.allSatisfy { $0.linears.allSatisfy { $0.quantized != nil } })
        // Float mode of the processed model is still the float model.
        let z = runner.logits(fp, windows: [cal[0]], mode: .float)
        XCTAssertLessThan(runner.logits(model, windows: [cal[0]], mode: .float).relativeError(to: z), 1e-6)
        XCTAssertGreaterThan(runner.logits(model, windows: [cal[0]], mode: .quantized).relativeError(to: z), 1e-4)
    }

    /// A site visit that folds a scale into the producer of the site's input (norm weight, up_proj
    /// rows) must not leave the rest of the block running on the stale input: the stepped output
    /// equals a fresh run of the block as it ends up.
    func testFoldsMadeWhileSteppingReachTheRestOfTheBlock() {
        let model = SyntheticModel.make(seed: 0)
        let block = model.blocks[1]
        let hidden = runner.embed(model, windows: SyntheticModel.tokens(seed: 8, windows: 2, length: 24))
        var rng = SeededGenerator(seed: 3)
        let stepped = runner.stepThroughBlock(block, config: model.config, hidden: hidden, windowLength: 24, mode: .float) { site, _ in
            let s = (0..<site.inFeatures).map { _ in Float.random(in: 0.25...4, using: &rng) }
            model.smooth(site, in: block, by: s, addedBy: "test")
        }
        XCTAssertTrue(block.allSitesHaveFoldedScales)
        let fresh = runner.runBlock(block, config: model.config, hidden: hidden, windowLength: 24, mode: .float)
        XCTAssertLessThan(stepped.relativeError(to: fresh), 1e-5)
        // …and both still compute the original block.
        let original = runner.runBlock(SyntheticModel.make(seed: 0).blocks[1], config: model.config, hidden: hidden, windowLength: 24, mode: .float)
        XCTAssertLessThan(fresh.relativeError(to: original), 1e-5)
    }

    /// The pipeline reuses the quantized pass for `float_activations` propagation when nothing in a
    /// block rounds activations; that is only sound if the two modes then give the same bits.
    func testWeightOnlyBlocksRunTheSameInQuantizedAndQuantizedWeightsModes() throws {
        let model = SyntheticModel.make(seed: 0)
        _ = try model.assignSchemes(QuantScheme(weights: WeightScheme(bits: 4), activations: ActivationScheme(bits: 16)), overrides: [])
        _ = try Pipeline(methods: [QuantizeAll()]).run(model: model, calibration: [], runner: runner)
        let block = model.blocks[1]
        XCTAssertFalse(block.quantizesActivations)
        let hidden = runner.embed(model, windows: SyntheticModel.tokens(seed: 7, windows: 2, length: 24))
        let a = runner.runBlock(block, config: model.config, hidden: hidden, windowLength: 24, mode: .quantized)
        let b = runner.runBlock(block, config: model.config, hidden: hidden, windowLength: 24, mode: .quantizedWeights)
        XCTAssertEqual(a.data, b.data)
        XCTAssertNotEqual(a.data, runner.runBlock(block, config: model.config, hidden: hidden, windowLength: 24, mode: .float).data)
        _ = try model.assignSchemes(QuantScheme(weights: WeightScheme(bits: 4), activations: ActivationScheme(bits: 8)), overrides: [])
        XCTAssertTrue(block.quantizesActivations)
    }

    func testDataFreeMethodsPropagateOnlyTheMeasuredWindowsWithTheSameStatistics() throws {
        // 40 windows of 128 rows exceed the measurement budget, so statistics read 32 of them.
        let cal = SyntheticModel.tokens(seed: 6, windows: 40, length: 128)
        XCTAssertEqual(Pipeline.measuredWindowIndices(windows: 40, windowLength: 128).count, Pipeline.measureRows / 128)
        func run(_ method: QuantizeAll) throws -> [SiteReport] {
            let model = SyntheticModel.make(seed: 0)
            _ = try model.assignSchemes(QuantScheme(weights: WeightScheme(bits: 4), activations: ActivationScheme(bits: 8)), overrides: [])
            return try Pipeline(methods: [method]).run(model: model, calibration: cal, runner: runner).sites
        }
        let dataFree = try run(QuantizeAll()), fullPropagation = try run(QuantizeAll(needs: .inputs))
        XCTAssertEqual(dataFree.count, fullPropagation.count)
        for (a, b) in zip(dataFree, fullPropagation) {
            XCTAssertEqual(a.relativeOutputError, b.relativeOutputError, accuracy: 1e-5 * b.relativeOutputError, a.site)
            XCTAssertEqual(a.inputMaxBefore, b.inputMaxBefore, accuracy: 1e-5 * b.inputMaxBefore, a.site)
        }
    }
}

/// A method after a transform gets the site's calibration in the transformed basis: its inputs are
/// the raw inputs through the site's chain, and its Hessian (by congruence) their Gram matrix.
final class TransformedCalibrationTests: XCTestCase {
    /// Adds an online scale and a block rotation to every site.
    final class RotateSites: QuantMethod {
        static let name = "rotate_sites"; static let summary = ""; static let options: [OptionSpec] = []
        static let role = MethodRole.transform
        init(options: MethodOptions) throws {}
        init() {}
        var needs: CalibrationNeeds { [] }
        func plan(site: Site, config: DecoderConfig) throws -> SitePlan { SitePlan() }
        func apply(to site: Site, calibration: SiteCalibration?, context: MethodContext) throws {
            let b = 16, n = site.inFeatures
            site.addTransform(.scale((0..<n).map { 0.5 + Float($0 % 5) / 4 }), addedBy: Self.name)
            site.addTransform(.blockOrthogonal(blockSize: b, blocks: (0..<(n / b)).map { randomOrthogonal(b, seed: UInt64($0)).data }),
                              addedBy: Self.name)
        }
    }

    /// Records, per site, the calibration it is handed, and the raw one (before any transform).
    final class Record: QuantMethod {
        static let name = "record"; static let summary = ""; static let options: [OptionSpec] = []
        static let role = MethodRole.observer
        var seen: [String: (inputs: Matrix, hessian: Matrix, chain: [Transform])] = [:]
        init(options: MethodOptions) throws {}
        init() {}
        var needs: CalibrationNeeds { .inputs }
        func plan(site: Site, config: DecoderConfig) throws -> SitePlan { SitePlan() }
        func apply(to site: Site, calibration: SiteCalibration?, context: MethodContext) throws {
            seen[site.name] = (calibration!.inputs, calibration!.hessian, site.transforms.map(\.transform))
        }
    }

    func testAMethodAfterATransformSeesTheTransformedInputsAndTheirHessian() throws {
        let cal = SyntheticModel.tokens(seed: 5, windows: 2, length: 32)
        let before = Record(), after = Record()
        // `before` runs ahead of the transform at each site: it is handed the same run's raw inputs.
        _ = try Pipeline(methods: [before, RotateSites(), after]).run(model: SyntheticModel.make(seed: 0), calibration: cal, runner: LlamaForward())
        XCTAssertEqual(after.seen.count, 16)
        for name in ["layers.0.qkv", "layers.0.down", "layers.1.gate_up"] {
            let raw = try XCTUnwrap(before.seen[name]), got = try XCTUnwrap(after.seen[name])
            XCTAssertTrue(raw.chain.isEmpty, name)
            XCTAssertEqual(got.chain.count, 2, name)
            var expected = raw.inputs
            TransformPlan(got.chain, features: expected.cols).apply(&expected)
            XCTAssertEqual(got.inputs.data, expected.data, "\(name): inputs in the site's basis")
            let gram = SiteCalibration(inputs: expected, windowLength: 32).hessian
            let scale = gram.data.map { abs($0) }.max()!
            let worst = zip(got.hessian.data, gram.data).map { abs($0 - $1) }.max()!
            XCTAssertLessThan(worst / scale, 1e-5, "\(name): Hessian against the Gram matrix of the transformed inputs")
        }
    }
}

extension DecoderBlock {
    /// Every site carries a diagonal scale that is folded upstream or (GQA's o) online.
    var allSitesHaveFoldedScales: Bool { sites.allSatisfy { !$0.transforms.isEmpty } }
}

/// A minimal weight quantizer for pipeline tests (RTN lives in its own plugin).
final class NumericalFaultPipelineTests: XCTestCase {
    /// An infinite weight in block 1's o_proj (quantized to a NaN scale, not to finite codes) makes
    /// the residual stream non-finite after it: the pipeline stops at the first site whose input is
    /// not finite (block 1's gate/up), naming it.
    func testTheFirstSiteWithANonFiniteInputIsNamed() throws {
        let model = SyntheticModel.make(seed: 0)
        model.blocks[1].o.linears[0].weight.data[5] = .infinity
        let cal = SyntheticModel.tokens(seed: 1, windows: 2, length: 16)
        XCTAssertThrowsError(try Pipeline(methods: [QuantizeAll(needs: .inputs)]).run(model: model, calibration: cal, runner: LlamaForward())) { e in
            guard let f = e as? NumericalFault else { return XCTFail("expected a NumericalFault, got \(e)") }
            XCTAssertEqual(f.quantity, "activations")
            XCTAssertEqual(f.site, "layers.1.gate_up input")
            XCTAssertEqual(f.step, "calibration block 1, before pipeline step 1 (quantize_all)")
            XCTAssertFalse(f.value.isFinite)
            XCTAssertTrue(f.in(variant: "w4").description.contains("variant w4"), f.description)
        }
        // blocks before it were processed, the faulty one's later sites were not
        XCTAssertTrue(model.blocks[0].down.linears[0].quantized != nil, "block 0 was processed")
        XCTAssertTrue(model.blocks[1].gateUp.linears[0].quantized == nil, "block 1's gate/up was not")
    }
}

final class QuantizeAll: QuantMethod {
    static let name = "quantize_all"
    static let role = MethodRole.weightQuantizer
    static let summary = "test"
    static let options: [OptionSpec] = []
    let needs: CalibrationNeeds
    init(needs: CalibrationNeeds = []) { self.needs = needs }
    init(options: MethodOptions) throws { needs = [] }
    var quantizesWeights: Bool { true }
    func plan(site: Site, config: DecoderConfig) throws -> SitePlan { SitePlan() }
    func apply(to site: Site, calibration: SiteCalibration?, context: MethodContext) throws {
        for l in site.linears { l.quantized = .roundToNearest(l.weight, scheme: l.scheme) }
    }
}

final class AttentionQuantizationTests: XCTestCase {
    func testQKVQuantizationChangesOnlyQuantizedRunsAndHadamardKeepsScores() {
        let fp = SyntheticModel.make(seed: 0)
        let w = SyntheticModel.tokens(seed: 4, windows: 1, length: 24)
        let r = LlamaForward()
        let z = r.logits(fp, windows: w, mode: .quantized)   // nothing quantized yet
        // A Hadamard on head_dim alone (no rounding) leaves QKᵀ unchanged.
        let rotOnly = fp.copy()
        for b in rotOnly.blocks { b.attentionQuantization = AttentionQuantization(bits: 8, queries: false, keys: false, values: false, hadamardOnHeadDim: true) }
        XCTAssertLessThan(r.logits(rotOnly, windows: w, mode: .quantized).relativeError(to: z), 1e-5)
        // 4-bit Q/K/V changes the quantized run, never the float one.
        let q = fp.copy()
        for b in q.blocks { b.attentionQuantization = AttentionQuantization(bits: 4) }
        XCTAssertGreaterThan(r.logits(q, windows: w, mode: .quantized).relativeError(to: z), 1e-3)
        XCTAssertEqual(r.logits(q, windows: w, mode: .float), r.logits(fp, windows: w, mode: .float))
    }
}
