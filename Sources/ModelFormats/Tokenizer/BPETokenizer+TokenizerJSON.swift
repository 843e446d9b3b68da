import Foundation

extension BPETokenizer {
    /// Reads a Hugging Face `tokenizer.json` with a byte-level BPE model.
    ///
    /// - `model`: type "BPE", `vocab`, `merges` (as "a b" strings or ["a", "b"] pairs),
    ///   `ignore_merges`.
    /// - `added_tokens`: special ones become control tokens, the others user-defined tokens.
    /// - `pre_tokenizer`: must be one of the supported patterns: `ByteLevel` with its regex (gpt2),
    ///   `Digits(individual_digits)` + `ByteLevel` (smollm), or a `Split` with the GPT-2 or
    ///   LLaMA-3 regex followed by `ByteLevel(use_regex: false)`. Anything else throws
    ///   `TokenizerError.unsupportedPreTokenizer` naming what was found. A normalizer is not
    ///   supported either.
    /// - BOS: taken from a `TemplateProcessing` post-processor that starts with a special token,
    ///   unless given. `tokenizer.json` does not name the EOS token: pass it.
    public convenience init(tokenizerJSON url: URL, bosTokenID: Int? = nil, eosTokenID: Int? = nil,
                            addBOS: Bool? = nil) throws {
        try self.init(tokenizerJSONData: try Data(contentsOf: url), bosTokenID: bosTokenID,
                      eosTokenID: eosTokenID, addBOS: addBOS)
    }

    /// `bosTokenText` / `eosTokenText` (from tokenizer_config.json) name the BOS / EOS tokens by
    /// their text when the ids are not given; a text that is not a token is an error.
    public convenience init(tokenizerJSONData data: Data, bosTokenID: Int? = nil, eosTokenID: Int? = nil,
                            addBOS: Bool? = nil, bosTokenText: String? = nil, eosTokenText: String? = nil) throws {
        guard let root = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw TokenizerError.malformed("tokenizer.json is not a JSON object")
        }
        guard let model = root["model"] as? [String: Any] else { throw TokenizerError.malformed("no model") }
        let type = model["type"] as? String ?? "BPE"
        guard type == "BPE" else { throw TokenizerError.unsupportedModel("tokenizer.json model type \(type)") }
        for key in ["continuing_subword_prefix", "end_of_word_suffix"] {
            if let v = model[key] as? String, !v.isEmpty {
                throw TokenizerError.unsupportedModel("BPE with \(key) \"\(v)\"")
            }
        }
        if let normalizer = root["normalizer"], !(normalizer is NSNull) {
            let name = (normalizer as? [String: Any])?["type"] as? String ?? "?"
            throw TokenizerError.unsupportedModel("tokenizer.json normalizer \(name)")
        }
        guard let vocab = model["vocab"] as? [String: Any] else { throw TokenizerError.malformed("no model.vocab") }

        /// A JSON number that is an integer (no fraction, no overflow), else nil.
        func integer(_ v: Any?) -> Int? {
            guard let n = v as? NSNumber else { return nil }
            if let i = v as? Int { return i }
            let d = n.doubleValue
            return d == d.rounded() && abs(d) < 9e15 ? Int(d) : nil
        }
        var byID: [Int: String] = [:]
        for (text, value) in vocab {
            guard let id = integer(value), id >= 0 else {
                throw TokenizerError.malformed("model.vocab entry \(TokenizerValidation.quoted(text)) has id \(value); ids are non-negative integers")
            }
            byID[id] = text
        }
        var specialIDs: [Int: Bool] = [:]
        for case let added as [String: Any] in root["added_tokens"] as? [Any] ?? [] {
            guard let content = added["content"] as? String else {
                throw TokenizerError.malformed("added_tokens entry \(added) has no content string")
            }
            guard let id = integer(added["id"]), id >= 0 else {
                throw TokenizerError.malformed("added_tokens entry \(TokenizerValidation.quoted(content)) has id \(added["id"] ?? "none"); ids are non-negative integers")
            }
            byID[id] = content
            specialIDs[id] = (added["special"] as? Bool) ?? false
        }
        // Ids index the token table, so the table is as long as the largest id + 1. Gaps (unused
        // ids) are allowed, but at most `maxUnusedIDs` of them: an absurd id cannot size the table.
        let top = byID.keys.max() ?? -1
        guard top - byID.count < Self.maxUnusedIDs else {  // top + 1 − count ids are unused
            throw TokenizerError.malformed("token id \(top) (\(TokenizerValidation.quoted(byID[top]!))) leaves \(top - byID.count + 1) unused ids below it; at most \(Self.maxUnusedIDs) are allowed (ids should run 0..<\(byID.count))")
        }
        let count = top + 1
        var tokens = [String](repeating: "", count: count)
        var types = [Int32](repeating: TokenizerTokenType.normal.rawValue, count: count)
        for (id, text) in byID { tokens[id] = text }
        for id in 0..<count where byID[id] == nil { types[id] = TokenizerTokenType.unused.rawValue }
        for (id, special) in specialIDs {
            types[id] = special ? TokenizerTokenType.control.rawValue : TokenizerTokenType.userDefined.rawValue
        }

