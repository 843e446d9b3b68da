// YAML document tree with source positions — the layer the recipe decoder builds on.
//
// The parser (YAMLParser.swift) produces a `YAMLNode` tree from libyaml events. Every node keeps
// where it started in the file so later layers can report `file:line:column: message`.

/// A 1-based position in a source file. `description` is `file:line:column`.
public struct SourceLocation: Hashable, Sendable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var column: Int

    public init(file: String, line: Int, column: Int) {
        self.file = file
        self.line = line
        self.column = column
    }

    public var description: String { "\(file):\(line):\(column)" }
}

/// An error tied to a source position. `description` is `file:line:column: message`.
public struct YAMLError: Error, CustomStringConvertible, Sendable {
    public var location: SourceLocation
    public var message: String

    public init(location: SourceLocation, message: String) {
        self.location = location
        self.message = message
    }

    public var description: String { "\(location): \(message)" }
}

/// One node of a parsed YAML document.
///
/// Aliases are already resolved: an alias becomes a copy of the anchored node whose own
/// `location` is the alias's position (nodes inside it keep the anchor's positions).
public struct YAMLNode: Sendable {
    public enum Kind: Sendable {
        /// `quoted` is true for every non-plain style: single/double-quoted, literal `|`, folded `>`.
        case scalar(String, quoted: Bool)
        /// Entries in file order. Keys are always scalars (the parser rejects other keys).
        case mapping([(key: YAMLNode, value: YAMLNode)])
        case sequence([YAMLNode])
    }

    public var kind: Kind
    public var location: SourceLocation
    /// Explicit tag as resolved by libyaml, e.g. `!!str` → `tag:yaml.org,2002:str`, `!foo` → `!foo`.
    /// `nil` when the node has no explicit tag.
    public var tag: String?

    public init(kind: Kind, location: SourceLocation, tag: String? = nil) {
        self.kind = kind
        self.location = location
        self.tag = tag
    }

    // MARK: Structure conveniences

    /// The scalar's text (plain or quoted), or nil for a mapping/list.
    public var scalar: String? {
        if case .scalar(let s, _) = kind { return s }
        return nil
    }

    /// True for a non-plain scalar (quoted, literal or folded).
    public var isQuoted: Bool {
        if case .scalar(_, let q) = kind { return q }
        return false
    }

    /// True for a plain (unquoted) scalar.
    public var isPlainScalar: Bool {
        if case .scalar(_, let q) = kind { return !q }
        return false
    }

    public var mapping: [(key: YAMLNode, value: YAMLNode)]? {
        if case .mapping(let m) = kind { return m }
        return nil
    }

    public var sequence: [YAMLNode]? {
        if case .sequence(let s) = kind { return s }
        return nil
    }

    /// The value for a scalar key in a mapping (first match; the parser rejects duplicates).
    public func value(forKey key: String) -> YAMLNode? {
        entry(forKey: key)?.value
    }

    /// The key node and value for a scalar key — use the key's location to report e.g. unknown keys.
    public func entry(forKey key: String) -> (key: YAMLNode, value: YAMLNode)? {
        guard case .mapping(let m) = kind else { return nil }
        return m.first { $0.key.scalar == key }
    }

    /// The scalar keys of a mapping in file order (empty for non-mappings).
    public var keys: [String] {
        mapping?.compactMap { $0.key.scalar } ?? []
    }

    /// Human-readable kind for messages like "expected a mapping, found a list":
    /// "a mapping", "a list", "a string", "an integer", "a number", "a boolean", "null".
    public var kindName: String {
        switch kind {
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .scalar:
            switch coreType {
            case .null: return "null"
            case .bool: return "a boolean"
            case .int: return "an integer"
            case .float: return "a number"
            case .string, .none: return "a string"
            }
        }
    }

    /// An error at this node's location.
    public func error(_ message: String) -> YAMLError {
        YAMLError(location: location, message: message)
    }
}

// MARK: - YAML 1.2 core-schema resolution of scalars

extension YAMLNode {
    /// Type of a scalar under the YAML 1.2 core schema.
    public enum CoreType: Sendable, Equatable {
        case null, bool, int, float, string
    }

    static let tagPrefix = "tag:yaml.org,2002:"

    /// Core-schema type of a scalar; nil for mappings and lists.
    ///
    /// Quoted/literal/folded scalars are always `.string`. A plain scalar is resolved from its
    /// text unless it has an explicit tag: `!!str` (or the non-specific `!`) → string,
    /// `!!null`/`!!bool`/`!!int`/`!!float` → that type if the text is valid for it, else string;
    /// any other tag → string. Quoted scalars with `!!int` etc. are resolved by tag too.
    public var coreType: CoreType? {
        guard case .scalar(let s, let quoted) = kind else { return nil }
        if let tag = tag {
            switch tag {
            case Self.tagPrefix + "null": return YAMLCoreSchema.isNull(s) ? .null : .string
            case Self.tagPrefix + "bool": return YAMLCoreSchema.bool(s) != nil ? .bool : .string
            case Self.tagPrefix + "int": return YAMLCoreSchema.int(s) != nil ? .int : .string
            case Self.tagPrefix + "float": return YAMLCoreSchema.double(s) != nil ? .float : .string
            default: return .string
            }
        }
        if quoted { return .string }
        if YAMLCoreSchema.isNull(s) { return .null }
        if YAMLCoreSchema.bool(s) != nil { return .bool }
        if YAMLCoreSchema.int(s) != nil { return .int }
        if YAMLCoreSchema.double(s) != nil { return .float }
        return .string
    }

