import XCTest
import QuantCore
import Recipes
import Reporting
import RTN
import DuQuant
import LlamaModel
@testable import Runs

/// Everything that can be checked without computing is checked before the first variant runs.
final class ValidationTests: XCTestCase {
    let registry = MethodRegistry([RTN.self, DuQuant.self])

    /// Records progress events (thread-safe: producers may report from worker threads).
    final class Events: @unchecked Sendable {
        private let lock = NSLock()
        private var events: [ProgressEvent] = []
        var all: [ProgressEvent] { lock.lock(); defer { lock.unlock() }; return events }
        var handler: ProgressHandler { { [self] e in lock.lock(); events.append(e); lock.unlock() } }
    }

    /// A DuQuant block size that does not divide the synthetic model's 96 in the *last* variant is
    /// reported at its recipe line before the first variant is quantized.
    func testABadOptionInTheLastVariantFailsBeforeAnythingRuns() throws {
        let r = try Recipe.parse(yaml: """
            calibration: {windows: 2, seq_len: 16}
            evaluation: {seq_len: 16, max_windows: 1}
            scheme: {weights: {bits: 4}}
            variants:
              - name: first
                pipeline: [rtn]
              - name: second
                pipeline: [rtn]
              - name: third
                pipeline: [{duquant: {block_size: 7}}, rtn]
            """, file: "late.yaml", registry: registry)
        let events = Events()
        XCTAssertThrowsError(try RecipeRunner(recipe: r, progress: events.handler).run()) { e in
            guard case WorkbenchFailure.badInput(let s) = e else { return XCTFail("\(e)") }
            XCTAssertTrue(s.hasPrefix("late.yaml:10:16: variant third: "), s)
            XCTAssertTrue(s.contains("block_size"), s)
        }
        let quantizing = events.all.filter { if case .step = $0 { return true }; return false }
        XCTAssertEqual(quantizing, [], "no variant may start before every variant is validated")
    }

    func testAMissingEvaluationFileNamesTheRecipeKeyAndLine() throws {
        let r = try Recipe.parse(yaml: """
            model: synthetic
            evaluation:
              text: no/such/file.raw
            """, file: "t.yaml", registry: registry)
        XCTAssertThrowsError(try RecipeRunner(recipe: r).validate()) { e in
            XCTAssertEqual("\(e)", "t.yaml:3:9: evaluation.text: text file not found: 'no/such/file.raw' (paths in a recipe are relative to the directory you run the workbench in)")
        }
        XCTAssertThrowsError(try Planner(recipe: r).render()) { e in
            XCTAssertTrue("\(e)".hasPrefix("t.yaml:3:9: evaluation.text: text file not found"), "\(e)")
        }
    }

    func testAnEmptyOrMissingCalibrationFileIsBadInput() throws {
        for (text, expected) in [("\"\"", "the text file path is empty"), ("/nonexistent/calib.raw", "text file not found")] {
            let r = try Recipe.parse(yaml: """
                calibration: {text: \(text), windows: 2, seq_len: 16}
                pipeline: [rtn]
                scheme: {weights: {bits: 4}}
                """, file: "c.yaml", registry: registry)
            XCTAssertThrowsError(try RecipeRunner(recipe: r).validate()) { e in
                XCTAssertTrue("\(e)".hasPrefix("c.yaml:1:21: calibration.text: "), "\(e)")
                XCTAssertTrue("\(e)".contains(expected), "\(e)")
            }
        }
    }

    func testAMissingModelNamesTheModelKey() throws {
        let r = try Recipe.parse(yaml: "seed: 1\nmodel: models/missing.gguf\n", file: "m.yaml", registry: registry)
        XCTAssertThrowsError(try RecipeRunner(recipe: r).validate()) { e in
            XCTAssertTrue("\(e)".hasPrefix("m.yaml:2:8: model: model file not found: 'models/missing.gguf'"), "\(e)")
        }
    }

    /// Validation assigns schemes to check them; the float model must come out unchanged.
    func testValidationLeavesTheModelsSchemesAlone() throws {
        let r = try Recipe.parse(yaml: "scheme: {weights: {bits: 4}, activations: {bits: 4}}\npipeline: [rtn]\n", file: "v.yaml", registry: registry)
        let runner = RecipeRunner(recipe: r)
        let loaded = try ModelLoading.load(r.model)
        let before = loaded.model.allSites.map { "\($0.activationScheme) \($0.linears.map { "\($0.scheme)" })" }
        try runner.validateVariants(on: loaded.model)
        XCTAssertEqual(loaded.model.allSites.map { "\($0.activationScheme) \($0.linears.map { "\($0.scheme)" })" }, before)
    }
}

/// The messages a new user met (issue: each with a test).
final class MessageTests: XCTestCase {
    func testAMissingFileFromTheCommandLineDoesNotTalkAboutRecipes() {
        let m = RunModel(model: SyntheticModel.make(seed: 0), tokenizeText: { _ in [] })
        XCTAssertThrowsError(try m.tokenize(file: "no/such/text.raw")) { e in
            XCTAssertEqual("\(e)", "text file not found: 'no/such/text.raw'")
        }
    }

    func testAnFPOnlyRunPrintsNoCalibration() throws {
        let r = try Recipe.parse(yaml: "evaluation: {seq_len: 16, max_windows: 1}\n", file: "fp.yaml", registry: MethodRegistry([RTN.self]))
        XCTAssertEqual(r.variants.count, 0)
        let text = try RecipeRunner(recipe: r).run().render(perSite: true)
        XCTAssertFalse(text.contains("calibration"), text)
        XCTAssertTrue(text.contains("FP"), text)
    }

    /// `workbench` with no arguments: the usage on stderr, exit 64 (run against the built binary).
    func testNoArgumentsPrintsTheUsageAndExits64() throws {
        let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..").standardized
        let candidates = [".build/debug/workbench", ".build/x86_64-unknown-linux-gnu/debug/workbench", ".build/release/workbench"]
        guard let exe = candidates.map({ repo.appendingPathComponent($0).path }).first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw XCTSkip("skipped: the workbench executable is not built (swift build)")
        }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: exe)
        p.arguments = []
        let err = Pipe()
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 64)
        XCTAssertTrue(text.contains("USAGE: workbench"), text)
        XCTAssertFalse(text.contains("Error"), text)
    }
}