        var pairs: [(String, String)] = []
        for m in model["merges"] as? [Any] ?? [] {
            if let s = m as? String {
                let u = Array(s.utf8)
                guard u.count >= 3, let sp = u[1...].firstIndex(of: 0x20) else {
                    throw TokenizerError.malformed("merge \"\(s)\"")
                }
                pairs.append((String(decoding: u[..<sp], as: UTF8.self), String(decoding: u[(sp + 1)...], as: UTF8.self)))
            } else if let p = m as? [String], p.count == 2 {
                pairs.append((p[0], p[1]))
            } else {
                throw TokenizerError.malformed("merge \(m)")
            }
        }

        let pattern = try Self.pattern(fromTokenizerJSON: root["pre_tokenizer"])
        func id(ofText text: String?, _ what: String) throws -> Int? {
            guard let text else { return nil }
            guard let i = tokens.lastIndex(of: text) else {
                throw TokenizerError.malformed("the \(what) token \(TokenizerValidation.quoted(text)) is not in the vocabulary")
            }
            return i
        }
        var bos = try bosTokenID ?? id(ofText: bosTokenText, "BOS")
        let eos = try eosTokenID ?? id(ofText: eosTokenText, "EOS")
        var templateAddsBOS = false
        if let first = Self.templateFirstSpecialToken(root["post_processor"]) {
            if bos == nil { bos = tokens.firstIndex(of: first) }
            templateAddsBOS = bos != nil && tokens.firstIndex(of: first) == bos
        }
        try self.init(tokens: tokens, mergePairs: pairs, tokenTypes: types,
                      preTokenizer: TokenizerPreTokenizer(pattern: pattern), bosTokenID: bos,
                      eosTokenID: eos, addBOS: addBOS ?? templateAddsBOS,
                      ignoreMerges: (model["ignore_merges"] as? Bool) ?? false)
    }

    /// Most ids a tokenizer.json may leave unused below its largest id.
    public static let maxUnusedIDs = 65_536

    static let gpt2Regex = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"#
    static let llama3Regexes = [
        #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#,
    ]

    /// Maps a tokenizer.json `pre_tokenizer` to a supported pattern, or throws.
    static func pattern(fromTokenizerJSON value: Any?) throws -> TokenizerPreTokenizer.Pattern {
        guard let obj = value as? [String: Any] else {
            throw TokenizerError.unsupportedPreTokenizer("tokenizer.json pre_tokenizer \(String(describing: value))")
        }
        let steps: [[String: Any]]
        if obj["type"] as? String == "Sequence" {
            steps = (obj["pretokenizers"] as? [Any] ?? []).compactMap { $0 as? [String: Any] }
        } else {
            steps = [obj]
        }
        var digits = false, gpt2 = false, llama3 = false, byteLevel = false
        func unsupported(_ what: String) -> TokenizerError {
            .unsupportedPreTokenizer("tokenizer.json pre_tokenizer step \(what)")
        }
        for step in steps {
            let type = step["type"] as? String ?? "?"
            switch type {
            case "Digits":
                guard step["individual_digits"] as? Bool == true else { throw unsupported("Digits(individual_digits: false)") }
                digits = true
            case "ByteLevel":
                if step["add_prefix_space"] as? Bool == true { throw unsupported("ByteLevel(add_prefix_space: true)") }
                if (step["use_regex"] as? Bool) ?? true { gpt2 = true }
                byteLevel = true
            case "Split":
                let pat = step["pattern"] as? [String: Any]
                guard let regex = (pat?["Regex"] ?? pat?["String"]) as? String else { throw unsupported("Split without pattern") }
                let behavior = step["behavior"] as? String ?? "Isolated"
                guard behavior == "Isolated", step["invert"] as? Bool != true else {
                    throw unsupported("Split(\(behavior), invert: \(step["invert"] ?? false))")
                }
                if regex == gpt2Regex || regex == gpt2Regex + #"|\s+"# {
                    gpt2 = true
                } else if llama3Regexes.contains(regex) {
                    llama3 = true
                } else if regex == #"\p{N}"# {
                    digits = true
                } else {
                    throw unsupported("Split regex \(regex)")
                }
            default:
                throw unsupported(type)
            }
        }
        guard byteLevel else { throw unsupported("list without ByteLevel") }
        switch (digits, gpt2, llama3) {
        case (false, true, false): return .gpt2
        case (true, true, false): return .smollm
        case (false, false, true): return .llama3
        default:
            throw TokenizerError.unsupportedPreTokenizer(
                "tokenizer.json pre_tokenizer combination digits=\(digits) gpt2=\(gpt2) llama3=\(llama3)")
        }
    }

    /// The first special token of a `TemplateProcessing` post-processor's `single` template.
    static func templateFirstSpecialToken(_ value: Any?) -> String? {
        guard let obj = value as? [String: Any] else { return nil }
        if obj["type"] as? String == "Sequence" {
            for p in obj["processors"] as? [Any] ?? [] {
                if let t = templateFirstSpecialToken(p) { return t }
            }
            return nil
        }
        guard obj["type"] as? String == "TemplateProcessing",
              let single = obj["single"] as? [Any], let first = single.first as? [String: Any],
              let special = first["SpecialToken"] as? [String: Any] else { return nil }
        return special["id"] as? String
    }
}
