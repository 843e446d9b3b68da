import XCTest
import QuantCore
import ModelFormats
import LlamaModel
import TestSupport
import RTN
@testable import Export

/// A quantized variant of a tiny GGUF model written as a compressed-tensors folder and loaded back.
final class CompressedTensorsExportTests: XCTestCase {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("qwb-ct-export-\(getpid())")
    override func tearDown() { try? FileManager.default.removeItem(at: dir) }

    func testPackedFoldersLoadBackToTheSameFunction() throws {
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let config = ArchitectureConfig.tinyLlama()
        let url = dir.appendingPathComponent("tiny.gguf")
        try GGUFWriter.model(config: config, tensors: config.randomTensors(seed: 5)).write(to: url)
        let loaded = try CheckpointLoader.load(url)
        for scheme in [WeightScheme(bits: 4, granularity: .group(32), symmetric: false),
                       WeightScheme(bits: 8, granularity: .channel, symmetric: true)] {
            let v = loaded.model.copy()
            _ = try v.assignSchemes(QuantScheme(weights: scheme), overrides: [])
            _ = try Pipeline(methods: [try RTN(options: MethodOptions(defaultsOf: RTN.options))]).run(model: v, calibration: [], runner: LlamaForward())
            let folder = dir.appendingPathComponent("ct-\(scheme.bits)").path
            let summary = try CompressedTensorsExport.write(v, float: loaded.model, architecture: "llama", contextLength: 128,
                                                            tokenizer: nil, variant: "v", to: folder)
            XCTAssertEqual(summary.tensorTypes.filter { $0.key.hasPrefix("int") }.values.reduce(0, +), 14, summary.text)
            let back = try CheckpointLoader.load(URL(fileURLWithPath: folder))
            // Linears other than q/k (whose rows the HF layout reorders for rotate-half RoPE) are bit-exact.
            for (a, b) in zip(v.allSites.flatMap(\.linears), back.model.allSites.flatMap(\.linears))
            where !a.name.hasSuffix("q_proj") && !a.name.hasSuffix("k_proj") {
                XCTAssertEqual(a.quantized!.dequantized().data, b.weight.data, a.name)
            }
            let windows = [[1, 5, 9, 3, 7, 2, 8, 4], [2, 2, 3, 30, 31, 4, 5, 6]]
            let expected = LlamaForward().logits(v, windows: windows, mode: .quantized)
            let got = LlamaForward().logits(back.model, windows: windows, mode: .float)
            XCTAssertLessThan(got.relativeError(to: expected), 1e-5, "int\(scheme.bits)")
        }
    }
}
