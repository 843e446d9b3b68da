import XCTest
import QuantCore
import Recipes
import Evaluation
import RTN
import SmoothQuant
import GPTQ
import Hadamard
import DuQuant
@testable import Runs

/// `engine: integer` (integer codes on the integer kernels) and `engine: simulated`
/// (quantize-dequantize, then f32) agree on the weights every method produces: each site's output
/// within 1e-5 relative, and the evaluation's ΔNLL between the engines (paired, same tokens)
/// within 2 standard errors. On the tiny synthetic model here and, when it is installed, on the
/// reference model (`testEnginesAgreeOnTheReferenceModel`, a short run that `.ci/run` executes).
final class EngineAgreementTests: XCTestCase {
    static let registry = MethodRegistry([RTN.self, SmoothQuant.self, GPTQ.self, Hadamard.self, DuQuant.self])

    /// Every method, on the schemes the integer engine runs (per-token activations ≤ 8 bits) and a
    /// weight-only one.
    static let variants = """
        variants:
          - name: W8A8 RTN
            scheme: {weights: {bits: 8}, activations: {bits: 8}}
          - name: W8A8 SmoothQuant
            scheme: {weights: {bits: 8}, activations: {bits: 8}}
            pipeline: [smoothquant, rtn]
          - name: W4A8 Hadamard+GPTQ
            scheme: {weights: {bits: 4}, activations: {bits: 8}}
            pipeline: [hadamard, gptq]
          - name: W4A4 DuQuant
            scheme: {weights: {bits: 4}, activations: {bits: 4}}
            pipeline: [{duquant: {block_size: auto}}, rtn]
          - name: W4A8 g32
            scheme: {weights: {bits: 4, granularity: {group: 32}}, activations: {bits: 8}}
          - name: W4A16
            scheme: {weights: {bits: 4}}
        """

    func recipe(engine: String) throws -> Recipe {
        try Recipe.parse(yaml: """
            engine: \(engine)
            calibration: {windows: 2, seq_len: 32}
            evaluation: {seq_len: 32, max_windows: 3}
            pipeline: [rtn]
            \(Self.variants)
            """, file: "engine.yaml", registry: Self.registry)
    }

    /// Quantizes every variant of `recipe` once, then runs each site and the evaluation under both
    /// engines.
    static func assertEnginesAgree(_ recipe: Recipe, file: StaticString = #filePath, line: UInt = #line) throws {
        let saved = ExecutionEngine.current
        defer { ExecutionEngine.current = saved }
        let (loaded, windows, variants) = try RecipeRunner(recipe: recipe).quantizeAll()
        let proto = PerplexityProtocol.standard(seqLen: windows[0].count)
        var state: UInt64 = 7
        func uniform() -> Float {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Float(state >> 40) / Float(1 << 24) * 4 - 2
        }
        func nll(_ model: DecoderModel, _ engine: ExecutionEngine) -> [Double] {
            ExecutionEngine.current = engine
            return Evaluator().evaluate(float: loaded.model, variants: [model], windows: windows, protocol: proto)[1].nll
        }
        var integerSites = 0
        for (v, model) in variants {
            for site in model.allSites {
                let x = Matrix(rows: 8, cols: site.inFeatures, data: (0..<(8 * site.inFeatures)).map { _ in uniform() })
                ExecutionEngine.current = .integer
                if site.runsOnIntegerGemm { integerSites += 1 }
                let a = site.forward(x, mode: .quantized)
                ExecutionEngine.current = .simulated
                let b = site.forward(x, mode: .quantized)
                for (ya, yb) in zip(a, b) {
                    let diff = zip(ya.data, yb.data).reduce(0.0) { $0 + Double($1.0 - $1.1) * Double($1.0 - $1.1) }.squareRoot()
                    XCTAssertLessThanOrEqual(diff / yb.norm, 1e-5, "\(v.name) \(site.name)", file: file, line: line)
                }
            }
            let d = Stats.pairedDifference(nll(model, .integer), nll(model, .simulated))
            XCTAssertLessThanOrEqual(abs(d.mean), 2 * d.se + 1e-12, "\(v.name): ΔNLL \(d.mean) ± \(d.se)", file: file, line: line)
        }
        // The integer engine did run integer GEMMs, so agreement is not trivial.
        XCTAssertGreaterThan(integerSites, 0, file: file, line: line)
    }

