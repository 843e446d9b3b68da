import XCTest
import QuantCore
import Recipes
import RTN
@testable import Runs

final class DataTests: XCTestCase {
    static let shared = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../../shared/data/wikitext-2-raw").standardized

    /// The canonical test split passes silently; the 1,292,013-byte copy made by joining Hugging
    /// Face rows with newlines (rebuilt here from the canonical file) is recognised and warned about.
    func testAKnownNonCanonicalCopyIsRecognised() throws {
        let canonical = Self.shared.appendingPathComponent("wiki.test.raw").path
        guard FileManager.default.fileExists(atPath: canonical) else { throw XCTSkip("skipped: no WikiText-2 copy at \(canonical)") }
        XCTAssertNil(KnownTexts.warning(path: canonical, sha256: try SHA256.hex(fileAt: canonical)))
        let data = try Data(contentsOf: URL(fileURLWithPath: canonical))
        var rows = data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).dropLast().map { Data($0) + Data("\n".utf8) }
        rows = rows.map { $0 == Data(" \n".utf8) ? Data() : $0 }
        var joined = Data()
        for (i, r) in rows.enumerated() { if i > 0 { joined.append(UInt8(ascii: "\n")) }; joined.append(r) }
        XCTAssertEqual(joined.count, 1_292_013)
        let w = KnownTexts.warning(path: "copy.raw", sha256: SHA256.hex(joined))
        XCTAssertNotNil(w)
        XCTAssertTrue(w?.contains("joined with newlines") == true, w ?? "")
    }

    /// A text path that does not exist is looked up by file name in QWB_DATA_DIR.
    func testTheDataDirectoryFindsTextsByName() throws {
        let dir = NSTemporaryDirectory() + "qwb-data-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir); unsetenv("QWB_DATA_DIR") }
        try "hello".write(toFile: dir + "/held.raw", atomically: true, encoding: .utf8)
        setenv("QWB_DATA_DIR", dir, 1)
        let r = try Recipe.parse(yaml: "evaluation: {text: somewhere/else/held.raw}\n", file: "d.yaml", registry: MethodRegistry([RTN.self]))
        XCTAssertEqual(r.evaluation.source, .files([URL(fileURLWithPath: dir).appendingPathComponent("held.raw").path]))
        let missing = try Recipe.parse(yaml: "evaluation: {text: somewhere/else/absent.raw}\n", file: "d.yaml", registry: MethodRegistry([RTN.self]))
        XCTAssertEqual(missing.evaluation.source, .files(["somewhere/else/absent.raw"]))
    }
}
