import Foundation
import XCTest
@testable import ModelFormats
import TestSupport

/// Asserts that `body` throws a `TokenizerError` whose text mentions every string in `mentions`.
func assertTokenizerError<T>(_ body: @autoclosure () throws -> T, mentions: [String], file: StaticString = #filePath, line: UInt = #line) {
    do {
        _ = try body()
        XCTFail("expected a TokenizerError", file: file, line: line)
    } catch let e as TokenizerError {
        for m in mentions { XCTAssertTrue(e.description.contains(m), "'\(e.description)' does not mention '\(m)'", file: file, line: line) }
    } catch {
        XCTFail("not a TokenizerError: \(error)", file: file, line: line)
    }
}

/// One test per class of hostile input that used to crash (trap, abort or unbounded allocation)
/// or was silently accepted: each must now be a typed error naming the file, the key and the value.
final class HostileModelFileTests: XCTestCase {
    var dir: URL!
    override func setUpWithError() throws { dir = try temporaryDirectory(self) }

    let cfg = ArchitectureConfig.tinyLlama(layers: 1)

    /// A valid tiny GGUF model with `edit` applied to its metadata.
    func gguf(_ name: String = "m.gguf", _ edit: (inout GGUFWriter) -> Void) throws -> URL {
        var w = GGUFWriter.model(config: cfg, tensors: cfg.randomTensors())
        edit(&w)
        let u = dir.appendingPathComponent(name)
        try w.write(to: u)
        return u
    }

    /// A valid tiny HF folder with `edit` applied to its config.json.
    func hf(_ name: String = "hf", _ edit: (inout [String: Any]) -> Void) throws -> URL {
        var (sw, json) = SafetensorsWriter.model(config: cfg, tensors: cfg.randomTensors())
        edit(&json)
        let u = dir.appendingPathComponent(name)
        try sw.writeFolder(u, config: json)
        return u
    }

    func isBadMetadata(_ e: ModelFormatError) -> Bool { if case .badMetadata = e { return true }; return false }

    func testValidFilesStillOpen() throws {
        XCTAssertNoThrow(try openCheckpoint(gguf { _ in }))
        XCTAssertNoThrow(try openCheckpoint(hf { _ in }))
    }

    /// Crash class 1: a huge layer count used to size the list of expected tensors before any check.
    func testHugeLayerCountIsRejectedBeforeAllocating() throws {
        for n in [UInt64(1) << 31, 1 << 40, UInt64(Int.max)] {
            let u = try gguf { $0.set("llama.block_count", .uint64(n)) }
            assertFormatError(try openCheckpoint(u), mentions: ["m.gguf", "llama.block_count", "\(n)"], isBadMetadata)
            let h = try hf { $0["num_hidden_layers"] = Int(n) }
            assertFormatError(try openCheckpoint(h), mentions: ["config.json", "num_hidden_layers", "\(n)"], isBadMetadata)
        }
        // more layers than the file has tensors for
        assertFormatError(try openCheckpoint(gguf { $0.set("llama.block_count", .uint32(2)) }),
                          mentions: ["llama.block_count", "2 layers"], isBadMetadata)
    }

    /// Crash class 2: head count × head size overflowed `Int` with 64-bit values.
    func testHeadCountTimesHeadSizeCannotOverflow() throws {
        let big = UInt64(1) << 40
        for (key, value) in [("llama.attention.head_count", big), ("llama.attention.key_length", big),
                             ("llama.attention.head_count_kv", big)] {
            let u = try gguf { $0.set(key, .uint64(value)) }
            assertFormatError(try openCheckpoint(u), mentions: ["m.gguf", "\(value)"], isBadMetadata)
        }
        // each factor allowed alone, the product not
        let u = try gguf {
            $0.set("llama.attention.head_count", .uint32(1 << 16)); $0.set("llama.attention.head_count_kv", .uint32(1 << 16))
            $0.set("llama.attention.key_length", .uint32(1 << 16))
        }
        assertFormatError(try openCheckpoint(u), mentions: ["llama.attention.head_count", "65536 heads × head size 65536"], isBadMetadata)
        let h = try hf { $0["head_dim"] = 1 << 40; $0["num_attention_heads"] = 1 << 40 }
        assertFormatError(try openCheckpoint(h), mentions: ["config.json", "num_attention_heads"], isBadMetadata)
    }