    func testEveryMethodsWeightsGiveTheSameFiguresOnBothEngines() throws {
        try Self.assertEnginesAgree(try recipe(engine: "integer"))
    }

    /// The `engine:` key end to end: it sets the engine of the whole run (calibration passes
    /// included, so only data-free RTN variants give the same weights under both).
    func testTheEngineKeyRunsTheWholeRecipeOnThatEngine() throws {
        let saved = ExecutionEngine.current
        defer { ExecutionEngine.current = saved }
        func rtnRecipe(_ engine: String) throws -> Recipe {
            try Recipe.parse(yaml: """
                engine: \(engine)
                calibration: {windows: 2, seq_len: 32}
                evaluation: {seq_len: 32, max_windows: 3}
                pipeline: [rtn]
                variants:
                  - name: W8A8
                    scheme: {weights: {bits: 8}, activations: {bits: 8}}
                  - name: W4A8 g32
                    scheme: {weights: {bits: 4, granularity: {group: 32}}, activations: {bits: 8}}
                  - name: W4A16
                    scheme: {weights: {bits: 4}}
                """, file: "engine.yaml", registry: Self.registry)
        }
        let integer = try RecipeRunner(recipe: try rtnRecipe("integer")).run()
        XCTAssertEqual(ExecutionEngine.current, .integer)
        XCTAssertEqual(integer.manifest?.engine, "integer")
        let simulated = try RecipeRunner(recipe: try rtnRecipe("simulated")).run()
        XCTAssertEqual(simulated.manifest?.engine, "simulated")
        XCTAssertEqual(integer.variants.count, 3)
        for (a, b) in zip(integer.variants, simulated.variants) {
            let sa = try XCTUnwrap(a.scores), sb = try XCTUnwrap(b.scores)
            XCTAssertEqual(sa.meanNLL, sb.meanNLL, accuracy: 1e-3 * abs(sb.meanNLL), a.name)
            // …and quantization did change the model, so agreement is not trivial.
            XCTAssertGreaterThan(sa.meanKL, 1e-6, a.name)
        }
    }

    /// The same check on SmolLM2-135M (RTN, Hadamard+GPTQ, DuQuant): 2 calibration and 2
    /// evaluation windows of 128 tokens.
    func testEnginesAgreeOnTheReferenceModel() throws {
        guard FileManager.default.fileExists(atPath: ReferenceModelTests.wikiTest) else { throw XCTSkip("no ../shared/data/wikitext-2-raw") }
        do { _ = try ModelLoading.loadFile(nil) } catch { throw XCTSkip("reference model not installed: \(error)") }
        let valid = ReferenceModelTests.wikiTest.replacingOccurrences(of: "wiki.test.raw", with: "wiki.valid.raw")
        let recipe = try Recipe.parse(yaml: """
            model: reference
            calibration: {text: \(valid), windows: 2, seq_len: 128}
            evaluation: {text: \(ReferenceModelTests.wikiTest), protocol: standard, seq_len: 128, max_windows: 2}
            pipeline: [rtn]
            variants:
              - name: W8A8 RTN
                scheme: {weights: {bits: 8}, activations: {bits: 8}}
              - name: W4A8 Hadamard+GPTQ
                scheme: {weights: {bits: 4}, activations: {bits: 8}}
                pipeline: [hadamard, gptq]
              - name: W4A4 DuQuant
                scheme: {weights: {bits: 4}, activations: {bits: 4}}
                pipeline: [{duquant: {block_size: auto}}, rtn]
            """, file: "engine-reference.yaml", registry: Self.registry)
        try Self.assertEnginesAgree(recipe)
    }

    func testAnUnknownEngineNamesTheKey() {
        XCTAssertThrowsError(try recipe(engine: "gpu")) { e in
            XCTAssertTrue("\(e)".hasPrefix("engine.yaml:1:9: engine: 'gpu' is not an engine"), "\(e)")
        }
    }
}
