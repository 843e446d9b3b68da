import Foundation
import XCTest
@testable import ModelFormats
import TestSupport

/// Each class of broken file gives a typed error naming the file and the tensor / key; nothing crashes.
final class GGUFCorruptionTests: XCTestCase {
    var dir: URL!
    override func setUpWithError() throws { dir = try temporaryDirectory(self) }

    func baseWriter() -> GGUFWriter {
        var w = GGUFWriter(architecture: "test")
        w.set("test.names", .array(.string, [.string("x"), .string("yz")]))
        w.addTensor("first", shape: [2, 32], values: randomFloats(64, seed: 1), type: .q8_0)
        w.addTensor("second", shape: [4], values: [1, 2, 3, 4])
        return w
    }

    func write(_ d: Data, _ name: String = "bad.gguf") throws -> URL {
        let u = dir.appendingPathComponent(name)
        try d.write(to: u)
        return u
    }

    func open(_ d: Data) throws -> GGUFFile { try GGUFFile(url: write(d)) }

    func patched(_ d: Data, at offset: Int, _ bytes: [UInt8]) -> Data {
        var d = d
        d.replaceSubrange(offset..<offset + bytes.count, with: bytes)
        return d
    }

    /// Byte offset just after the first occurrence of `s` in `d`.
    func after(_ s: String, in d: Data) -> Int {
        let r = d.range(of: Data(s.utf8))!
        return r.upperBound
    }

    func bytes<T: FixedWidthInteger>(_ x: T) -> [UInt8] { withUnsafeBytes(of: x.littleEndian) { Array($0) } }

    func testWrongMagicAndVersion() throws {
        let d = baseWriter().data()
        assertFormatError(try open(patched(d, at: 0, Array("GGML".utf8))), mentions: ["bad.gguf", "GGML"]) {
            if case .badMagic = $0 { return true }; return false
        }
        assertFormatError(try open(Data())) { if case .truncated = $0 { return true }; return false }
        for (v, text) in [(UInt32(1), "version 1"), (4, "version 4"), (0x0300_0000, "big-endian")] {
            assertFormatError(try open(patched(d, at: 4, bytes(v))), mentions: ["bad.gguf", text]) {
                if case .unsupportedVersion = $0 { return true }; return false
            }
        }
    }

    /// Every proper prefix of a valid file is rejected with a typed error.
    func testEveryTruncationFails() throws {
        let d = baseWriter().data()
        let f = try open(d)
        // The writer pads the data section; cutting only padding after the last tensor is harmless.
        let end = f.tensors.map { f.dataOffset + $0.offset + $0.byteCount }.max()!
        for n in 0..<end {
            do {
                _ = try open(d.prefix(n))
                XCTFail("prefix \(n) of \(d.count) opened")
            } catch let e as ModelFormatError {
                switch e {
                case .truncated, .implausibleCount, .offsetOutOfRange: XCTAssertTrue(e.description.contains("bad.gguf"))
                default: XCTFail("prefix \(n): unexpected \(e)")
                }
            }
        }
        assertFormatError(try open(d.prefix(end - 1)), mentions: ["second"]) {
            if case .offsetOutOfRange = $0 { return true }; return false
        }
    }

    func testAbsurdCountsAndLengths() throws {
        let d = baseWriter().data()
        let huge = bytes(UInt64.max / 2)
        assertFormatError(try open(patched(d, at: 8, huge)), mentions: ["tensor count"]) {
            if case .implausibleCount = $0 { return true }; return false
        }
        assertFormatError(try open(patched(d, at: 16, huge)), mentions: ["metadata count"]) {
            if case .implausibleCount = $0 { return true }; return false
        }
        assertFormatError(try open(patched(d, at: 24, huge)), mentions: ["metadata entry 0"]) {
            if case .implausibleCount = $0 { return true }; return false
        }
        // array count of test.names: key, u32 type (9), u32 element type, u64 count
        assertFormatError(try open(patched(d, at: after("test.names", in: d) + 8, huge)), mentions: ["test.names"]) {
            if case .implausibleCount = $0 { return true }; return false
        }
        // string length inside that array
        assertFormatError(try open(patched(d, at: after("test.names", in: d) + 16, bytes(UInt64(1) << 40))), mentions: ["test.names"]) {
            if case .implausibleCount = $0 { return true }; return false
        }
        // tensor name length
        assertFormatError(try open(patched(d, at: after("second", in: d.advanced(by: 0)) - 6 - 8, huge)), mentions: ["name of tensor 1"]) {
            if case .implausibleCount = $0 { return true }; return false
        }
        // unknown metadata value type
        assertFormatError(try open(patched(d, at: after("test.names", in: d), bytes(UInt32(77)))), mentions: ["test.names", "77"]) {
            if case .badMetadata = $0 { return true }; return false
        }
    }

