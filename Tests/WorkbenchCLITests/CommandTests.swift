import XCTest
import ArgumentParser
import QuantCore
import RTN
import Recipes
import Runs
@testable import WorkbenchCLI

/// The front end maps failures to exit codes: 2 for bad input, 1 while running.
final class CommandTests: XCTestCase {
    func write(_ yaml: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("cmd-\(UUID().uuidString).yaml").path
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func exitCode(_ args: [String]) -> Int32? {
        WorkbenchMain.registry = MethodRegistry([RTN.self])
        do {
            var command = try Workbench.parseAsRoot(args)
            try command.run()
            return 0
        } catch let e as ExitCode { return e.rawValue
        } catch { return nil }
    }

    func testCheckWithAMissingModelIsBadInput() throws {
        let path = try write("model: no/such/model.gguf\npipeline: [rtn]\nscheme: {weights: {bits: 4}}\n")
        XCTAssertEqual(exitCode(["check", path]), 2)
    }

    func testCheckOfTheQuickstartSucceeds() throws {
        let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..").standardized
        XCTAssertEqual(exitCode(["check", repo.appendingPathComponent("recipes/quickstart.yaml").path]), 0)
    }

    /// `bench model`'s counts are checked before the recipe is even read: bad input, exit 2.
    func testBenchModelRejectsZeroRounds() throws {
        let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..").standardized
        let quickstart = repo.appendingPathComponent("recipes/quickstart.yaml").path
        for flag in ["--rounds", "--windows", "--decode-tokens"] {
            XCTAssertEqual(exitCode(["bench", "model", quickstart, flag, "0"]), 2, flag)
        }
    }

    func testExitCodes() {
        func code(_ e: Error) -> Int32? {
            do { _ = try failing { throw e } } catch let c as ExitCode { return c.rawValue } catch {}
            return nil
        }
        XCTAssertEqual(code(RecipeError(location: SourceLocation(file: "r", line: 1, column: 1), keyPath: "", message: "")), 2)
        XCTAssertEqual(code(YAMLError(location: SourceLocation(file: "r", line: 1, column: 1), message: "bad")), 2)
        XCTAssertEqual(code(WorkbenchFailure.badInput("model")), 2)
        XCTAssertEqual(code(WorkbenchFailure.runtime("cholesky")), 1)
    }
}
