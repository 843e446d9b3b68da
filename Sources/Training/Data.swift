import Foundation
import QuantCore

/// A bad training input (file, model, setting): the message names the file or key.
public struct TrainingInputError: Error, CustomStringConvertible {
    public var description: String
    /// The model (file, shape) is the problem, not the data or a setting.
    public var aboutModel: Bool
    public init(_ description: String, aboutModel: Bool = false) { self.description = description; self.aboutModel = aboutModel }
}

/// A token stream read from a text file: its bytes (byte-level vocabulary) or its tokenizer's ids.
public struct TokenStream: Sendable {
    public var path: String
    public var tokens: [Int]
    /// Bytes of text the tokens cover (for bits per byte).
    public var byteCount: Int

    public init(path: String, tokens: [Int], byteCount: Int) { self.path = path; self.tokens = tokens; self.byteCount = byteCount }

    /// Reads `path`; `tokenize` nil = bytes as tokens 0…255.
    public static func load(_ path: String, tokenize: (([UInt8]) throws -> [Int])? = nil) throws -> TokenStream {
        guard FileManager.default.fileExists(atPath: path) else {
            throw TrainingInputError("\(path): text file not found (paths in a recipe are relative to the directory you run the workbench in)")
        }
        guard let data = FileManager.default.contents(atPath: path) else { throw TrainingInputError("\(path): cannot read the file") }
        let bytes = [UInt8](data)
        let tokens = try tokenize.map { try $0(bytes) } ?? bytes.map { Int($0) }
        return TokenStream(path: path, tokens: tokens, byteCount: bytes.count)
    }

    /// Throws unless at least one window of `length` + 1 tokens fits.
    public func require(windowLength length: Int, role: String) throws {
        guard tokens.count > length + 1 else {
            throw TrainingInputError("\(path): the \(role) text has \(tokens.count) tokens, fewer than one window of seq_len + 1 = \(length + 1)")
        }
    }

    /// `count` windows of `length` inputs and their next-token targets, evenly spaced over the
    /// stream (the fixed validation set; windows may overlap when the file is short).
    public func evenlySpacedWindows(count: Int, length: Int) -> [(tokens: [Int], targets: [Int])] {
        let last = tokens.count - length - 1
        return (0..<count).map { i in
            let start = count == 1 ? 0 : i * last / (count - 1)
            return (Array(tokens[start..<(start + length)]), Array(tokens[(start + 1)...(start + length)]))
        }
    }

    /// Up to `count` windows one after another from the start (window i starts at i·length).
    public func consecutiveWindows(count: Int, length: Int) -> [(tokens: [Int], targets: [Int])] {
        let n = min(count, (tokens.count - 1) / length)
        return (0..<n).map { i in
            let s = i * length
            return (Array(tokens[s..<(s + length)]), Array(tokens[(s + 1)...(s + length)]))
        }
    }

    /// The training batch of `step`: `batch` windows at uniform random starts, drawn from a stream
    /// keyed by (seed, step) only — the same on any thread count and after a resume.
    public func batch(step: Int, count: Int, length: Int, seed: UInt64) -> (tokens: [Int], targets: [Int]) {
        var g = SeededGenerator(seed: SeededGenerator.derive(seed, "batch.\(step)"))
        let starts = UInt64(tokens.count - length - 1 + 1)
        var x: [Int] = [], y: [Int] = []
        x.reserveCapacity(count * length); y.reserveCapacity(count * length)
        for _ in 0..<count {
            let s = Int(g.next() % starts)
            x.append(contentsOf: tokens[s..<(s + length)])
            y.append(contentsOf: tokens[(s + 1)...(s + length)])
        }
        return (x, y)
    }
}

/// The unigram baseline: token frequencies of the training text with add-one smoothing.
public struct UnigramBaseline: Sendable {
    public var logProbabilities: [Double]

    public init(training: [Int], vocab: Int) {
        var counts = [Double](repeating: 1, count: vocab)
        for t in training where t >= 0 && t < vocab { counts[t] += 1 }
        let total = counts.reduce(0, +)
        logProbabilities = counts.map { log($0 / total) }
    }

    /// Mean NLL (nats) of `targets`.
    public func meanLoss(_ targets: [Int]) -> Double {
        targets.reduce(0.0) { $0 - logProbabilities[$1] } / Double(max(1, targets.count))
    }
}
