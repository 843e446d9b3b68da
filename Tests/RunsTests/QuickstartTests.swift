import XCTest
import QuantCore
import Recipes
import RTN
import SmoothQuant
import GPTQ
import Hadamard
import DuQuant
@testable import Runs

final class QuickstartTests: XCTestCase {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..").standardized
    let registry = MethodRegistry([RTN.self])

    func recipe(_ name: String) throws -> Recipe {
        try Recipe.load(path: Self.repo.appendingPathComponent("recipes/\(name)").path, registry: registry)
    }

    /// The golden quickstart: the numbers below come from `swift run workbench recipes/quickstart.yaml`.
    /// They may move in the last digits with the f32 summation order of another CPU's kernels.
    func testGoldenQuickstartRun() throws {
        let report = try RecipeRunner(recipe: try recipe("quickstart.yaml")).run()
        let golden: [(String, Double, Double)] = [
            ("RTN W8A8", 77.915, 0.02910), ("RTN W4A8", 160.947, 0.7574), ("RTN W4A16", 158.684, 0.7488),
            ("RTN W4A4", 320.229, 1.4993), ("RTN W4A4 down@8", 289.841, 1.3885),
        ]
        XCTAssertEqual(report.float?.perplexity ?? 0, 76.1989, accuracy: 76.1989 * 1e-3)
        XCTAssertEqual(report.variants.map(\.name), golden.map(\.0))
        for (v, g) in zip(report.variants, golden) {
            XCTAssertEqual(v.scores?.perplexity ?? 0, g.1, accuracy: g.1 * 2e-3, v.name)
            XCTAssertEqual(v.scores?.meanKL ?? 0, g.2, accuracy: g.2 * 5e-3, v.name)
            XCTAssertEqual(v.sites.count, 16)
            XCTAssertLessThan(v.invarianceError, 1e-5)
        }
        // The findings the quickstart exists to show.
        let ppl = Dictionary(uniqueKeysWithValues: report.variants.map { ($0.name, $0.scores!.perplexity) })
        XCTAssertLessThan(ppl["RTN W8A8"]!, ppl["RTN W4A8"]!)
        XCTAssertLessThan(ppl["RTN W4A8"]!, ppl["RTN W4A4"]!)
        XCTAssertLessThan(ppl["RTN W4A4 down@8"]!, ppl["RTN W4A4"]!)
        // Every pair compared on the same tokens; a − b equals the difference of their ΔNLL vs FP.
        XCTAssertEqual(report.comparisons.count, 10)
        for c in report.comparisons {
            let a = report.variants.first { $0.name == c.a }!.scores!, b = report.variants.first { $0.name == c.b }!.scores!
            XCTAssertEqual(c.deltaNLL, a.deltaNLL - b.deltaNLL, accuracy: 1e-9)
            XCTAssertGreaterThan(c.standardError, 0)
        }
        let verdicts = Dictionary(uniqueKeysWithValues: report.comparisons.map { ("\($0.a) | \($0.b)", $0.verdict) })
        XCTAssertEqual(verdicts["RTN W8A8 | RTN W4A4"], "RTN W8A8 better")
        XCTAssertEqual(verdicts["RTN W4A4 | RTN W4A4 down@8"], "RTN W4A4 down@8 better")
        XCTAssertEqual(verdicts["RTN W4A8 | RTN W4A16"], "tie")
        let text = report.render(perSite: true)
        XCTAssertTrue(text.contains("Paired comparisons"))
        XCTAssertTrue(text.contains("layers.3.down"))
        XCTAssertTrue(text.contains("FP = the model's stored weights as f32"))
    }

    func testSameRecipeSameNumbers() throws {
        var r = try recipe("quickstart.yaml")
        r.variants = [r.variants[3]]
        r.evaluation.maxWindows = 2
        let a = try RecipeRunner(recipe: r).run()
        let b = try RecipeRunner(recipe: r).run()
        XCTAssertEqual(a.nll, b.nll)
        XCTAssertEqual(a.variants[0].sites.map(\.relativeOutputError), b.variants[0].sites.map(\.relativeOutputError))
        // results.json: identical apart from the timings.
        func figures(_ r: RunReport) throws -> String {
            let text = String(decoding: try RunOutput.resultsJSON(r), as: UTF8.self)
            let timing = try NSRegularExpression(pattern: "\"(tokensPerSecond|quantizeSeconds|seconds|wallSeconds|peakResidentBytes)\" : [^,\\n]+")
            return timing.stringByReplacingMatches(in: text, range: NSRange(text.startIndex..., in: text), withTemplate: "")
        }
        let ja = try figures(a), jb = try figures(b)
        XCTAssertTrue(ja.contains("\"relativeOutputError\""))
        XCTAssertEqual(ja, jb)
    }