    func testRMSNormEpsilonAndRopeBaseAreChecked() throws {
        for eps in [Float(-1e-5), 0, 1, .nan, .infinity] {
            let u = try gguf { $0.set("llama.attention.layer_norm_rms_epsilon", .float32(eps)) }
            assertFormatError(try openCheckpoint(u), mentions: ["llama.attention.layer_norm_rms_epsilon"], isBadMetadata)
        }
        for base in [Float(0), -10000, .infinity, .nan] {
            let u = try gguf { $0.set("llama.rope.freq_base", .float32(base)) }
            assertFormatError(try openCheckpoint(u), mentions: ["llama.rope.freq_base"], isBadMetadata)
        }
        assertFormatError(try openCheckpoint(hf { $0["rms_norm_eps"] = -1e-6 }), mentions: ["config.json", "rms_norm_eps", "-1e-06"], isBadMetadata)
        assertFormatError(try openCheckpoint(hf { $0["rope_theta"] = 0 }), mentions: ["config.json", "rope_theta"], isBadMetadata)
        // in range: accepted
        XCTAssertNoThrow(try openCheckpoint(gguf { $0.set("llama.attention.layer_norm_rms_epsilon", .float32(1e-6)) }))
    }

    /// Crash class 6: a u8 metadata array cost ~25× its size (one boxed enum per byte).
    func testByteArraysAreStoredCompactly() throws {
        var w = GGUFWriter(architecture: "test")
        let n = 1 << 20
        w.set("test.blob", .array(GGUFArray(.uint8([UInt8](repeating: 7, count: n)))))
        let u = dir.appendingPathComponent("blob.gguf")
        try w.write(to: u)
        let f = try GGUFFile(url: u)
        guard case .array(let a)? = f.metadata["test.blob"], case .uint8(let bytes) = a.storage else {
            return XCTFail("expected a compact u8 array, found \(String(describing: f.metadata["test.blob"]))")
        }
        XCTAssertEqual(bytes.count, n)
        XCTAssertEqual(f.metadata["test.blob"]?.count, n)
    }

    /// Nested tiny arrays cost more memory than bytes in the file: parsing stops at 2 × file + 32 MiB.
    func testMetadataMemoryIsBoundedByTheFileSize() throws {
        // an array of n empty u8 arrays: 12 bytes each in the file, a 16-byte slot each in memory
        // (well inside the budget) — then an array of one-element arrays, 13 bytes → ~50 bytes.
        var header = [UInt8]("GGUF".utf8) + formatsLEBytes(UInt32(3)) + formatsLEBytes(UInt64(0)) + formatsLEBytes(UInt64(1))
        header += formatsLEBytes(UInt64(1)) + [UInt8]("k".utf8) + formatsLEBytes(GGUFValueType.array.rawValue)
        let n = 2_000_000
        header += formatsLEBytes(GGUFValueType.array.rawValue) + formatsLEBytes(UInt64(n))
        var body = [UInt8]()
        body.reserveCapacity(n * 13)
        let one = formatsLEBytes(GGUFValueType.uint8.rawValue) + formatsLEBytes(UInt64(1)) + [0]
        for _ in 0..<n { body += one }
        let u = dir.appendingPathComponent("nested.gguf")
        try Data(header + body).write(to: u)
        assertFormatError(try GGUFFile(url: u), mentions: ["nested.gguf", "array of k", "memory"]) {
            if case .memoryLimit = $0 { return true }; return false
        }
    }
}

/// Little-endian bytes (test-local; the TestSupport helper is internal to that module).
func formatsLEBytes<T: FixedWidthInteger>(_ x: T) -> [UInt8] { withUnsafeBytes(of: x.littleEndian) { Array($0) } }

final class HostileTokenizerTests: XCTestCase {
    let tokens = ["<unk>", "<s>", "</s>", "a", "b", "ab"]

    func vocabulary(_ extra: [String: GGUFValue]) -> GGUFVocabulary {
        var md: [String: GGUFValue] = [
            "tokenizer.ggml.model": .string("llama"),
            "tokenizer.ggml.tokens": .array(.string, tokens.map { .string($0) }),
            "tokenizer.ggml.scores": .array(.float32, tokens.indices.map { .float32(-Float($0)) }),
            "tokenizer.ggml.token_type": .array(.int32, [2, 3, 3, 1, 1, 1].map { .int32($0) }),
            "tokenizer.ggml.add_space_prefix": .bool(false),
        ]
        for (k, v) in extra { md["tokenizer.ggml." + k] = v }
        return GGUFVocabulary(metadata: md)
    }

    func isBadMetadata(_ e: ModelFormatError) -> Bool { if case .badMetadata = e { return true }; return false }

