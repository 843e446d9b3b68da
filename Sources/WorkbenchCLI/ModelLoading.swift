import Foundation
import QuantCore
import LlamaModel
import Recipes

/// A model ready to run, with its tokenizer when it came from a file.
struct RunModel {
    var model: DecoderModel
    var addsBOS: Bool = false
    var bosID: Int? = nil
    var tokenizeText: ((String) throws -> [Int])? = nil

    /// Tokenizes a whole text file as it is on disk (not re-joined).
    func tokenize(file path: String) throws -> [Int] {
        guard let tok = tokenizeText else {
            throw WorkbenchFailure.badInput("\(path): the synthetic model has no tokenizer; use `text: synthetic` with `model: synthetic`")
        }
        guard FileManager.default.fileExists(atPath: path) else {
            throw WorkbenchFailure.badInput("\(path): text file not found (paths in a recipe are relative to the directory you run the workbench in)")
        }
        guard let data = FileManager.default.contents(atPath: path) else { throw WorkbenchFailure.badInput("\(path): cannot read the file") }
        guard let text = String(data: data, encoding: .utf8) else { throw WorkbenchFailure.badInput("\(path): not valid UTF-8 text") }
        return try tok(text)
    }
}

enum ModelLoading {
    static func load(_ source: Recipe.ModelSource) throws -> RunModel {
        switch source {
        case .synthetic(let seed):
            return RunModel(model: SyntheticModel.make(seed: seed))
        case .file(let path):
            return try loadFile(path)
        }
    }
}

/// Random calibration windows (seeded) drawn from tokenized text files.
enum CalibrationSampler {
    static func windows(from streams: [[Int]], files: [String], count: Int, length: Int, seed: UInt64) throws -> [[Int]] {
        let usable = streams.enumerated().filter { $0.element.count > length }
        guard !usable.isEmpty else {
            throw WorkbenchFailure.badInput("\(files.joined(separator: ", ")): no calibration file has more than \(length) tokens")
        }
        var rng = SeededGenerator(seed: seed)
        let total = usable.reduce(0) { $0 + $1.element.count - length }
        return (0..<count).map { _ in
            // A start position uniform over all files' valid starts.
            var r = Int(rng.next() % UInt64(total))
            for (_, s) in usable {
                let n = s.count - length
                if r < n { return Array(s[r..<(r + length)]) }
                r -= n
            }
            fatalError("unreachable")
        }
    }
}
