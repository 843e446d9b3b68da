import XCTest
@testable import Recipes

final class YAMLParserTests: XCTestCase {
    // MARK: helpers

    func parse(_ text: String, limits: YAMLLimits = .init()) throws -> YAMLNode {
        try YAMLParser.parse(bytes: Array(text.utf8), file: "r.yaml", limits: limits)
    }

    /// Asserts parsing fails with a YAMLError at `line:column` whose text contains every fragment.
    func assertError(_ bytes: [UInt8], line: Int, column: Int, contains fragments: [String],
                     limits: YAMLLimits = .init(), file: StaticString = #filePath, testLine: UInt = #line) {
        do {
            let node = try YAMLParser.parse(bytes: bytes, file: "r.yaml", limits: limits)
            XCTFail("expected an error, parsed \(node.kindName)", file: file, line: testLine)
        } catch let error as YAMLError {
            XCTAssertEqual(error.location, SourceLocation(file: "r.yaml", line: line, column: column),
                           "\(error)", file: file, line: testLine)
            let text = "\(error)"
            XCTAssertTrue(text.hasPrefix("r.yaml:\(line):\(column): "), text, file: file, line: testLine)
            for f in fragments {
                XCTAssertTrue(text.contains(f), "'\(text)' should contain '\(f)'", file: file, line: testLine)
            }
        } catch {
            XCTFail("unexpected error type: \(error)", file: file, line: testLine)
        }
    }

    func assertError(_ text: String, line: Int, column: Int, contains fragments: [String],
                     limits: YAMLLimits = .init(), file: StaticString = #filePath, testLine: UInt = #line) {
        assertError(Array(text.utf8), line: line, column: column, contains: fragments, limits: limits,
                    file: file, testLine: testLine)
    }

    func temporaryPath(_ name: String) -> String {
        let dir = NSTemporaryDirectory() + "quantwb-yaml-\(ProcessInfo.processInfo.processIdentifier)"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir + "/" + name
    }

    // MARK: valid documents

    func testValidNestedDocumentWithPositions() throws {
        let text = """
        # a recipe
        name: llama-w4
        method:
          kind: rtn
          bits: 4
          group: "128"
        layers:
          - q_proj
          - {name: k_proj, bits: 8}
        note: |
          literal
        """
        let root = try parse(text)
        XCTAssertEqual(root.location, SourceLocation(file: "r.yaml", line: 2, column: 1))
        XCTAssertEqual(root.kindName, "a mapping")
        XCTAssertEqual(root.keys, ["name", "method", "layers", "note"])

        let name = try XCTUnwrap(root.value(forKey: "name"))
        XCTAssertEqual(name.scalar, "llama-w4")
        XCTAssertFalse(name.isQuoted)
        XCTAssertEqual(name.location.description, "r.yaml:2:7")
        XCTAssertEqual(root.entry(forKey: "method")?.key.location.description, "r.yaml:3:1")

        let method = try XCTUnwrap(root.value(forKey: "method"))
        XCTAssertEqual(method.location.description, "r.yaml:4:3")
        XCTAssertEqual(method.value(forKey: "kind")?.scalar, "rtn")
        XCTAssertEqual(method.value(forKey: "bits")?.asInt(), 4)
        XCTAssertEqual(method.value(forKey: "bits")?.location.description, "r.yaml:5:9")
        let group = try XCTUnwrap(method.value(forKey: "group"))
        XCTAssertEqual(group.scalar, "128")
        XCTAssertTrue(group.isQuoted)
        XCTAssertNil(group.asInt(), "quoted scalars are strings")
        XCTAssertEqual(group.kindName, "a string")

        let layers = try XCTUnwrap(root.value(forKey: "layers")?.sequence)
        XCTAssertEqual(layers.count, 2)
        XCTAssertEqual(root.value(forKey: "layers")?.kindName, "a list")
        XCTAssertEqual(layers[0].scalar, "q_proj")
        XCTAssertEqual(layers[0].location.description, "r.yaml:8:5")
        XCTAssertEqual(layers[1].location.description, "r.yaml:9:5")
        XCTAssertEqual(layers[1].value(forKey: "bits")?.asInt(), 8)
        XCTAssertEqual(layers[1].value(forKey: "bits")?.location.description, "r.yaml:9:26")

        let note = try XCTUnwrap(root.value(forKey: "note"))
        XCTAssertEqual(note.scalar, "literal")
        XCTAssertTrue(note.isQuoted, "block literal is not a plain scalar")
        XCTAssertNil(root.value(forKey: "missing"))
        XCTAssertNil(name.mapping)
        XCTAssertNil(name.sequence)
    }

