import Foundation
import XCTest
import ModelFormats
import LlamaModel
import TestSupport

/// The fuzzers' seeds (Tests/Fuzz/seeds) and the inputs they found (Tests/Fuzz/regressions).
/// Seeds are small valid files written by the fixture writers: this test rewrites them when
/// `QWB_WRITE_FUZZ_SEEDS=1`, and otherwise checks the committed ones are exactly what the writers
/// produce and that they load. Every regression input runs through the same path as its fuzz
/// target and must end in a typed error or a normal return — never a trap.
final class FuzzCorpusTests: XCTestCase {
    static let fuzzDir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../Fuzz").standardized

    static func tinyConfig(tied: Bool = false) -> ArchitectureConfig {
        .tinyLlama(hidden: 32, intermediate: 32, layers: 1, heads: 2, kvHeads: 1, vocab: 16, tied: tied)
    }

    static let tokens = ["<unk>", "<s>", "</s>", "a", "b", "c", "Ġ", "ab", "Ġa", "bc", "abc", "1", "2", "<0x41>", "é", "\n"]

    /// Seed files by target, as the writers produce them.
    static func seeds() throws -> [String: [String: Data]] {
        var out: [String: [String: Data]] = [:]
        let c = tinyConfig()
        var g1 = GGUFWriter.model(config: c, tensors: c.randomTensors(seed: 1), tokens: tokens)
        g1.set("tokenizer.ggml.model", .string("gpt2"))
        g1.set("tokenizer.ggml.pre", .string("gpt2"))
        g1.set("tokenizer.ggml.merges", .array(.string, ["a b", "Ġ a", "b c", "ab c"].map { .string($0) }))
        g1.set("tokenizer.ggml.token_type", .array(.int32, tokens.indices.map { .int32($0 < 3 ? 3 : 1) }))
        g1.set("tokenizer.ggml.bos_token_id", .uint32(1))
        g1.set("tokenizer.ggml.eos_token_id", .uint32(2))
        var g2 = GGUFWriter.model(config: c, tensors: c.randomTensors(seed: 2), matrixType: .q8_0, tokens: tokens)
        for key in ["block_count", "context_length", "embedding_length", "feed_forward_length", "attention.head_count",
                    "attention.head_count_kv"] {
            let v = g2.metadata.first { $0.0 == "llama." + key }!.1.int!
            g2.set("llama." + key, .uint64(UInt64(v)))
        }
        g2.set("llama.attention.key_length", .uint64(UInt64(c.headDim)))
        g2.set("tokenizer.ggml.model", .string("llama"))
        g2.set("tokenizer.ggml.scores", .array(.float32, tokens.indices.map { .float32(-Float($0)) }))
        g2.set("tokenizer.ggml.token_type", .array(.int64, tokens.indices.map { .int64($0 == 0 ? 2 : $0 < 3 ? 3 : $0 == 13 ? 6 : 1) }))
        g2.set("tokenizer.ggml.bos_token_id", .int32(1))
        out["gguf"] = ["tiny-gpt2.gguf": g1.data(), "tiny-spm-q8_0-u64.gguf": g2.data()]

        var st: [String: Data] = [:]
        for tied in [false, true] {
            let cfg = tinyConfig(tied: tied)
            let (w, json) = SafetensorsWriter.model(config: cfg, tensors: cfg.randomTensors(seed: 3))
            let j = try JSONSerialization.data(withJSONObject: json, options: [.sortedKeys])
            st["tiny-\(tied ? "tied" : "untied").bin"] = Data(withUnsafeBytes(of: UInt32(j.count).littleEndian) { Array($0) }) + j + w.data()
        }
        out["safetensors"] = st

        let tj: [String: Any] = [
            "model": ["type": "BPE", "vocab": ["a": 0, "b": 1, "c": 2, "ab": 3, "Ġ": 4, "Ġa": 5], "merges": ["a b", "Ġ a"]],
            "added_tokens": [["id": 6, "content": "<|endoftext|>", "special": true], ["id": 7, "content": "<x>", "special": false]],
            "pre_tokenizer": ["type": "ByteLevel", "add_prefix_space": false, "use_regex": true],
            "post_processor": ["type": "TemplateProcessing", "single": [["SpecialToken": ["id": "<|endoftext|>", "type_id": 0]]]],
        ]
        out["tokenizer_json"] = ["small.json": try JSONSerialization.data(withJSONObject: tj, options: [.sortedKeys])]
        return out
    }

