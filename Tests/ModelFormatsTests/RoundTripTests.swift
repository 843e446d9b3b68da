import Foundation
import XCTest
@testable import ModelFormats
import TestSupport

/// Writers → readers, checkpoint API, canonical mapping.
final class RoundTripTests: XCTestCase {
    func testGGUFWriterTypesRoundTrip() throws {
        let dir = try temporaryDirectory(self)
        let x = randomFloats(8 * 64, seed: 7)
        var w = GGUFWriter(architecture: "test")
        w.set("test.list", .array(.array, [.array(.uint8, [.uint8(1)]), .array(.uint8, [])]))
        for t: GGMLType in [.f32, .f16, .q8_0, .q4_1] { w.addTensor("x.\(t.name)", shape: [8, 64], values: x, type: t) }
        for version: UInt32 in [2, 3] {
            w.version = version
            let url = dir.appendingPathComponent("rt\(version).gguf")
            try w.write(to: url)
            let f = try GGUFFile(url: url)
            XCTAssertEqual(f.version, version)
            XCTAssertEqual(f.metadata["test.list"], .array(.array, [.array(.uint8, [.uint8(1)]), .array(.uint8, [])]))
            XCTAssertEqual(f.tensors.map(\.shape), Array(repeating: [8, 64], count: 4))
            XCTAssertEqual(try f.floats("x.F32"), x)
            XCTAssertEqual(try f.floats("x.F16"), x.map { halfBitsToFloat(floatToHalfBits($0)) })
            for (name, levels) in [("x.Q8_0", Float(127)), ("x.Q4_1", Float(7.5))] {
                let y = try f.floats(name)
                for b in 0..<(x.count / 32) {
                    let blk = x[32 * b..<32 * b + 32]
                    let step = name == "x.Q8_0" ? blk.map(abs).max()! / levels : (blk.max()! - blk.min()!) / 15
                    for j in 32 * b..<32 * b + 32 {
                        XCTAssertEqual(y[j], x[j], accuracy: step * 0.5 + 2e-3, "\(name)[\(j)]")
                    }
                }
            }
        }
    }

    func testCustomAlignment() throws {
        let dir = try temporaryDirectory(self)
        var w = GGUFWriter()
        w.alignment = 64
        w.addTensor("a", shape: [3], values: [1, 2, 3])
        w.addTensor("b", shape: [2], values: [4, 5])
        let url = dir.appendingPathComponent("a.gguf")
        try w.write(to: url)
        let f = try GGUFFile(url: url)
        XCTAssertEqual(f.alignment, 64)
        XCTAssertEqual(f.dataOffset % 64, 0)
        XCTAssertEqual(f.tensor(named: "b")?.offset, 64)
        XCTAssertEqual(try f.floats("b"), [4, 5])
    }

    func testCanonicalNames() {
        let cases = ["token_embd.weight": "embed_tokens", "output_norm.weight": "norm", "output.weight": "lm_head",
                     "blk.3.attn_norm.weight": "layers.3.input_layernorm", "blk.3.attn_q.weight": "layers.3.self_attn.q_proj",
                     "blk.3.attn_k.bias": "layers.3.self_attn.k_proj.bias", "blk.3.attn_v.weight": "layers.3.self_attn.v_proj",
                     "blk.3.attn_output.weight": "layers.3.self_attn.o_proj", "blk.3.ffn_norm.weight": "layers.3.post_attention_layernorm",
                     "blk.3.ffn_gate.weight": "layers.3.mlp.gate_proj", "blk.12.ffn_up.weight": "layers.12.mlp.up_proj",
                     "blk.3.ffn_down.weight": "layers.3.mlp.down_proj"]
        for (g, c) in cases {
            XCTAssertEqual(GGUFCheckpoint.canonicalName(g), c)
            XCTAssertEqual(GGUFWriter.ggufName(canonical: c), g)
        }
        XCTAssertNil(GGUFCheckpoint.canonicalName("rope_freqs"))
        XCTAssertNil(GGUFCheckpoint.canonicalName("blk.x.attn_q.weight"))
        XCTAssertEqual(SafetensorsCheckpoint.canonicalName("model.layers.0.self_attn.q_proj.weight"), "layers.0.self_attn.q_proj")
        XCTAssertEqual(SafetensorsCheckpoint.canonicalName("model.layers.0.self_attn.q_proj.bias"), "layers.0.self_attn.q_proj.bias")
        XCTAssertEqual(SafetensorsCheckpoint.canonicalName("lm_head.weight"), "lm_head")
    }

