import XCTest
import QuantCore
import LlamaModel
import RTN
import SmoothQuant
import TestSupport

final class SmoothQuantTests: XCTestCase {
    let runner = LlamaForward()
    let cal = SyntheticModel.tokens(seed: 1, windows: 2, length: 32)

    func smoothQuant(_ options: [String: OptionValue]) throws -> SmoothQuant {
        var o = MethodOptions(defaultsOf: SmoothQuant.options)
        for (k, v) in options { o.values[k] = v }
        return try SmoothQuant(options: o)
    }

    /// Runs the pipeline and returns the model plus each site's calibration input after smoothing.
    func run(_ methods: [any QuantMethod], model: DecoderModel) throws -> [String: Matrix] {
        var seen: [String: Matrix] = [:]
        final class Capture: QuantMethod {
            static let name = "capture"; static let summary = ""; static let options: [OptionSpec] = []
            static let role = MethodRole.observer
            var sink: (String, Matrix) -> Void = { _, _ in }
            init(options: MethodOptions) throws {}
            init(_ sink: @escaping (String, Matrix) -> Void) { self.sink = sink }
            var needs: CalibrationNeeds { .inputs }
            func plan(site: Site, config: DecoderConfig) throws -> SitePlan { SitePlan() }
            func apply(to site: Site, calibration: SiteCalibration?, context: MethodContext) throws { sink(site.name, calibration!.inputs) }
        }
        _ = try Pipeline(methods: methods + [Capture { seen[$0] = $1 }]).run(model: model, calibration: cal, runner: runner)
        return seen
    }

    func testAlphaOneMakesEverySmoothedChannelMaxOne() throws {
        let inputs = try run([try smoothQuant(["alpha": .double(1)])], model: SyntheticModel.make(seed: 0))
        XCTAssertEqual(inputs.count, 16)
        for (name, x) in inputs {
            for (j, m) in x.columnAbsMax().enumerated() where m > 1e-4 { XCTAssertEqual(m, 1, accuracy: 1e-3, "\(name) channel \(j)") }
        }
    }

    func testAlphaZeroMakesEveryWeightColumnMaxOne() throws {
        // down's smoothing rescales up_proj's rows afterwards (changing gate/up's column maxima),
        // so leave down out; o runs online under GQA and touches no other site.
        let model = SyntheticModel.make(seed: 0)
        _ = try run([try smoothQuant(["alpha": .double(0), "sites": .patterns(["layers.*.qkv", "layers.*.o", "layers.*.gate_up"])])], model: model)
        for site in model.allSites where site.kind != .down {
            for (j, m) in SmoothQuant.weightColumnMax(site).enumerated() { XCTAssertEqual(m, 1, accuracy: 1e-4, "\(site.name) column \(j)") }
        }
    }

    func testFunctionPreservingWithFoldingAndOnlineFallback() throws {
        for kv in [2, 6] {   // GQA (o online) and plain multi-head attention (o folded into v_proj)
            var c = SyntheticModel.config; c.kvHeadCount = kv
            let fp = SyntheticModel.make(seed: 0, config: c)
            let model = fp.copy()
            _ = try run([try smoothQuant(["alpha": .double(0.5)])], model: model)
            let z = runner.logits(fp, windows: [cal[0]], mode: .float)
            XCTAssertLessThan(runner.logits(model, windows: [cal[0]], mode: .float).relativeError(to: z), 1e-5, "kv heads \(kv)")
            for b in model.blocks {
                XCTAssertEqual(b.qkv.transforms[0].placement, .folded(into: "layers.\(b.index).input_layernorm"))
                XCTAssertEqual(b.gateUp.transforms[0].placement, .folded(into: "layers.\(b.index).post_attention_layernorm"))
                XCTAssertEqual(b.down.transforms[0].placement, .folded(into: "layers.\(b.index).mlp.up_proj"))
                XCTAssertEqual(b.o.transforms[0].placement, kv == 6 ? .folded(into: "layers.\(b.index).self_attn.v_proj") : .online)
            }
            let plan = try smoothQuant([:]).plan(site: model.blocks[0].o, config: c)
            XCTAssertTrue(plan.transforms[0].contains(kv == 6 ? "folded into layers.0.self_attn.v_proj" : "online"), plan.transforms[0])
        }
    }

    func testFoldingIntoAnAlreadyQuantizedUpProjKeepsItExact() throws {
        // RTN quantizes gate/up before down's smoothing scales up_proj's rows.
        let fp = SyntheticModel.make(seed: 0)
        let model = fp.copy()
        _ = try model.assignSchemes(QuantScheme(weights: WeightScheme(bits: 8)), overrides: [])
        _ = try run([try smoothQuant([:]), try RTN(options: MethodOptions([:]))], model: model)
        for b in model.blocks {
            let up = b.gateUp.linears[1]
            XCTAssertLessThan(up.effectiveWeight(quantized: true).relativeError(to: up.weight), 0.01)
        }
    }

    func testOnlyTheChosenSitesAreSmoothed() throws {
        let model = SyntheticModel.make(seed: 0)
        _ = try run([try smoothQuant(["sites": .patterns(["layers.*.qkv", "layers.*.gate_up"])])], model: model)
        XCTAssertTrue(model.blocks.allSatisfy { $0.o.transforms.isEmpty && $0.down.transforms.isEmpty && $0.qkv.transforms.count == 1 })
    }

    func testAutoAlphaIsNoWorseThanHalf() throws {
        func siteError(_ opts: [String: OptionValue]) throws -> [Double] {
            let model = SyntheticModel.make(seed: 0)
            _ = try model.assignSchemes(QuantScheme(weights: WeightScheme(bits: 4), activations: ActivationScheme(bits: 4)), overrides: [])
            return try Pipeline(methods: [try smoothQuant(opts), try RTN(options: MethodOptions([:]))], propagation: .floatModel)
                .run(model: model, calibration: cal, runner: runner).sites.map(\.relativeOutputError)
        }
        let auto = try siteError(["alpha": .auto, "alpha_step": .double(0.1)])
        let half = try siteError(["alpha": .double(0.5)])
        // Block 0 sees identical inputs in both runs; its sites must be no worse (small slack: the
        // search runs on a subsample).
        for i in 0..<4 { XCTAssertLessThanOrEqual(auto[i], half[i] * 1.02 + 1e-6, "site \(i)") }
    }
}
