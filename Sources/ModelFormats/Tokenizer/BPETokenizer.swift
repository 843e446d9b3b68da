import Foundation

/// Byte-level BPE (GPT-2 style; GGUF `tokenizer.ggml.model = gpt2`), as llama.cpp runs it:
///
/// 1. special tokens written in the text are cut out (see `TextTokenizer`);
/// 2. each remaining piece is split into words by the `tokenizer.ggml.pre` pattern;
/// 3. each word starts as one symbol per byte and the adjacent pair with the lowest merge rank
///    (leftmost on ties) is merged until no pair has a rank. With `ignoresMerges` (LLaMA-3) a word
///    that is itself a token is emitted directly.
///
/// Words are cached per `encode` call, and merging works on token ids, not strings.
public final class BPETokenizer: TextTokenizer, @unchecked Sendable {
    /// Token texts as stored in GGUF / tokenizer.json (byte-level encoded: "Ġthe").
    public let tokens: [String]
    public let tokenTypes: [TokenizerTokenType]
    public let preTokenizer: TokenizerPreTokenizer
    public let bosTokenID: Int?
    public let eosTokenID: Int?
    public let addsBOS: Bool
    public let ignoresMerges: Bool
    public var vocabularySize: Int { tokens.count }

    /// The bytes each token stands for.
    let tokenBytes: [[UInt8]]
    /// Token id of each single byte, -1 when missing.
    let byteTokens: [Int32]
    /// (left id << 32 | right id) → (rank << 32 | merged id).
    let mergeTable: [UInt64: UInt64]
    /// Raw bytes → id, for `ignoresMerges`.
    let idForBytes: TokenizerBytesTable
    /// Token text → id.
    let idForText: [String: Int32]
    let specials: TokenizerSpecialTokens

    /// - Parameters:
    ///   - tokens: `tokenizer.ggml.tokens` (byte-level encoded texts, index = id).
    ///   - merges: `tokenizer.ggml.merges`, "left right", in rank order.
    ///   - tokenTypes: `tokenizer.ggml.token_type` (nil: all normal).
    ///   - preTokenizer: `tokenizer.ggml.pre`, e.g. "gpt2", "llama-bpe", "smollm".
    ///   - ignoreMerges: nil = llama.cpp's choice for the pre-tokenizer (true for LLaMA-3).
    public convenience init(
        tokens: [String], merges: [String], tokenTypes: [Int32]? = nil, preTokenizer: String,
        bosTokenID: Int? = nil, eosTokenID: Int? = nil, addBOS: Bool = false, ignoreMerges: Bool? = nil
    ) throws {
        var pairs: [(String, String)] = []
        pairs.reserveCapacity(merges.count)
        for m in merges {
            // split at the first space after the first character (a token may begin with " ")
            let u = Array(m.utf8)
            guard u.count >= 3, let sp = u[1...].firstIndex(of: 0x20) else {
                throw TokenizerError.malformed("merge \"\(m)\"")
            }
            pairs.append((String(decoding: u[..<sp], as: UTF8.self), String(decoding: u[(sp + 1)...], as: UTF8.self)))
        }
        try self.init(tokens: tokens, mergePairs: pairs, tokenTypes: tokenTypes,
                      preTokenizer: try TokenizerPreTokenizer(name: preTokenizer),
                      bosTokenID: bosTokenID, eosTokenID: eosTokenID, addBOS: addBOS, ignoreMerges: ignoreMerges)
    }

    public init(
        tokens: [String], mergePairs: [(String, String)], tokenTypes: [Int32]?, preTokenizer: TokenizerPreTokenizer,
        bosTokenID: Int?, eosTokenID: Int?, addBOS: Bool, ignoreMerges: Bool? = nil
    ) throws {
        try TokenizerValidation.tokens(tokens)
        guard mergePairs.count < Int(UInt32.max) else { throw TokenizerError.malformed("\(mergePairs.count) merges (at most 2^32 - 1)") }
        self.tokens = tokens
        let types = try TokenizerValidation.types(tokenTypes, tokens: tokens)
            ?? [TokenizerTokenType](repeating: .normal, count: tokens.count)
        self.tokenTypes = types
        self.preTokenizer = preTokenizer
        self.bosTokenID = try TokenizerValidation.specialID(bosTokenID, "BOS", vocabularySize: tokens.count)
        self.eosTokenID = try TokenizerValidation.specialID(eosTokenID, "EOS", vocabularySize: tokens.count)
        self.addsBOS = addBOS && self.bosTokenID != nil
        self.ignoresMerges = ignoreMerges ?? (preTokenizer.pattern == .llama3)

        var idForText: [String: Int32] = [:]
        idForText.reserveCapacity(tokens.count)
        var bytesOf: [[UInt8]] = []
        bytesOf.reserveCapacity(tokens.count)
        var idForBytes = TokenizerBytesTable(capacity: tokens.count)
        var rawTexts: [[UInt8]] = []
        rawTexts.reserveCapacity(tokens.count)
        for (i, t) in tokens.enumerated() {
            idForText[t] = Int32(i)  // the last of duplicates wins, as in llama.cpp
            let raw = Array(t.utf8)
            rawTexts.append(raw)
            let b: [UInt8]
            switch types[i] {
            case .control, .userDefined: b = raw
            default: b = TokenizerByteLevel.decode(t) ?? raw
            }
            bytesOf.append(b)
            if types[i] != .control { idForBytes.insert(b, id: Int32(i)) }
        }
        tokenBytes = bytesOf
        self.idForBytes = idForBytes
        self.idForText = idForText
        byteTokens = (0..<256).map { b in idForText[String(Character(TokenizerByteLevel.scalars[b]))] ?? -1 }

        var table: [UInt64: UInt64] = [:]
        table.reserveCapacity(mergePairs.count)
        for (rank, (l, r)) in mergePairs.enumerated() {
            guard let a = idForText[l], let b = idForText[r], let m = idForText[l + r] else { continue }
            let key = UInt64(UInt32(a)) << 32 | UInt64(UInt32(b))
            if table[key] == nil { table[key] = UInt64(rank) << 32 | UInt64(UInt32(m)) }
        }
        mergeTable = table
        specials = TokenizerSpecialTokens(tokens: rawTexts, types: types)
    }

