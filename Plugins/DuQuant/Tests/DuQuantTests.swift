import XCTest
import QuantCore
import QuantKernels
import RTN
import LlamaModel
import TestSupport
@testable import DuQuant

final class DuQuantTests: XCTestCase {
    let runner = LlamaForward()

    func method(_ values: [String: OptionValue] = [:]) throws -> DuQuant {
        var o = MethodOptions(defaultsOf: DuQuant.options)
        o.values["block_size"] = .auto   // the synthetic model's 96 is not divisible by 128
        for (k, v) in values { o.values[k] = v }
        return try DuQuant(options: o)
    }

    func run(_ methods: [any QuantMethod], scheme: QuantScheme? = nil, seed: UInt64 = 7,
             config: DecoderConfig = SyntheticModel.config) throws -> (DecoderModel, DecoderModel, PipelineReport) {
        let fp = SyntheticModel.make(seed: 0, config: config)
        let model = fp.copy()
        if let scheme { _ = try model.assignSchemes(scheme, overrides: []) }
        let cal = SyntheticModel.tokens(seed: 5, windows: 4, length: 32)
        let report = try Pipeline(methods: methods, seed: seed).run(model: model, calibration: cal, runner: runner)
        return (fp, model, report)
    }

    func floatLogitsError(_ fp: DecoderModel, _ model: DecoderModel) -> Double {
        let w = SyntheticModel.tokens(seed: 11, windows: 2, length: 24)
        return runner.logits(model, windows: w, mode: .float).relativeError(to: runner.logits(fp, windows: w, mode: .float))
    }

    func assertOrthogonal(_ m: [Double], _ b: Int, file: StaticString = #filePath, line: UInt = #line) {
        for i in 0..<b { for j in 0..<b {
            var s = 0.0
            for k in 0..<b { s += m[i * b + k] * m[j * b + k] }
            XCTAssertEqual(s, i == j ? 1 : 0, accuracy: 1e-9, file: file, line: line)
        } }
    }

    // MARK: Reference vectors (algorithms.md §10c)

    /// Option values outside the declared choices are errors, not a silent fallback to `paper` / `rows`.
    func testUnknownVariantOrCalibrationInputIsAnError() throws {
        for (key, value) in [("variant", "papper"), ("calibrate_on", "median")] {
            var o = MethodOptions(defaultsOf: DuQuant.options)
            o.values[key] = .string(value)
            XCTAssertThrowsError(try DuQuant(options: o)) { e in
                XCTAssertTrue(e is OptionError && "\(e)".contains(key) && "\(e)".contains(value), "\(e)")
            }
        }
        var o = MethodOptions(defaultsOf: DuQuant.options)
        o.values["variant"] = .string("code"); o.values["calibrate_on"] = .string("rows")
        let d = try DuQuant(options: o)
        XCTAssertEqual(d.variant, .code)
        XCTAssertEqual(d.calibrateOn, .rows)
        o.values["variant"] = .int(1)
        XCTAssertThrowsError(try DuQuant(options: o)) { e in XCTAssertTrue("\(e)".contains("variant"), "\(e)") }
    }

    func testBaseRotationMatchesReferenceForB4() {
        let x = DuQuantMath.baseRotation(4)
        let expected: [Double] = [0.5, 0.5, 0.5, 0.5,
                                  0, 0.4082, -0.8165, 0.4082,
                                  -0.8660, 0.2887, 0.2887, 0.2887,
                                  0, -0.7071, 0, 0.7071]
        for i in 0..<16 { XCTAssertEqual(x[i], expected[i], accuracy: 1e-4, "entry \(i)") }
        assertOrthogonal(x, 4)
        let x8 = DuQuantMath.baseRotation(8)
        for j in 0..<8 { XCTAssertEqual(x8[j], 1 / 8.0.squareRoot(), accuracy: 1e-12) }
        assertOrthogonal(x8, 8)
        // The randomized rotation keeps column 0 of X̃ and stays orthogonal.
        var g = SeededGenerator(seed: 1)
        let r = DuQuantMath.randomizedRotation(8, &g)
        assertOrthogonal(r, 8)
        for i in 0..<8 { XCTAssertEqual(r[i * 8], x8[i * 8], accuracy: 1e-12) }
    }

