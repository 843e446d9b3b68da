import Foundation
import XCTest
@testable import ModelFormats

/// SentencePiece-style BPE from a tiny `tokenizer.model` (trained with the PyPI sentencepiece
/// package: BPE, byte_fallback, identity normalizer) against ids from `sentencepiece` itself.
final class TokenizerSentencePieceTests: XCTestCase {
    var modelURL: URL { TokenizerTestPaths.fixtures.appendingPathComponent("spm_tiny.model") }

    func expected() throws -> [String: Any] {
        let url = TokenizerTestPaths.fixtures.appendingPathComponent("spm_tiny_expected.json")
        return try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
    }

    func testModelProtoFields() throws {
        let t = try SentencePieceTokenizer(sentencePieceModel: modelURL)
        let e = try expected()
        XCTAssertEqual(t.vocabularySize, e["vocab_size"] as? Int)
        XCTAssertEqual(t.bosTokenID, e["bos_id"] as? Int)
        XCTAssertEqual(t.eosTokenID, e["eos_id"] as? Int)
        XCTAssertEqual(t.unknownTokenID, e["unk_id"] as? Int)
        XCTAssertTrue(t.addSpacePrefix)
        XCTAssertTrue(t.addsBOS)
        XCTAssertEqual(t.tokens[0], "<unk>")
        XCTAssertEqual(t.tokenTypes[0], .unknown)
        XCTAssertEqual(t.tokenTypes[1], .control)
        XCTAssertEqual(t.tokens[3], "<0x00>")
        XCTAssertEqual(t.tokenTypes[3], .byte)
        XCTAssertEqual(t.tokenTypes.filter { $0 == .byte }.count, 256)
        XCTAssertTrue(t.scores[300] < t.scores[260], "merge scores should decrease with the id")
    }

    func testMatchesSentencePiece() throws {
        let t = try SentencePieceTokenizer(sentencePieceModel: modelURL)
        let cases = try XCTUnwrap(try expected()["cases"] as? [[String: Any]])
        XCTAssertEqual(cases.count, 30)
        for c in cases {
            let text = try XCTUnwrap(c["text"] as? String)
            let ids = try XCTUnwrap(c["ids"] as? [Int])
            // sentencepiece never reads special tokens in the text and adds no BOS by itself
            XCTAssertEqual(t.encode(text, parseSpecial: false, addBOS: false), ids, text.debugDescription)
            XCTAssertEqual(t.decode(ids), text, text.debugDescription)
            if !text.contains("<") { XCTAssertEqual(t.encode(text), [1] + ids) }
        }
    }

    /// 32 KiB of wiki.test.raw as one piece (fixture ids from sentencepiece).
    func testLongTextMatchesSentencePiece() throws {
        let t = try SentencePieceTokenizer(sentencePieceModel: modelURL)
        guard FileManager.default.fileExists(atPath: TokenizerTestPaths.wikiTest.path) else {
            throw XCTSkip("wiki.test.raw not found")
        }
        var bytes = [UInt8](try Data(contentsOf: TokenizerTestPaths.wikiTest))
        var chunk = Array(bytes[0..<32768])
        while let last = chunk.last, last & 0xC0 == 0x80 || last >= 0xC0 { chunk.removeLast() }  // whole characters
        let fixture = try Data(contentsOf: TokenizerTestPaths.fixtures.appendingPathComponent("spm_tiny_wiki_test_32k.u16"))
        let expected: [Int] = fixture.withUnsafeBytes { raw in
            (0..<(raw.count / 2)).map { Int(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * $0, as: UInt16.self))) }
        }
        let got = t.encode(bytes: chunk, parseSpecial: false, addBOS: false)
        XCTAssertEqual(got.count, expected.count)
        if let i = zip(got, expected).enumerated().first(where: { $0.element.0 != $0.element.1 })?.offset {
            XCTFail("first difference at id \(i): got \(got[i]) expected \(expected[i])")
        }
        XCTAssertEqual(t.decodeBytes(got), chunk)

        // speed on the whole file (one piece per line would be the usual use; this is the worst case)
        bytes = Array(bytes.prefix(400_000))
        let start = Date()
        let ids = t.encode(bytes: bytes, parseSpecial: false, addBOS: false)
        let seconds = Date().timeIntervalSince(start)
        print("SentencePiece: \(bytes.count) bytes in one piece -> \(ids.count) ids in \(String(format: "%.3f", seconds)) s")
        XCTAssertLessThan(seconds, 5)
    }

    func testSpecialTokensInTextLikeLlamaCpp() throws {
        let t = try SentencePieceTokenizer(sentencePieceModel: modelURL)
        // parse_special (llama-tokenize's default): "<s>" is BOS, and the text after a special
        // token gets its own space prefix, as in llama.cpp
        let hello = t.encode("hello", parseSpecial: false, addBOS: false)
        XCTAssertEqual(t.encode("<s>hello", parseSpecial: true, addBOS: false), [1] + hello)
        XCTAssertEqual(t.encode("hello</s>", parseSpecial: true, addBOS: true), [1] + hello + [2])
        XCTAssertEqual(t.encode("<unk>", parseSpecial: true, addBOS: false), [0])
        XCTAssertNotEqual(t.encode("<unk>", parseSpecial: false, addBOS: false), [0])
        XCTAssertEqual(t.decode([1] + hello + [2]), "hello")
        XCTAssertEqual(t.decode([1] + hello + [2], renderSpecial: true), "<s> hello</s>")
    }

    func testFromGGUFArrays() throws {
        let m = try SentencePieceTokenizer(sentencePieceModel: modelURL)
        let t = try XCTUnwrap(try TokenizerGGUF.makeTokenizer(
            model: "llama", pre: nil, tokens: m.tokens, scores: m.scores,
            tokenTypes: m.tokenTypes.map { $0.rawValue }, merges: nil, bosTokenID: 1, eosTokenID: 2,
            unknownTokenID: 0, addBOS: false, addSpacePrefix: true) as? SentencePieceTokenizer)
        XCTAssertFalse(t.addsBOS)
        var rng = TokenizerTestRNG(seed: 3)
        for text in TokenizerTestRNG.samples + (0..<200).map({ _ in rng.randomText() }) {
            XCTAssertEqual(t.encode(text), m.encode(text, parseSpecial: true, addBOS: false))
            // round trip (a lone leading space is the one thing the space prefix cannot restore)
            do {
                XCTAssertEqual(t.decode(t.encode(text, parseSpecial: false, addBOS: false)), text, text.debugDescription)
            }
        }
        // without space prefix
        let noPrefix = try SentencePieceTokenizer(tokens: m.tokens, scores: m.scores,
                                                  tokenTypes: m.tokenTypes.map { $0.rawValue },
                                                  addBOS: false, addSpacePrefix: false)
        XCTAssertEqual(noPrefix.encode(" a b"), m.encode("a b", parseSpecial: false, addBOS: false))
        XCTAssertEqual(noPrefix.decode(noPrefix.encode(" a b ")), " a b ")
    }

    func testMalformedModel() {
        XCTAssertThrowsError(try SentencePieceModelProto(data: [0x0A, 0x05, 0x0A])) { e in
            XCTAssertTrue("\(e)".contains("a field of 5 bytes at byte 2, but only 1 bytes are left"), "\(e)")
        }
        XCTAssertThrowsError(try SentencePieceModelProto(data: [])) { e in
            XCTAssertEqual(e as? TokenizerError, .malformed("no pieces in the SentencePiece model"))
        }
    }
}
