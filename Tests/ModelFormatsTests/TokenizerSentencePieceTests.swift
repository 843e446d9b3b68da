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
        XCTAssertEqual(cases.count, 10)
        for c in cases {
            let text = try XCTUnwrap(c["text"] as? String)
            let ids = try XCTUnwrap(c["ids"] as? [Int])
            // sentencepiece never reads special tokens in the text and adds no BOS by itself
            XCTAssertEqual(t.encode(text, parseSpecial: false, addBOS: false), ids, text.debugDescription)
            XCTAssertEqual(t.decode(ids), text, text.debugDescription)
            if !text.contains("<") { XCTAssertEqual(t.encode(text), [1] + ids) }
        }
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
        XCTAssertThrowsError(try SentencePieceModelProto(data: [0x0A, 0x05, 0x0A]))
        XCTAssertThrowsError(try SentencePieceModelProto(data: []))
    }
}