    func testZigzagPermutationMatchesReferenceAndEqualizesBlocks() {
        let m: [Float] = [9, 1, 15, 3, 7, 12, 2, 14, 5, 11, 4, 16, 8, 6, 13, 10]
        let perm = DuQuantMath.zigzagPermutation(magnitudes: m, blockSize: 4)
        XCTAssertEqual(perm, [11, 0, 12, 1, 2, 15, 4, 6, 7, 9, 13, 3, 14, 5, 8, 10])
        for blk in 0..<4 { XCTAssertEqual(perm[(blk * 4)..<(blk * 4 + 4)].map { m[$0] }.reduce(0, +), 34) }
    }

    // MARK: Greedy rotation

    /// algorithms.md §10c toy: N(0,1) plus +200 on channel 37 and +60 on channel 600.
    func toy(tokens: Int, channels: Int) -> Matrix {
        var x = randomMatrix(tokens, channels, seed: 42)
        for t in 0..<tokens { x[t, 37] += 200; x[t, 600 % channels] += 60 }
        return x
    }

    func testGreedyRotationSpreadsPlantedOutliers() {
        for (variant, tokens, channels) in [(DuQuantMath.Variant.paper, 256, 1024), (.code, 64, 512)] {
            let x = toy(tokens: tokens, channels: channels)
            var z = x
            var g = SeededGenerator(seed: 3)
            let r = DuQuantMath.greedyRotation(&z, blockSize: 128, steps: 256, variant: variant, rng: &g)
            let before = x.columnAbsMax().max()!, after = z.columnAbsMax().max()!
            XCTAssertGreaterThan(before, 200)
            XCTAssertLessThan(after, 65, "\(variant)")
            XCTAssertGreaterThan(r.keptSteps, 0)
            XCTAssertEqual(r.blocks.count, variant == .paper ? channels / 128 : 1)
            // z is exactly x·R (the transform the site will apply), and R is orthogonal.
            var y = x
            Transform.blockOrthogonal(blockSize: 128, blocks: r.blocks).applyToActivations(&y)
            XCTAssertLessThan(y.relativeError(to: z), 1e-6)
            XCTAssertEqual(z.norm, x.norm, accuracy: 1e-4 * x.norm)
        }
    }

    /// The GEMM path (one f32 GEMM per step, one f64 GEMM per replayed step, both without fused
    /// multiply-add) against the plain per-row path: the same multiplies and adds in the same order,
    /// so the same steps are kept and the rotations are equal; 1 and 2 threads give the same bits.
    func testFastGreedyRotationEqualsReferenceAndIsThreadIndependent() {
        for (variant, tokens, channels, b) in [(DuQuantMath.Variant.paper, 200, 512, 128), (.paper, 96, 576, 64), (.code, 64, 256, 64)] {
            let x = toy(tokens: tokens, channels: channels)
            func rotate(_ reference: Bool, threads: Int) -> (DuQuantMath.GreedyResult, Matrix) {
                let saved = Parallel.threadCount
                defer { Parallel.threadCount = saved }
                Parallel.threadCount = threads
                var z = x
                var g = SeededGenerator(seed: 5)
                return (DuQuantMath.greedyRotation(&z, blockSize: b, steps: 64, variant: variant, rng: &g, reference: reference), z)
            }
            let (ref, zr) = rotate(true, threads: 2)
            let (fast, zf) = rotate(false, threads: 2)
            XCTAssertGreaterThan(ref.keptSteps, 1, "\(variant)")
            XCTAssertEqual(fast.keptSteps, ref.keptSteps, "\(variant)")
            XCTAssertEqual(fast.evaluatedSteps, ref.evaluatedSteps)
            XCTAssertEqual(fast.rangeAfter, ref.rangeAfter)
            XCTAssertEqual(fast.blocks, ref.blocks, "\(variant)")
            XCTAssertEqual(zf.data, zr.data)
            let (one, z1) = rotate(false, threads: 1)
            XCTAssertEqual(one.blocks, fast.blocks, "\(variant)")
            XCTAssertEqual(z1.data, zf.data)
        }
    }

