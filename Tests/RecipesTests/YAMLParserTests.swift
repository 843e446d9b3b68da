import XCTest
@testable import Recipes

final class YAMLParserTests: XCTestCase {
    func parse(_ s: String, limits: YAMLLimits = .init()) throws -> YAMLNode {
        try YAMLParser.parse(bytes: Array(s.utf8), file: "t.yaml", limits: limits)
    }

    func assertError(_ s: String, limits: YAMLLimits = .init(), _ parts: [String], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try parse(s, limits: limits), file: file, line: line) { e in
            for p in parts { XCTAssertTrue("\(e)".contains(p), "«\(e)» lacks «\(p)»", file: file, line: line) }
        }
    }

    func testNestedDocumentWithPositions() throws {
        let n = try parse("a: 1\nb:\n  - x\n  - 'y'\n  - {c: true}\n")
        XCTAssertEqual(n.value(forKey: "a")?.asInt(), 1)
        let b = try XCTUnwrap(n.value(forKey: "b"))
        guard case .sequence(let items) = b.kind else { return XCTFail() }
        XCTAssertEqual(items[0].location, SourceLocation(file: "t.yaml", line: 3, column: 5))
        if case .scalar(let s, let quoted) = items[1].kind { XCTAssertEqual(s, "y"); XCTAssertTrue(quoted) } else { XCTFail() }
        XCTAssertEqual(items[2].value(forKey: "c")?.asBool(), true)
        XCTAssertEqual(items[2].location.line, 5)
    }

    func testScalarTypesFollowTheCoreSchema() throws {
        let n = try parse("i: -12\nh: 0x1F\nf: 2.5e-3\nb: false\ny: yes\nz: ~\nq: \"3\"\ne:\n")
        XCTAssertEqual(n.value(forKey: "i")?.asInt(), -12)
        XCTAssertEqual(n.value(forKey: "h")?.asInt(), 31)
        XCTAssertEqual(n.value(forKey: "f")?.asDouble(), 0.0025)
        XCTAssertEqual(n.value(forKey: "b")?.asBool(), false)
        XCTAssertNil(n.value(forKey: "y")?.asBool(), "YAML 1.2: yes is a string")
        XCTAssertTrue(n.value(forKey: "z")!.isNull)
        XCTAssertTrue(n.value(forKey: "e")!.isNull)
        XCTAssertNil(n.value(forKey: "q")?.asInt(), "quoted scalars are strings")
    }

    func testSyntaxErrorsNameLineAndColumn() {
        assertError("a: [1, 2\nb: 3\n", ["t.yaml:", "YAML syntax"])
        assertError("a: b: c\n", ["t.yaml:1:"])
    }

    func testEmptyAndMultipleDocuments() {
        assertError("", ["empty"])
        assertError("# just a comment\n", ["empty"])
        assertError("a: 1\n---\nb: 2\n", ["t.yaml:2:1", "one YAML document"])
    }

    func testDuplicateKeys() {
        assertError("a: 1\nb: 2\na: 3\n", ["t.yaml:3:1", "duplicate key 'a'", "line 1"])
    }

    func testNonUTF8Bytes() {
        var bytes = Array("a: 1\nb: caf".utf8); bytes += [0xE9, 0x0A]
        XCTAssertThrowsError(try YAMLParser.parse(bytes: bytes, file: "t.yaml")) { e in
            XCTAssertTrue("\(e)".contains("t.yaml:2:7"), "\(e)"); XCTAssertTrue("\(e)".contains("not valid UTF-8"))
        }
        XCTAssertThrowsError(try YAMLParser.parse(bytes: [0xFF, 0xFE, 0x61, 0x00], file: "t.yaml")) { XCTAssertTrue("\($0)".contains("UTF-16")) }
        XCTAssertNoThrow(try parse("name: \"日本語 ✓ 🚀\"\n"))
    }

    func testAnchorsAndAliasesAreResolved() throws {
        let n = try parse("base: &w {bits: 4, clip: 0.9}\nother: *w\n")
        XCTAssertEqual(n.value(forKey: "other")?.value(forKey: "bits")?.asInt(), 4)
        XCTAssertEqual(n.value(forKey: "other")?.location.line, 2, "the alias keeps its own location")
        assertError("a: *nope\n", ["unknown alias"])
        assertError("a: &x 1\n<<: *x\n", ["merge keys"])
    }

    func testAliasBombIsRefused() {
        var s = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
        for i in 1...9 { s += "a\(i): &a\(i) [" + Array(repeating: "*a\(i - 1)", count: 10).joined(separator: ", ") + "]\n" }
        let start = Date()
        assertError(s, ["more than 100000 nodes", "alias bomb"])
        XCTAssertLessThan(Date().timeIntervalSince(start), 5)
    }

    func testVeryDeepNestingIsRefused() {
        assertError(String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000), ["deeper than 64"])
        assertError(String(repeating: "{a: ", count: 5_000) + "1" + String(repeating: "}", count: 5_000), ["deeper than 64"])
    }

    func testVeryLargeFileIsRefusedBeforeReading() throws {
        var limits = YAMLLimits(); limits.maxFileBytes = 1024
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("qwb-large-\(getpid()).yaml")
        try Data(repeating: UInt8(ascii: "#"), count: 4096).write(to: url)
        defer { try? FileManager.default.removeItem(at: url) }
        XCTAssertThrowsError(try YAMLParser.parse(file: url.path, limits: limits)) { XCTAssertTrue("\($0)".contains("4096 bytes"), "\($0)") }
        XCTAssertThrowsError(try YAMLParser.parse(file: "/nonexistent/recipe.yaml")) { XCTAssertTrue("\($0)".contains("file not found")) }
    }
}
