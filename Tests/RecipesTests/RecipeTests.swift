import XCTest
import QuantCore
@testable import Recipes

/// A method with one option of each kind, to test option validation.
final class ToyMethod: QuantMethod {
    static let name = "toy"
    static let summary = "test method"
    static let role = MethodRole.transform
    static let options: [OptionSpec] = [
        OptionSpec("alpha", .doubleOrAuto(0...1), default: .double(0.5), "migration strength"),
        OptionSpec("steps", .int(1...256), default: .int(256), "steps"),
        OptionSpec("variant", .choice(["paper", "code"]), default: .string("paper"), "which"),
        OptionSpec("sites", .patterns, default: .patterns(["*"]), "where"),
        OptionSpec("site_alpha", .patternMap(0...1), default: .patternMap([]), "per site"),
        OptionSpec("enabled", .bool, default: .bool(true), "on"),
    ]
    let options: MethodOptions
    init(options: MethodOptions) throws { self.options = options }
    var needs: CalibrationNeeds { [] }
    var quantizesWeights: Bool { true }
    func plan(site: Site, config: DecoderConfig) throws -> SitePlan { SitePlan() }
    func apply(to site: Site, calibration: SiteCalibration?, context: MethodContext) throws {}
}

final class RecipeTests: XCTestCase {
    let registry = MethodRegistry([ToyMethod.self])

    func parse(_ yaml: String) throws -> Recipe { try Recipe.parse(yaml: yaml, file: "r.yaml", registry: registry) }