    /// The vectorized block extremes against the plain scan, ties and strides included.
    func testExtremesMatchThePlainScan() {
        var g = SeededGenerator(seed: 9)
        for (rows, b, stride) in [(1, 8, 8), (7, 16, 40), (50, 64, 200), (33, 4, 12)] {
            var x = (0..<(rows * stride)).map { _ in Float(Int(g.nextUnit() * 21) - 10) }   // many ties
            x.withUnsafeMutableBufferPointer { xp in
                XCTAssertTrue(DuQuantMath.extremes(xp.baseAddress!, rows: rows, stride: stride, b: b)
                              == DuQuantMath.extremesReference(xp.baseAddress!, rows: rows, stride: stride, b: b), "\(rows)×\(b)")
            }
        }
    }

    // MARK: On the synthetic model

    func testFunctionPreservingOnEverySiteForBothVariants() throws {
        for variant in ["paper", "code"] {
            let (fp, model, report) = try run([method(["variant": .string(variant)])])
            for b in model.blocks {
                for site in b.sites {
                    XCTAssertEqual(site.transforms.count, 4, site.name)   // scale, R₁, P, R₂
                    guard case let .blockOrthogonal(bs, blocks) = site.transforms[1].transform else { return XCTFail() }
                    XCTAssertEqual(bs, site.kind == .down ? 64 : 32)
                    XCTAssertEqual(blocks.count, variant == "paper" ? site.inFeatures / bs : 1)
                }
                XCTAssertEqual(b.qkv.transforms[0].placement, .folded(into: "layers.\(b.index).input_layernorm"))
                XCTAssertEqual(b.down.transforms[0].placement, .folded(into: "layers.\(b.index).mlp.up_proj"))
                XCTAssertEqual(b.o.transforms[0].placement, .online)   // GQA: 6 heads, 2 KV heads
            }
            let err = floatLogitsError(fp, model)
            XCTAssertLessThan(err, 1e-5, variant)
            XCTAssertFalse(report.log.filter { $0.hasPrefix("duquant") }.isEmpty)
            // The transforms reduce what the activation quantizer sees at the down site.
            for s in report.sites where s.site.hasSuffix(".down") { XCTAssertLessThan(s.inputMaxAfter, s.inputMaxBefore, s.site) }
        }
        // Without smoothing, and on sampled rows with two permutation rounds (two blocks suffice).
        var small = SyntheticModel.config
        small.layerCount = 2
        let (fp, model, _) = try run([method(["smooth": .bool(false), "calibrate_on": .string("rows"), "sample_rows": .int(50),
                                              "permutation_times": .int(2)])], config: small)
        XCTAssertEqual(model.blocks[0].qkv.transforms.count, 5)
        XCTAssertLessThan(floatLogitsError(fp, model), 1e-5)
        // Multi-head attention (KV heads = heads): o's smoothing folds into v_proj's output rows.
        var mha = small
        mha.kvHeadCount = mha.headCount
        let (fpM, modelM, _) = try run([method()], config: mha)
        XCTAssertEqual(modelM.blocks[1].o.transforms[0].placement, .folded(into: "layers.1.self_attn.v_proj"))
        XCTAssertLessThan(floatLogitsError(fpM, modelM), 1e-5)
    }

