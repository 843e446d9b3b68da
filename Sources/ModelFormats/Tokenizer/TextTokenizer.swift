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

public enum TokenizerError: Error, CustomStringConvertible, Equatable {
    case unsupportedPreTokenizer(String)
    case unsupportedModel(String)
    case malformed(String)

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
        func int(_ key: String) -> Int? {
            guard let v = metadata[key] else { return nil }
            if let i = v as? any BinaryInteger { return Int(i) }
            return nil
        }
        func int32s(_ key: String) -> [Int32]? {
            guard let v = metadata[key] else { return nil }
            if let a = v as? [Int32] { return a }
            if let a = v as? [any BinaryInteger] { return a.map { Int32(truncatingIfNeeded: Int64($0)) } }
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
            tokenTypes: int32s(tokenTypeKey), merges: metadata[mergesKey] as? [String],
            bosTokenID: int(bosKey), eosTokenID: int(eosKey), unknownTokenID: int(unknownKey),
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
            return try SentencePieceTokenizer(
                tokens: tokens, scores: scores, tokenTypes: tokenTypes, bosTokenID: bosTokenID ?? 1,
                eosTokenID: eosTokenID ?? 2, unknownTokenID: unknownTokenID ?? 0,
                addBOS: addBOS ?? true, addSpacePrefix: addSpacePrefix ?? true)
        default:
            throw TokenizerError.unsupportedModel(model)
        }
    }
}
