import Foundation
import QuantCore
import Recipes

/// A recipe with every default filled in, as `results.json` records it: what ran, not what was
/// written. Method options list every option, defaults included.
public struct ResolvedRecipe: Codable, Equatable {
    public struct Step: Codable, Equatable {
        public var method: String
        public var options: [String: String]
    }
    public struct Override: Codable, Equatable {
        public var pattern: String
        public var weights: String?
        public var activations: String?
    }
    public struct Variant: Codable, Equatable {
        public var name: String
        public var weights: String
        public var activations: String
        public var attention: String?
        public var overrides: [Override]
        public var pipeline: [Step]
        public var propagation: String
    }
    public var file: String
    public var model: String
    public var seed: UInt64
    public var calibration: String
    public var evaluation: String
    public var variants: [Variant]
    public var invarianceTolerance: Double

    public init(_ r: Recipe) {
        file = r.file
        switch r.model {
        case .synthetic(let seed): model = "synthetic (seed \(seed))"
        case .file(let path): model = path ?? "reference"
        }
        seed = r.seed
        func text(_ s: Recipe.TextSource) -> String {
            switch s { case .synthetic: return "synthetic"; case .files(let f): return f.joined(separator: ", ") }
        }
        calibration = "\(text(r.calibration.source)): \(r.calibration.windows) windows × \(r.calibration.seqLen) tokens, seed \(r.calibration.seed)"
        let e = r.evaluation
        evaluation = "\(text(e.source)): \(e.protocolName.rawValue), seq_len \(e.seqLen)"
            + (e.maxWindows.map { ", max_windows \($0)" } ?? "") + (e.maxTokens.map { ", max_tokens \($0)" } ?? "")
        variants = r.variants.map { v in
            Variant(name: v.name, weights: "\(v.scheme.weights)", activations: "\(v.scheme.activations)",
                    attention: v.attention.map { "int\($0.bits) \($0.symmetric ? "sym" : "asym") clip \($0.clip) q \($0.queries) k \($0.keys) v \($0.values) hadamard \($0.hadamardOnHeadDim)" },
                    overrides: v.overrides.map { Override(pattern: $0.pattern, weights: $0.weights.map { "\($0)" }, activations: $0.activations.map { "\($0)" }) },
                    pipeline: v.pipeline.map { s in Step(method: s.method.name, options: s.options.values.mapValues { "\($0)" }) },
                    propagation: v.propagation.rawValue)
        }
        invarianceTolerance = r.invarianceTolerance
    }
}