    func testMappingKeepsFileOrder() throws {
        let root = try parse("z: 1\na: 2\nm: 3\n")
        XCTAssertEqual(root.mapping?.map { $0.key.scalar! }, ["z", "a", "m"])
    }

    func testCoreSchemaScalars() throws {
        let root = try parse("""
        i: 42
        neg: -7
        plus: +3
        hex: 0x1F
        oct: 0o17
        big: 99999999999999999999999
        f: 1.5
        e: 1e-3
        dot: .5
        inf: -.inf
        nan: .nan
        t: true
        T: True
        yes: yes
        off: off
        n1: ~
        n2: null
        n3:
        s: hello
        q: "true"
        q2: '12'
        tagged: !!str 12
        tint: !!int "12"
        version: 1.2.3
        """)
        func v(_ k: String) -> YAMLNode { root.value(forKey: k)! }
        XCTAssertEqual(v("i").asInt(), 42)
        XCTAssertEqual(v("i").asDouble(), 42)
        XCTAssertEqual(v("i").kindName, "an integer")
        XCTAssertEqual(v("neg").asInt(), -7)
        XCTAssertEqual(v("plus").asInt(), 3)
        XCTAssertEqual(v("hex").asInt(), 31)
        XCTAssertEqual(v("oct").asInt(), 15)
        XCTAssertNil(v("big").asInt(), "overflow is not an Int")
        XCTAssertEqual(v("f").asDouble(), 1.5)
        XCTAssertNil(v("f").asInt())
        XCTAssertEqual(v("f").kindName, "a number")
        XCTAssertEqual(v("e").asDouble(), 0.001)
        XCTAssertEqual(v("dot").asDouble(), 0.5)
        XCTAssertEqual(v("inf").asDouble(), -.infinity)
        XCTAssertTrue(v("nan").asDouble()!.isNaN)
        XCTAssertEqual(v("t").asBool(), true)
        XCTAssertEqual(v("T").asBool(), true)
        XCTAssertEqual(v("t").kindName, "a boolean")
        XCTAssertNil(v("yes").asBool(), "YAML 1.1 yes/no are plain strings")
        XCTAssertEqual(v("yes").asString(), "yes")
        XCTAssertNil(v("off").asBool())
        XCTAssertTrue(v("n1").isNull)
        XCTAssertTrue(v("n2").isNull)
        XCTAssertTrue(v("n3").isNull)
        XCTAssertEqual(v("n3").kindName, "null")
        XCTAssertFalse(v("s").isNull)
        XCTAssertEqual(v("s").asString(), "hello")
        XCTAssertNil(v("s").asInt())
        XCTAssertNil(v("s").asDouble())
        XCTAssertNil(v("q").asBool(), "quoted scalars are always strings")
        XCTAssertEqual(v("q").asString(), "true")
        XCTAssertNil(v("q2").asInt())
        XCTAssertNil(v("tagged").asInt(), "!!str forces a string")
        XCTAssertEqual(v("tagged").tag, "tag:yaml.org,2002:str")
        XCTAssertEqual(v("tint").asInt(), 12, "!!int resolves a quoted scalar")
        XCTAssertNil(v("version").asDouble())
        XCTAssertEqual(v("version").coreType, .string)
        XCTAssertNil(root.coreType)
        XCTAssertFalse(root.isNull)
        XCTAssertTrue(try parse("'': x").mapping![0].key.asString() == "", "quoted empty is a string")
    }

