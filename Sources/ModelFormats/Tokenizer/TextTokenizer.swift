import Foundation

/// A tokenizer that turns text into token ids and back.
///
/// `encode` follows llama.cpp's `llama-tokenize` defaults: special tokens written in the text
/// (`<|endoftext|>`, `<|im_start|>`, `<s>` …) are recognised and emitted as their single id
/// (llama.cpp's `parse_special` is true unless `--no-parse-special` is given), and the BOS id is
/// prepended when `addsBOS` is true. Use `encode(bytes:parseSpecial:addBOS:)` to change either.
public protocol TextTokenizer {
    /// Number of ids (the largest id + 1).
    var vocabularySize: Int { get }
    var bosTokenID: Int? { get }
    var eosTokenID: Int? { get }
    /// Whether `encode(_:)` prepends `bosTokenID` (GGUF `tokenizer.ggml.add_bos_token`).
    var addsBOS: Bool { get }

    func encode(_ text: String) -> [Int]
    func encode(bytes: [UInt8]) -> [Int]
    /// `parseSpecial`: recognise control / unknown tokens written in the text (user-defined
    /// tokens are always recognised, as in llama.cpp). `addBOS`: prepend `bosTokenID`.
    func encode(bytes: [UInt8], parseSpecial: Bool, addBOS: Bool) -> [Int]

    /// The bytes the ids stand for. Control tokens (BOS, EOS, `<|im_start|>` …) contribute
    /// nothing unless `renderSpecial` (llama.cpp's detokenize default is `special = false`).
    func decodeBytes(_ ids: [Int], renderSpecial: Bool) -> [UInt8]
}

extension TextTokenizer {
    public func encode(_ text: String) -> [Int] {
        encode(bytes: Array(text.utf8), parseSpecial: true, addBOS: addsBOS)
    }

    public func encode(bytes: [UInt8]) -> [Int] {
        encode(bytes: bytes, parseSpecial: true, addBOS: addsBOS)
    }

    public func encode(_ text: String, parseSpecial: Bool, addBOS: Bool) -> [Int] {
        encode(bytes: Array(text.utf8), parseSpecial: parseSpecial, addBOS: addBOS)
    }

    public func decodeBytes(_ ids: [Int]) -> [UInt8] {
        decodeBytes(ids, renderSpecial: false)
    }

    /// `decodeBytes` as a String (invalid UTF-8 is repaired with U+FFFD).
    public func decode(_ ids: [Int]) -> String {
        String(decoding: decodeBytes(ids, renderSpecial: false), as: UTF8.self)
    }

    public func decode(_ ids: [Int], renderSpecial: Bool) -> String {
        String(decoding: decodeBytes(ids, renderSpecial: renderSpecial), as: UTF8.self)
    }
}

/// GGUF `tokenizer.ggml.token_type` values (the same numbering as SentencePiece's piece types).
public enum TokenizerTokenType: Int32, Sendable {
    case undefined = 0
    case normal = 1
    case unknown = 2
    case control = 3
    case userDefined = 4
    case unused = 5
    case byte = 6
}

/// Checks shared by every tokenizer's initializer: what a vocabulary read from a file must satisfy.
enum TokenizerValidation {
    /// 1 ≤ count ≤ Int32.max (ids are stored as `Int32`), and not every token text empty.
    static func tokens(_ tokens: [String]) throws {
        guard !tokens.isEmpty else { throw TokenizerError.malformed("the vocabulary is empty") }
        guard tokens.count <= Int(Int32.max) else {
            throw TokenizerError.malformed("\(tokens.count) tokens (at most \(Int32.max) are allowed)")
        }
        guard tokens.contains(where: { !$0.isEmpty }) else {
            throw TokenizerError.malformed("all \(tokens.count) token texts are empty")
        }
    }

    /// Raw type codes → types; every code must be one of 0...6 (`TokenizerTokenType`).
    static func types(_ raw: [Int32]?, tokens: [String]) throws -> [TokenizerTokenType]? {
        guard let raw else { return nil }
        guard raw.count == tokens.count else {
            throw TokenizerError.malformed("\(raw.count) token types for \(tokens.count) tokens")
        }
        return try raw.enumerated().map { i, code in
            guard let t = TokenizerTokenType(rawValue: code) else {
                throw TokenizerError.malformed("token \(i) (\(quoted(tokens[i]))) has type \(code); allowed types are 0...6 (undefined, normal, unknown, control, user-defined, unused, byte)")
            }
            return t
        }
    }

    /// A special token id: nil or −1 mean "none"; any other id must be a token.
    static func specialID(_ id: Int?, _ name: String, vocabularySize: Int) throws -> Int? {
        guard let id, id != -1 else { return nil }
        guard id >= 0 && id < vocabularySize else {
            throw TokenizerError.malformed("\(name) token id \(id) is outside the vocabulary (allowed: 0...\(vocabularySize - 1), or -1 / absent for none)")
        }
        return id
    }

    static func quoted(_ s: String) -> String { s.count > 40 ? "\"\(s.prefix(37))...\"" : "\"\(s)\"" }
}

extension TextTokenizer {
    /// Throws unless the tokenizer has a BOS token. Call it where a protocol that starts every
    /// window with BOS (the llama.cpp perplexity protocol) is chosen; other protocols need no BOS.
    public func requireBOSToken(for purpose: String) throws {
        guard let bos = bosTokenID, bos >= 0, bos < vocabularySize else {
            throw TokenizerError.malformed("there is no BOS token id, but \(purpose) starts each window with BOS. Use a protocol without BOS, or a model whose tokenizer names its BOS token")
        }
    }
}