    func testSeedsAreWhatTheWritersProduceAndLoad() throws {
        let seedDir = Self.fuzzDir.appendingPathComponent("seeds")
        let write = ProcessInfo.processInfo.environment["QWB_WRITE_FUZZ_SEEDS"] == "1"
        for (target, files) in try Self.seeds() {
            let dir = seedDir.appendingPathComponent(target)
            if write { try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true) }
            for (name, data) in files {
                let u = dir.appendingPathComponent(name)
                if write { try data.write(to: u) }
                XCTAssertEqual(try Data(contentsOf: u), data, "\(target)/\(name) differs from the writers' output; rerun with QWB_WRITE_FUZZ_SEEDS=1")
            }
        }
        // each gguf / safetensors seed loads with its tokenizer
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("qwb-seeds-\(getpid())")
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: tmp) }
        for name in try FileManager.default.contentsOfDirectory(atPath: seedDir.appendingPathComponent("gguf").path) {
            let loaded = try CheckpointLoader.load(seedDir.appendingPathComponent("gguf/\(name)"))
            XCTAssertEqual(loaded.tokenizer?.vocabularySize, Self.tokens.count, name)
        }
        for name in try FileManager.default.contentsOfDirectory(atPath: seedDir.appendingPathComponent("safetensors").path) {
            let folder = try Self.unpackSafetensorsInput(Data(contentsOf: seedDir.appendingPathComponent("safetensors/\(name)")), in: tmp)
            XCTAssertNoThrow(try CheckpointLoader.decoderModel(from: openCheckpoint(folder)), name)
        }
    }

    /// The safetensors target's input layout: u32 n, n bytes of config.json, the safetensors file.
    static func unpackSafetensorsInput(_ d: Data, in dir: URL) throws -> URL {
        let b = [UInt8](d)
        let n = b.count >= 4 ? Int(UInt32(b[0]) | UInt32(b[1]) << 8 | UInt32(b[2]) << 16 | UInt32(b[3]) << 24) : 0
        let split = min(b.count, 4 + n)
        let folder = dir.appendingPathComponent("hf-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try Data(b[min(4, b.count)..<split]).write(to: folder.appendingPathComponent("config.json"))
        try Data(b[split...]).write(to: folder.appendingPathComponent("model.safetensors"))
        return folder
    }

    /// Every committed crashing input, through its target's path: a typed error (or success), no trap.
    func testRegressionInputsEndInTypedErrors() throws {
        let regDir = Self.fuzzDir.appendingPathComponent("regressions")
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("qwb-regress-\(getpid())")
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: tmp) }
        var count = 0
        for target in ["gguf", "safetensors", "tokenizer_json", "tokenizer_model"] {
            let dir = regDir.appendingPathComponent(target)
            for name in (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? [] where !name.hasPrefix(".") {
                let data = try Data(contentsOf: dir.appendingPathComponent(name))
                count += 1
                do {
                    switch target {
                    case "gguf":
                        let u = tmp.appendingPathComponent("input.gguf")
                        try data.write(to: u)
                        let ckpt = try openCheckpoint(u)
                        _ = try CheckpointLoader.tokenizer(for: ckpt)
                        _ = try CheckpointLoader.decoderModel(from: ckpt)
                    case "safetensors":
                        let folder = try Self.unpackSafetensorsInput(data, in: tmp)
                        _ = try CheckpointLoader.decoderModel(from: openCheckpoint(folder))
                    case "tokenizer_json":
                        _ = try BPETokenizer(tokenizerJSONData: data).encode("Hello world")
                    default:
                        _ = try SentencePieceTokenizer(sentencePieceModelData: data).encode("Hello world")
                    }
                } catch is ModelFormatError {
                } catch is TokenizerError {
                } catch {
                    XCTFail("\(target)/\(name): untyped error \(error)")
                }
            }
        }
        print("FuzzCorpusTests: \(count) regression inputs")
    }
}
