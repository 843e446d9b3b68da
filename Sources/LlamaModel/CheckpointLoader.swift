import Foundation
import QuantCore
import ModelFormats

/// A model read from a file: the decoder, its tokenizer and a description of what "float" means.
public struct LoadedModel {
    public var model: DecoderModel
    public var tokenizer: TextTokenizer?
    public var checkpoint: Checkpoint
}

/// Builds a `DecoderModel` (every linear in its site) from a GGUF file or a Hugging Face folder.
public enum CheckpointLoader {
    public static func load(_ url: URL) throws -> LoadedModel {
        let ckpt = try openCheckpoint(url)
        return LoadedModel(model: try decoderModel(from: ckpt), tokenizer: try tokenizer(for: ckpt), checkpoint: ckpt)
    }

    public static func decoderModel(from ckpt: Checkpoint) throws -> DecoderModel {
        let a = ckpt.config
        let file = ckpt.url.lastPathComponent
        let config = DecoderConfig(hiddenSize: a.hiddenSize, intermediateSize: a.intermediateSize, layerCount: a.layerCount,
                                   headCount: a.headCount, kvHeadCount: a.kvHeadCount, headDim: a.headDim, vocabSize: a.vocabSize,
                                   ropeTheta: a.ropeTheta, rmsNormEps: a.rmsNormEps,
                                   ropeLayout: a.ropeLayout == .interleavedPairs ? .interleavedPairs : .rotateHalf)
        func floats(_ name: String) throws -> [Float] {
            let v = try ckpt.floats(name)
            if let bad = v.firstIndex(where: { !$0.isFinite }) {
                let stored = ckpt.info(name)?.storageName ?? name
                throw ModelFormatError.badTensorData(file: file, tensor: "\(name) (\(stored))",
                                                     reason: "value \(v[bad]) at index \(bad) of \(v.count) is not finite (allowed: finite numbers)")
            }
            return v
        }
        func matrix(_ name: String) throws -> Matrix {
            guard let info = ckpt.info(name), info.shape.count == 2 else { throw ModelFormatError.missingTensor(file: file, tensor: name) }
            return Matrix(rows: info.shape[0], cols: info.shape[1], data: try floats(name))
        }
        func linear(_ name: String) throws -> Linear {
            let bias = ckpt.info(name + ".bias") != nil ? try floats(name + ".bias") : nil
            return Linear(name: name, weight: try matrix(name), bias: bias)
        }
        var blocks: [DecoderBlock] = []
        for i in 0..<a.layerCount {
            let p = "layers.\(i)."
            blocks.append(DecoderBlock(
                index: i, attentionNorm: try floats(p + "input_layernorm"), mlpNorm: try floats(p + "post_attention_layernorm"),
                qkv: Site(name: "layers.\(i).qkv", kind: .qkv, block: i,
                          linears: [try linear(p + "self_attn.q_proj"), try linear(p + "self_attn.k_proj"), try linear(p + "self_attn.v_proj")]),
                o: Site(name: "layers.\(i).o", kind: .o, block: i, linears: [try linear(p + "self_attn.o_proj")]),
                gateUp: Site(name: "layers.\(i).gate_up", kind: .gateUp, block: i,
                             linears: [try linear(p + "mlp.gate_proj"), try linear(p + "mlp.up_proj")]),
                down: Site(name: "layers.\(i).down", kind: .down, block: i, linears: [try linear(p + "mlp.down_proj")])))
        }
        let embedding = try matrix("embed_tokens")
        let head = a.tiedEmbeddings || ckpt.info("lm_head") == nil
            ? Linear(name: "lm_head", weight: embedding) : try linear("lm_head")
        return DecoderModel(config: config, embedding: embedding, blocks: blocks, finalNorm: try floats("norm"),
                            lmHead: head, provenance: provenance(ckpt))
    }

    /// "SmolLM2-135M-Instruct.Q4_1.gguf: stored Q4_1 (210 tensors), Q8_0 (1), F32 (61), dequantized to f32".
    public static func provenance(_ ckpt: Checkpoint) -> String {
        var counts: [String: Int] = [:]
        for n in ckpt.tensorNames { if let t = ckpt.info(n)?.storageType { counts[t, default: 0] += 1 } }
        let types = counts.sorted { $0.value > $1.value }.map { "\($0.key) ×\($0.value)" }.joined(separator: ", ")
        let embed = ckpt.info("embed_tokens")?.storageType ?? "?"
        return "\(ckpt.url.lastPathComponent): stored weights \(types) (embedding \(embed)), dequantized to f32"
    }

    /// The tokenizer stored with the checkpoint: GGUF metadata, or tokenizer.json (with
    /// tokenizer_config.json's BOS/EOS) / tokenizer.model beside an HF checkpoint. Nil when there is none.
    public static func tokenizer(for ckpt: Checkpoint) throws -> TextTokenizer? {
        if let g = ckpt as? GGUFCheckpoint { return try g.vocabulary.makeTokenizer(file: g.url.path) }
        var dir = ckpt.url
        var isDir: ObjCBool = false
        if !(FileManager.default.fileExists(atPath: dir.path, isDirectory: &isDir) && isDir.boolValue) { dir.deleteLastPathComponent() }
        let json = dir.appendingPathComponent("tokenizer.json"), spm = dir.appendingPathComponent("tokenizer.model")
        func read(_ url: URL) throws -> Data {
            do { return try Data(contentsOf: url) } catch {
                throw ModelFormatError.unreadable(file: url.path, reason: error.localizedDescription)
            }
        }
        do {
            if FileManager.default.fileExists(atPath: json.path) {
                return try BPETokenizer(huggingFaceFolder: dir)  // tokenizer.json + tokenizer_config.json (BOS/EOS)
            }
            if FileManager.default.fileExists(atPath: spm.path) {
                do { return try SentencePieceTokenizer(sentencePieceModelData: try read(spm)) } catch let e as TokenizerError { throw e.located(in: spm.path) }
            }
        }
        return nil
    }
}
