import XCTest
import QuantCore
import ModelFormats
import LlamaModel
import TestSupport

/// The same tiny model written by the test writers as GGUF (q/k rows permuted by llama.cpp's
/// convention → adjacent-pair RoPE) and as a Hugging Face folder (rotate-half RoPE) must give the
/// same logits through the loader and the forward pass.
final class CheckpointLoaderTests: XCTestCase {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("qwb-loader-\(getpid())")
    override func tearDown() { try? FileManager.default.removeItem(at: dir) }

    func write(_ config: ArchitectureConfig) throws -> (gguf: URL, hf: URL) {
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let tensors = config.randomTensors(seed: 7)
        let gguf = dir.appendingPathComponent("\(config.architecture)-tiny.gguf")
        try GGUFWriter.model(config: config, tensors: tensors).write(to: gguf)
        let hf = dir.appendingPathComponent("\(config.architecture)-hf")
        let (w, cfg) = SafetensorsWriter.model(config: config, tensors: tensors)
        try w.writeFolder(hf, config: cfg, shards: 2)
        return (gguf, hf)
    }

    func testBothFormatsAndRopeLayoutsGiveTheSameLogits() throws {
        for arch in ["llama", "qwen2"] {
            for tied in [false, true] {
                let (gguf, hf) = try write(.tinyLlama(architecture: arch, tied: tied))
                let a = try CheckpointLoader.load(gguf).model, b = try CheckpointLoader.load(hf).model
                XCTAssertEqual(a.config.ropeLayout, arch == "llama" ? .interleavedPairs : .rotateHalf)
                XCTAssertEqual(b.config.ropeLayout, .rotateHalf)
                let windows = [[1, 5, 9, 3, 7, 2, 8, 4, 6, 0, 11, 13], [2, 2, 3, 30, 31, 4, 5, 6, 7, 8, 9, 10]]
                let za = LlamaForward().logits(a, windows: windows, mode: .float)
                let zb = LlamaForward().logits(b, windows: windows, mode: .float)
                XCTAssertLessThan(za.relativeError(to: zb), 1e-5, "\(arch) tied \(tied)")
                if arch == "qwen2" { XCTAssertNotNil(a.blocks[0].qkv.linears[0].bias) }
            }
        }
    }

    func testAMissingTensorIsNamed() throws {
        let c = ArchitectureConfig.tinyLlama()
        var tensors = c.randomTensors(seed: 1)
        tensors["layers.1.mlp.up_proj"] = nil
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let url = dir.appendingPathComponent("missing.gguf")
        try GGUFWriter.model(config: c, tensors: tensors).write(to: url)
        XCTAssertThrowsError(try CheckpointLoader.load(url)) { e in
            XCTAssertTrue("\(e)".contains("missing.gguf"), "\(e)")
            XCTAssertTrue("\(e)".contains("up_proj") || "\(e)".contains("ffn_up"), "\(e)")
        }
    }

    /// A tensor holding NaN or infinity is reported as bad data in that tensor, in both formats.
    func testNonFiniteTensorDataIsNamed() throws {
        let c = ArchitectureConfig.tinyLlama(layers: 1)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        for bad in [Float.nan, .infinity] {
            var tensors = c.randomTensors(seed: 2)
            tensors["layers.0.mlp.down_proj"]![17] = bad
            let g = dir.appendingPathComponent("nan.gguf")
            try GGUFWriter.model(config: c, tensors: tensors).write(to: g)
            let hf = dir.appendingPathComponent("nan-hf")
            let (w, cfg) = SafetensorsWriter.model(config: c, tensors: tensors)
            try w.writeFolder(hf, config: cfg)
            for (url, stored) in [(g, "blk.0.ffn_down.weight"), (hf, "model.layers.0.mlp.down_proj.weight")] {
                XCTAssertThrowsError(try CheckpointLoader.load(url)) { e in
                    guard case .badTensorData(let file, let tensor, let reason)? = e as? ModelFormatError else {
                        return XCTFail("expected badTensorData, got \(e)")
                    }
                    XCTAssertTrue(file.hasSuffix(url.lastPathComponent), file)
                    XCTAssertTrue(tensor.contains("layers.0.mlp.down_proj") && tensor.contains(stored), tensor)
                    XCTAssertTrue(reason.contains("index 17") && reason.contains("\(bad)"), reason)
                }
            }
        }
    }

    /// GGUF tokenizer keys go through the checked path: a token type beyond Int32 is an error naming the key.
    func testTokenizerMetadataIsChecked() throws {
        let c = ArchitectureConfig.tinyLlama(layers: 1)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        var w = GGUFWriter.model(config: c, tensors: c.randomTensors(seed: 3), tokens: (0..<c.vocabSize).map { "t\($0)" })
        w.set("tokenizer.ggml.model", .string("gpt2"))
        w.set("tokenizer.ggml.merges", .array(.string, []))
        w.set("tokenizer.ggml.pre", .string("gpt2"))
        w.set("tokenizer.ggml.token_type", .array(.int64, (0..<c.vocabSize).map { .int64($0 == 5 ? 1 << 40 : 1) }))
        let url = dir.appendingPathComponent("types.gguf")
        try w.write(to: url)
        XCTAssertThrowsError(try CheckpointLoader.load(url)) { e in
            XCTAssertTrue("\(e)".contains("types.gguf") && "\(e)".contains("tokenizer.ggml.token_type") && "\(e)".contains("1099511627776"), "\(e)")
        }
        w.set("tokenizer.ggml.token_type", .array(.int64, (0..<c.vocabSize).map { _ in .int64(1) }))
        try w.write(to: url)
        XCTAssertEqual(try CheckpointLoader.load(url).tokenizer?.vocabularySize, c.vocabSize)
    }
}