    func testValidVocabularyBuilds() throws {
        let t = try XCTUnwrap(vocabulary([:]).makeTokenizer(file: "v.gguf"))
        XCTAssertEqual(t.encode("ab", parseSpecial: false, addBOS: true), [1, 5])
    }

    /// Crash class 3: a token type outside Int32 trapped in a conversion; 99 was silently "normal".
    func testTokenTypesOutsideTheKnownCodes() throws {
        for bad in [Int64(1) << 40, Int64(Int32.max) + 1, 99, -1, 7] {
            let v = vocabulary(["token_type": .array(.int64, [2, 3, 3, 1, bad, 1].map { .int64($0) })])
            assertFormatError(try v.makeTokenizer(file: "v.gguf"), mentions: ["v.gguf", "tokenizer.ggml.token_type", "element 4", "\(bad)", "0...6"], isBadMetadata)
        }
        // a u64 element beyond Int
        let v = vocabulary(["token_type": .array(.uint64, [2, 3, 3, 1, UInt64.max, 1].map { .uint64($0) })])
        assertFormatError(try v.makeTokenizer(file: "v.gguf"), mentions: ["tokenizer.ggml.token_type"], isBadMetadata)
        // the direct API and the dictionary API check too
        assertTokenizerError(try SentencePieceTokenizer(tokens: tokens, scores: nil, tokenTypes: [2, 3, 3, 1, 99, 1]),
                             mentions: ["token 4", "99", "0...6"])
        assertTokenizerError(try TokenizerGGUF.makeTokenizer(metadata: [
            TokenizerGGUF.modelKey: "llama", TokenizerGGUF.tokensKey: tokens,
            TokenizerGGUF.tokenTypeKey: [Int64(2), 3, 3, 1, 1 << 40, 1]]), mentions: ["token_type", "1099511627776"])
    }

    func testSpecialTokenIDs() throws {
        for key in ["bos_token_id", "eos_token_id", "unknown_token_id"] {
            for bad in [Int32(6), 1000, -2] {
                assertFormatError(try vocabulary([key: .int32(bad)]).makeTokenizer(file: "v.gguf"),
                                  mentions: ["v.gguf", "tokenizer.ggml.\(key)", "\(bad)", "0...5"], isBadMetadata)
            }
        }
        // −1 means "none": no BOS is added, and a protocol that needs BOS says so
        let t = try XCTUnwrap(vocabulary(["bos_token_id": .int32(-1)]).makeTokenizer(file: "v.gguf"))
        XCTAssertNil(t.bosTokenID)
        XCTAssertFalse(t.addsBOS)
        XCTAssertEqual(t.encode("ab"), [5])
        XCTAssertThrowsError(try t.requireBOSToken(for: "the llama.cpp protocol")) { e in
            XCTAssertTrue("\(e)".contains("BOS"), "\(e)")
        }
        XCTAssertNoThrow(try XCTUnwrap(vocabulary([:]).makeTokenizer(file: "v.gguf")).requireBOSToken(for: "x"))
        // the direct initializers check too
        assertTokenizerError(try SentencePieceTokenizer(tokens: tokens, scores: nil, tokenTypes: nil, bosTokenID: 6),
                             mentions: ["BOS", "6", "0...5"])
        assertTokenizerError(try BPETokenizer(tokens: ["a", "b"], merges: [], preTokenizer: "gpt2", bosTokenID: -5),
                             mentions: ["BOS", "-5"])
    }

    func testScoresMustBeFinite() throws {
        for bad in [Float.nan, .infinity, -.infinity] {
            let v = vocabulary(["scores": .array(.float32, [0, 0, 0, 0, bad, 0].map { .float32($0) })])
            assertFormatError(try v.makeTokenizer(file: "v.gguf"), mentions: ["tokenizer.ggml.scores", "element 4"], isBadMetadata)
            assertTokenizerError(try SentencePieceTokenizer(tokens: tokens, scores: [0, 0, 0, 0, bad, 0], tokenTypes: nil),
                                 mentions: ["token 4", "score"])
        }
    }

    func testMalformedByteTokensAndEmptyVocabularies() throws {
        for bad in ["<0xZZ>", "<0x+1>", "<0x4>", "x"] {
            assertTokenizerError(try SentencePieceTokenizer(tokens: ["<unk>", bad], scores: nil, tokenTypes: [2, 6]),
                                 mentions: ["token 1", "byte", "<0xNN>"])
        }
        XCTAssertNoThrow(try SentencePieceTokenizer(tokens: ["<unk>", "<0x4A>", "<0xff>"], scores: nil, tokenTypes: [2, 6, 6]))
        assertTokenizerError(try SentencePieceTokenizer(tokens: ["", "", ""], scores: nil, tokenTypes: nil), mentions: ["empty"])
        assertTokenizerError(try BPETokenizer(tokens: ["", ""], merges: [], preTokenizer: "gpt2"), mentions: ["empty"])
        assertTokenizerError(try SentencePieceTokenizer(tokens: [], scores: nil, tokenTypes: nil), mentions: ["empty"])
    }

