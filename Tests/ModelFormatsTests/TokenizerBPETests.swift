import Foundation
import XCTest
@testable import ModelFormats

/// Byte-level BPE from a tiny tokenizer.json and the pre-tokenizer patterns, against HF tokenizers
/// (fixtures from scripts/make_tokenizer_fixtures.py).
final class TokenizerBPETests: XCTestCase {
    func fixture(_ name: String) -> URL { TokenizerTestPaths.fixtures.appendingPathComponent(name) }

    func loadJSON(_ name: String) throws -> [String: Any] {
        try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: fixture(name))) as? [String: Any])
    }

    func testPreTokenizerSplitsMatchHFRegexes() throws {
        let expected = try loadJSON("pretokenizer_expected.json")
        let cases = try XCTUnwrap(expected["cases"] as? [[String: Any]])
        XCTAssertEqual(cases.count, 60)
        for c in cases {
            let name = try XCTUnwrap(c["pattern"] as? String)
            let text = try XCTUnwrap(c["text"] as? String)
            let words = try XCTUnwrap(c["words"] as? [String])
            let pattern = try XCTUnwrap(TokenizerPreTokenizer.Pattern(rawValue: name))
            XCTAssertEqual(TokenizerPreTokenizer(pattern: pattern).words(text), words, "\(name): \(text.debugDescription)")
        }
    }

    func testPreTokenizerNames() throws {
        XCTAssertEqual(try TokenizerPreTokenizer(name: "llama-bpe").pattern, .llama3)
        XCTAssertEqual(try TokenizerPreTokenizer(name: "smollm").pattern, .smollm)
        XCTAssertEqual(try TokenizerPreTokenizer(name: "gpt2").pattern, .gpt2)
        XCTAssertThrowsError(try TokenizerPreTokenizer(name: "deepseek-llm")) { error in
            XCTAssertEqual(error as? TokenizerError, .unsupportedPreTokenizer("deepseek-llm"))
        }
    }

    func testTokenizerJSONMatchesHFForEachPreTokenizer() throws {
        let base = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: fixture("bpe_tiny_tokenizer.json"))) as? [String: Any])
        let expected = try loadJSON("bpe_tiny_expected.json")
        let variants = try XCTUnwrap(expected["variants"] as? [String: [String: Any]])
        let cases = try XCTUnwrap(expected["cases"] as? [[String: Any]])
        var checked = 0
        for (name, variant) in variants {
            var json = base
            json["pre_tokenizer"] = variant["pre_tokenizer"]
            var model = try XCTUnwrap(json["model"] as? [String: Any])
            model["ignore_merges"] = variant["ignore_merges"]
            json["model"] = model
            let data = try JSONSerialization.data(withJSONObject: json)
            let t = try BPETokenizer(tokenizerJSONData: data)
            XCTAssertEqual(t.preTokenizer.pattern.rawValue, name)
            XCTAssertEqual(t.vocabularySize, 500)
            XCTAssertEqual(t.ignoresMerges, variant["ignore_merges"] as? Bool)
            XCTAssertFalse(t.addsBOS)
            for c in cases where c["variant"] as? String == name {
                let text = try XCTUnwrap(c["text"] as? String)
                let ids = try XCTUnwrap(c["ids"] as? [Int])
                XCTAssertEqual(t.encode(text), ids, "\(name): \(text.debugDescription)")
                XCTAssertEqual(t.decode(ids, renderSpecial: true), text)
                checked += 1
            }
        }
        XCTAssertEqual(checked, 60)
    }

    func testTokenizerJSONFromURLAndSpecialTokens() throws {
        let t = try BPETokenizer(tokenizerJSON: fixture("bpe_tiny_tokenizer.json"), eosTokenID: 0)
        XCTAssertEqual(t.preTokenizer.pattern, .gpt2)
        XCTAssertEqual(t.tokenTypes[0], .control)
        XCTAssertEqual(t.eosTokenID, 0)
        let ids = t.encode("<|im_start|>hi<|im_end|>")
        XCTAssertEqual(ids.first, 1)
        XCTAssertEqual(ids.last, 2)
        XCTAssertFalse(t.encode("<|im_start|>", parseSpecial: false, addBOS: false).contains(1))
        XCTAssertEqual(t.decode(ids), "hi")
    }

    func testTokenizerJSONRejectsUnknownPreTokenizer() throws {
        var json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: fixture("bpe_tiny_tokenizer.json"))) as? [String: Any])
        json["pre_tokenizer"] = ["type": "Sequence", "pretokenizers": [
            ["type": "Split", "pattern": ["Regex": "[a-z]+"], "behavior": "Isolated", "invert": false],
            ["type": "ByteLevel", "add_prefix_space": false, "use_regex": false],
        ]]
        let data = try JSONSerialization.data(withJSONObject: json)
        XCTAssertThrowsError(try BPETokenizer(tokenizerJSONData: data)) { error in
            guard case .unsupportedPreTokenizer(let what)? = error as? TokenizerError else {
                return XCTFail("unexpected \(error)")
            }
            XCTAssertTrue(what.contains("[a-z]+"), what)
        }
        json["pre_tokenizer"] = ["type": "Whitespace"]
        XCTAssertThrowsError(try BPETokenizer(tokenizerJSONData: JSONSerialization.data(withJSONObject: json))) { error in
            guard case .unsupportedPreTokenizer(let what)? = error as? TokenizerError else { return XCTFail("unexpected \(error)") }
            XCTAssertTrue(what.contains("Whitespace"), what)
        }
        var model = try XCTUnwrap(json["model"] as? [String: Any])
        model["type"] = "WordPiece"
        json["model"] = model
        XCTAssertThrowsError(try BPETokenizer(tokenizerJSONData: JSONSerialization.data(withJSONObject: json))) { error in
            XCTAssertEqual(error as? TokenizerError, .unsupportedModel("tokenizer.json model type WordPiece"))
        }
    }

    /// Built from plain GGUF-style arrays: merges as "a b" strings, token types, BOS added.
    func testFromGGUFArraysAndRoundTrips() throws {
        let json = try BPETokenizer(tokenizerJSON: fixture("bpe_tiny_tokenizer.json"))
        let merges = try XCTUnwrap(
            (try loadJSON("bpe_tiny_tokenizer.json")["model"] as? [String: Any])?["merges"] as? [[String]]
        ).map { "\($0[0]) \($0[1])" }
        let types = json.tokenTypes.map { $0.rawValue }
        for pre in ["gpt2", "llama-bpe", "smollm"] {
            let t = try XCTUnwrap(try TokenizerGGUF.makeTokenizer(
                model: "gpt2", pre: pre, tokens: json.tokens, scores: nil, tokenTypes: types, merges: merges,
                bosTokenID: 1, eosTokenID: 2, addBOS: true) as? BPETokenizer)
            XCTAssertTrue(t.addsBOS)
            XCTAssertEqual(t.encode("a").first, 1)
            XCTAssertEqual(t.encode("a", parseSpecial: true, addBOS: false).first.map { $0 != 1 }, true)
            if pre == "gpt2" {
                XCTAssertEqual(t.encode("Hello world", parseSpecial: true, addBOS: false), json.encode("Hello world"))
            }
            var rng = TokenizerTestRNG(seed: 11)
            for text in TokenizerTestRNG.samples + (0..<300).map({ _ in rng.randomText() }) {
                XCTAssertEqual(t.decode(t.encode(text)), text, "\(pre): \(text.debugDescription)")
            }
            for _ in 0..<200 {
                let bytes = (0..<rng.next(50)).map { _ in UInt8(rng.next(256)) }
                XCTAssertEqual(t.decodeBytes(t.encode(bytes: bytes, parseSpecial: false, addBOS: false)), bytes)
            }
        }
    }

    func testByteLevelMap() {
        XCTAssertEqual(TokenizerByteLevel.encode(Array(" \n!é".utf8)), "ĠĊ!Ã©")
        XCTAssertEqual(TokenizerByteLevel.decode("ĠĊ!Ã©"), Array(" \n!é".utf8))
        XCTAssertEqual(Set(TokenizerByteLevel.scalars).count, 256)
        XCTAssertNil(TokenizerByteLevel.decode("日"))
    }
}
