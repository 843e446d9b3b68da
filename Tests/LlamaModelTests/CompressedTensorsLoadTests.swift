import XCTest
import QuantCore
import ModelFormats
import LlamaModel
import TestSupport

/// A compressed-tensors export loads through `CheckpointLoader` into the model its dequantized
/// weights describe: the same logits as a plain f32 folder holding those weights.
final class CompressedTensorsLoadTests: XCTestCase {
    var dir: URL!
    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("qwb-ct-load-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }
    override func tearDown() { try? FileManager.default.removeItem(at: dir) }

    let windows = [[1, 5, 9, 3, 7, 2, 8, 4, 6, 0, 11, 13], [2, 2, 3, 30, 31, 4, 5, 6, 7, 8, 9, 10]]

    /// Logits of the export equal, bit for bit, those of a plain f32 folder of the dequantized weights.
    func testExportedModelGivesTheLogitsOfItsDequantizedWeights() throws {
        for arch in ["llama", "qwen2"] {
            let config = ArchitectureConfig.tinyLlama(architecture: arch)
            let fx = CompressedTensorsFixture.make(config: config)
            let export = dir.appendingPathComponent("\(arch)-ct")
            try CompressedTensorsWriter.write(to: export, config: config, quantized: fx.quantized, floats: fx.floats)
            let plain = dir.appendingPathComponent("\(arch)-plain")
            let (w, cfg) = SafetensorsWriter.model(config: config, tensors: fx.dequantizedTensors)
            try w.writeFolder(plain, config: cfg)

            let a = try CheckpointLoader.load(export).model, b = try CheckpointLoader.load(plain).model
            let za = LlamaForward().logits(a, windows: windows, mode: .float)
            let zb = LlamaForward().logits(b, windows: windows, mode: .float)
            XCTAssertEqual(za.data.map(\.bitPattern), zb.data.map(\.bitPattern), arch)
            XCTAssertTrue(a.provenance.contains("pack-quantized int4 sym channel"), a.provenance)
        }
    }

    /// A GGUF llama source (q/k rows in adjacent-pair RoPE order) quantized as the workbench holds
    /// it, exported (rows reordered to rotate-half) and loaded back, gives the logits of the source
    /// model carrying the same dequantized weights (up to float summation order within a head).
    func testGGUFLayoutSourceExportsToAnEquivalentModel() throws {
        let hf = ArchitectureConfig.tinyLlama()
        let gguf = dir.appendingPathComponent("src.gguf")
        try GGUFWriter.model(config: hf, tensors: hf.randomTensors(seed: 4)).write(to: gguf)
        let source = try CheckpointLoader.load(gguf)
        let ckpt = source.checkpoint
        XCTAssertEqual(ckpt.config.ropeLayout, .interleavedPairs)
        let tensors = Dictionary(uniqueKeysWithValues: try ckpt.tensorNames.map { ($0, try ckpt.floats($0)) })
        let fx = CompressedTensorsFixture.make(config: ckpt.config, tensors: tensors)
        let export = dir.appendingPathComponent("from-gguf")
        try CompressedTensorsWriter.write(to: export, config: ckpt.config, quantized: fx.quantized, floats: fx.floats)
        let exported = try CheckpointLoader.load(export).model
        XCTAssertEqual(exported.config.ropeLayout, .rotateHalf)

        // the source model with the quantized weights, in its own (adjacent-pair) layout
        let model = source.model
        for q in fx.quantized {
            let linear = try XCTUnwrap(model.allLinears.first { $0.name == q.name }, q.name)
            linear.weight = Matrix(rows: q.rows, cols: q.cols, data: q.dequantized())
        }
        let za = LlamaForward().logits(exported, windows: windows, mode: .float)
        let zs = LlamaForward().logits(model, windows: windows, mode: .float)
        XCTAssertLessThan(za.relativeError(to: zs), 1e-5)
        // without the reordering the rotary embedding pairs the wrong rows: far apart
        let unordered = try CheckpointLoader.load(export).model
        for q in fx.quantized where q.name.hasSuffix("q_proj") || q.name.hasSuffix("k_proj") {
            let linear = try XCTUnwrap(unordered.allLinears.first { $0.name == q.name })
            linear.weight = Matrix(rows: q.rows, cols: q.cols, data: q.dequantized())
        }
        XCTAssertGreaterThan(LlamaForward().logits(unordered, windows: windows, mode: .float).relativeError(to: zs), 1e-3)
    }
}