    /// True for plain `~`, `null`, `Null`, `NULL` or an empty plain scalar (e.g. `key:` with no value).
    public var isNull: Bool { coreType == .null }

    /// `true`/`false` (also `True`/`TRUE`/`False`/`FALSE`, per the core schema); NOT yes/no/on/off.
    public func asBool() -> Bool? {
        guard coreType == .bool, let s = scalar else { return nil }
        return YAMLCoreSchema.bool(s)
    }

    /// Core-schema integer: `[-+]?[0-9]+`, `0o[0-7]+`, `0x[0-9a-fA-F]+`. Nil on overflow.
    public func asInt() -> Int? {
        guard coreType == .int, let s = scalar else { return nil }
        return YAMLCoreSchema.int(s)
    }

    /// Core-schema float (`1.5`, `1e-3`, `.5`, `.inf`, `-.inf`, `.nan`) or any integer as a Double.
    public func asDouble() -> Double? {
        guard let s = scalar else { return nil }
        switch coreType {
        case .int: return YAMLCoreSchema.int(s).map(Double.init)
        case .float: return YAMLCoreSchema.double(s)
        default: return nil
        }
    }

    /// The scalar's text if it resolves to a string (quoted, or plain text that is not
    /// null/bool/number). Use `scalar` to get the raw text regardless of type.
    public func asString() -> String? {
        coreType == .string ? scalar : nil
    }
}

/// YAML 1.2 core schema (https://yaml.org/spec/1.2.2/#1032-tag-resolution) on raw text.
enum YAMLCoreSchema {
    static func isNull(_ s: String) -> Bool {
        s.isEmpty || s == "~" || s == "null" || s == "Null" || s == "NULL"
    }

    static func bool(_ s: String) -> Bool? {
        switch s {
        case "true", "True", "TRUE": return true
        case "false", "False", "FALSE": return false
        default: return nil
        }
    }

    static func int(_ s: String) -> Int? {
        let u = Array(s.utf8)
        guard !u.isEmpty else { return nil }
        func isDigit(_ c: UInt8, radix: Int) -> Bool {
            switch radix {
            case 8: return c >= 0x30 && c <= 0x37
            case 10: return c >= 0x30 && c <= 0x39
            default: return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66)
            }
        }
        if u.count > 2, u[0] == UInt8(ascii: "0"), u[1] == UInt8(ascii: "o") || u[1] == UInt8(ascii: "x") {
            let radix = u[1] == UInt8(ascii: "o") ? 8 : 16
            guard u[2...].allSatisfy({ isDigit($0, radix: radix) }) else { return nil }
            return Int(String(decoding: u[2...], as: UTF8.self), radix: radix)
        }
        var i = 0
        if u[0] == UInt8(ascii: "-") || u[0] == UInt8(ascii: "+") { i = 1 }
        guard i < u.count, u[i...].allSatisfy({ isDigit($0, radix: 10) }) else { return nil }
        return Int(s)  // accepts a leading + or -, nil on overflow
    }

    static func double(_ s: String) -> Double? {
        switch s {
        case ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF": return .infinity
        case "-.inf", "-.Inf", "-.INF": return -.infinity
        case ".nan", ".NaN", ".NAN": return .nan
        default: break
        }
        // [-+]? ( \.[0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )?
        let u = Array(s.utf8)
        var i = 0
        func digits() -> Int {
            let start = i
            while i < u.count, u[i] >= 0x30, u[i] <= 0x39 { i += 1 }
            return i - start
        }
        if i < u.count, u[i] == UInt8(ascii: "-") || u[i] == UInt8(ascii: "+") { i += 1 }
        if i < u.count, u[i] == UInt8(ascii: ".") {
            i += 1
            guard digits() > 0 else { return nil }
        } else {
            guard digits() > 0 else { return nil }
            if i < u.count, u[i] == UInt8(ascii: ".") { i += 1; _ = digits() }
        }
        if i < u.count, u[i] == UInt8(ascii: "e") || u[i] == UInt8(ascii: "E") {
            i += 1
            if i < u.count, u[i] == UInt8(ascii: "-") || u[i] == UInt8(ascii: "+") { i += 1 }
            guard digits() > 0 else { return nil }
        }
        guard i == u.count else { return nil }
        // Swift's Double(String) accepts "1.", ".5", "1e5", "+1.5".
        return Double(s)
    }
}
