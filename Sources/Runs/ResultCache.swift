import Foundation
import Evaluation
import Reporting

/// Per-variant results stored under a key of everything that determines them, so a rerun of a
/// recipe with one variant added or changed computes only that variant. Each entry holds the
/// variant's figures and its per-token NLL and KL, so paired comparisons with new variants still
/// work. Lives in `<output>/cache/<key>.json`.
public struct ResultCache {
    public var folder: String
    public init(folder: String) { self.folder = folder }

    /// One cached result: a variant's report (nil for FP) and its token scores.
    public struct Entry: Codable {
        public var key: String
        public var variant: VariantReport?
        public var scores: TokenScores
    }

    /// What a result depends on. Variant names are not part of it: renaming a variant reuses it.
    struct KeyInput: Codable {
        var kind: String
        var variant: ResolvedRecipe.Variant?
        var model: String
        var tokenStream: String
        var tool: RunManifest.ToolVersion
        var engine: String
        var seed: UInt64
        var evaluationProtocol: String
        var windowBatch: Int
        var invarianceTolerance: Double
        var profiledSites: [String]
    }

    static func key(_ input: KeyInput) -> String {
        let enc = JSONEncoder()
        enc.outputFormatting = .sortedKeys
        return SHA256.hex((try? enc.encode(input)) ?? Data())
    }

    public func load(_ key: String) -> Entry? {
        guard let data = FileManager.default.contents(atPath: path(key)),
              let e = try? Self.decoder.decode(Entry.self, from: data), e.key == key else { return nil }
        return e
    }

    public func store(_ entry: Entry) throws {
        let enc = JSONEncoder()
        enc.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        try writeAtomically(try enc.encode(entry), to: path(entry.key))
    }

    static let decoder: JSONDecoder = {
        let d = JSONDecoder()
        d.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return d
    }()

    func path(_ key: String) -> String { folder + "/" + key + ".json" }
}