public enum TokenizerError: Error, CustomStringConvertible, Equatable {
    case unsupportedPreTokenizer(String)
    case unsupportedModel(String)
    case malformed(String)

    /// The same error with the file (and key) it came from in front of its text.
    public func located(in file: String) -> TokenizerError {
        switch self {
        case .unsupportedPreTokenizer(let s): return .unsupportedPreTokenizer("\(s) in \(file)")
        case .unsupportedModel(let s): return .unsupportedModel("\(s) in \(file)")
        case .malformed(let s): return .malformed("\(file): \(s)")
        }
    }

    public var description: String {
        switch self {
        case .unsupportedPreTokenizer(let s):
            return "unsupported pre-tokenizer \(s) (known: \(TokenizerPreTokenizer.knownNames.joined(separator: ", ")))"
        case .unsupportedModel(let s): return "unsupported tokenizer model: \(s)"
        case .malformed(let s): return "malformed tokenizer data: \(s)"
        }
    }
}

/// Building a tokenizer from the `tokenizer.*` GGUF metadata arrays.
public enum TokenizerGGUF {
    /// GGUF metadata keys a loader should pass in.
    public static let modelKey = "tokenizer.ggml.model"           // "gpt2" or "llama"
    public static let preKey = "tokenizer.ggml.pre"
    public static let tokensKey = "tokenizer.ggml.tokens"
    public static let scoresKey = "tokenizer.ggml.scores"
    public static let tokenTypeKey = "tokenizer.ggml.token_type"
    public static let mergesKey = "tokenizer.ggml.merges"
    public static let bosKey = "tokenizer.ggml.bos_token_id"
    public static let eosKey = "tokenizer.ggml.eos_token_id"
    public static let unknownKey = "tokenizer.ggml.unknown_token_id"
    public static let addBOSKey = "tokenizer.ggml.add_bos_token"
    public static let addSpacePrefixKey = "tokenizer.ggml.add_space_prefix"

    /// The tokenizer described by GGUF metadata given as a dictionary (key → value), whatever
    /// reader produced it: strings as `String`, integers as any `BinaryInteger`, booleans as
    /// `Bool`, arrays as `[String]`, `[Float]`/`[Double]` and arrays of any integer type.
    public static func makeTokenizer(metadata: [String: Any]) throws -> TextTokenizer {
        func int(_ key: String) throws -> Int? {
            guard let v = metadata[key] else { return nil }
            if let i = v as? any BinaryInteger {
                guard let x = Int(exactly: i) else { throw TokenizerError.malformed("\(key) = \(i) does not fit in an Int") }
                return x
            }
            return nil
        }
        func int32s(_ key: String) throws -> [Int32]? {
            guard let v = metadata[key] else { return nil }
            if let a = v as? [Int32] { return a }
            if let a = v as? [any BinaryInteger] {
                return try a.enumerated().map { i, x in
                    guard let y = Int32(exactly: x) else {
                        throw TokenizerError.malformed("\(key)[\(i)] = \(x) is not a token type (allowed: 0...6)")
                    }
                    return y
                }
            }
            return nil
        }
        func floats(_ key: String) -> [Float]? {
            guard let v = metadata[key] else { return nil }
            if let a = v as? [Float] { return a }
            if let a = v as? [Double] { return a.map { Float($0) } }
            return nil
        }
        guard let model = metadata[modelKey] as? String else {
            throw TokenizerError.malformed("no \(modelKey) in the metadata")
        }
        guard let tokens = metadata[tokensKey] as? [String] else {
            throw TokenizerError.malformed("no \(tokensKey) string array in the metadata")
        }
        return try makeTokenizer(
            model: model, pre: metadata[preKey] as? String, tokens: tokens, scores: floats(scoresKey),
            tokenTypes: try int32s(tokenTypeKey), merges: metadata[mergesKey] as? [String],
            bosTokenID: try int(bosKey), eosTokenID: try int(eosKey), unknownTokenID: try int(unknownKey),
            addBOS: metadata[addBOSKey] as? Bool, addSpacePrefix: metadata[addSpacePrefixKey] as? Bool)
    }

    /// `model` "gpt2" → `BPETokenizer`, "llama" → `SentencePieceTokenizer`.
    /// Missing `addBOS` / `addSpacePrefix` take llama.cpp's defaults for the model type.
    public static func makeTokenizer(
        model: String, pre: String?, tokens: [String], scores: [Float]?, tokenTypes: [Int32]?,
        merges: [String]?, bosTokenID: Int?, eosTokenID: Int?, unknownTokenID: Int? = nil,
        addBOS: Bool?, addSpacePrefix: Bool? = nil
    ) throws -> TextTokenizer {
        switch model {
        case "gpt2":
            guard let merges else { throw TokenizerError.malformed("gpt2 tokenizer without merges") }
            return try BPETokenizer(
                tokens: tokens, merges: merges, tokenTypes: tokenTypes, preTokenizer: pre ?? "default",
                bosTokenID: bosTokenID, eosTokenID: eosTokenID, addBOS: addBOS ?? false)
        case "llama":
            // llama.cpp's defaults for absent ids (1, 2, 0), kept only when they name a token
            func orDefault(_ id: Int?, _ d: Int) -> Int? { id ?? (d < tokens.count ? d : nil) }
            return try SentencePieceTokenizer(
                tokens: tokens, scores: scores, tokenTypes: tokenTypes, bosTokenID: orDefault(bosTokenID, 1),
                eosTokenID: orDefault(eosTokenID, 2), unknownTokenID: orDefault(unknownTokenID, 0) ?? -1,
                addBOS: addBOS ?? true, addSpacePrefix: addSpacePrefix ?? true)
        default:
            throw TokenizerError.unsupportedModel(model)
        }
    }
}