    func testTagsAreKept() throws {
        let root = try parse("a: !!str x\nb: !custom {k: v}\nc: ! 5\nd: !!seq [1]\ne: plain\n")
        XCTAssertEqual(root.value(forKey: "a")?.tag, "tag:yaml.org,2002:str")
        XCTAssertEqual(root.value(forKey: "b")?.tag, "!custom")
        XCTAssertEqual(root.value(forKey: "b")?.value(forKey: "k")?.scalar, "v")
        XCTAssertEqual(root.value(forKey: "c")?.tag, "!")
        XCTAssertNil(root.value(forKey: "c")?.asInt(), "non-specific tag '!' means string")
        XCTAssertEqual(root.value(forKey: "d")?.tag, "tag:yaml.org,2002:seq")
        XCTAssertNil(root.value(forKey: "e")?.tag)
    }

    func testParseFileAndBOM() throws {
        let path = temporaryPath("ok.yaml")
        defer { try? FileManager.default.removeItem(atPath: path) }
        // UTF-8 BOM is accepted; CRLF line ends count as one line break.
        _ = FileManager.default.createFile(atPath: path, contents: Data([0xEF, 0xBB, 0xBF] + Array("a: 1\r\nb: [x, é]\r\n".utf8)))
        let root = try YAMLParser.parse(file: path)
        XCTAssertEqual(root.value(forKey: "a")?.asInt(), 1)
        XCTAssertEqual(root.value(forKey: "b")?.sequence?.map { $0.scalar! }, ["x", "é"])
        XCTAssertEqual(root.value(forKey: "b")?.location, SourceLocation(file: path, line: 2, column: 4))
    }

    // MARK: libyaml errors

    func testSyntaxErrorsReportLibYAMLPosition() {
        assertError("a: 1\nb: [1, 2\nc: 3\n", line: 3, column: 2,
                    contains: ["did not find expected ',' or ']'", "line 2, column 4"])
        assertError("a: 1\n  b: 2\n", line: 2, column: 4, contains: ["mapping values are not allowed"])
        assertError("a: \"unterminated\n", line: 2, column: 1, contains: ["quoted scalar"])
        assertError("a: 1\n\tb: 2\n", line: 2, column: 1, contains: ["tab"])
    }

    func testControlCharacterFromLibYAMLReader() {
        assertError([UInt8]("a: 1\nb: x".utf8) + [0x07] + [UInt8]("\n".utf8), line: 2, column: 5,
                    contains: ["control characters are not allowed"])
    }

    // MARK: document count

    func testEmptyDocument() {
        assertError("", line: 1, column: 1, contains: ["recipe is empty"])
        assertError("# only a comment\n\n", line: 1, column: 1, contains: ["recipe is empty"])
        assertError("---\n", line: 1, column: 1, contains: ["recipe is empty"])
        assertError("--- # nothing\n...\n", line: 1, column: 1, contains: ["recipe is empty"])
    }

    func testSecondDocumentIsRejectedAtItsStart() {
        assertError("a: 1\n---\nb: 2\n", line: 2, column: 1, contains: ["second YAML document", "exactly one"])
        assertError("--- a\n...\n# c\n--- b\n", line: 4, column: 1, contains: ["second YAML document"])
    }

    // MARK: keys

    func testDuplicateKeys() {
        assertError("name: a\nbits: 4\nname: b\n", line: 3, column: 1,
                    contains: ["duplicate key 'name'", "first defined at line 1"])
        assertError("m:\n  x: 1\n  y: 2\n  \"x\": 3\n", line: 4, column: 3,
                    contains: ["duplicate key 'x'", "line 2"])
        assertError("{a: 1, b: 2, a: 3}", line: 1, column: 14, contains: ["duplicate key 'a'", "line 1"])
    }

