import Foundation
import QuantCore
import QuantKernels
import LlamaModel
import Evaluation
import ModelFormats
import Reporting
import Runs

/// `workbench inspect`: architecture, tensors, and (with text) per-site activation statistics.
enum InspectCommand {
    static func run(model path: String, activations: String?, windows: Int, seqLen: Int) throws {
        let loaded = try ModelLoading.loadCheckpoint(path, progress: ProgressDisplay().handler)
        let m = loaded.model, c = m.config, ck = loaded.checkpoint
        print("file:         \(ck.url.path)")
        print("architecture: \(ck.config.architecture)  (\(m.provenance))")
        print("dimensions:   hidden \(c.hiddenSize), FFN \(c.intermediateSize), \(c.layerCount) layers, \(c.headCount) heads × \(c.headDim), \(c.kvHeadCount) KV heads, vocab \(c.vocabSize)")
        print("rope:         θ = \(c.ropeTheta), layout \(c.ropeLayout.rawValue); RMSNorm ε = \(c.rmsNormEps); tied embeddings: \(ck.config.tiedEmbeddings)")
        if let t = loaded.tokenizer { print("tokenizer:    \(type(of: t)), vocabulary \(t.vocabularySize), BOS \(t.bosTokenID.map(String.init) ?? "none") added: \(t.addsBOS)") }
        print("parameters:   \(m.parameterCount)")
        var table = Table(["tensor", "stored as", "type", "shape", "bytes"])
        for n in ck.tensorNames {
            guard let i = ck.info(n) else { continue }
            table.add([n, i.storageName, i.storageType, i.shape.map(String.init).joined(separator: "×"), String(i.byteCount)])
        }
        print("\n" + table.render())
        guard let activations else { return }
        guard let tok = loaded.tokenizer else { throw WorkbenchFailure.badInput("\(path): no tokenizer, cannot read \(activations)") }
        let text = try RunModel(model: m, tokenizeText: { tok.encode(bytes: Array($0.utf8), parseSpecial: true, addBOS: false) })
            .tokenize(file: activations)
        let wins = PerplexityProtocol.standard(seqLen: seqLen).windows(text, maxWindows: windows)
        guard !wins.isEmpty else { throw WorkbenchFailure.badInput("\(activations): fewer than \(seqLen) tokens") }
        ProgressDisplay().handle(.note("running \(wins.count) windows of \(seqLen) tokens"))
        let stats = ActivationStatistics.collect(model: m, windows: wins)
        var t = Table(["site", "max |x|", "median ch. absmax", "ratio", "top channels (absmax)", "largest values (pos, token, channel, value)"])
        for s in stats {
            t.add([s.site, String(format: "%.1f", s.maxAbs), String(format: "%.2f", s.medianChannelAbsMax), String(format: "%.0f", s.ratio),
                   s.topChannels.map { "\($0.channel) (\(String(format: "%.1f", $0.absMax)))" }.joined(separator: ", "),
                   s.topTokens.map { "(\($0.position), \($0.token) \(String(reflecting: tok.decode([$0.token]))), \($0.channel), \(String(format: "%.1f", $0.value)))" }.joined(separator: " ")])
        }
        print("Activation statistics at each site's input (float model, \(wins.count) windows × \(seqLen) tokens of \(activations))")
        print(t.render())
    }
}

/// `workbench tokenize`: ids one per line.
enum TokenizeCommand {
    static func run(model: String, file: String) throws {
        let m = try ModelLoading.loadFile(model)
        let ids = try m.tokenize(file: file)
        var out = ""
        out.reserveCapacity(ids.count * 6)
        for id in ids { out += String(id); out += "\n" }
        FileHandle.standardOutput.write(Data(out.utf8))
    }
}

enum BenchCommand {
    static func run(json: String?, quick: Bool, threads: [Int], only: Set<String>?) throws {
        print(KernelDispatch.summary)
        let report = KernelBenchmark.run(threads: threads, quick: quick, only: only)
        print(report.text)
        if let json { try writeAtomically(try report.json(), to: json) }
    }
}