    /// The same weights written as GGUF and as an HF folder load to the same canonical tensors
    /// (GGUF q/k rows in llama.cpp's permuted order, reported as `interleavedPairs`).
    func testSameModelInBothFormats() throws {
        let dir = try temporaryDirectory(self)
        let cfg = ArchitectureConfig.tinyLlama()
        let weights = cfg.randomTensors(seed: 3)
        let g = dir.appendingPathComponent("tiny.gguf")
        try GGUFWriter.model(config: cfg, tensors: weights, tokens: (0..<cfg.vocabSize).map { "t\($0)" }).write(to: g)
        let (sw, json) = SafetensorsWriter.model(config: cfg, tensors: weights)
        let hf = dir.appendingPathComponent("hf")
        try sw.writeFolder(hf, config: json, shards: 3)
        XCTAssertTrue(FileManager.default.fileExists(atPath: hf.appendingPathComponent("model.safetensors.index.json").path))

        let a = try openCheckpoint(g), b = try openCheckpoint(hf)
        var expectA = cfg; expectA.ropeLayout = .interleavedPairs
        XCTAssertEqual(a.config, expectA)
        XCTAssertEqual(b.config, cfg)
        XCTAssertEqual(a.tensorNames, b.tensorNames)
        XCTAssertEqual(a.tensorNames.count, cfg.expectedTensors.count)
        XCTAssertFalse(a.metadata.isEmpty)
        XCTAssertTrue(b.metadata.isEmpty)
        for name in a.tensorNames {
            XCTAssertEqual(a.info(name)?.shape, b.info(name)?.shape, name)
            let va = try a.floats(name), vb = try b.floats(name)
            if name.hasSuffix("q_proj") || name.hasSuffix("k_proj") {
                let shape = a.info(name)!.shape
                let heads = name.hasSuffix("q_proj") ? cfg.headCount : cfg.kvHeadCount
                XCTAssertEqual(va, GGUFWriter.permuteForInterleavedRope(vb, rows: shape[0], cols: shape[1], heads: heads), name)
                XCTAssertNotEqual(va, vb, name)
            } else {
                XCTAssertEqual(va, vb, name)
            }
            XCTAssertEqual(vb, weights[name], name)
        }
        XCTAssertEqual(a.info("layers.1.mlp.down_proj")?.storageName, "blk.1.ffn_down.weight")
        XCTAssertEqual(b.info("layers.1.mlp.down_proj")?.storageName, "model.layers.1.mlp.down_proj.weight")
        XCTAssertEqual(b.info("lm_head")?.shape, [cfg.vocabSize, cfg.hiddenSize])
    }

    func testQuantizedGGUFModelAndSingleSafetensorsFile() throws {
        let dir = try temporaryDirectory(self)
        let cfg = ArchitectureConfig.tinyLlama(tied: true)
        let weights = cfg.randomTensors()
        let g = dir.appendingPathComponent("q.gguf")
        try GGUFWriter.model(config: cfg, tensors: weights, matrixType: .q4_1).write(to: g)
        let a = try openCheckpoint(g)
        XCTAssertEqual(a.config.vocabSize, cfg.vocabSize)  // from embedding rows (no tokens array)
        XCTAssertTrue(a.config.tiedEmbeddings)
        XCTAssertEqual(a.info("layers.0.mlp.up_proj")?.storageType, "Q4_1")
        XCTAssertEqual(a.info("layers.0.mlp.up_proj")?.byteCount, 96 * 64 / 32 * 20)
        XCTAssertEqual(a.info("norm")?.storageType, "F32")
        let gc = try XCTUnwrap(a as? GGUFCheckpoint)
        let raw = gc.withStoredBytes("layers.0.mlp.up_proj") { info, bytes in
            (info.type, info.dims, Array(bytes.prefix(4)), info.type.dequantize(bytes, count: info.elementCount))
        }
        XCTAssertEqual(raw?.0, .q4_1)
        XCTAssertEqual(raw?.1, [64, 96])
        XCTAssertEqual(raw?.3, try a.floats("layers.0.mlp.up_proj"))
        XCTAssertEqual(Array(GGUFWriter.quantizeQ4_1(weights["layers.0.mlp.up_proj"]!).prefix(4)), raw?.2)
        XCTAssertNil(gc.withStoredBytes("nope") { _, _ in 0 })

        let (sw, json) = SafetensorsWriter.model(config: cfg, tensors: weights, dtype: .bf16)
        let hf = dir.appendingPathComponent("hf")
        try sw.writeFolder(hf, config: json)
        for url in [hf, hf.appendingPathComponent("model.safetensors")] {
            let b = try openCheckpoint(url)
            XCTAssertTrue(b.config.tiedEmbeddings)
            XCTAssertNil(b.info("lm_head"))
            XCTAssertEqual(b.info("norm")?.storageType, "BF16")
            let v = try b.floats("layers.1.self_attn.o_proj")
            for (x, y) in zip(v, weights["layers.1.self_attn.o_proj"]!) { XCTAssertEqual(x, y, accuracy: abs(y) / 128 + 1e-30) }
        }
    }