    func testSameKeyInDifferentMappingsIsFine() throws {
        let root = try parse("a: {x: 1}\nb: {x: 2}\nl: [{x: 1}, {x: 2}]\n")
        XCTAssertEqual(root.value(forKey: "b")?.value(forKey: "x")?.asInt(), 2)
    }

    func testNonScalarAndMergeKeysRejected() {
        assertError("? [a, b]\n: 1\n", line: 1, column: 3, contains: ["mapping keys must be plain scalars", "a list"])
        assertError("{{a: 1}: 2}", line: 1, column: 2, contains: ["mapping keys must be plain scalars", "a mapping"])
        assertError("base: &b {x: 1}\nderived:\n  <<: *b\n  y: 2\n", line: 3, column: 3,
                    contains: ["merge keys ('<<') are not supported"])
        assertError("l: &l [1]\nm: {*l : 2}\n", line: 2, column: 5, contains: ["mapping keys must be plain scalars"])
    }

    func testQuotedMergeKeyIsAnOrdinaryKey() throws {
        XCTAssertEqual(try parse("\"<<\": 1\n").value(forKey: "<<")?.asInt(), 1)
    }

    // MARK: encoding

    func testInvalidUTF8ReportsFirstBadByte() {
        // Latin-1 "café" on line 3: 'caf' then 0xE9.
        let bytes = Array("a: 1\nb: 2\nc: caf".utf8) + [0xE9] + Array("\n".utf8)
        assertError(bytes, line: 3, column: 7, contains: ["not valid UTF-8", "0xE9", "save the file as UTF-8"])
        // Multi-byte characters before the bad byte count as one column each.
        assertError(Array("x: éé".utf8) + [0xFF], line: 1, column: 6, contains: ["not valid UTF-8"])
        // Truncated sequence, overlong encoding, encoded surrogate.
        assertError(Array("x: ".utf8) + [0xE2, 0x82], line: 1, column: 4, contains: ["not valid UTF-8"])
        assertError(Array("x: ".utf8) + [0xC0, 0xAF], line: 1, column: 4, contains: ["not valid UTF-8"])
        assertError(Array("x: ".utf8) + [0xED, 0xA0, 0x80], line: 1, column: 4, contains: ["not valid UTF-8"])
        assertError(Array("a: 1\r\nb: ".utf8) + [0x80], line: 2, column: 4, contains: ["not valid UTF-8"])
    }

    func testUTF16AndNULRejected() {
        let utf16LE: [UInt8] = [0xFF, 0xFE] + Array("a: 1\n".utf16).flatMap { [UInt8($0 & 0xFF), UInt8($0 >> 8)] }
        assertError(utf16LE, line: 1, column: 1, contains: ["UTF-16", "save the file as UTF-8"])
        assertError([0xFE, 0xFF, 0x00, 0x61], line: 1, column: 1, contains: ["UTF-16"])
        assertError([0x61, 0x00, 0x3A, 0x00], line: 1, column: 2, contains: ["NUL byte", "UTF-8"])
    }

    // MARK: anchors and aliases

    func testAliasesAreResolvedWithAliasLocation() throws {
        let root = try parse("""
        defaults: &d
          bits: 4
          group: 128
        a: *d
        b: [*d, &s x, *s]
        """)
        let a = try XCTUnwrap(root.value(forKey: "a"))
        XCTAssertEqual(a.value(forKey: "bits")?.asInt(), 4)
        XCTAssertEqual(a.location.description, "r.yaml:4:4", "the copy keeps the alias's location")
        let b = try XCTUnwrap(root.value(forKey: "b")?.sequence)
        XCTAssertEqual(b[0].value(forKey: "group")?.asInt(), 128)
        XCTAssertEqual(b[0].location.description, "r.yaml:5:5")
        XCTAssertEqual(b[2].scalar, "x")
        XCTAssertEqual(b[2].location.description, "r.yaml:5:15")
    }

