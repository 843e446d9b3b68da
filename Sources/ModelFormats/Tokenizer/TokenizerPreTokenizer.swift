import Foundation

/// Splits text into words before byte-level BPE, by hand-written matchers equivalent to the
/// regular expressions llama.cpp uses for a GGUF `tokenizer.ggml.pre` name:
///
/// - `gpt2`:  `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
/// - `llama3` (`llama-bpe`): `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
///   ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
/// - `smollm` (also starcoder, refact, command-r, codeshell, exaone, minerva): every `\p{N}` is
///   split off on its own first, then the `gpt2` pattern runs on the pieces in between.
///
/// Classes: `\p{L}` = general categories Lu Ll Lt Lm Lo, `\p{N}` = Nd Nl No, `\s` = the Unicode
/// White_Space property. Input bytes that are not valid UTF-8 are kept (never replaced) and count
/// as "other" characters, one byte each.
public struct TokenizerPreTokenizer: Sendable, Equatable {
    public enum Pattern: String, Sendable {
        case gpt2, llama3, smollm
    }

    public let pattern: Pattern

    public init(pattern: Pattern) { self.pattern = pattern }

    /// `name` is a GGUF `tokenizer.ggml.pre` value.
    public init(name: String) throws {
        guard let p = Self.patternsByName[name] else { throw TokenizerError.unsupportedPreTokenizer(name) }
        pattern = p
    }

    static let patternsByName: [String: Pattern] = [
        "gpt2": .gpt2, "gpt-2": .gpt2, "mpt": .gpt2, "olmo": .gpt2, "jais": .gpt2,
        "llama-bpe": .llama3, "llama3": .llama3, "llama-v3": .llama3, "dbrx": .llama3, "smaug-bpe": .llama3,
        "smollm": .smollm, "starcoder": .smollm, "refact": .smollm, "command-r": .smollm,
        "codeshell": .smollm, "exaone": .smollm, "minerva-7b": .smollm,
    ]

    public static var knownNames: [String] { patternsByName.keys.sorted() }

    /// Appends the byte ranges of the words of `buf[range]` to `words`.
    public func split(_ bytes: [UInt8], range: Range<Int>? = nil, into words: inout [Range<Int>]) {
        var scratch = Scratch()
        bytes.withUnsafeBufferPointer { buf in
            split(buf, range ?? 0..<bytes.count, into: &words, scratch: &scratch)
        }
    }

    /// The words of `text` (a convenience for tests and inspection).
    public func words(_ text: String) -> [String] {
        let bytes = Array(text.utf8)
        var ranges: [Range<Int>] = []
        split(bytes, into: &ranges)
        return ranges.map { String(decoding: bytes[$0], as: UTF8.self) }
    }

    // MARK: - Implementation

    static let letter: UInt8 = 1
    static let number: UInt8 = 2
    static let space: UInt8 = 4
    static let defined: UInt8 = 8  // set for every character, so in-range flags are never 0

    struct Scratch {
        var cps: [UInt32] = []
        var flags: [UInt8] = []
        var offsets: [Int] = []
    }

    static let asciiFlags: [UInt8] = (0..<128).map { b -> UInt8 in
        var f = defined
        if (65...90).contains(b) || (97...122).contains(b) { f |= letter }
        if (48...57).contains(b) { f |= number }
        if (9...13).contains(b) || b == 32 { f |= space }
        return f
    }