    /// tie_word_embeddings = true ignores a present lm_head; a missing lm_head means tied unless the flag says false (then it is an error).
    func testTiedEmbeddingsVariants() throws {
        let dir = try temporaryDirectory(self)
        let untied = ArchitectureConfig.tinyLlama(layers: 1)
        let weights = untied.randomTensors()
        var (sw, json) = SafetensorsWriter.model(config: untied, tensors: weights)
        json["tie_word_embeddings"] = true
        try sw.writeFolder(dir.appendingPathComponent("flag"), config: json)
        let a = try openCheckpoint(dir.appendingPathComponent("flag"))
        XCTAssertTrue(a.config.tiedEmbeddings)
        XCTAssertFalse(a.tensorNames.contains("lm_head"))

        var noHead = weights; noHead["lm_head"] = nil
        (sw, json) = SafetensorsWriter.model(config: untied, tensors: noHead)
        try sw.writeFolder(dir.appendingPathComponent("nohead"), config: json)
        // config.json says tie_word_embeddings: false, so a missing lm_head is a damaged checkpoint
        assertFormatError(try openCheckpoint(dir.appendingPathComponent("nohead")), mentions: ["nohead", "lm_head.weight", "tie_word_embeddings"]) {
            if case .missingTensor = $0 { return true }; return false
        }
        // without the flag a missing lm_head means tied
        json["tie_word_embeddings"] = nil
        try sw.writeFolder(dir.appendingPathComponent("noflag"), config: json)
        XCTAssertTrue(try openCheckpoint(dir.appendingPathComponent("noflag")).config.tiedEmbeddings)

        let g = dir.appendingPathComponent("u.gguf")
        try GGUFWriter.model(config: untied, tensors: weights).write(to: g)
        let c = try openCheckpoint(g)
        XCTAssertFalse(c.config.tiedEmbeddings)
        XCTAssertEqual(try c.floats("lm_head"), weights["lm_head"])
    }

    func testQwen2BiasesAndMistral() throws {
        let dir = try temporaryDirectory(self)
        let q = ArchitectureConfig.tinyLlama(architecture: "qwen2", layers: 1)
        XCTAssertTrue(q.hasQKVBias)
        let w = q.randomTensors()
        let (sw, json) = SafetensorsWriter.model(config: q, tensors: w)
        try sw.writeFolder(dir.appendingPathComponent("qwen"), config: json)
        let a = try openCheckpoint(dir.appendingPathComponent("qwen"))
        XCTAssertEqual(a.config, q)
        XCTAssertEqual(try a.floats("layers.0.self_attn.k_proj.bias"), w["layers.0.self_attn.k_proj.bias"])
        XCTAssertEqual(a.info("layers.0.self_attn.k_proj.bias")?.storageName, "model.layers.0.self_attn.k_proj.bias")

        let g = dir.appendingPathComponent("qwen.gguf")
        try GGUFWriter.model(config: q, tensors: w).write(to: g)
        let b = try openCheckpoint(g)
        XCTAssertEqual(b.config, q)  // qwen2 GGUF keeps rotate-half
        XCTAssertEqual(try b.floats("layers.0.self_attn.q_proj"), w["layers.0.self_attn.q_proj"])
        XCTAssertEqual(try b.floats("layers.0.self_attn.v_proj.bias"), w["layers.0.self_attn.v_proj.bias"])

        var wNoBias = w; wNoBias["layers.0.self_attn.v_proj.bias"] = nil
        let (sw2, json2) = SafetensorsWriter.model(config: q, tensors: wNoBias)
        try sw2.writeFolder(dir.appendingPathComponent("qwen-nobias"), config: json2)
        assertFormatError(try openCheckpoint(dir.appendingPathComponent("qwen-nobias")), mentions: ["layers.0.self_attn.v_proj.bias"]) {
            if case .missingTensor = $0 { return true }; return false
        }

        let m = ArchitectureConfig.tinyLlama(architecture: "mistral", layers: 1)
        let (sw3, json3) = SafetensorsWriter.model(config: m, tensors: m.randomTensors())
        try sw3.writeFolder(dir.appendingPathComponent("mistral"), config: json3)
        XCTAssertEqual(try openCheckpoint(dir.appendingPathComponent("mistral")).config, m)
    }

    func testSafetensorsWriterMatchesFixtureReader() throws {
        let dir = try temporaryDirectory(self)
        var w = SafetensorsWriter()
        w.metadata = ["format": "pt"]
        w.add("a \"quoted\"", shape: [2, 2], values: [1, -2, 3.5, 0])
        w.add("h", shape: [3], values: [0.1, 0.2, 65504], dtype: .f16)
        w.add("s", shape: [], values: [7], dtype: .bf16)
        let url = dir.appendingPathComponent("w.safetensors")
        try w.write(to: url)
        let f = try SafetensorsFile(url: url)
        XCTAssertEqual(f.metadata["format"], "pt")
        XCTAssertEqual(try f.floats("a \"quoted\""), [1, -2, 3.5, 0])
        XCTAssertEqual(try f.floats("h"), [0.1, 0.2, 65504].map { halfBitsToFloat(floatToHalfBits($0)) })
        XCTAssertEqual(try f.floats("s"), [7])
        XCTAssertEqual(f.dataOffset % 8, 0)
    }
}
