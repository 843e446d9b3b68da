import XCTest
import QuantCore
import ModelFormats
import LlamaModel
import TestSupport
import RTN
@testable import Export

/// A quantized variant of a tiny GGUF model, exported and loaded back by the reader.
final class GGUFExportTests: XCTestCase {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("qwb-export-\(getpid())")
    override func tearDown() { try? FileManager.default.removeItem(at: dir) }

    func source(tied: Bool = false) throws -> (URL, LoadedModel) {
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let config = ArchitectureConfig.tinyLlama(tied: tied)
        let url = dir.appendingPathComponent("tiny-\(tied).gguf")
        try GGUFWriter.model(config: config, tensors: config.randomTensors(seed: 3)).write(to: url)
        return (url, try CheckpointLoader.load(url))
    }

    /// RTN with the given weight scheme on every block linear (weight-only).
    func variant(_ fp: DecoderModel, _ scheme: WeightScheme) throws -> DecoderModel {
        let m = fp.copy()
        _ = try m.assignSchemes(QuantScheme(weights: scheme), overrides: [])
        _ = try Pipeline(methods: [try RTN(options: MethodOptions(defaultsOf: RTN.options))])
            .run(model: m, calibration: [], runner: LlamaForward())
        return m
    }

    func testQ4_0AndQ8_0AreExactAndTheLogitsMatch() throws {
        let (url, loaded) = try source()
        let gguf = try GGUFCheckpoint(url: url)
        for (bits, type) in [(4, GGMLType.q4_0), (8, .q8_0)] {
            let v = try variant(loaded.model, WeightScheme(bits: bits, granularity: .group(32), symmetric: true, f16Scales: true))
            let out = dir.appendingPathComponent("w\(bits).gguf").path
            let summary = try GGUFExport.write(v, float: loaded.model, source: gguf, variant: "w\(bits)", to: out)
            XCTAssertEqual(summary.fallbacks, [])
            XCTAssertEqual(summary.tensorTypes[type.name], 2 * 7, summary.text)   // 7 linears per block
            let back = try CheckpointLoader.load(URL(fileURLWithPath: out))
            let written = try GGUFFile(url: URL(fileURLWithPath: out))
            XCTAssertEqual(written.tensor(named: "blk.1.ffn_down.weight")?.type, type)
            XCTAssertEqual(written.metadata["quantwb.variant"]?.string, "w\(bits)")
            for (a, b) in zip(v.allSites.flatMap(\.linears), back.model.allSites.flatMap(\.linears)) {
                XCTAssertEqual(a.quantized!.dequantized().data, b.weight.data, "\(a.name): not bit-exact")
            }
            XCTAssertEqual(back.model.embedding, loaded.model.embedding)
            let windows = [[1, 5, 9, 3, 7, 2, 8, 4], [2, 2, 3, 30, 31, 4, 5, 6]]
            let expected = LlamaForward().logits(v, windows: windows, mode: .quantized)
            let got = LlamaForward().logits(back.model, windows: windows, mode: .float)
            XCTAssertEqual(got.data, expected.data, "int\(bits): the exported model computes another function")
        }
    }

    func testSchemesWithoutAnExactFormatFallBackToF32AndSayWhy() throws {
        let (url, loaded) = try source()
        let gguf = try GGUFCheckpoint(url: url)
        let cases: [(WeightScheme, String)] = [
            (WeightScheme(bits: 4, granularity: .channel, symmetric: true, f16Scales: true), "{group: 32}"),
            (WeightScheme(bits: 4, granularity: .group(32), symmetric: true), "scales: f16"),
            (WeightScheme(bits: 3, granularity: .group(32), symmetric: true, f16Scales: true), "no ggml block format"),
        ]
        for (scheme, reason) in cases {
            let v = try variant(loaded.model, scheme)
            let out = dir.appendingPathComponent("fallback.gguf").path
            let summary = try GGUFExport.write(v, float: loaded.model, source: gguf, variant: "x", to: out)
            XCTAssertEqual(summary.fallbacks.count, 14, summary.text)
            XCTAssertTrue(summary.fallbacks.allSatisfy { $0.contains(reason) }, summary.text)
            let back = try CheckpointLoader.load(URL(fileURLWithPath: out))
            for (a, b) in zip(v.allSites.flatMap(\.linears), back.model.allSites.flatMap(\.linears)) {
                XCTAssertEqual(a.quantized!.dequantized().data, b.weight.data)
            }
        }
    }

    func testOnlineTransformsAreRefusedAndActivationQuantizationIsNoted() throws {
        let (url, loaded) = try source()
        let gguf = try GGUFCheckpoint(url: url)
        let v = loaded.model.copy()
        _ = try v.assignSchemes(QuantScheme(weights: WeightScheme(bits: 8, granularity: .group(32), f16Scales: true),
                                            activations: ActivationScheme(bits: 8)), overrides: [])
        _ = try Pipeline(methods: [try RTN(options: MethodOptions(defaultsOf: RTN.options))]).run(model: v, calibration: [], runner: LlamaForward())
        let s = try GGUFExport.write(v, float: loaded.model, source: gguf, variant: "a8", to: dir.appendingPathComponent("a8.gguf").path)
        XCTAssertTrue(s.notes.contains { $0.contains("activation quantization") && $0.contains("not carried") }, s.text)

        let rotated = loaded.model.copy()
        rotated.blocks[0].down.addTransform(.scale([Float](repeating: 2, count: 96)), placement: .online, addedBy: "test")
        XCTAssertThrowsError(try GGUFExport.write(rotated, float: loaded.model, source: gguf, variant: "rot", to: dir.appendingPathComponent("rot.gguf").path)) { e in
            XCTAssertTrue("\(e)".contains("layers.0.down applies scale"), "\(e)")
            XCTAssertTrue("\(e)".contains("online"), "\(e)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("rot.gguf").path))
    }

    /// Blocks decode to exactly `(code − zero)·scale`.
    func testBlockEncodersAgainstTheReader() throws {
        let codes4 = (0..<64).map { Int32($0 % 16) - 8 }, scales = [Float(0.5), Float(0.125)]
        let q40 = try XCTUnwrap(GGMLBlockEncoder.q4_0(codes: codes4, scales: scales))
        let asym = (0..<64).map { Int32($0 % 16) }, zeros: [Int32] = [3, 8]
        let q41 = try XCTUnwrap(GGMLBlockEncoder.q4_1(codes: asym, scales: scales, zeros: zeros))
        XCTAssertNil(GGMLBlockEncoder.q4_0(codes: codes4, scales: [0.1, 0.5]))   // 0.1 is not an f16
        var w = GGUFFileWriter()
        w.set("general.architecture", .string("none"))
        try w.add(.init(name: "a", shape: [2, 32], type: .q4_0, bytes: q40))
        try w.add(.init(name: "b", shape: [2, 32], type: .q4_1, bytes: q41))
        let path = dir.appendingPathComponent("blocks.gguf").path
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try w.write(to: path)
        let f = try GGUFFile(url: URL(fileURLWithPath: path))
        XCTAssertEqual(try f.floats("a"), codes4.enumerated().map { Float($0.element) * scales[$0.offset / 32] })
        XCTAssertEqual(try f.floats("b"), asym.enumerated().map { Float($0.element - zeros[$0.offset / 32]) * scales[$0.offset / 32] })
    }
}
