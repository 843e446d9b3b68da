import Foundation
import QuantCore
import LlamaModel

/// Text from a model, float or quantized, for `workbench generate`: the prompt is tokenized with
/// the model's tokenizer (BOS first when its metadata asks for it), decoded with the KV cache,
/// and the new tokens are detokenized. Stops early at the end-of-sequence token.
public struct TextGeneration {
    public var sampler: Sampler
    public var maxNewTokens: Int

    public init(sampler: Sampler = .greedy, maxNewTokens: Int = 64) {
        self.sampler = sampler; self.maxNewTokens = maxNewTokens
    }

    public struct Result: Sendable {
        public var promptTokens: [Int]
        public var newTokens: [Int]
        public var text: String
        public var promptSeconds: Double
        public var decodeSeconds: Double
        public var tokensPerSecond: Double { decodeSeconds > 0 ? Double(newTokens.count) / decodeSeconds : 0 }
    }

    public func generate(_ model: DecoderModel, mode: ExecutionMode, tokenizer loaded: RunModel, prompt: String) throws -> Result {
        guard let tok = loaded.tokenizer else {
            throw WorkbenchFailure.badInput("the model has no tokenizer, so it cannot read a text prompt")
        }
        let ids = tok.encode(bytes: Array(prompt.utf8), parseSpecial: true, addBOS: loaded.addsBOS)
        guard !ids.isEmpty else { throw WorkbenchFailure.badInput("--prompt: the prompt is empty") }
        let limit = loaded.contextLength
        guard ids.count + maxNewTokens <= limit else {
            throw WorkbenchFailure.badInput("--prompt has \(ids.count) tokens; with -n \(maxNewTokens) that exceeds the model's context of \(limit)")
        }
        let decoder = LlamaDecoder(model: model, mode: mode, capacity: ids.count + maxNewTokens)
        var t0 = Date()
        var logits = try decoder.append(ids)
        let promptSeconds = Date().timeIntervalSince(t0)
        var s = sampler
        var out: [Int] = []
        t0 = Date()
        while out.count < maxNewTokens {
            let next = s.pick(logits.data)
            out.append(next)
            if next == tok.eosTokenID || out.count == maxNewTokens { break }
            logits = try decoder.append([next])
        }
        let text = String(decoding: tok.decodeBytes(out, renderSpecial: false), as: UTF8.self)
        return Result(promptTokens: ids, newTokens: out, text: text, promptSeconds: promptSeconds,
                      decodeSeconds: Date().timeIntervalSince(t0))
    }
}