    // MARK: Encoding

    public func encode(bytes: [UInt8], parseSpecial: Bool, addBOS: Bool) -> [Int] {
        var out: [Int32] = []
        out.reserveCapacity(bytes.count / 3 + 4)
        if addBOS, let bos = bosTokenID { out.append(Int32(bos)) }
        let fragments = specials.partition(bytes, parseSpecial: parseSpecial)
        var session = Session()
        var words: [Range<Int>] = []
        bytes.withUnsafeBufferPointer { buf in
            for fragment in fragments {
                switch fragment {
                case .token(let id):
                    out.append(Int32(id))
                case .text(let range):
                    words.removeAll(keepingCapacity: true)
                    preTokenizer.split(buf, range, into: &words, scratch: &session.preScratch)
                    for w in words { encodeWord(buf, w, &out, &session, bytes) }
                }
            }
        }
        return out.map { Int($0) }
    }

    struct Session {
        var preScratch = TokenizerPreTokenizer.Scratch()
        /// word bytes → (start, count) of its ids in the output already produced
        var cache: [ArraySlice<UInt8>: (Int32, Int32)] = [:]
        var ids: [Int32] = []
        var next: [Int32] = []
        var prev: [Int32] = []
        /// priority = merge rank (lowest first, then leftmost); a = left id, b = right id, c = merged id
        var heap = TokenizerHeap()
    }

    @inline(__always)
    private func lookupMerge(_ a: Int32, _ b: Int32) -> UInt64? {
        mergeTable[UInt64(UInt32(a)) << 32 | UInt64(UInt32(b))]
    }

    private func encodeWord(_ buf: UnsafeBufferPointer<UInt8>, _ w: Range<Int>, _ out: inout [Int32],
                            _ s: inout Session, _ bytes: [UInt8]) {
        let n = w.count
        if n == 1 {
            let t = byteTokens[Int(buf[w.lowerBound])]
            if t >= 0 { out.append(t) }
            return
        }
        let key = bytes[w]
        if let (start, count) = s.cache[key] {
            for k in Int(start)..<Int(start + count) { out.append(out[k]) }
            return
        }
        let start = out.count
        if ignoresMerges, let id = idForBytes.find(buf.baseAddress! + w.lowerBound, n) {
            out.append(id)
        } else {
            s.ids.removeAll(keepingCapacity: true)
            s.next.removeAll(keepingCapacity: true)
            s.prev.removeAll(keepingCapacity: true)
            s.heap.removeAll()
            for k in 0..<n {
                s.ids.append(byteTokens[Int(buf[w.lowerBound + k])])
                s.prev.append(Int32(k - 1))
                s.next.append(k + 1 < n ? Int32(k + 1) : -1)
            }
            for k in 0..<(n - 1) {
                let a = s.ids[k], b = s.ids[k + 1]
                if a >= 0, b >= 0, let m = lookupMerge(a, b) {
                    s.heap.push(TokenizerMergeCandidate(priority: Int64(m >> 32), left: Int32(k), a: a, b: b,
                                                        c: Int32(truncatingIfNeeded: m)))
                }
            }
            while let c = s.heap.pop() {
                let l = Int(c.left)
                let r = Int(s.next[l])
                guard r >= 0, s.ids[l] == c.a, s.ids[r] == c.b else { continue }
                // merge r into l
                s.ids[l] = c.c
                s.ids[r] = -2
                let rn = s.next[r]
                s.next[l] = rn
                if rn >= 0 { s.prev[Int(rn)] = Int32(l) }
                let p = s.prev[l]
                if p >= 0, s.ids[Int(p)] >= 0, let m = lookupMerge(s.ids[Int(p)], c.c) {
                    s.heap.push(TokenizerMergeCandidate(priority: Int64(m >> 32), left: p, a: s.ids[Int(p)],
                                                        b: c.c, c: Int32(truncatingIfNeeded: m)))
                }
                if rn >= 0, s.ids[Int(rn)] >= 0, let m = lookupMerge(c.c, s.ids[Int(rn)]) {
                    s.heap.push(TokenizerMergeCandidate(priority: Int64(m >> 32), left: Int32(l), a: c.c,
                                                        b: s.ids[Int(rn)], c: Int32(truncatingIfNeeded: m)))
                }
            }
            var k: Int32 = 0
            while k >= 0 {
                let id = s.ids[Int(k)]
                if id >= 0 { out.append(id) }  // a byte without a token is dropped
                k = s.next[Int(k)]
            }
        }
        s.cache[key] = (Int32(start), Int32(out.count - start))
    }

    // MARK: Decoding

    /// `renderSpecial`: include the text of control tokens (llama.cpp's detokenize `special`).
    public func decodeBytes(_ ids: [Int], renderSpecial: Bool) -> [UInt8] {
        var out: [UInt8] = []
        for id in ids where id >= 0 && id < tokens.count {
            if tokenTypes[id] == .control && !renderSpecial { continue }
            out.append(contentsOf: tokenBytes[id])
        }
        return out
    }

    /// The id of a token text as stored in the vocabulary ("Ġthe"), if any.
    public func tokenID(_ text: String) -> Int? {
        idForText[text].map { Int($0) }
    }
}
