import Foundation

/// SentencePiece-style BPE (LLaMA-1/2, Mistral; GGUF `tokenizer.ggml.model = llama`), as llama.cpp
/// runs it:
///
/// 1. special tokens written in the text are cut out (see `TextTokenizer`);
/// 2. each text piece gets a leading space when `addSpacePrefix` and it is the first piece or
///    follows a special token, and every space becomes "▁" (U+2581);
/// 3. the piece starts as one symbol per UTF-8 character; the adjacent pair whose concatenation is
///    a token with the highest score (leftmost on ties) is merged until no pair is a token;
/// 4. a remaining symbol that is not a token is emitted as its bytes (`<0xNN>` tokens; the unknown
///    id when the vocabulary has no such token).
///
/// No normalization is applied (llama.cpp applies none either).
public final class SentencePieceTokenizer: TextTokenizer, @unchecked Sendable {
    public let tokens: [String]
    public let scores: [Float]
    public let tokenTypes: [TokenizerTokenType]
    public let bosTokenID: Int?
    public let eosTokenID: Int?
    /// The id emitted for a byte that has no token; −1 when the vocabulary has no unknown token.
    public let unknownTokenID: Int
    public let addsBOS: Bool
    public let addSpacePrefix: Bool
    public var vocabularySize: Int { tokens.count }

    let idForPiece: TokenizerBytesTable
    let byteTokens: [Int32]
    let specials: TokenizerSpecialTokens
    let decodeBytesOf: [[UInt8]]
    /// No token longer than one character contains "\n", so merges never cross a newline and the
    /// text can be merged line by line with the same result (and much smaller heaps).
    let newlineIsolates: Bool

    static let spaceMark: [UInt8] = [0xE2, 0x96, 0x81]  // "▁"

    /// - Parameters: the GGUF arrays `tokenizer.ggml.tokens`, `.scores`, `.token_type` (nil: all
    ///   normal, except `<0xNN>` texts which are taken as byte tokens) and the special ids.
    public init(tokens: [String], scores: [Float]?, tokenTypes: [Int32]?, bosTokenID: Int? = 1,
                eosTokenID: Int? = 2, unknownTokenID: Int = 0, addBOS: Bool = true,
                addSpacePrefix: Bool = true) throws {
        try TokenizerValidation.tokens(tokens)
        if let scores {
            guard scores.count == tokens.count else {
                throw TokenizerError.malformed("\(scores.count) scores for \(tokens.count) tokens")
            }
            if let bad = scores.firstIndex(where: { !$0.isFinite }) {
                throw TokenizerError.malformed("token \(bad) (\(TokenizerValidation.quoted(tokens[bad]))) has score \(scores[bad]); scores must be finite numbers")
            }
        }
        self.tokens = tokens
        self.scores = scores ?? [Float](repeating: 0, count: tokens.count)
        let types: [TokenizerTokenType] = try TokenizerValidation.types(tokenTypes, tokens: tokens)
            ?? tokens.map { Self.byteValue($0) != nil ? .byte : .normal }
        for (i, t) in types.enumerated() where t == .byte && Self.byteValue(tokens[i]) == nil {
            throw TokenizerError.malformed("token \(i) (\(TokenizerValidation.quoted(tokens[i]))) has type byte but is not written <0xNN> with two hex digits")
        }
        self.tokenTypes = types
        self.bosTokenID = try TokenizerValidation.specialID(bosTokenID, "BOS", vocabularySize: tokens.count)
        self.eosTokenID = try TokenizerValidation.specialID(eosTokenID, "EOS", vocabularySize: tokens.count)
        self.unknownTokenID = try TokenizerValidation.specialID(unknownTokenID, "unknown", vocabularySize: tokens.count) ?? -1
        self.addsBOS = addBOS && self.bosTokenID != nil
        self.addSpacePrefix = addSpacePrefix

        var map = TokenizerBytesTable(capacity: tokens.count)
        var raw: [[UInt8]] = []
        raw.reserveCapacity(tokens.count)
        var dec: [[UInt8]] = []
        dec.reserveCapacity(tokens.count)
        var byteIDs = [Int32](repeating: -1, count: 256)
        for (i, t) in tokens.enumerated() {
            let u = Array(t.utf8)
            raw.append(u)
            map.insert(u, id: Int32(i))  // the last of duplicates wins, as in llama.cpp
            switch types[i] {
            case .byte:
                if let b = Self.byteValue(t) {
                    byteIDs[Int(b)] = Int32(i)
                    dec.append([b])
                } else {
                    dec.append(u)
                }
            case .unknown:
                dec.append([0xE2, 0x96, 0x85])  // "▅", what llama.cpp prints for the unknown token
            case .normal:
                dec.append(Self.unescapeSpaces(u))
            default:
                dec.append(u)
            }
        }
        // llama.cpp falls back to a single-character token for a byte without a <0xNN> token
        for b in 0..<128 where byteIDs[b] < 0 {
            if let id = map.find([UInt8(b)][...]) { byteIDs[b] = id }
        }
        idForPiece = map
        byteTokens = byteIDs
        decodeBytesOf = dec
        specials = TokenizerSpecialTokens(tokens: raw, types: types)
        newlineIsolates = !raw.contains { $0.count > 1 && $0.contains(0x0A) }
    }