    func testBlockSizeThatDoesNotDivideFailsInPlanAndAutoAdapts() throws {
        let c = SyntheticModel.config
        let model = SyntheticModel.make(seed: 0)
        let fixed = try method(["block_size": .int(128)])
        XCTAssertThrowsError(try fixed.plan(site: model.blocks[0].qkv, config: c)) { e in
            let text = String(describing: e)
            XCTAssertTrue(e is MethodError)
            XCTAssertTrue(text.contains("block_size 128 does not divide the input size 96"), text)
            XCTAssertTrue(text.contains("32, 48, 96"), text)
            XCTAssertTrue(text.contains("auto picks 32"), text)
        }
        // SmolLM2-135M: hidden 576 (not divisible by 128), FFN 1536 = 12·128.
        let smol = DecoderConfig(hiddenSize: 576, intermediateSize: 1536, layerCount: 30, headCount: 9, kvHeadCount: 3, vocabSize: 49152)
        let q = Site(name: "layers.0.qkv", kind: .qkv, block: 0, linears: [Linear(name: "q", weight: Matrix(zeros: 1, 576))])
        let down = Site(name: "layers.0.down", kind: .down, block: 0, linears: [Linear(name: "d", weight: Matrix(zeros: 1, 1536))])
        XCTAssertThrowsError(try fixed.plan(site: q, config: smol)) { e in
            XCTAssertTrue(String(describing: e).contains("64, 72, 96"), String(describing: e))
        }
        XCTAssertNoThrow(try fixed.plan(site: down, config: smol))
        let auto = try method()
        XCTAssertTrue(try auto.plan(site: q, config: smol).notes.contains { $0.contains("block_size auto → 64") })
        XCTAssertTrue(try auto.plan(site: down, config: smol).notes.contains { $0.contains("block_size auto → 128") })
        XCTAssertTrue(try auto.plan(site: model.blocks[0].down, config: c).notes.contains { $0.contains("auto → 64") })
        // apply refuses too (the pipeline does not call plan).
        XCTAssertThrowsError(try run([fixed])) { e in
            XCTAssertTrue(e is MethodError && String(describing: e).contains("block_size 128 does not divide the input size 96"), String(describing: e))
        }
    }

    func testSameSeedSameTransforms() throws {
        func blocks(_ m: DecoderModel) -> [[Float]] {
            m.allSites.flatMap { $0.transforms.compactMap { step -> [Float]? in
                if case let .blockOrthogonal(_, b) = step.transform { return b.flatMap { $0 } }
                if case let .permutation(p) = step.transform { return p.map(Float.init) }
                return nil
            } }
        }
        var small = SyntheticModel.config
        small.layerCount = 2
        let (_, a, _) = try run([method()], config: small)
        let (_, b, _) = try run([method()], config: small)
        let (_, c, _) = try run([method()], seed: 8, config: small)
        XCTAssertEqual(blocks(a), blocks(b))
        XCTAssertNotEqual(blocks(a), blocks(c))
        XCTAssertEqual(a.blocks[1].gateUp.linears[0].weight, b.blocks[1].gateUp.linears[0].weight)
    }

    func testW4A4DuQuantThenRTNBeatsRTNAlone() throws {
        // DuQuant's W4A4 scheme: asymmetric per-channel weights (clip 0.8), asymmetric per-token activations (clip 0.9).
        let scheme = QuantScheme(weights: WeightScheme(bits: 4, granularity: .channel, symmetric: false, clip: 0.8),
                                 activations: ActivationScheme(bits: 4, granularity: .token, symmetric: false, clip: 0.9))
        let (_, _, rtn) = try run([try RTN(options: MethodOptions([:]))], scheme: scheme)
        let (_, _, paper) = try run([method(), try RTN(options: MethodOptions([:]))], scheme: scheme)
        let (_, _, code) = try run([method(["variant": .string("code")]), try RTN(options: MethodOptions([:]))], scheme: scheme)
        func mean(_ r: PipelineReport) -> Double { r.sites.map(\.relativeOutputError).reduce(0, +) / Double(r.sites.count) }
        XCTAssertLessThan(mean(paper), mean(rtn))
        XCTAssertLessThan(mean(code), mean(rtn))
    }
}