    func assertError(_ yaml: String, contains parts: [String], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try parse(yaml), file: file, line: line) { e in
            let text = "\(e)"
            for p in parts { XCTAssertTrue(text.contains(p), "«\(text)» lacks «\(p)»", file: file, line: line) }
        }
    }

    func testAFullRecipeDecodes() throws {
        let r = try parse("""
        model: synthetic
        seed: 7
        calibration: {text: synthetic, windows: 4, seq_len: 64}
        evaluation: {text: synthetic, protocol: llama.cpp, seq_len: 128, max_windows: 3}
        scheme:
          weights: {bits: 4, granularity: {group: 32}, symmetric: false, clip: 0.8}
          activations: {bits: 8, granularity: tensor, symmetric: true, clip: 0.9}
        attention: {bits: 4, hadamard: true}
        propagation: float_activations
        pipeline:
          - toy: {alpha: auto, steps: 12, variant: code, sites: ["layers.*.down"], site_alpha: {"layers.0.*": 0.25}}
        overrides:
          - pattern: "layers.*.mlp.down_proj"
            weights: {bits: 8}
        variants:
          - name: A
          - name: B
            scheme: {weights: {bits: 3}}
            pipeline: [toy]
        """)
        XCTAssertEqual(r.model, .synthetic(seed: 7))
        XCTAssertEqual(r.calibration.windows, 4); XCTAssertEqual(r.calibration.seed, 7)
        XCTAssertEqual(r.evaluation.protocolName, .llamaCpp); XCTAssertEqual(r.evaluation.maxWindows, 3)
        XCTAssertEqual(r.variants.map(\.name), ["A", "B"])
        let a = r.variants[0]
        XCTAssertEqual(a.scheme.weights, WeightScheme(bits: 4, granularity: .group(32), symmetric: false, clip: 0.8))
        XCTAssertEqual(a.scheme.activations, ActivationScheme(bits: 8, granularity: .tensor, symmetric: true, clip: 0.9))
        XCTAssertEqual(a.attention?.bits, 4); XCTAssertEqual(a.attention?.hadamardOnHeadDim, true)
        XCTAssertEqual(a.propagation, .floatActivations)
        XCTAssertEqual(a.overrides.first?.weights?.bits, 8)
        let o = a.pipeline[0].options
        XCTAssertTrue(o.isAuto("alpha")); XCTAssertEqual(try o.int("steps"), 12); XCTAssertEqual(try o.string("variant"), "code")
        XCTAssertEqual(try o.patterns("sites"), ["layers.*.down"]); XCTAssertEqual(try o.patternMap("site_alpha").first?.value, 0.25)
        XCTAssertTrue(try o.bool("enabled"), "defaults fill undeclared keys")
        // Variant B merges its scheme key by key over the default.
        XCTAssertEqual(r.variants[1].scheme.weights.bits, 3)
        XCTAssertEqual(r.variants[1].scheme.weights.granularity, .group(32))
        XCTAssertEqual(try r.variants[1].pipeline[0].options.int("steps"), 256)
    }

    func testTheQuickstartRecipeDecodes() throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../recipes/quickstart.yaml").path
        let r = try Recipe.load(path: path, registry: MethodRegistry([ToyQuantizerNamedRTN.self]))
        XCTAssertEqual(r.variants.count, 5)
        XCTAssertEqual(r.variants.map(\.scheme.label), ["W8A8", "W4A8", "W4A16", "W4A4", "W4A4"])
    }

    func testUnknownKeyWithSuggestionAndLocation() {
        assertError("scheme:\n  weights:\n    bitz: 4\n", contains: ["r.yaml:3:5", "scheme.weights.bitz", "unknown key 'bitz'", "did you mean 'bits'"])
        assertError("calibraton: {windows: 3}\n", contains: ["r.yaml:1:1", "did you mean 'calibration'"])
        assertError("pipeline:\n  - toy: {alpah: 0.3}\n", contains: ["r.yaml:2:11", "pipeline[0].toy.alpah", "did you mean 'alpha'"])
        assertError("pipeline: [tyo]\n", contains: ["unknown method 'tyo'", "did you mean 'toy'"])
    }

    func testWrongTypes() {
        assertError("scheme: {weights: {bits: four}}\n", contains: ["r.yaml:1:26", "expected an integer", "'four'"])
        assertError("scheme: {weights: {bits: \"4\"}}\n", contains: ["expected an integer", "the string \"4\""])
        assertError("scheme: {weights: {symmetric: yes}}\n", contains: ["expected true or false"])
        assertError("scheme: [1, 2]\n", contains: ["expected a mapping"])
        assertError("pipeline: {toy: 1}\n", contains: ["expected a list of method steps"])
        assertError("pipeline:\n  - toy: {steps: 2.5}\n", contains: ["expected an integer"])
    }

    func testOutOfRangeValues() {
        assertError("scheme: {weights: {bits: 9}}\n", contains: ["bits must be 2…8, or 16"])
        assertError("scheme: {activations: {bits: 1}}\n", contains: ["out of range"])
        assertError("scheme: {weights: {clip: 0}}\n", contains: ["(0, 1]"])
        assertError("scheme: {weights: {clip: 1.5}}\n", contains: ["(0, 1]"])
        assertError("pipeline:\n  - toy: {alpha: 1.5}\n", contains: ["1.5 is out of range 0.0…1.0"])
        assertError("pipeline:\n  - toy: {variant: papr}\n", contains: ["not one of paper, code", "did you mean 'paper'"])
        assertError("calibration: {windows: 0}\n", contains: ["out of range"])
    }

    func testVariantRules() {
        assertError("variants:\n  - name: A\n  - name: A\n", contains: ["used twice"])
        assertError("variants:\n  - name: FP\n", contains: ["float baseline"])
        assertError("variants:\n  - scheme: {weights: {bits: 4}}\n", contains: ["needs a name"])
        // Quantized weights need a weight quantizer in the pipeline.
        XCTAssertThrowsError(try Recipe.parse(yaml: "scheme: {weights: {bits: 4}}\n", file: "r.yaml", registry: MethodRegistry([ToyNoWeights.self]))) {
            XCTAssertTrue("\($0)".contains("no pipeline step quantizes weights"), "\($0)")
        }
    }

    func testSuggestionsUseEditDistance() {
        XCTAssertEqual(editDistance("alpah", "alpha"), 2)
        XCTAssertEqual(suggestion("granulrity", ["bits", "granularity"]), "; did you mean 'granularity'?")
        XCTAssertEqual(suggestion("zzzzzz", ["bits", "granularity"]), "")
    }
}

final class ToyQuantizerNamedRTN: QuantMethod {
    static let name = "rtn"; static let summary = ""; static let options: [OptionSpec] = []
    static let role = MethodRole.weightQuantizer
    init(options: MethodOptions) throws {}
    var needs: CalibrationNeeds { [] }
    var quantizesWeights: Bool { true }
    func plan(site: Site, config: DecoderConfig) throws -> SitePlan { SitePlan() }
    func apply(to site: Site, calibration: SiteCalibration?, context: MethodContext) throws {}
}

final class ToyNoWeights: QuantMethod {
    static let name = "toy"; static let summary = ""; static let options: [OptionSpec] = []
    static let role = MethodRole.transform
    init(options: MethodOptions) throws {}
    var needs: CalibrationNeeds { [] }
    func plan(site: Site, config: DecoderConfig) throws -> SitePlan { SitePlan() }
    func apply(to site: Site, calibration: SiteCalibration?, context: MethodContext) throws {}
}

final class PickyMethod: QuantMethod {
    static let name = "picky"; static let summary = ""
    static let role = MethodRole.transform
    static let options: [OptionSpec] = [OptionSpec("block_size", .string, default: .string("full"), "full or a power of two")]
    init(options: MethodOptions) throws {
        let v = try options.string("block_size")
        guard v == "full" || Int(v).map({ $0 > 0 && $0 & ($0 - 1) == 0 }) == true else {
            throw MethodError(method: "picky", "block_size must be `full` or a power of two, got '\(v)'")
        }
    }
    var needs: CalibrationNeeds { [] }
    func plan(site: Site, config: DecoderConfig) throws -> SitePlan { SitePlan() }
    func apply(to site: Site, calibration: SiteCalibration?, context: MethodContext) throws {}
}