    /// Reads a SentencePiece `tokenizer.model` (a serialized `ModelProto`): pieces, scores, types,
    /// the unk/bos/eos ids of its trainer spec and `add_dummy_prefix` of its normalizer spec.
    /// `addBOS` defaults to true, as llama.cpp does for this tokenizer type.
    public convenience init(sentencePieceModel url: URL, addBOS: Bool = true) throws {
        try self.init(sentencePieceModelData: try Data(contentsOf: url), addBOS: addBOS)
    }

    /// `init(sentencePieceModel:)` from the file's bytes.
    public convenience init(sentencePieceModelData data: Data, addBOS: Bool = true) throws {
        let model = try SentencePieceModelProto(data: [UInt8](data))
        try self.init(tokens: model.pieces, scores: model.scores, tokenTypes: model.types,
                      bosTokenID: model.bosID >= 0 ? model.bosID : nil,
                      eosTokenID: model.eosID >= 0 ? model.eosID : nil,
                      unknownTokenID: model.unkID, addBOS: addBOS,
                      addSpacePrefix: model.addDummyPrefix)
    }

    static func byteValue(_ t: String) -> UInt8? {
        let u = Array(t.utf8)
        guard u.count == 6, u[0] == 0x3C, u[1] == 0x30, u[2] == 0x78, u[5] == 0x3E else { return nil }
        func hex(_ c: UInt8) -> UInt8? {
            switch c {
            case 0x30...0x39: return c - 0x30
            case 0x41...0x46: return c - 0x41 + 10
            case 0x61...0x66: return c - 0x61 + 10
            default: return nil
            }
        }
        guard let hi = hex(u[3]), let lo = hex(u[4]) else { return nil }
        return hi << 4 | lo
    }

    static func unescapeSpaces(_ u: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(u.count)
        var i = 0
        while i < u.count {
            if i + 2 < u.count && u[i] == 0xE2 && u[i + 1] == 0x96 && u[i + 2] == 0x81 {
                out.append(0x20); i += 3
            } else {
                out.append(u[i]); i += 1
            }
        }
        return out
    }

    // MARK: Encoding

    public func encode(bytes: [UInt8], parseSpecial: Bool, addBOS: Bool) -> [Int] {
        var out: [Int32] = []
        if addBOS, let bos = bosTokenID { out.append(Int32(bos)) }
        var session = Session()
        var previousWasSpecial = true
        for fragment in specials.partition(bytes, parseSpecial: parseSpecial) {
            switch fragment {
            case .token(let id):
                out.append(Int32(id))
                previousWasSpecial = true
            case .text(let range):
                var text: [UInt8] = []
                text.reserveCapacity(range.count + 8)
                if addSpacePrefix && previousWasSpecial { text.append(contentsOf: Self.spaceMark) }
                for b in bytes[range] {
                    if b == 0x20 { text.append(contentsOf: Self.spaceMark) } else { text.append(b) }
                }
                if newlineIsolates {
                    // cut at the newline symbols of the same character walk `tokenize` does
                    var a = 0, i = 0
                    while i < text.count {
                        let n = min(Self.utf8Length(text[i]), text.count - i)
                        if text[i] == 0x0A {
                            if a < i { tokenize(text, a..<i, &out, &session) }
                            tokenize(text, i..<(i + 1), &out, &session)
                            a = i + 1
                        }
                        i += n
                    }
                    if a < text.count { tokenize(text, a..<text.count, &out, &session) }
                } else {
                    tokenize(text, 0..<text.count, &out, &session)
                }
                previousWasSpecial = false
            }
        }
        return out.map { Int($0) }
    }