    @inline(__always)
    static func flags(of cp: UInt32) -> UInt8 {
        if cp < 128 { return asciiFlags[Int(cp)] }
        guard let s = Unicode.Scalar(cp) else { return defined }
        let p = s.properties
        if p.isWhitespace { return defined | space }
        switch p.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter:
            return defined | letter
        case .decimalNumber, .letterNumber, .otherNumber:
            return defined | number
        default:
            return defined
        }
    }

    /// Decodes UTF-8 leniently: an invalid byte becomes one "other" character of its own.
    static func decode(_ buf: UnsafeBufferPointer<UInt8>, _ range: Range<Int>, _ s: inout Scratch) {
        s.cps.removeAll(keepingCapacity: true)
        s.flags.removeAll(keepingCapacity: true)
        s.offsets.removeAll(keepingCapacity: true)
        var i = range.lowerBound
        let end = range.upperBound
        while i < end {
            let b0 = buf[i]
            s.offsets.append(i)
            if b0 < 0x80 {
                s.cps.append(UInt32(b0)); s.flags.append(asciiFlags[Int(b0)]); i += 1; continue
            }
            var n = 0
            var cp: UInt32 = 0
            if b0 >= 0xC2 && b0 <= 0xDF { n = 2; cp = UInt32(b0 & 0x1F) }
            else if b0 >= 0xE0 && b0 <= 0xEF { n = 3; cp = UInt32(b0 & 0x0F) }
            else if b0 >= 0xF0 && b0 <= 0xF4 { n = 4; cp = UInt32(b0 & 0x07) }
            var ok = n > 0 && i + n <= end
            if ok {
                for k in 1..<n {
                    let c = buf[i + k]
                    if c & 0xC0 != 0x80 { ok = false; break }
                    cp = (cp << 6) | UInt32(c & 0x3F)
                }
            }
            if ok {
                // reject overlong forms, surrogates and values past U+10FFFF
                let minimum: UInt32 = n == 3 ? 0x800 : (n == 4 ? 0x10000 : 0x80)
                if cp < minimum || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF { ok = false }
            }
            if ok {
                s.cps.append(cp); s.flags.append(flags(of: cp)); i += n
            } else {
                s.cps.append(0xFFFF_FFFF); s.flags.append(defined); i += 1
            }
        }
        s.offsets.append(end)
    }

    func split(_ buf: UnsafeBufferPointer<UInt8>, _ range: Range<Int>, into words: inout [Range<Int>],
               scratch s: inout Scratch) {
        if range.isEmpty { return }
        Self.decode(buf, range, &s)
        let n = s.cps.count
        s.cps.withUnsafeBufferPointer { cps in
            s.flags.withUnsafeBufferPointer { fl in
                s.offsets.withUnsafeBufferPointer { off in
                    let m = Matcher(cps: cps, fl: fl, off: off)
                    switch pattern {
                    case .gpt2:
                        m.gpt2(0, n, &words)
                    case .llama3:
                        m.llama3(0, n, &words)
                    case .smollm:
                        var start = 0
                        for i in 0..<n where fl[i] & Self.number != 0 {
                            if start < i { m.gpt2(start, i, &words) }
                            words.append(off[i]..<off[i + 1])
                            start = i + 1
                        }
                        if start < n { m.gpt2(start, n, &words) }
                    }
                }
            }
        }
    }

    struct Matcher {
        let cps: UnsafeBufferPointer<UInt32>
        let fl: UnsafeBufferPointer<UInt8>
        let off: UnsafeBufferPointer<Int>

        static let outOfRange: UInt32 = 0xFFFF_FFFE

        @inline(__always) func cp(_ i: Int, _ end: Int) -> UInt32 { i < end ? cps[i] : Self.outOfRange }
        @inline(__always) func f(_ i: Int, _ end: Int) -> UInt8 { i < end ? fl[i] : 0 }
        @inline(__always) func emit(_ a: Int, _ b: Int, _ words: inout [Range<Int>]) {
            words.append(off[a]..<off[b])
        }

        static let L = TokenizerPreTokenizer.letter
        static let N = TokenizerPreTokenizer.number
        static let S = TokenizerPreTokenizer.space
        static let LNS = L | N | S

        /// Matches the GPT-2 pattern on characters [start, end).
        func gpt2(_ start: Int, _ end: Int, _ words: inout [Range<Int>]) {
            let L = Self.L, N = Self.N, S = Self.S, LNS = Self.LNS
            var pos = start
            while pos < end {
                let c = cps[pos]
                // 's 't 're 've 'm 'll 'd
                if c == 0x27 && pos + 1 < end {
                    let c1 = cps[pos + 1]
                    if c1 == 0x73 || c1 == 0x74 || c1 == 0x6D || c1 == 0x64 {
                        emit(pos, pos + 2, &words); pos += 2; continue
                    }
                    if pos + 2 < end {
                        let c2 = cps[pos + 2]
                        if (c1 == 0x72 && c2 == 0x65) || (c1 == 0x76 && c2 == 0x65) || (c1 == 0x6C && c2 == 0x6C) {
                            emit(pos, pos + 3, &words); pos += 3; continue
                        }
                    }
                }
                let lead = c == 0x20 ? 1 : 0
                let f2 = lead == 1 ? f(pos + 1, end) : fl[pos]
                // ' ?\p{L}+', ' ?\p{N}+', ' ?[^\s\p{L}\p{N}]+'
                if f2 & L != 0 || f2 & N != 0 || (f2 & LNS == 0 && f2 != 0) {
                    var p = pos + lead
                    if f2 & L != 0 {
                        while p < end && fl[p] & L != 0 { p += 1 }
                    } else if f2 & N != 0 {
                        while p < end && fl[p] & N != 0 { p += 1 }
                    } else {
                        while p < end && fl[p] & LNS == 0 { p += 1 }
                    }
                    emit(pos, p, &words); pos = p; continue
                }
                var spaces = 0
                while pos + spaces < end && fl[pos + spaces] & S != 0 { spaces += 1 }
                // '\s+(?!\S)': leave the last space for the next word
                if spaces > 1 && pos + spaces < end {
                    emit(pos, pos + spaces - 1, &words); pos += spaces - 1; continue
                }
                if spaces > 0 {
                    emit(pos, pos + spaces, &words); pos += spaces; continue
                }
                emit(pos, pos + 1, &words); pos += 1
            }
        }

        @inline(__always) static func isCRLF(_ c: UInt32) -> Bool { c == 0x0D || c == 0x0A }

        /// Matches the LLaMA-3 pattern on characters [start, end).
        func llama3(_ start: Int, _ end: Int, _ words: inout [Range<Int>]) {
            let L = Self.L, N = Self.N, S = Self.S, LNS = Self.LNS
            var pos = start
            while pos < end {
                let c = cps[pos]
                let fc = fl[pos]
                // (?i:'s|'t|'re|'ve|'m|'ll|'d)
                if c == 0x27 && pos + 1 < end {
                    let c1 = cps[pos + 1] | (cps[pos + 1] >= 0x41 && cps[pos + 1] <= 0x5A ? 0x20 : 0)
                    if c1 == 0x73 || c1 == 0x74 || c1 == 0x6D || c1 == 0x64 {
                        emit(pos, pos + 2, &words); pos += 2; continue
                    }
                    if pos + 2 < end {
                        let c2 = cps[pos + 2] | (cps[pos + 2] >= 0x41 && cps[pos + 2] <= 0x5A ? 0x20 : 0)
                        if (c1 == 0x72 && c2 == 0x65) || (c1 == 0x76 && c2 == 0x65) || (c1 == 0x6C && c2 == 0x6C) {
                            emit(pos, pos + 3, &words); pos += 3; continue
                        }
                    }
                }
                // [^\r\n\p{L}\p{N}]?\p{L}+
                if !(Self.isCRLF(c) || fc & N != 0) {
                    if fc & L != 0 || f(pos + 1, end) & L != 0 {
                        var p = pos + 1
                        while p < end && fl[p] & L != 0 { p += 1 }
                        emit(pos, p, &words); pos = p; continue
                    }
                }
                // \p{N}{1,3}
                if fc & N != 0 {
                    var p = pos
                    var runStart = pos
                    while p < end && fl[p] & N != 0 {
                        p += 1
                        if p - runStart >= 3 { emit(runStart, p, &words); runStart = p }
                    }
                    if runStart < p { emit(runStart, p, &words) }
                    pos = p; continue
                }
                // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
                let lead = c == 0x20 ? 1 : 0
                let f2 = lead == 1 ? f(pos + 1, end) : fc
                if f2 & LNS == 0 && fc != 0 {
                    var p = pos + lead
                    while p < end && fl[p] & LNS == 0 { p += 1 }
                    while p < end && Self.isCRLF(cps[p]) { p += 1 }
                    emit(pos, p, &words); pos = p; continue
                }
                var spaces = 0
                var lastCRLFEnd = 0
                while pos + spaces < end && fl[pos + spaces] & S != 0 {
                    if Self.isCRLF(cps[pos + spaces]) { lastCRLFEnd = pos + spaces + 1 }
                    spaces += 1
                }
                // \s*[\r\n]+
                if lastCRLFEnd > 0 {
                    emit(pos, lastCRLFEnd, &words); pos = lastCRLFEnd; continue
                }
                // \s+(?!\S)
                if spaces > 1 && pos + spaces < end {
                    emit(pos, pos + spaces - 1, &words); pos += spaces - 1; continue
                }
                if spaces > 0 {
                    emit(pos, pos + spaces, &words); pos += spaces; continue
                }
                emit(pos, pos + 1, &words); pos += 1
            }
        }
    }
}
