import Foundation
import QuantCore
import ModelFormats
import Export
import Recipes

/// Formats a quantized variant can be written in.
public enum ExportFormat: String, CaseIterable, Sendable {
    case gguf
    case compressedTensors = "compressed-tensors"
}

/// Writes quantized variants so a runtime can load them: `<folder>/<variant>.gguf`, or an HF
/// folder `<folder>/<variant>/` for compressed-tensors.
public enum RunExport {
    /// File-system-safe form of a variant name.
    public static func fileStem(_ variant: String) -> String {
        String(variant.map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == "." ? $0 : "_" })
    }

    public static func path(folder: String, variant: String, format: ExportFormat) -> String {
        folder + "/" + fileStem(variant) + (format == .gguf ? ".gguf" : "")
    }

    public static func export(_ model: DecoderModel, float fp: DecoderModel, loaded: RunModel, variant: String,
                              format: ExportFormat, folder: String) throws -> ExportSummary {
        let target = path(folder: folder, variant: variant, format: format)
        switch format {
        case .gguf:
            guard let url = loaded.url, url.pathExtension.lowercased() == "gguf" else {
                throw ExportError("GGUF export copies the tokenizer and metadata from a GGUF source model; this model was not loaded from a .gguf file (\(loaded.url?.path ?? "synthetic"))")
            }
            let source: GGUFCheckpoint
            do { source = try GGUFCheckpoint(url: url) } catch let e as ModelFormatError { throw ExportError(e.description) }
            do { return try GGUFExport.write(model, float: fp, source: source, variant: variant, to: target) }
            catch let e as ModelFormatError { throw ExportError(e.description) }
        case .compressedTensors:
            return try CompressedTensorsExport.write(model, float: fp, architecture: loaded.architecture, contextLength: loaded.contextLength,
                                                     tokenizer: loaded.tokenizer, variant: variant, to: target)
        }
    }
}
