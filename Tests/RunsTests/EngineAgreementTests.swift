import XCTest
import QuantCore
import Recipes
import RTN
@testable import Runs

/// `engine: integer` (integer codes on the integer kernels) and `engine: simulated`
/// (quantize-dequantize, then f32) evaluate every variant to the same figures up to f32 order.
final class EngineAgreementTests: XCTestCase {
    let registry = MethodRegistry([RTN.self])

    func recipe(engine: String) throws -> Recipe {
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
            """, file: "engine.yaml", registry: registry)
    }

    func testIntegerAndSimulatedEnginesAgree() throws {
        let saved = ExecutionEngine.current
        defer { ExecutionEngine.current = saved }
        let integer = try RecipeRunner(recipe: try recipe(engine: "integer")).run()
        XCTAssertEqual(ExecutionEngine.current, .integer)
        XCTAssertEqual(integer.manifest?.engine, "integer")
        let simulated = try RecipeRunner(recipe: try recipe(engine: "simulated")).run()
        XCTAssertEqual(simulated.manifest?.engine, "simulated")
        XCTAssertEqual(integer.variants.count, 3)
        for (a, b) in zip(integer.variants, simulated.variants) {
            let sa = try XCTUnwrap(a.scores), sb = try XCTUnwrap(b.scores)
            // One site agrees to ~1e-6 (ExecutionEngineTests); through four blocks those differences
            // flip the rounding of a few activation codes that sit on a rounding boundary.
            XCTAssertEqual(sa.meanNLL, sb.meanNLL, accuracy: 1e-3 * abs(sb.meanNLL), a.name)
            XCTAssertEqual(sa.meanKL, sb.meanKL, accuracy: 5e-2 * sb.meanKL + 1e-6, a.name)
            // …and quantization did change the model, so agreement is not trivial.
            XCTAssertGreaterThan(sa.meanKL, 1e-6, a.name)
        }
    }

    func testAnUnknownEngineNamesTheKey() {
        XCTAssertThrowsError(try recipe(engine: "gpu")) { e in
            XCTAssertTrue("\(e)".hasPrefix("engine.yaml:1:9: engine: 'gpu' is not an engine"), "\(e)")
        }
    }
}