    func testTokenNLLTableListsEveryScoredTokenInOrder() throws {
        var r = try recipe("quickstart.yaml")
        r.variants = [r.variants[3]]
        r.evaluation.maxWindows = 2
        let report = try RecipeRunner(recipe: r).run()
        let lines = report.tokenNLLTable().split(separator: "\n").map { $0.split(separator: "\t").map(String.init) }
        XCTAssertEqual(lines[0], ["window", "position", "target", "FP", "RTN W4A4"])
        XCTAssertEqual(lines.count - 1, report.nll[0].count)
        XCTAssertEqual(lines.count - 1, report.scoredTokens.count)
        XCTAssertEqual(Set(lines.dropFirst().map { $0[0] }), ["0", "1"])
        let fp = lines.dropFirst().map { Double($0[3])! }, q = lines.dropFirst().map { Double($0[4])! }
        XCTAssertEqual(exp(fp.reduce(0, +) / Double(fp.count)), report.float!.perplexity, accuracy: report.float!.perplexity * 1e-5)
        XCTAssertEqual(exp(q.reduce(0, +) / Double(q.count)), report.variants[0].scores!.perplexity, accuracy: report.variants[0].scores!.perplexity * 1e-5)
    }

    /// Every committed recipe parses and validates against the built-in methods (no model needed).
    func testEveryCommittedRecipeLoads() throws {
        let all = MethodRegistry([RTN.self, SmoothQuant.self, GPTQ.self, Hadamard.self, DuQuant.self])
        let dir = Self.repo.appendingPathComponent("recipes")
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".yaml") }.sorted()
            .filter { !TrainingRecipe.isTrainingRecipe(path: dir.appendingPathComponent($0).path) }   // see TrainCommandTests
        XCTAssertGreaterThanOrEqual(files.count, 7, "\(files)")
        for f in files {
            XCTAssertNoThrow(try Recipe.load(path: dir.appendingPathComponent(f).path, registry: all), f)
        }
    }

    func testCheckPrintsThePlanWithoutRunning() throws {
        let plan = try Planner(recipe: try recipe("quickstart.yaml")).render()
        XCTAssertTrue(plan.contains("variant RTN W4A4 down@8"))
        XCTAssertTrue(plan.contains("layers.0.down: in 320, activations int8 per-token asym"), plan)
        XCTAssertTrue(plan.contains("layers.0.mlp.down_proj 96×320: int8 per-channel sym"), plan)
        XCTAssertTrue(plan.contains("peak memory"))
    }

    func testAGroupSizeThatDoesNotDivideFailsInCheck() throws {
        let r = try Recipe.parse(yaml: "scheme: {weights: {bits: 4, granularity: {group: 64}}}\npipeline: [rtn]\n", file: "g.yaml", registry: registry)
        XCTAssertThrowsError(try Planner(recipe: r).render()) { e in
            XCTAssertTrue("\(e)".contains("group size 64 does not divide the input dimension 96"), "\(e)")
        }
    }
}

/// A "method" whose transform is not function-preserving: the run must refuse it.
final class BrokenTransform: QuantMethod {
    static let name = "broken"; static let summary = "test"; static let options: [OptionSpec] = []
    static let role = MethodRole.transform
    init(options: MethodOptions) throws {}
    var needs: CalibrationNeeds { [] }
    func plan(site: Site, config: DecoderConfig) throws -> SitePlan { SitePlan() }
    func apply(to site: Site, calibration: SiteCalibration?, context: MethodContext) throws {
        guard site.kind == .down else { return }
        // Scales the weights without the matching activation transform.
        for l in site.linears { for i in l.weight.data.indices { l.weight.data[i] *= 1.01 } }
    }
}

final class FunctionPreservationTests: XCTestCase {
    func testANonInvariantTransformFailsTheRun() throws {
        let registry = MethodRegistry([RTN.self, BrokenTransform.self])
        let r = try Recipe.parse(yaml: """
            calibration: {windows: 2, seq_len: 16}
            evaluation: {seq_len: 16, max_windows: 1}
            variants:
              - name: broken
                pipeline: [broken]
            """, file: "b.yaml", registry: registry)
        XCTAssertThrowsError(try RecipeRunner(recipe: r).run()) { e in
            XCTAssertTrue("\(e)".contains("not function-preserving"), "\(e)")
        }
    }
}