    func testAbsurdDimensions() throws {
        func entry(_ dims: [UInt64], type: UInt32 = 0) -> GGUFWriter {
            var w = GGUFWriter()
            w.addRawTensor("weird", dims: dims, typeID: type, bytes: [UInt8](repeating: 0, count: 64))
            return w
        }
        for (dims, what) in [([1, 1, 1, 1, 1] as [UInt64], "n_dims = 5"), ([4, 0], "0"), ([1 << 40, 1 << 40], "overflow"),
                             ([UInt64.max], "overflow"), ([1 << 33, 1 << 33], "overflow")] {
            assertFormatError(try open(entry(dims).data()), mentions: ["weird", what]) {
                if case .badShape = $0 { return true }; return false
            }
        }
        // n_dims = 0 and n_dims = 2^31
        var w = entry([16])
        var d = w.data()
        d = patched(d, at: after("weird", in: d), bytes(UInt32(0)))
        assertFormatError(try open(d), mentions: ["weird", "n_dims = 0"]) { if case .badShape = $0 { return true }; return false }
        // row not a multiple of the block size
        w = entry([16, 2], type: GGMLType.q8_0.rawValue)
        assertFormatError(try open(w.data()), mentions: ["weird", "Q8_0"]) { if case .badShape = $0 { return true }; return false }
        // element count far beyond what the file could hold
        assertFormatError(try open(entry([1 << 30, 1 << 30]).data()), mentions: ["weird"]) { if case .badShape = $0 { return true }; return false }
    }

    func testUnknownAndUnsupportedTypes() throws {
        for (id, name) in [(UInt32(99), "unknown type id 99"), (10, "Q2_K")] {
            var w = GGUFWriter()
            w.addRawTensor("odd", dims: [256], typeID: id, bytes: [UInt8](repeating: 0, count: 256))
            assertFormatError(try open(w.data()), mentions: ["bad.gguf", "odd", name]) {
                if case .unsupportedTensorType = $0 { return true }; return false
            }
        }
    }

    func testOffsetsPastEndOverlapsAndMisalignment() throws {
        var w = baseWriter()
        w.tensors[1].offsetOverride = 1 << 20
        assertFormatError(try open(w.data()), mentions: ["bad.gguf", "second"]) {
            if case .offsetOutOfRange = $0 { return true }; return false
        }
        w.tensors[1].offsetOverride = UInt64.max - 31
        assertFormatError(try open(w.data()), mentions: ["second"]) { if case .offsetOutOfRange = $0 { return true }; return false }
        w.tensors[1].offsetOverride = 32  // first is 68 bytes at 0
        assertFormatError(try open(w.data()), mentions: ["first", "second"]) {
            if case .overlappingTensors = $0 { return true }; return false
        }
        w.tensors[1].offsetOverride = 100
        assertFormatError(try open(w.data()), mentions: ["second", "100", "32"]) {
            if case .misalignedOffset = $0 { return true }; return false
        }
        w.tensors[1].offsetOverride = nil
        w.tensors[1].name = "first"
        assertFormatError(try open(w.data()), mentions: ["first"]) { if case .duplicateTensor = $0 { return true }; return false }
        var a = GGUFWriter()
        a.set("general.alignment", .uint32(48))
        assertFormatError(try open(a.data()), mentions: ["general.alignment"]) { if case .badMetadata = $0 { return true }; return false }
    }

    /// Random byte corruption of the header: the file either opens — and then every tensor lies in
    /// the file and dequantizes to its element count — or fails with a `ModelFormatError` naming
    /// the file. Any other error (or a trap) fails the test; both outcomes must occur.
    func testRandomHeaderCorruptionIsOpenedConsistentlyOrNamed() throws {
        let d = baseWriter().data()
        let headerEnd = try open(d).dataOffset
        var s: UInt64 = 0x1234_5678
        func next() -> Int { s ^= s << 13; s ^= s >> 7; s ^= s << 17; return Int(s >> 1) }
        var opened = 0, rejected = 0
        for i in 0..<1500 {
            var m = d
            for _ in 0..<(1 + next() % 3) { m[next() % headerEnd] = UInt8(truncatingIfNeeded: next()) }
            do {
                let f = try open(m)
                for t in f.tensors {
                    XCTAssertLessThanOrEqual(f.dataOffset + t.offset + t.byteCount, m.count, "mutation \(i): \(t.name)")
                    XCTAssertEqual(try f.floats(t.name).count, t.elementCount, "mutation \(i): \(t.name)")
                }
                opened += 1
            } catch let e as ModelFormatError {
                XCTAssertTrue(e.description.contains("bad.gguf"), "mutation \(i): \(e)")
                rejected += 1
            } catch {
                XCTFail("mutation \(i): not a ModelFormatError: \(error)")
            }
        }
        XCTAssertGreaterThan(opened, 0)
        XCTAssertGreaterThan(rejected, 0)
    }