    struct Session {
        var start: [Int32] = []
        var length: [Int32] = []
        var prev: [Int32] = []
        var next: [Int32] = []
        /// priority from the score (highest first, then leftmost); a = right symbol, b = merged size
        var heap = TokenizerHeap()
    }

    @inline(__always)
    static func utf8Length(_ b: UInt8) -> Int {
        switch b >> 4 {
        case 0xC, 0xD: return 2
        case 0xE: return 3
        case 0xF: return 4
        default: return 1
        }
    }

    /// Merges `text[range]` (one piece, already escaped) and appends its ids.
    private func tokenize(_ text: [UInt8], _ range: Range<Int>, _ out: inout [Int32], _ s: inout Session) {
        s.start.removeAll(keepingCapacity: true)
        s.length.removeAll(keepingCapacity: true)
        s.prev.removeAll(keepingCapacity: true)
        s.next.removeAll(keepingCapacity: true)
        s.heap.removeAll()
        var i = range.lowerBound
        while i < range.upperBound {
            let n = min(Self.utf8Length(text[i]), range.upperBound - i)
            let k = Int32(s.start.count)
            s.start.append(Int32(i)); s.length.append(Int32(n))
            s.prev.append(k - 1); s.next.append(k + 1)
            i += n
        }
        let count = s.start.count
        if count == 0 { return }
        s.next[count - 1] = -1

        text.withUnsafeBufferPointer { buf in
            guard let p = buf.baseAddress else { return }
            merge(p, &out, &s)
        }
    }

    private func merge(_ p: UnsafePointer<UInt8>, _ out: inout [Int32], _ s: inout Session) {
        @inline(__always)
        func tryAdd(_ l: Int32, _ r: Int32, _ s: inout Session) {
            if l < 0 || r < 0 { return }
            let a = Int(s.start[Int(l)])
            let size = Int(s.length[Int(l)] + s.length[Int(r)])
            guard let id = idForPiece.find(p + a, size) else { return }
            s.heap.push(TokenizerMergeCandidate(priority: TokenizerMergeCandidate.priority(forScore: scores[Int(id)]),
                                                left: l, a: r, b: Int32(size), c: 0))
        }

        let count = s.start.count
        for k in 1..<max(count, 1) { tryAdd(Int32(k - 1), Int32(k), &s) }
        while let bg = s.heap.pop() {
            let l = Int(bg.left), r = Int(bg.a)
            let ln = s.length[l], rn = s.length[r]
            if ln == 0 || rn == 0 || ln + rn != bg.b || s.next[l] != bg.a { continue }
            s.length[l] = ln + rn
            s.length[r] = 0
            let nx = s.next[r]
            s.next[l] = nx
            if nx >= 0 { s.prev[Int(nx)] = Int32(l) }
            tryAdd(s.prev[l], Int32(l), &s)
            tryAdd(Int32(l), nx, &s)
        }
        var k: Int32 = 0
        while k >= 0 {
            let a = Int(s.start[Int(k)]), n = Int(s.length[Int(k)])
            if let id = idForPiece.find(p + a, n) {
                out.append(id)
            } else {
                for j in a..<(a + n) {
                    let t = byteTokens[Int(p[j])]
                    if t >= 0 { out.append(t) } else if unknownTokenID >= 0 { out.append(Int32(unknownTokenID)) }
                }
            }
            k = s.next[Int(k)]
        }
    }

    // MARK: Decoding

    /// Like llama.cpp's detokenize: the space added in front by `addSpacePrefix` is removed again
    /// when the first decoded piece starts with one. Control tokens that are not rendered (a
    /// leading BOS) do not count as the first piece, so `decode(encode(text)) == text`.
    public func decodeBytes(_ ids: [Int], renderSpecial: Bool) -> [UInt8] {
        var out: [UInt8] = []
        var first = true
        for id in ids where id >= 0 && id < tokens.count {
            let type = tokenTypes[id]
            if type == .control && !renderSpecial { continue }
            var piece = decodeBytesOf[id]
            if first && addSpacePrefix && type != .control && piece.first == 0x20 { piece.removeFirst() }
            first = false
            out.append(contentsOf: piece)
        }
        return out
    }
}