    func testUnknownAlias() {
        assertError("a: *nope\n", line: 1, column: 4, contains: ["unknown alias '*nope'"])
        // An anchor is defined only once its node is complete: no self-reference.
        assertError("a: &x [1, *x]\n", line: 1, column: 11, contains: ["unknown alias '*x'"])
    }

    func testBillionLaughsIsRefusedQuickly() {
        var text = "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n"
        let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i"]
        for k in 1..<names.count {
            let p = names[k - 1]
            text += "\(names[k]): &\(names[k]) [" + Array(repeating: "*\(p)", count: 9).joined(separator: ",") + "]\n"
        }
        let start = Date()
        // Node counts per anchor: a 10, b 91, c 820, d 7381, e 66430 — the first *e in f crosses 100 000.
        assertError(text, line: 6, column: 8, contains: ["alias '*e'", "100000 nodes", "maxNodes"])
        XCTAssertLessThan(Date().timeIntervalSince(start), 1.0)
    }

    func testAliasesShareStorageBelowTheLimit() throws {
        // 8^5 = 32768 leaves materialized through aliases, well below the limit.
        var text = "a: &a [1,2,3,4,5,6,7,8]\n"
        let names = ["a", "b", "c", "d", "e"]
        for k in 1..<names.count {
            text += "\(names[k]): &\(names[k]) [" + Array(repeating: "*\(names[k - 1])", count: 8).joined(separator: ",") + "]\n"
        }
        let root = try parse(text)
        XCTAssertEqual(root.value(forKey: "e")?.sequence?[7].sequence?[7].sequence?[7].sequence?[7].sequence?[7].asInt(), 8)
        // The same document with a smaller node budget is refused.
        // Anchor sizes: a 9, b 73, c 585 — the first *c in d crosses 1000.
        assertError(text, line: 4, column: 8, contains: ["alias '*c'", "1000 nodes"],
                    limits: YAMLLimits(maxNodes: 1000))
    }

    func testAliasUseLimit() {
        let text = "a: &a 1\nl: [" + Array(repeating: "*a", count: 20).joined(separator: ", ") + "]\n"
        assertError(text, line: 2, column: 45, contains: ["too many aliases", "maxAliasExpansions"],
                    limits: YAMLLimits(maxAliasExpansions: 10))
    }

    func testNodeLimitWithoutAliases() {
        assertError("[1, 2, 3, 4, 5]", line: 1, column: 14, contains: ["more than 5 nodes"],
                    limits: YAMLLimits(maxNodes: 5))
    }

    // MARK: depth