    func testMissingAndMisshapedModelTensors() throws {
        let cfg = ArchitectureConfig.tinyLlama(layers: 2)
        var weights = cfg.randomTensors()
        weights["layers.1.mlp.up_proj"] = nil
        let u = try write(GGUFWriter.model(config: cfg, tensors: weights).data(), "model.gguf")
        assertFormatError(try openCheckpoint(u), mentions: ["model.gguf", "layers.1.mlp.up_proj"]) {
            if case .missingTensor = $0 { return true }; return false
        }
        var w = GGUFWriter.model(config: cfg, tensors: cfg.randomTensors())
        w.set("llama.feed_forward_length", .uint32(128))
        let u2 = try write(w.data(), "model2.gguf")
        assertFormatError(try openCheckpoint(u2), mentions: ["model2.gguf", "layers.0.mlp.gate_proj", "blk.0.ffn_gate.weight"]) {
            if case .shapeMismatch = $0 { return true }; return false
        }
        var w3 = GGUFWriter.model(config: cfg, tensors: cfg.randomTensors())
        w3.metadata.isEmpty ? () : ()
        w3.set("general.architecture", .string("gpt2"))
        assertFormatError(try openCheckpoint(try write(w3.data(), "m3.gguf")), mentions: ["gpt2"]) {
            if case .unsupportedArchitecture = $0 { return true }; return false
        }
        var w4 = GGUFWriter(architecture: "llama")
        w4.addTensor("token_embd.weight", shape: [4, 4], values: Array(repeating: 0, count: 16))
        assertFormatError(try openCheckpoint(try write(w4.data(), "m4.gguf")), mentions: ["llama.embedding_length"]) {
            if case .badMetadata = $0 { return true }; return false
        }
    }
}

final class SafetensorsCorruptionTests: XCTestCase {
    var dir: URL!
    override func setUpWithError() throws { dir = try temporaryDirectory(self) }

    /// A file with the given raw JSON header and `dataBytes` zero bytes of data.
    func file(header: String, dataBytes: Int, lengthOverride: UInt64? = nil) throws -> URL {
        let h = Array(header.utf8)
        var out = withUnsafeBytes(of: (lengthOverride ?? UInt64(h.count)).littleEndian) { Array($0) } + h
        out += [UInt8](repeating: 0, count: dataBytes)
        let u = dir.appendingPathComponent("bad.safetensors")
        try Data(out).write(to: u)
        return u
    }

    func expect(_ header: String, data: Int = 16, lengthOverride: UInt64? = nil, mentions: [String],
                line: UInt = #line, _ match: @escaping (ModelFormatError) -> Bool) throws {
        let u = try file(header: header, dataBytes: data, lengthOverride: lengthOverride)
        assertFormatError(try SafetensorsFile(url: u), mentions: ["bad.safetensors"] + mentions, line: line, match)
    }