/// A minimal reader of SentencePiece's `ModelProto` (protobuf wire format): field 1 = pieces
/// (SentencePiece: 1 piece, 2 score, 3 type), 2 = trainer spec (40 unk_id, 41 bos_id, 42 eos_id),
/// 3 = normalizer spec (3 add_dummy_prefix).
struct SentencePieceModelProto {
    var pieces: [String] = []
    var scores: [Float] = []
    var types: [Int32] = []
    var unkID = 0
    var bosID = 1
    var eosID = 2
    var addDummyPrefix = true

    struct Reader {
        let bytes: [UInt8]
        var pos: Int
        let end: Int

        var atEnd: Bool { pos >= end }

        mutating func varint() throws -> UInt64 {
            var result: UInt64 = 0
            var shift: UInt64 = 0
            while true {
                guard pos < end, shift < 64 else { throw TokenizerError.malformed("truncated varint") }
                let b = bytes[pos]; pos += 1
                result |= UInt64(b & 0x7F) << shift
                if b & 0x80 == 0 { return result }
                shift += 7
            }
        }

        mutating func fixed32() throws -> UInt32 {
            guard pos + 4 <= end else { throw TokenizerError.malformed("truncated fixed32") }
            let v = UInt32(bytes[pos]) | UInt32(bytes[pos + 1]) << 8 | UInt32(bytes[pos + 2]) << 16
                | UInt32(bytes[pos + 3]) << 24
            pos += 4
            return v
        }

        mutating func lengthDelimited() throws -> Range<Int> {
            let length = try varint()
            guard length <= UInt64(end - pos) else {
                throw TokenizerError.malformed("a field of \(length) bytes at byte \(pos), but only \(end - pos) bytes are left (truncated or corrupt tokenizer.model)")
            }
            let n = Int(length)
            defer { pos += n }
            return pos..<(pos + n)
        }

        /// Reads a tag; returns (field number, wire type).
        mutating func tag() throws -> (Int, Int) {
            let t = try varint()
            return (Int(t >> 3), Int(t & 7))
        }

        mutating func skip(_ wire: Int) throws {
            switch wire {
            case 0: _ = try varint()
            case 1: guard pos + 8 <= end else { throw TokenizerError.malformed("truncated") }; pos += 8
            case 2: _ = try lengthDelimited()
            case 5: _ = try fixed32()
            default: throw TokenizerError.malformed("unsupported wire type \(wire)")
            }
        }
    }

    init(data: [UInt8]) throws {
        var r = Reader(bytes: data, pos: 0, end: data.count)
        while !r.atEnd {
            let (field, wire) = try r.tag()
            switch (field, wire) {
            case (1, 2):
                let range = try r.lengthDelimited()
                var p = Reader(bytes: data, pos: range.lowerBound, end: range.upperBound)
                var piece = "", score: Float = 0, type: Int32 = 1
                while !p.atEnd {
                    let (f, w) = try p.tag()
                    switch (f, w) {
                    case (1, 2): piece = String(decoding: data[try p.lengthDelimited()], as: UTF8.self)
                    case (2, 5): score = Float(bitPattern: try p.fixed32())
                    case (3, 0): type = Int32(truncatingIfNeeded: try p.varint())
                    default: try p.skip(w)
                    }
                }
                pieces.append(piece); scores.append(score); types.append(type)
            case (2, 2):
                let range = try r.lengthDelimited()
                var t = Reader(bytes: data, pos: range.lowerBound, end: range.upperBound)
                while !t.atEnd {
                    let (f, w) = try t.tag()
                    switch (f, w) {
                    case (40, 0): unkID = Int(Int32(truncatingIfNeeded: try t.varint()))
                    case (41, 0): bosID = Int(Int32(truncatingIfNeeded: try t.varint()))
                    case (42, 0): eosID = Int(Int32(truncatingIfNeeded: try t.varint()))
                    default: try t.skip(w)
                    }
                }
            case (3, 2):
                let range = try r.lengthDelimited()
                var n = Reader(bytes: data, pos: range.lowerBound, end: range.upperBound)
                while !n.atEnd {
                    let (f, w) = try n.tag()
                    if f == 3 && w == 0 { addDummyPrefix = try n.varint() != 0 } else { try n.skip(w) }
                }
            default:
                try r.skip(wire)
            }
        }
        if pieces.isEmpty { throw TokenizerError.malformed("no pieces in the SentencePiece model") }
        if let bad = types.firstIndex(where: { !(1...6).contains($0) }) {
            throw TokenizerError.malformed("piece \(bad) (\(TokenizerValidation.quoted(pieces[bad]))) has type \(types[bad]); allowed SentencePiece types are 1...6")
        }
    }
}