    func testDeepFlowSequencesAreRefusedWithoutStackOverflow() {
        let text = String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000)
        assertError(text, line: 1, column: 65, contains: ["nesting is too deep", "64 levels", "maxDepth"])
        // Unterminated as well.
        assertError(String(repeating: "[", count: 10_000), line: 1, column: 65, contains: ["64 levels"])
    }

    func testDeepMappingsAreRefused() {
        assertError(String(repeating: "{a: ", count: 10_000), line: 1, column: 4 * 64 + 1,
                    contains: ["nesting is too deep", "64 levels"])
        // Block mappings: the value of line k's key is the mapping at depth k+1, on line k+1 at column 2k+1.
        var block = ""
        for k in 0..<100 { block += String(repeating: "  ", count: k) + "k:\n" }
        block += String(repeating: "  ", count: 100) + "leaf\n"
        assertError(block, line: 65, column: 129, contains: ["nesting is too deep"])
    }

    func testDepthAtTheLimitIsAccepted() throws {
        let text = String(repeating: "[", count: 64) + "x" + String(repeating: "]", count: 64)
        var node = try parse(text)
        for _ in 0..<64 { node = node.sequence![0] }
        XCTAssertEqual(node.scalar, "x")
    }

    func testDepthThroughAliases() {
        let text = "a: &a [[[[x]]]]\nb: [[*a]]\n"
        assertError(text, line: 2, column: 6, contains: ["alias '*a'", "more than 6 levels"],
                    limits: YAMLLimits(maxDepth: 6))
    }

    // MARK: files

    func testMissingFile() {
        let path = temporaryPath("does-not-exist.yaml")
        XCTAssertThrowsError(try YAMLParser.parse(file: path)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.hasPrefix("\(path):1:1: "), text)
            XCTAssertTrue(text.contains(path), text)
            XCTAssertTrue(text.contains("check the path"), text)
        }
    }

    func testDirectoryIsNotARecipe() {
        XCTAssertThrowsError(try YAMLParser.parse(file: NSTemporaryDirectory())) { error in
            XCTAssertTrue("\(error)".contains("is a directory"), "\(error)")
        }
    }

    func testTooLargeFileIsRefusedBeforeReading() throws {
        let path = temporaryPath("huge.yaml")
        defer { try? FileManager.default.removeItem(atPath: path) }
        // A sparse 1 GiB file: reading it would take time and memory, the size check does not.
        XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data("a: 1\n".utf8)))
        let handle = try XCTUnwrap(FileHandle(forWritingAtPath: path))
        try handle.truncate(atOffset: 1 << 30)
        try handle.close()
        let start = Date()
        XCTAssertThrowsError(try YAMLParser.parse(file: path)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.hasPrefix("\(path):1:1: "), text)
            XCTAssertTrue(text.contains("\(1 << 30) bytes"), text)
            XCTAssertTrue(text.contains("\(8 << 20) bytes"), text)
            XCTAssertTrue(text.contains("maxFileBytes"), text)
        }
        XCTAssertLessThan(Date().timeIntervalSince(start), 0.5)
        // In-memory input honours the limit too.
        assertError(Array(repeating: UInt8(ascii: " "), count: 101), line: 1, column: 1,
                    contains: ["101 bytes", "limit of 100 bytes"], limits: YAMLLimits(maxFileBytes: 100))
    }

    func testErrorDescriptionFormat() {
        let error = YAMLError(location: SourceLocation(file: "x.yaml", line: 3, column: 7), message: "boom")
        XCTAssertEqual(error.description, "x.yaml:3:7: boom")
        XCTAssertEqual(error.location.description, "x.yaml:3:7")
        let node = YAMLNode(kind: .scalar("v", quoted: false), location: error.location)
        XCTAssertEqual(node.error("bad").description, "x.yaml:3:7: bad")
    }
}

extension YAMLParserTests {
    func testPositionsAfterUTF8BOM() {
        assertError([0xEF, 0xBB, 0xBF] + Array("a: 1\na: 2\n".utf8), line: 2, column: 1, contains: ["duplicate key 'a'"])
        assertError([0xEF, 0xBB, 0xBF] + Array("ab: ".utf8) + [0xFF], line: 1, column: 5, contains: ["not valid UTF-8"])
    }
}

extension YAMLParserTests {
    func testDeepBlockSequencesOnOneLineAreRefused() {
        // "- - - - x": each "- " opens a block sequence one column further right.
        let text = String(repeating: "- ", count: 10_000) + "x\n"
        assertError(text, line: 1, column: 2 * 64 + 1, contains: ["nesting is too deep", "64 levels"])
    }

    func testWholeFileOfOpenBracketsAtTheSizeLimitIsFast() {
        let start = Date()
        let bytes = [UInt8](repeating: UInt8(ascii: "["), count: 8 << 20)
        assertError(bytes, line: 1, column: 65, contains: ["nesting is too deep"])
        XCTAssertLessThan(Date().timeIntervalSince(start), 2.0)
    }
}
