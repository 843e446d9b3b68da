import Foundation
import QuantCore
import ModelFormats

/// Writes a quantized variant as a Hugging Face folder in the compressed-tensors pack-quantized
/// layout: every quantized block linear as packed integer codes with its scales (and zero points
/// when asymmetric), every other tensor as F32, `quantization_config` in `config.json`, and the
/// source model's tokenizer as `tokenizer.json`. The workbench loads such a folder back (the packed
/// tensors dequantized on load) and evaluates it.
public enum CompressedTensorsExport {
    public static func write(_ model: DecoderModel, float fp: DecoderModel, architecture: String, contextLength: Int,
                             tokenizer: TextTokenizer?, variant: String, to folder: String) throws -> ExportSummary {
        var summary = ExportSummary(path: folder)
        summary.notes = try ExportChecks.check(model, variant: variant)
        let c = model.config
        // Tied when the variant left the head equal to the embedding and did not quantize it.
        let tied = model.lmHead.quantized == nil && model.lmHead.weight == model.embedding
        let config = ArchitectureConfig(
            architecture: architecture, hiddenSize: c.hiddenSize, intermediateSize: c.intermediateSize, layerCount: c.layerCount,
            headCount: c.headCount, kvHeadCount: c.kvHeadCount, headDim: c.headDim, vocabSize: c.vocabSize,
            contextLength: contextLength, ropeTheta: c.ropeTheta, rmsNormEps: c.rmsNormEps, tiedEmbeddings: tied,
            hasQKVBias: model.blocks.first?.qkv.linears.first?.bias != nil,
            ropeLayout: c.ropeLayout == .interleavedPairs ? .interleavedPairs : .rotateHalf)
        var quantized: [QuantizedTensorData] = []
        var floats: [FloatTensorData] = [
            FloatTensorData(name: "embed_tokens", shape: [model.embedding.rows, model.embedding.cols], values: model.embedding.data),
            FloatTensorData(name: "norm", shape: [model.finalNorm.count], values: model.finalNorm),
        ]
        for b in model.blocks {
            floats.append(FloatTensorData(name: "layers.\(b.index).input_layernorm", shape: [b.attentionNorm.count], values: b.attentionNorm))
            floats.append(FloatTensorData(name: "layers.\(b.index).post_attention_layernorm", shape: [b.mlpNorm.count], values: b.mlpNorm))
        }
        var linears = model.allSites.flatMap(\.linears)
        if !tied { linears.append(model.lmHead) }
        for l in linears {
            if let bias = l.bias { floats.append(FloatTensorData(name: l.name + ".bias", shape: [bias.count], values: bias)) }
            guard let q = l.quantized else {
                floats.append(FloatTensorData(name: l.name, shape: [l.outFeatures, l.inFeatures], values: l.weight.data))
                summary.tensorTypes["F32", default: 0] += 1
                continue
            }
            quantized.append(QuantizedTensorData(name: l.name, rows: q.rows, cols: q.cols, bits: q.grid.bits, groupSize: q.groupSize,
                                                 symmetric: q.grid.symmetric, codes: q.codes, scales: q.scales, zeros: q.zeros))
            summary.tensorTypes["int\(q.grid.bits) \(q.grid.symmetric ? "sym" : "asym") " + (q.groupSize == q.cols ? "channel" : "group \(q.groupSize)"), default: 0] += 1
        }
        summary.tensorTypes["F32 (norms, embedding)", default: 0] += floats.count - summary.tensorTypes["F32", default: 0]
        do {
            try CompressedTensorsWriter.write(to: URL(fileURLWithPath: folder), config: config, quantized: quantized, floats: floats,
                                              tokenizer: tokenizer, replaceExisting: true)
        } catch let e as CompressedTensorsExportError { throw ExportError("\(folder): \(e)") }
        summary.bytes = ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).reduce(0) {
            $0 + ((try? FileManager.default.attributesOfItem(atPath: folder + "/" + $1)[.size] as? Int) ?? 0)
        }
        return summary
    }
}
