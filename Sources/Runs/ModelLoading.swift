import Foundation
import QuantCore
import LlamaModel
import Recipes
import Reporting
import ModelFormats

/// A model ready to run, with its tokenizer when it came from a file.
public struct RunModel {
    public var model: DecoderModel
    public var addsBOS: Bool = false
    public var bosID: Int? = nil
    public var tokenizeText: ((String) throws -> [Int])? = nil
    /// The file or folder the model was loaded from (nil for the synthetic model).
    public var url: URL? = nil
    /// The model's tokenizer and architecture name, when it came from a file (for export).
    public var tokenizer: TextTokenizer? = nil
    public var architecture: String = "llama"
    public var contextLength: Int = 2048

    public init(model: DecoderModel, addsBOS: Bool = false, bosID: Int? = nil, tokenizeText: ((String) throws -> [Int])? = nil,
                url: URL? = nil) {
        self.model = model; self.addsBOS = addsBOS; self.bosID = bosID; self.tokenizeText = tokenizeText; self.url = url
    }

    /// Tokenizes a whole text file as it is on disk (not re-joined). `origin` names what asked for
    /// the file (`recipe.yaml:6:9: evaluation.text: `), or is empty for a command-line argument.
    public func tokenize(file path: String, origin: String = "") throws -> [Int] {
        guard let tok = tokenizeText else {
            throw WorkbenchFailure.badInput("\(origin)\(path): the synthetic model has no tokenizer; use `text: synthetic` with `model: synthetic`")
        }
        try RecipeFiles.checkTextFile(path, origin: origin)
        guard let data = FileManager.default.contents(atPath: path) else { throw WorkbenchFailure.badInput("\(origin)\(path): cannot read the file") }
        guard let text = String(data: data, encoding: .utf8) else { throw WorkbenchFailure.badInput("\(origin)\(path): not valid UTF-8 text") }
        return try tok(text)
    }
}

public enum ModelLoading {
    /// Loads a recipe's model. `origin` prefixes errors with the recipe key that named the model.
    public static func load(_ source: Recipe.ModelSource, origin: String = "", progress: ProgressHandler = { _ in }) throws -> RunModel {
        switch source {
        case .synthetic(let seed):
            return RunModel(model: SyntheticModel.make(seed: seed))
        case .file(let path):
            do { return try loadFile(path, progress: progress) }
            catch WorkbenchFailure.badInput(let s) { throw WorkbenchFailure.badInput(origin + s) }
        }
    }
}

/// Random calibration windows (seeded) drawn from tokenized text files.
public enum CalibrationSampler {
    public static func windows(from streams: [[Int]], files: [String], count: Int, length: Int, seed: UInt64) throws -> [[Int]] {
        let usable = streams.filter { $0.count > length }
        guard !usable.isEmpty else {
            throw WorkbenchFailure.badInput("\(files.joined(separator: ", ")): no calibration file has more than \(length) tokens")
        }
        var rng = SeededGenerator(seed: seed)
        let total = usable.reduce(0) { $0 + $1.count - length }
        return (0..<count).map { _ in
            // A start position uniform over all files' valid starts.
            var r = Int(rng.next() % UInt64(total))
            for s in usable {
                let n = s.count - length
                if r < n { return Array(s[r..<(r + length)]) }
                r -= n
            }
            return Array(usable[usable.count - 1].suffix(length))   // not reached: r < total
        }
    }
}
