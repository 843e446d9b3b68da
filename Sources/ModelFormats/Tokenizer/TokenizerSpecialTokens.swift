import Foundation

/// A piece of the input after special tokens were cut out: either raw text (a byte range of the
/// input) or one special token id.
enum TokenizerFragment {
    case text(Range<Int>)
    case token(Int)
}

/// Finds special tokens written in the text, the way llama.cpp does: candidates are the tokens of
/// type control, user-defined and unknown, tried longest first; each one splits every remaining
/// text fragment at all its (non-overlapping, left to right) occurrences. Without `parseSpecial`
/// only user-defined tokens are cut out.
struct TokenizerSpecialTokens {
    struct Entry {
        var bytes: [UInt8]
        var id: Int
        var isUserDefined: Bool
    }
    let entries: [Entry]

    init(tokens: [[UInt8]], types: [TokenizerTokenType]) {
        var e: [Entry] = []
        for (id, t) in types.enumerated() where t == .control || t == .userDefined || t == .unknown {
            if !tokens[id].isEmpty { e.append(Entry(bytes: tokens[id], id: id, isUserDefined: t == .userDefined)) }
        }
        // Longest first; the id breaks ties so the order is deterministic.
        e.sort { $0.bytes.count != $1.bytes.count ? $0.bytes.count > $1.bytes.count : $0.id < $1.id }
        entries = e
    }

    var isEmpty: Bool { entries.isEmpty }

    func partition(_ bytes: [UInt8], parseSpecial: Bool) -> [TokenizerFragment] {
        var fragments: [TokenizerFragment] = bytes.isEmpty ? [] : [.text(0..<bytes.count)]
        if entries.isEmpty { return fragments }
        bytes.withUnsafeBufferPointer { buf in
            for entry in entries where parseSpecial || entry.isUserDefined {
                let pat = entry.bytes
                let first = pat[0]
                let m = pat.count
                var next: [TokenizerFragment] = []
                next.reserveCapacity(fragments.count)
                var changed = false
                for frag in fragments {
                    guard case .text(let range) = frag, range.count >= m else { next.append(frag); continue }
                    var start = range.lowerBound
                    var i = range.lowerBound
                    let last = range.upperBound - m
                    while i <= last {
                        if buf[i] == first {
                            var k = 1
                            while k < m && buf[i + k] == pat[k] { k += 1 }
                            if k == m {
                                if i > start { next.append(.text(start..<i)) }
                                next.append(.token(entry.id))
                                changed = true
                                i += m
                                start = i
                                continue
                            }
                        }
                        i += 1
                    }
                    if start < range.upperBound { next.append(.text(start..<range.upperBound)) }
                }
                if changed { fragments = next }
            }
        }
        return fragments
    }
}

/// GPT-2's reversible map from bytes to printable characters (used by byte-level BPE vocabularies:
/// a space is stored as "Ġ", a newline as "Ċ").
public enum TokenizerByteLevel {
    /// `scalar[b]` is the character that stands for byte `b`.
    public static let scalars: [Unicode.Scalar] = {
        var result = [Unicode.Scalar](repeating: " ", count: 256)
        var extra: UInt32 = 256
        for b in 0..<256 {
            let printable = (33...126).contains(b) || (161...172).contains(b) || (174...255).contains(b)
            if printable {
                result[b] = Unicode.Scalar(UInt32(b))!
            } else {
                result[b] = Unicode.Scalar(extra)!
                extra += 1
            }
        }
        return result
    }()

    /// Inverse of `scalars`: code point → byte (code points up to 0x143 are covered).
    static let byteForScalar: [Int16] = {
        var table = [Int16](repeating: -1, count: 0x144)
        for (b, s) in scalars.enumerated() { table[Int(s.value)] = Int16(b) }
        return table
    }()

    /// The byte-level string for raw bytes.
    public static func encode(_ bytes: [UInt8]) -> String {
        var s = String.UnicodeScalarView()
        for b in bytes { s.append(scalars[Int(b)]) }
        return String(s)
    }

    /// The raw bytes of a byte-level string, or nil when it has a character outside the map.
    public static func decode(_ text: String) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count)
        for s in text.unicodeScalars {
            let v = Int(s.value)
            guard v < byteForScalar.count, byteForScalar[v] >= 0 else { return nil }
            out.append(UInt8(byteForScalar[v]))
        }
        return out
    }
}