final class MethodValidationTests: XCTestCase {
    func testAMethodsOwnValidationBecomesARecipeErrorWithItsLocation() {
        XCTAssertThrowsError(try Recipe.parse(yaml: "pipeline:\n  - picky: {block_size: 100}\n", file: "p.yaml",
                                              registry: MethodRegistry([PickyMethod.self]))) { e in
            XCTAssertTrue(e is RecipeError, "\(type(of: e))")
            XCTAssertTrue("\(e)".contains("p.yaml:2:12"), "\(e)")
            XCTAssertTrue("\(e)".contains("power of two"), "\(e)")
        }
    }

    func parse(_ yaml: String) throws -> Recipe {
        try Recipe.parse(yaml: yaml, file: "p.yaml",
                         registry: MethodRegistry([ToyQuantizerNamedRTN.self, ToyNoWeights.self, SecondQuantizer.self, Watcher.self]))
    }

    /// `pipeline: [rtn, toy]` (a transform after the weights were quantized) is rejected at the step.
    func testImpossibleStepOrdersAreRejectedWithTheStepsLocation() throws {
        XCTAssertThrowsError(try parse("scheme: {weights: {bits: 4}}\npipeline: [rtn, toy]\n")) { e in
            XCTAssertTrue(e is RecipeError, "\(type(of: e))")
            XCTAssertTrue("\(e)".contains("p.yaml:2:17"), "\(e)")
            XCTAssertTrue("\(e)".contains("pipeline[1]") && "\(e)".contains("Move 'toy' before 'rtn'"), "\(e)")
        }
        XCTAssertThrowsError(try parse("scheme: {weights: {bits: 4}}\npipeline:\n  - rtn\n  - rtn2\n")) { e in
            XCTAssertTrue("\(e)".contains("p.yaml:4:5") && "\(e)".contains("second weight quantizer"), "\(e)")
        }
        // inside a variant, the variant is named
        let yaml = "scheme: {weights: {bits: 4}}\nvariants:\n  - name: ok\n    pipeline: [toy, rtn]\n  - name: bad\n    pipeline: [rtn, toy]\n"
        XCTAssertThrowsError(try parse(yaml)) { e in
            XCTAssertTrue("\(e)".contains("p.yaml:6:21") && "\(e)".contains("variant bad"), "\(e)")
        }
        // possible orders pass; an observer may stand anywhere
        XCTAssertNoThrow(try parse("scheme: {weights: {bits: 4}}\npipeline: [toy, toy, rtn]\n"))
        XCTAssertNoThrow(try parse("scheme: {weights: {bits: 4}}\npipeline: [watch, toy, rtn, watch]\n"))
    }

    func testOptionAccessorsThrowInsteadOfTrapping() throws {
        let o = MethodOptions(defaultsOf: ToyMethod.options)
        XCTAssertThrowsError(try o.int("alpha")) { XCTAssertTrue("\($0)".contains("alpha") && "\($0)".contains("0.5"), "\($0)") }
        XCTAssertThrowsError(try o.bool("no_such_key")) { XCTAssertTrue("\($0)".contains("never declared"), "\($0)") }
        XCTAssertThrowsError(try o.patterns("steps"))
        XCTAssertEqual(try o.double("steps"), 256, "an int reads as a number")
        enum Variant: String { case paper, code }
        XCTAssertEqual(try o.choice("variant", as: Variant.self), .paper)
        var bad = o
        bad.values["variant"] = .string("other")
        XCTAssertThrowsError(try bad.choice("variant", as: Variant.self)) { XCTAssertTrue("\($0)".contains("'other'"), "\($0)") }
    }
}

final class SecondQuantizer: QuantMethod {
    static let name = "rtn2"; static let summary = ""; static let options: [OptionSpec] = []
    static let role = MethodRole.weightQuantizer
    init(options: MethodOptions) throws {}
    var needs: CalibrationNeeds { [] }
    func plan(site: Site, config: DecoderConfig) throws -> SitePlan { SitePlan() }
    func apply(to site: Site, calibration: SiteCalibration?, context: MethodContext) throws {}
}

final class Watcher: QuantMethod {
    static let name = "watch"; static let summary = ""; static let options: [OptionSpec] = []
    static let role = MethodRole.observer
    init(options: MethodOptions) throws {}
    var needs: CalibrationNeeds { [] }
    func plan(site: Site, config: DecoderConfig) throws -> SitePlan { SitePlan() }
    func apply(to site: Site, calibration: SiteCalibration?, context: MethodContext) throws {}
}
