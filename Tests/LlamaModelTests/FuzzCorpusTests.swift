import Foundation
import XCTest
import ModelFormats
import LlamaModel
import TestSupport
import QuantCore
import Recipes
import RTN
import SmoothQuant
import Hadamard
import DuQuant
import GPTQ
import TrainingQuantization
import TrainingRTN
import HadamardQuantizer
import BitSplitLSS

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
        // compressed-tensors folders (pack-quantized int4 sym channel, int4 asym g32, int8 sym
        // channel; float tensors f32 or bf16) as CompressedTensorsWriter writes them
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("qwb-ct-seeds-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: tmp) }
        for (name, cfg, dtype) in [("ct-llama-int4-int8.bin", ArchitectureConfig.tinyLlama(hidden: 32, intermediate: 32, layers: 2, heads: 2, kvHeads: 1, vocab: 16), SafetensorsDType.f32),
                                   ("ct-qwen2-tied-bf16.bin", ArchitectureConfig.tinyLlama(architecture: "qwen2", hidden: 32, intermediate: 32, layers: 1, heads: 2, kvHeads: 1, vocab: 16, tied: true), .bf16)] {
            let fx = CompressedTensorsFixture.make(config: cfg, seed: 5)
            let folder = tmp.appendingPathComponent(name)
            try CompressedTensorsWriter.write(to: folder, config: cfg, quantized: fx.quantized, floats: fx.floats, floatDType: dtype)
            let j = try Data(contentsOf: folder.appendingPathComponent("config.json"))
            st[name] = Data(withUnsafeBytes(of: UInt32(j.count).littleEndian) { Array($0) }) + j
                + (try Data(contentsOf: folder.appendingPathComponent(CompressedTensorsWriter.modelFile)))
        }
        out["safetensors"] = st

        let tj: [String: Any] = [
            "model": ["type": "BPE", "vocab": ["a": 0, "b": 1, "c": 2, "ab": 3, "Ġ": 4, "Ġa": 5], "merges": ["a b", "Ġ a"]],
            "added_tokens": [["id": 6, "content": "<|endoftext|>", "special": true], ["id": 7, "content": "<x>", "special": false]],
            "pre_tokenizer": ["type": "ByteLevel", "add_prefix_space": false, "use_regex": true],
            "post_processor": ["type": "TemplateProcessing", "single": [["SpecialToken": ["id": "<|endoftext|>", "type_id": 0]]]],
        ]
        out["tokenizer_json"] = ["small.json": try JSONSerialization.data(withJSONObject: tj, options: [.sortedKeys])]

        // recipe: every recipe in recipes/ as committed, plus small recipes using every key.
        var recipes: [String: Data] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: recipesDir.path) where name.hasSuffix(".yaml") {
            recipes[name] = try Data(contentsOf: recipesDir.appendingPathComponent(name))
        }
        for (name, text) in keyRecipes { recipes[name] = Data(text.utf8) }
        out["recipe"] = recipes
        return out
    }

    static let recipesDir = fuzzDir.appendingPathComponent("../../recipes").standardized

    /// Small recipes that between them use every key of run and training recipes (and every
    /// method and training quantizer option). Their paths resolve in `FuzzWorkingDirectory`.
    static let keyRecipes: [String: String] = [
        "run-every-key.yaml": """
            model: {seed: 7}
            seed: 3
            calibration: {text: [train.txt, valid.txt], windows: 4, seq_len: 64, seed: 5}
            evaluation: {text: valid.txt, protocol: standard, seq_len: 64, max_windows: 2, max_tokens: 1000, batch: 2}
            scheme:
              weights: {bits: 4, granularity: {group: 32}, symmetric: false, clip: 0.9, scales: f16}
              activations: {bits: 8, granularity: tensor, symmetric: true, clip: 1.0}
            attention: {bits: 8, symmetric: true, clip: 1.0, queries: true, keys: true, values: false, hadamard: true}
            overrides:
              - pattern: "layers.*.mlp.down_proj"
                weights: {bits: 8, granularity: channel, scales: f32}
                activations: {bits: 16}
              - pattern: "layers.0.*"
                activations: {bits: 6, granularity: token, symmetric: false, clip: 0.95}
            pipeline:
              - smoothquant: {alpha: auto, sites: ["layers.*.qkv", "layers.*.gate_up"], site_alpha: {"layers.*.down": 0.8}, alpha_step: 0.1, search_rows: 64}
              - hadamard: {block_size: "16", random_signs: false, sites: ["*.down"], rotate_residual: true}
              - gptq: {percdamp: 0.02, block_size: 32, act_order: true, static_groups: true}
            propagation: float_activations
            invariance_tolerance: 0.001
            engine: simulated
            report: {sites: [layers.0.down, layers.1.qkv]}
            output: {dir: runs/fuzz-every-key, export: compressed-tensors}
            variants:
              - name: GPTQ g32
              - name: DuQuant W4A4
                scheme:
                  weights: {bits: 4, granularity: tensor, symmetric: true}
                  activations: {bits: 4, granularity: token}
                attention: {bits: 16}
                overrides: []
                pipeline:
                  - duquant: {alpha: 0.5, smooth: false, block_size: auto, rotation_steps: 8, permutation_times: 2, variant: code, calibrate_on: rows, sample_rows: 64}
                  - rtn
                propagation: float_model
              - name: Hadamard full
                pipeline: [{hadamard: {block_size: full}}, {duquant: {block_size: 16, variant: paper, calibrate_on: mean}}, rtn]
                propagation: quantized

            """,
        "run-export-gguf.yaml": """
            model: {path: model.gguf}
            evaluation: {text: synthetic, protocol: llama.cpp}
            scheme:
              weights: {bits: 8, granularity: {group: 32}, symmetric: true, scales: f16}
            pipeline: [rtn]
            output: {export: gguf}
            report: {}

            """,
        "run-fp-only.yaml": """
            model: model.gguf
            calibration: {text: synthetic}
            output: runs/fp-only

            """,
        "train-every-key.yaml": """
            model: {layers: 2, hidden: 64, heads: 4, kv_heads: 2, ffn: 128, context: 64, tied: true}
            train_text: train.txt
            validation_text: valid.txt
            steps: 20
            batch_size: 2
            seq_len: 32
            lr: 1e-3
            warmup: 2
            min_lr: 1e-4
            adamw: {beta1: 0.8, beta2: 0.99, eps: 1e-6, weight_decay: 0.05}
            grad_clip: 0.5
            seed: 4
            validate_every: 5
            validation_windows: 3
            validation_placement: spread
            checkpoint_every: 10
            output: runs/fuzz-train
            quantizer: {hq: {block_size: "32", backward: f32, lss: skip_zero}}
            variants:
              - name: default
              - name: f32
                quantizer: f32
                seed: 1
              - name: hq-dynamic
                quantizer: {hq: {block_size: dynamic, backward: bs_lss, lss: sample}}
              - name: rtn4
                quantizer: {rtn: {bits: 4}}
              - name: bs_lss.skip
                quantizer: {bs_lss: {lss: skip_zero}}

            """,
        "train-reference.yaml": """
            model: reference
            train_text: train.txt
            validation_text: valid.txt
            steps: 3
            batch_size: 1
            seq_len: 16
            lr: 2e-5
            validation_placement: start
            quantizer: bs_lss

            """,
        "train-model-path.yaml": """
            model: {path: model.gguf}
            train_text: ../shared/data/wikitext-2-raw/wiki.valid.raw
            validation_text: ../shared/data/wikitext-2-raw/wiki.test.raw
            steps: 2
            batch_size: 1
            seq_len: 8
            lr: 0.01
            quantizer: {rtn: {bits: 8}}

            """,
    ]

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
            if name.hasPrefix("ct-") {   // the compressed-tensors seeds reach the packed path
                let ckpt = try XCTUnwrap(try openCheckpoint(folder) as? SafetensorsCheckpoint, name)
                XCTAssertFalse(ckpt.packedTensorNames.isEmpty, name)
            }
        }
    }

    /// The recipe target's registries: the built-in methods and training quantizers.
    static let methods = MethodRegistry([RTN.self, SmoothQuant.self, Hadamard.self, DuQuant.self, GPTQ.self])
    static let trainingQuantizers = TrainingQuantizerRegistry([HadamardQuantizer.self, BitSplitLSS.self, TrainingRTN.self])

    /// Runs `body` in the working directory the recipe target runs in (Tests/Fuzz/recipe.swift):
    /// `train.txt`, `valid.txt`, `model.gguf`, and `../shared/data/wikitext-2-raw/wiki.{valid,test}.raw`.
    static func inFuzzWorkingDirectory<T>(_ body: () throws -> T) throws -> T {
        let fm = FileManager.default
        let root = fm.temporaryDirectory.appendingPathComponent("qwb-fuzz-wd-\(UUID().uuidString)")
        let work = root.appendingPathComponent("work"), data = root.appendingPathComponent("shared/data/wikitext-2-raw")
        try fm.createDirectory(at: work, withIntermediateDirectories: true)
        try fm.createDirectory(at: data, withIntermediateDirectories: true)
        defer { try? fm.removeItem(at: root) }
        for u in [work.appendingPathComponent("train.txt"), work.appendingPathComponent("valid.txt"), work.appendingPathComponent("model.gguf"),
                  data.appendingPathComponent("wiki.valid.raw"), data.appendingPathComponent("wiki.test.raw")] {
            try Data("some text\n".utf8).write(to: u)
        }
        let previous = fm.currentDirectoryPath
        guard fm.changeCurrentDirectoryPath(work.path) else { throw CocoaError(.fileNoSuchFile) }
        defer { _ = fm.changeCurrentDirectoryPath(previous) }
        return try body()
    }

    /// Every recipe seed is valid: a training recipe (it has `train_text` / `validation_text`)
    /// parses as one, any other as a run recipe; between them they use both kinds' keys.
    func testRecipeSeedsAreValid() throws {
        let dir = Self.fuzzDir.appendingPathComponent("seeds/recipe")
        var training = 0, run = 0
        try Self.inFuzzWorkingDirectory {
            for name in try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted() where name.hasSuffix(".yaml") {
                let text = try String(contentsOf: dir.appendingPathComponent(name), encoding: .utf8)
                if TrainingRecipe.isTrainingRecipe(path: dir.appendingPathComponent(name).path) {
                    XCTAssertNoThrow(try TrainingRecipe.parse(yaml: text, file: name, registry: Self.trainingQuantizers), name)
                    training += 1
                } else {
                    XCTAssertNoThrow(try Recipe.parse(yaml: text, file: name, registry: Self.methods), name)
                    run += 1
                }
            }
        }
        XCTAssertGreaterThanOrEqual(training, 5)
        XCTAssertGreaterThanOrEqual(run, 10)
        // the small recipes reach what the committed ones do not
        try Self.inFuzzWorkingDirectory {
            let all = try Recipe.parse(yaml: Self.keyRecipes["run-every-key.yaml"]!, registry: Self.methods)
            XCTAssertEqual(all.exportFormat, "compressed-tensors")
            XCTAssertEqual(all.reportSites, ["layers.0.down", "layers.1.qkv"])
            XCTAssertEqual(all.variants.map(\.name), ["GPTQ g32", "DuQuant W4A4", "Hadamard full"])
            XCTAssertTrue(all.variants[0].scheme.weights.f16Scales)
            let t = try TrainingRecipe.parse(yaml: Self.keyRecipes["train-every-key.yaml"]!, registry: Self.trainingQuantizers)
            XCTAssertEqual(t.runs.map { $0.quantizer.name }, ["hq", "f32", "hq", "rtn", "bs_lss"])
            XCTAssertEqual(t.runs.map(\.seed), [4, 1, 4, 4, 4])
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
        for target in ["gguf", "safetensors", "tokenizer_json", "tokenizer_model", "recipe"] {
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
                    case "recipe":
                        let text = String(decoding: data, as: UTF8.self)
                        try Self.inFuzzWorkingDirectory {
                            for parse in [{ _ = try Recipe.parse(yaml: text, file: name, registry: Self.methods) },
                                          { _ = try TrainingRecipe.parse(yaml: text, file: name, registry: Self.trainingQuantizers) }] {
                                do { try parse() } catch is RecipeError {} catch is YAMLError {}
                            }
                        }
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