    func testHeaderValidation() throws {
        let ok = #"{"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}}"#
        XCTAssertNoThrow(try SafetensorsFile(url: file(header: ok, dataBytes: 16)))
        try expect(ok, lengthOverride: 1 << 40, mentions: ["header length"]) { if case .implausibleCount = $0 { return true }; return false }
        try expect(ok, data: 8, mentions: ["'a'"]) { if case .offsetOutOfRange = $0 { return true }; return false }
        try expect("[1,2]", mentions: []) { if case .badMagic = $0 { return true }; return false }
        try expect("{not json", mentions: []) { if case .badHeader = $0 { return true }; return false }
        try expect(#"{"a":{"dtype":"F32","shape":[2,2],"data_offsets":[16,0]}}"#, mentions: ["'a'"]) {
            if case .offsetOutOfRange = $0 { return true }; return false
        }
        try expect(#"{"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,16]}}"#, mentions: ["'a'", "24"]) {
            if case .badShape = $0 { return true }; return false
        }
        try expect(#"{"a":{"dtype":"Q9","shape":[4],"data_offsets":[0,16]}}"#, mentions: ["'a'", "Q9"]) {
            if case .unsupportedTensorType = $0 { return true }; return false
        }
        try expect(#"{"a":{"dtype":"I16","shape":[2],"data_offsets":[0,4]}}"#, mentions: ["'a'", "I16"]) {
            if case .unsupportedTensorType = $0 { return true }; return false
        }
        // integer tensors (compressed-tensors packed weights and shapes) are read, not as floats
        let ints = try SafetensorsFile(url: file(header: #"{"a":{"dtype":"I64","shape":[2],"data_offsets":[0,16]}}"#, dataBytes: 16))
        XCTAssertEqual(try ints.integers("a"), [0, 0])
        assertFormatError(try ints.floats("a"), mentions: ["'a'", "I64"]) { if case .unsupportedTensorType = $0 { return true }; return false }
        try expect(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#,
                   mentions: ["'a'", "'b'"]) { if case .overlappingTensors = $0 { return true }; return false }
        try expect(#"{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}"#, mentions: ["'a'"]) {
            if case .badShape = $0 { return true }; return false
        }
        try expect(#"{"a":{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,4]}}"#, mentions: ["'a'", "overflow"]) {
            if case .badShape = $0 { return true }; return false
        }
        try expect(#"{"a":{"dtype":"F32","data_offsets":[0,4]}}"#, mentions: ["'a'"]) { if case .badHeader = $0 { return true }; return false }
    }

    func testEveryTruncationFails() throws {
        var w = SafetensorsWriter()
        w.add("x", shape: [3], values: [1, 2, 3])
        w.add("y", shape: [2], values: [1, 2], dtype: .f16)
        let d = w.data()
        for n in 0..<d.count {
            let u = dir.appendingPathComponent("t.safetensors")
            try d.prefix(n).write(to: u)
            assertFormatError(try SafetensorsFile(url: u), mentions: ["t.safetensors"]) {
                switch $0 {
                case .truncated, .implausibleCount, .badMagic, .badHeader, .offsetOutOfRange: return true
                default: return false
                }
            }
        }
    }

    func testShardedFolderProblems() throws {
        let cfg = ArchitectureConfig.tinyLlama(layers: 1)
        let (sw, json) = SafetensorsWriter.model(config: cfg, tensors: cfg.randomTensors())
        let folder = dir.appendingPathComponent("hf")
        try sw.writeFolder(folder, config: json, shards: 2)
        XCTAssertNoThrow(try openCheckpoint(folder))
        XCTAssertNoThrow(try openCheckpoint(folder.appendingPathComponent("model.safetensors.index.json")))

        // index names a tensor its shard does not hold
        let indexURL = folder.appendingPathComponent("model.safetensors.index.json")
        var index = try JSONSerialization.jsonObject(with: Data(contentsOf: indexURL)) as! [String: Any]
        var map = index["weight_map"] as! [String: String]
        map["model.layers.0.extra.weight"] = "model-00001-of-00002.safetensors"
        index["weight_map"] = map
        try JSONSerialization.data(withJSONObject: index).write(to: indexURL)
        assertFormatError(try openCheckpoint(folder), mentions: ["model-00001-of-00002.safetensors", "model.layers.0.extra.weight"]) {
            if case .missingTensor = $0 { return true }; return false
        }
        // a shard file is missing
        map["model.layers.0.extra.weight"] = nil
        map["model.norm.weight"] = "model-00009-of-00009.safetensors"
        index["weight_map"] = map
        try JSONSerialization.data(withJSONObject: index).write(to: indexURL)
        assertFormatError(try openCheckpoint(folder), mentions: ["model-00009-of-00009.safetensors"]) {
            if case .unreadable = $0 { return true }; return false
        }
        // missing config.json / unsupported architecture
        try FileManager.default.removeItem(at: indexURL)
        try FileManager.default.removeItem(at: folder.appendingPathComponent("config.json"))
        assertFormatError(try openCheckpoint(folder), mentions: ["config.json"]) { if case .unreadable = $0 { return true }; return false }
        var j = json; j["architectures"] = ["GPT2LMHeadModel"]
        try JSONSerialization.data(withJSONObject: j).write(to: folder.appendingPathComponent("config.json"))
        assertFormatError(try openCheckpoint(folder), mentions: ["GPT2LMHeadModel"]) {
            if case .unsupportedArchitecture = $0 { return true }; return false
        }
    }
}