    /// Wrong value types are named, not silently dropped (`compactMap`) or treated as absent.
    func testWrongValueTypes() throws {
        assertFormatError(try vocabulary(["tokens": .array(.int32, [.int32(1)])]).makeTokenizer(file: "v.gguf"),
                          mentions: ["tokenizer.ggml.tokens", "strings"], isBadMetadata)
        assertFormatError(try vocabulary(["scores": .array(.string, [.string("x")])]).makeTokenizer(file: "v.gguf"),
                          mentions: ["tokenizer.ggml.scores"], isBadMetadata)
        assertFormatError(try vocabulary(["bos_token_id": .string("1")]).makeTokenizer(file: "v.gguf"),
                          mentions: ["tokenizer.ggml.bos_token_id"], isBadMetadata)
        assertFormatError(try vocabulary(["add_bos_token": .uint8(1)]).makeTokenizer(file: "v.gguf"),
                          mentions: ["tokenizer.ggml.add_bos_token"], isBadMetadata)
    }

    /// Crash class 5: a negative added_tokens id wrote out of bounds; a huge id sized the table.
    func testAddedTokenIDs() throws {
        func json(addedID: Any) -> Data {
            let obj: [String: Any] = [
                "model": ["type": "BPE", "vocab": ["a": 0, "b": 1, "ab": 2], "merges": ["a b"]],
                "added_tokens": [["id": addedID, "content": "<|x|>", "special": true]],
                "pre_tokenizer": ["type": "ByteLevel", "add_prefix_space": false, "use_regex": true],
            ]
            return try! JSONSerialization.data(withJSONObject: obj)
        }
        XCTAssertEqual(try BPETokenizer(tokenizerJSONData: json(addedID: 3)).vocabularySize, 4)
        for bad in [-1, Int(Int32.min), 1 << 31, 1 << 40, Int.max] {
            assertTokenizerError(try BPETokenizer(tokenizerJSONData: json(addedID: bad)), mentions: ["\(bad)", "<|x|>"])
        }
        assertTokenizerError(try BPETokenizer(tokenizerJSONData: json(addedID: 1.5)), mentions: ["1.5"])
        assertTokenizerError(try BPETokenizer(tokenizerJSONData: json(addedID: "7")), mentions: ["<|x|>"])
        assertTokenizerError(try BPETokenizer(tokenizerJSONData: Data("{\"model\": [".utf8)), mentions: ["JSON"])
    }

    /// Crash class 4: a length varint ≥ 2^63 trapped in `Int(…)`; `Int.max` overflowed `pos + n`.
    func testSentencePieceLengthVarints() throws {
        func varint(_ v: UInt64) -> [UInt8] {
            var v = v, out: [UInt8] = []
            repeat { out.append(UInt8(v & 0x7F) | (v >= 0x80 ? 0x80 : 0)); v >>= 7 } while v > 0
            return out
        }
        for n in [UInt64(1) << 63, UInt64.max, UInt64(Int.max), UInt64(Int.max) - 1, 1000] {
            // field 1 (pieces), wire type 2, then the length
            let data = Data([0x0A] + varint(n) + [0x0A, 0x01, 0x61])
            assertTokenizerError(try SentencePieceTokenizer(sentencePieceModelData: data), mentions: ["\(n) bytes"])
            // the same inside a piece
            let inner = [0x0A] + varint(n)
            let outer = Data([0x0A] + varint(UInt64(inner.count)) + inner)
            assertTokenizerError(try SentencePieceTokenizer(sentencePieceModelData: outer), mentions: ["\(n) bytes"])
        }
        // an 11-byte varint
        assertTokenizerError(try SentencePieceTokenizer(sentencePieceModelData: Data([0x0A] + [UInt8](repeating: 0xFF, count: 11))),
                             mentions: ["varint"])
        // a piece type outside 1...6
        let piece: [UInt8] = [0x0A, 0x01, 0x61, 0x18] + varint(99)
        assertTokenizerError(try SentencePieceTokenizer(sentencePieceModelData: Data([0x0A, UInt8(piece.count)] + piece)),
                             mentions: ["type 99", "1...6"])
    }
}
