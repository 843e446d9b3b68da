import XCTest
import QuantCore
import TrainingQuantization
@testable import Recipes

/// A training quantizer whose block size must divide every layer's input size.
final class BlockToyQuantizer: TrainingQuantizer {
    static let name = "blocky"
    static let summary = "test quantizer"
    static let options: [OptionSpec] = [OptionSpec("block", .int(1...1024), default: .int(32), "block size"),
                                        OptionSpec("mode", .choice(["a", "b"]), default: .string("a"), "mode")]
    let block: Int
    init(options: MethodOptions) throws { block = try options.int("block") }
    var planDescription: String { "toy" }
    func makeLinear(id: LinearID, inFeatures: Int, outFeatures: Int, seed: UInt64) throws -> any TrainingLinear {
        guard inFeatures % block == 0 else { throw TrainingQuantizerError("block size \(block) does not divide the input size \(inFeatures)") }
        return FloatLinear(id: id)
    }
}

struct TrainingQuantizerError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

final class TrainingRecipeTests: XCTestCase {
    let registry = TrainingQuantizerRegistry([BlockToyQuantizer.self])
    static let text: String = {
        let p = NSTemporaryDirectory() + "qwb-recipe-text.txt"
        try? String(repeating: "some text ", count: 100).write(toFile: p, atomically: true, encoding: .utf8)
        return p
    }()

    func yaml(_ extra: String, model: String = "{layers: 2, hidden: 64, heads: 4, kv_heads: 2, ffn: 96, context: 64}") -> String {
        """
        model: \(model)
        train_text: \(Self.text)
        validation_text: \(Self.text)
        steps: 100
        batch_size: 4
        seq_len: 32
        lr: 1e-3
        \(extra)
        """
    }

    func parse(_ y: String) throws -> TrainingRecipe { try TrainingRecipe.parse(yaml: y, file: "t.yaml", registry: registry) }

    func assertError(_ y: String, _ parts: [String], line: UInt = #line) {
        XCTAssertThrowsError(try parse(y), line: line) { e in
            for p in parts { XCTAssertTrue("\(e)".contains(p), "«\(e)» lacks «\(p)»", line: line) }
        }
    }

    func testAFullTrainingRecipeDecodes() throws {
        let r = try parse(yaml("""
        warmup: 10
        min_lr: 1e-4
        adamw: {beta1: 0.8, beta2: 0.99, eps: 1e-6, weight_decay: 0.05}
        grad_clip: 0.5
        seed: 3
        validate_every: 25
        validation_windows: 8
        validation_placement: start
        checkpoint_every: 50
        output: runs/x
        quantizer: {blocky: {block: 16}}
        variants:
          - name: f32
            quantizer: f32
          - name: toy
          - name: toy-s1
            seed: 1
            quantizer: {blocky: {mode: b}}
        """))
        XCTAssertEqual(r.model, .scratch(.init(layers: 2, hidden: 64, heads: 4, kvHeads: 2, ffn: 96, context: 64, tied: false)))
        XCTAssertEqual(r.steps, 100); XCTAssertEqual(r.warmup, 10); XCTAssertEqual(r.minLR, 1e-4)
        XCTAssertEqual(r.beta1, 0.8); XCTAssertEqual(r.weightDecay, 0.05); XCTAssertEqual(r.gradClip, 0.5)
        XCTAssertEqual(r.checkpointEvery, 50); XCTAssertEqual(r.validateEvery, 25); XCTAssertTrue(r.validationFromStart)
        XCTAssertEqual(r.runs.map(\.name), ["f32", "toy", "toy-s1"])
        XCTAssertEqual(r.runs.map(\.seed), [3, 3, 1])
        XCTAssertEqual(try r.runs[1].options.int("block"), 16)
        XCTAssertEqual(try r.runs[2].options.int("block"), 32, "a run's own quantizer starts from the defaults")
        XCTAssertEqual(r.runs[2].quantizerSummary, "blocky(mode=b)")
        XCTAssertEqual(r.runs[0].quantizer.name, "f32")
    }

    func testDefaultsAndFineTuneModel() throws {
        let r = try parse(yaml("", model: "reference"))
        XCTAssertEqual(r.model, .file(nil))
        XCTAssertEqual(r.runs.map(\.name), ["f32"], "no quantizer: one f32 run")
        XCTAssertEqual(r.minLR, 1e-4, accuracy: 1e-15); XCTAssertEqual(r.validateEvery, 100)
        XCTAssertTrue(TrainingRecipe.markerKeys.contains("train_text"))
    }

    func testBadRecipesNameTheLineAndColumn() {
        assertError(yaml("batchsize: 3"), ["t.yaml:8:1", "unknown key 'batchsize'", "did you mean 'batch_size'"])
        assertError(yaml("quantizer: {blocky: {block: 24}}"), ["t.yaml:8:21", "block size 24 does not divide the input size 64"])
        assertError(yaml("quantizer: blockie"), ["t.yaml:8:12", "unknown training quantizer 'blockie'", "did you mean 'blocky'"])
        assertError(yaml("quantizer: {blocky: {block: 0}}"), ["t.yaml:8:29", "out of range"])
        assertError(yaml("quantizer: {blocky: {mode: c}}"), ["t.yaml:8:28", "'c' is not one of a, b"])
        assertError(yaml("", model: "{layers: 2, hidden: 64, heads: 4, kv_heads: 3, ffn: 96, context: 64}"), ["t.yaml:1:", "not a multiple of 3 KV heads"])
        assertError(yaml("", model: "{layers: 2, hidden: 64, heads: 4, kv_heads: 2, ffn: 96, context: 16}"), ["t.yaml:6:10", "longer than the model's context 16"])
        assertError(yaml("", model: "{layers: 2, hidden: 64}"), ["t.yaml:1:8", "needs `heads`"])
        assertError(yaml("", model: "/no/such/model.gguf"), ["t.yaml:1:8", "not found"])
        assertError(yaml("validation_placement: begin"), ["t.yaml:8:23", "not spread or start"])
        assertError(yaml("warmup: 100"), ["t.yaml:8:9", "out of range 0…99"])
        assertError(yaml("variants:\n  - name: a\n  - name: a"), ["t.yaml:10:11", "used twice"])
        assertError(yaml("variants:\n  - name: a/b"), ["t.yaml:9:11", "output folder"])
        let missing = yaml("").replacingOccurrences(of: "validation_text: \(Self.text)", with: "validation_text: nowhere.txt")
        assertError(missing, ["t.yaml:3:18", "file 'nowhere.txt' not found"])
        let noSteps = yaml("").replacingOccurrences(of: "steps: 100\n", with: "")
        assertError(noSteps, ["t.yaml:1:1", "needs `steps`"])
    }
}
