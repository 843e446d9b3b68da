import Foundation

extension BPETokenizer {
    /// The merges this tokenizer applies, in rank order, as token texts. Merges of the source
    /// whose parts or result are not tokens never apply and are left out; so are repeats.
    public var effectiveMerges: [(left: String, right: String)] {
        let byRank: [(key: UInt64, rank: UInt64)] = mergeTable.map { (key: $0.key, rank: $0.value >> 32) }.sorted { $0.rank < $1.rank }
        return byRank.map { entry -> (left: String, right: String) in
            let left = Int(entry.key >> 32), right = Int(entry.key & 0xffff_ffff)
            return (tokens[left], tokens[right])
        }
    }

    /// A Hugging Face `tokenizer.json` (byte-level BPE) that encodes as this tokenizer does:
    /// `model` BPE with the vocabulary and `effectiveMerges`, control / user-defined / unknown
    /// tokens as `added_tokens` (special unless user-defined), the pre-tokenizer of
    /// `preTokenizer.pattern` (GPT-2 `ByteLevel`, SmolLM `Digits` + `ByteLevel`, LLaMA-3 `Split` +
    /// `ByteLevel`), a ByteLevel decoder, and a `TemplateProcessing` post-processor that prepends
    /// BOS when `addsBOS`. Read back by `init(tokenizerJSONData:)` and by the `tokenizers` library.
    public func tokenizerJSON() throws -> Data {
        var vocab: [String: Int] = [:]
        var added: [[String: Any]] = []
        for (id, text) in tokens.enumerated() where tokenTypes[id] != .unused {
            guard !text.isEmpty else {
                throw CompressedTensorsExportError.unsupportedTokenizer(reason: "token \(id) has an empty text, which tokenizer.json cannot hold")
            }
            if let other = vocab[text] {
                throw CompressedTensorsExportError.unsupportedTokenizer(reason: "tokens \(other) and \(id) share the text \(TokenizerValidation.quoted(text)); tokenizer.json maps each text to one id")
            }
            vocab[text] = id
            switch tokenTypes[id] {
            case .control, .userDefined, .unknown:
                added.append(["id": id, "content": text, "single_word": false, "lstrip": false, "rstrip": false,
                              "normalized": false, "special": tokenTypes[id] != .userDefined])
            default: break
            }
        }
        let merges = effectiveMerges
        let pairs = merges.contains { $0.left.contains(" ") || $0.right.contains(" ") }
        let mergeList: [Any] = pairs ? merges.map { [$0.left, $0.right] } : merges.map { "\($0.left) \($0.right)" }

        let byteLevel: [String: Any] = ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true]
        let pre: [String: Any]
        switch preTokenizer.pattern {
        case .gpt2:
            pre = byteLevel
        case .smollm:
            pre = ["type": "Sequence", "pretokenizers": [["type": "Digits", "individual_digits": true], byteLevel]]
        case .llama3:
            var noRegex = byteLevel
            noRegex["use_regex"] = false
            pre = ["type": "Sequence", "pretokenizers": [
                ["type": "Split", "pattern": ["Regex": Self.llama3Regexes[0]], "behavior": "Isolated", "invert": false] as [String: Any],
                noRegex]]
        }
        var post: [String: Any] = ["type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true]
        if addsBOS, let bos = bosTokenID {
            let b = tokens[bos]
            let special: [String: Any] = ["SpecialToken": ["id": b, "type_id": 0]]
            post = ["type": "TemplateProcessing",
                    "single": [special, ["Sequence": ["id": "A", "type_id": 0]]],
                    "pair": [special, ["Sequence": ["id": "A", "type_id": 0]], ["SpecialToken": ["id": b, "type_id": 1]],
                             ["Sequence": ["id": "B", "type_id": 1]]],
                    "special_tokens": [b: ["id": b, "ids": [bos], "tokens": [b]]]]
        }
        let root: [String: Any] = [
            "version": "1.0", "truncation": NSNull(), "padding": NSNull(), "added_tokens": added,
            "normalizer": NSNull(), "pre_tokenizer": pre, "post_processor": post,
            "decoder": ["type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true],
            "model": ["type": "BPE", "dropout": NSNull(), "unk_token": NSNull(), "continuing_subword_prefix": NSNull(),
                      "end_of_word_suffix": NSNull(), "fuse_unk": false, "byte_fallback": false,
                      "ignore_merges": ignoresMerges, "vocab": vocab, "merges": mergeList] as [String: Any],
        ]
        do {
            return try JSONSerialization.data(withJSONObject: root, options: [.sortedKeys, .withoutEscapingSlashes])
        } catch {
            throw CompressedTensorsExportError.unsupportedTokenizer(reason: "cannot encode JSON: \(error.localizedDescription)")
        }
    }

    /// The `tokenizer_config.json` object: BOS/EOS texts, whether BOS is added, the class
    /// `PreTrainedTokenizerFast`, and the chat template when given.
    public func tokenizerConfig(modelMaxLength: Int?, chatTemplate: String? = nil) -> [String: Any] {
        var cfg: [String: Any] = [
            "tokenizer_class": "PreTrainedTokenizerFast", "add_bos_token": addsBOS, "add_eos_token": false,
            "clean_up_tokenization_spaces": false,
        ]
        cfg["bos_token"] = bosTokenID.map { tokens[$0] as Any } ?? NSNull()
        cfg["eos_token"] = eosTokenID.map { tokens[$0] as Any } ?? NSNull()
        if let m = modelMaxLength { cfg["model_max_length"] = m }
        if let chatTemplate { cfg["chat_template"] = chatTemplate }
        return cfg
    }

    /// Reads a Hugging Face tokenizer folder: `tokenizer.json`, plus `tokenizer_config.json` when
    /// present for the BOS / EOS tokens (`bos_token`, `eos_token` as a string or `{"content": …}`)
    /// and `add_bos_token`. Errors name the file.
    public convenience init(huggingFaceFolder folder: URL) throws {
        let json = folder.appendingPathComponent("tokenizer.json")
        let data: Data
        do { data = try Data(contentsOf: json) } catch {
            throw ModelFormatError.unreadable(file: json.path, reason: error.localizedDescription)
        }
        var bos: String?, eos: String?, addBOS: Bool?
        let configURL = folder.appendingPathComponent("tokenizer_config.json")
        if FileManager.default.fileExists(atPath: configURL.path) {
            guard let d = try? Data(contentsOf: configURL),
                  let cfg = (try? JSONSerialization.jsonObject(with: d)) as? [String: Any] else {
                throw ModelFormatError.badHeader(file: configURL.path, reason: "tokenizer_config.json is not a JSON object")
            }
            func text(_ key: String) throws -> String? {
                switch cfg[key] {
                case nil, is NSNull: return nil
                case let s as String: return s
                case let o as [String: Any]:
                    if let s = o["content"] as? String { return s }
                    fallthrough
                default:
                    throw ModelFormatError.badMetadata(file: configURL.path, key: key, reason: "expected a token text or {\"content\": text}, found \(cfg[key]!)")
                }
            }
            bos = try text("bos_token")
            eos = try text("eos_token")
            if let v = cfg["add_bos_token"], !(v is NSNull) {
                guard let b = v as? Bool else {
                    throw ModelFormatError.badMetadata(file: configURL.path, key: "add_bos_token", reason: "expected true or false, found \(v)")
                }
                addBOS = b
            }
        }
        do {
            try self.init(tokenizerJSONData: data, addBOS: addBOS, bosTokenText: bos, eosTokenText: eos)
        } catch let e as TokenizerError {
            throw e.located(in: json.path)
        }
    }
}
