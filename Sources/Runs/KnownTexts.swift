import Foundation

/// Text files recognised by their sha256: the canonical WikiText-2 raw splits, and copies that
/// look the same but give different perplexities (see README "Data").
public enum KnownTexts {
    public struct Entry: Sendable {
        public var name: String
        public var canonical: Bool
        public var note: String
    }

    static let testNote = "the canonical wiki.test.raw is 1,290,590 bytes, sha256 173c87a5…; perplexities on this copy differ from the papers'"
    static let validNote = "the canonical wiki.valid.raw is 1,146,846 bytes, sha256 4cd0f687…"

    public static let table: [String: Entry] = [
        "173c87a53759e0201f33e0ccf978e510c2042d7f2cb78229d9a50d79b9e7dd08": Entry(name: "WikiText-2 raw test split (canonical)", canonical: true, note: ""),
        "4cd0f6876d07a413aa911261ff6d363c72d757d47f0fdd6015702014c89cb9c7": Entry(name: "WikiText-2 raw validation split (canonical)", canonical: true, note: ""),
        "aca2f46735043bcfd0a44eca981d04627b9cdf74c4c9a04bf0856d04066f58fc": Entry(
            name: "WikiText-2 test split as Hugging Face rows joined with newlines (1,292,013 bytes)", canonical: false, note: testNote),
        "e4fbb284c0a4dbd0c912e35ad507efa55d0831f54bc761a23363a4b3ff3e3e90": Entry(
            name: "WikiText-2 test split with CRLF line endings (1,294,948 bytes)", canonical: false, note: testNote),
        "714a24a5de7459876f7cfdc64837e551dd7cde2a51f95b763ee083fff273e307": Entry(
            name: "WikiText-2 validation split as Hugging Face rows joined with newlines (1,148,007 bytes)", canonical: false, note: validNote),
        "f117e548b59c18638ecfdc5db1b457927434551c185d7f59c7882cb2110a551a": Entry(
            name: "WikiText-2 validation split with CRLF line endings (1,150,606 bytes)", canonical: false, note: validNote),
    ]

    /// A warning for a known non-canonical copy, nil otherwise.
    public static func warning(path: String, sha256: String) -> String? {
        guard let e = table[sha256], !e.canonical else { return nil }
        return "\(path) is the \(e.name), not the original file: \(e.note)"
    }
}
