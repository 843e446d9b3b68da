import XCTest
import ArgumentParser
import Recipes
import Training
import TrainingQuantization
import QuantCore
@testable import WorkbenchCLI

final class TrainCommandTests: XCTestCase {
    var dir = ""
    override func setUp() {
        dir = NSTemporaryDirectory() + "qwb-train-cli-\(UUID().uuidString)"
        try! FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let words = ["alpha ", "beta ", "gamma ", "delta. "]
        try! (0..<3000).map { words[$0 * 7 % 4] }.joined().write(toFile: dir + "/text.txt", atomically: true, encoding: .utf8)
    }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func write(_ yaml: String) -> String {
        let p = dir + "/r.yaml"
        try! yaml.write(toFile: p, atomically: true, encoding: .utf8)
        return p
    }

    func recipe(model: String = "{layers: 1, hidden: 16, heads: 2, kv_heads: 1, ffn: 32, context: 16}", extra: String = "") -> String {
        write("""
        model: \(model)
        train_text: \(dir)/text.txt
        validation_text: \(dir)/text.txt
        steps: 6
        batch_size: 2
        seq_len: 16
        lr: 1e-3
        validate_every: 3
        checkpoint_every: 3
        output: \(dir)/out
        \(extra)
        """)
    }

    func exitCode(_ args: [String]) -> Int32? {
        do {
            var cmd = try Workbench.parseAsRoot(args)
            try cmd.run()
            return 0
        } catch let c as ExitCode { return c.rawValue } catch { return -1 }
    }

    func testTrainWritesCurvesAndResumesAFinishedRun() throws {
        let p = recipe()
        XCTAssertEqual(exitCode(["train", p]), 0)
        let csv = try String(contentsOfFile: dir + "/out/f32/curve.csv", encoding: .utf8)
        XCTAssertEqual(csv.split(separator: "\n").count, 8)
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/out/loss-curves.svg"))
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/out/summary.csv"))
        // Resuming a finished run does no step and leaves the same curve.
        XCTAssertEqual(exitCode(["train", p, "--resume"]), 0)
        XCTAssertEqual(try String(contentsOfFile: dir + "/out/f32/curve.csv", encoding: .utf8), csv)
        XCTAssertEqual(exitCode(["check", p]), 0)
        XCTAssertEqual(exitCode(["train", p, "--run", "nope"]), 2)
    }

    func testBadTrainingRecipesExitWith2() throws {
        XCTAssertEqual(exitCode(["train", recipe(extra: "quantizer: hq")]), 2, "unknown quantizer")
        XCTAssertEqual(exitCode(["train", recipe(extra: "stepz: 3")]), 2, "unknown key")
        XCTAssertEqual(exitCode(["check", recipe(extra: "stepz: 3")]), 2)
        // A model file that cannot be fine-tuned: not a model at all.
        try Data("not a gguf".utf8).write(to: URL(fileURLWithPath: dir + "/bad.gguf"))
        XCTAssertEqual(exitCode(["train", recipe(model: "\(dir)/bad.gguf")]), 2)
        XCTAssertEqual(exitCode(["check", recipe(model: "\(dir)/bad.gguf")]), 2)
        // A corrupt checkpoint is bad input, not a crash.
        XCTAssertEqual(exitCode(["train", recipe()]), 0)
        try Data("garbage".utf8).write(to: URL(fileURLWithPath: dir + "/out/f32/checkpoint.qwbt"))
        XCTAssertEqual(exitCode(["train", recipe(), "--resume"]), 2)
    }
}

/// Stand-ins with the option specs of the training-quantizer plugins (`hq`, `rtn`), so the
/// committed training recipes are validated here without depending on the plugin modules.
/// TODO when the plugins are merged: use `HadamardQuantizer.self, TrainingRTN.self` instead.
final class StandInHQ: TrainingQuantizer {
    static let name = "hq"
    static let summary = "stand-in"
    static let options: [OptionSpec] = [
        OptionSpec("block_size", .string, default: .string("dynamic"), ""),
        OptionSpec("backward", .choice(["bs_lss", "f32"]), default: .string("bs_lss"), ""),
        OptionSpec("lss", .choice(["sample", "skip_zero"]), default: .string("sample"), ""),
    ]
    init(options: MethodOptions) throws {}
    var planDescription: String { "stand-in" }
    func makeLinear(id: LinearID, inFeatures: Int, outFeatures: Int, seed: UInt64) throws -> any TrainingLinear { FloatLinear(id: id) }
}

final class StandInRTN: TrainingQuantizer {
    static let name = "rtn"
    static let summary = "stand-in"
    static let options: [OptionSpec] = [OptionSpec("bits", .int(4...8), default: .int(8), "")]
    init(options: MethodOptions) throws {}
    var planDescription: String { "stand-in" }
    func makeLinear(id: LinearID, inFeatures: Int, outFeatures: Int, seed: UInt64) throws -> any TrainingLinear { FloatLinear(id: id) }
}

extension TrainCommandTests {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..").standardized

    func testCommittedTrainingRecipesLoad() throws {
        let dir = Self.repo.appendingPathComponent("recipes")
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasPrefix("train-") && $0.hasSuffix(".yaml") }.sorted()
        XCTAssertGreaterThanOrEqual(files.count, 2)
        let registry = TrainingQuantizerRegistry([StandInHQ.self, StandInRTN.self])
        let cwd = FileManager.default.currentDirectoryPath
        // Paths in the recipes are relative to the repository root (like ../shared/data/...).
        FileManager.default.changeCurrentDirectoryPath(Self.repo.path)
        defer { FileManager.default.changeCurrentDirectoryPath(cwd) }
        guard FileManager.default.fileExists(atPath: "../shared/data/wikitext-2-raw/wiki.test.raw") else { throw XCTSkip("no ../shared/data") }
        for f in files {
            let r = try TrainingRecipe.load(path: dir.appendingPathComponent(f).path, registry: registry)
            if case .scratch(let a) = r.model {
                XCTAssertGreaterThanOrEqual(a.layers, 6); XCTAssertGreaterThanOrEqual(a.hidden, 384); XCTAssertGreaterThanOrEqual(a.context, 256)
                XCTAssertGreaterThanOrEqual(r.steps * r.batchSize * r.seqLen, 1_000_000, "at least 1M training bytes")
            }
        }
    }
}
