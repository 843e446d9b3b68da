/// Typed method options: one declaration that is both the recipe validator and the documentation.
///
/// A method lists its options as `[OptionSpec]`; the recipe layer checks every key and value
/// against it (unknown keys, wrong types, out-of-range values) and hands the method a
/// `MethodOptions` holding typed values with the defaults filled in.
public struct OptionSpec: Sendable {
    public enum Kind: Sendable {
        case bool
        case int(ClosedRange<Int>)
        case double(ClosedRange<Double>)
        /// One of the listed strings.
        case choice([String])
        /// A number in range, or the word `auto`.
        case doubleOrAuto(ClosedRange<Double>)
        case intOrAuto(ClosedRange<Int>)
        /// A list of glob patterns over canonical names.
        case patterns
        /// A map from glob pattern to a number in range (e.g. per-site alpha).
        case patternMap(ClosedRange<Double>)
        case string
    }
    public var key: String
    public var kind: Kind
    public var defaultValue: OptionValue
    public var help: String

    public init(_ key: String, _ kind: Kind, default defaultValue: OptionValue, _ help: String) {
        self.key = key; self.kind = kind; self.defaultValue = defaultValue; self.help = help
    }

    /// The type as written in docs: `bool`, `int 1…256`, `0…1 or auto`, …
    public var typeDescription: String {
        func r<T>(_ range: ClosedRange<T>) -> String { "\(range.lowerBound)…\(range.upperBound)" }
        switch kind {
        case .bool: return "bool"
        case .int(let x): return "int \(r(x))"
        case .double(let x): return "number \(r(x))"
        case .choice(let c): return c.joined(separator: " | ")
        case .doubleOrAuto(let x): return "number \(r(x)) | auto"
        case .intOrAuto(let x): return "int \(r(x)) | auto"
        case .patterns: return "list of name patterns"
        case .patternMap(let x): return "map pattern → number \(r(x))"
        case .string: return "string"
        }
    }
}

/// A validated option value.
public enum OptionValue: Sendable, Equatable, CustomStringConvertible {
    case bool(Bool), int(Int), double(Double), string(String), auto
    case patterns([String])
    case patternMap([(pattern: String, value: Double)])

    public static func == (a: OptionValue, b: OptionValue) -> Bool { a.description == b.description }

    public var description: String {
        switch self {
        case .bool(let b): return String(b)
        case .int(let i): return String(i)
        case .double(let d): return String(d)
        case .string(let s): return s
        case .auto: return "auto"
        case .patterns(let p): return p.isEmpty ? "[]" : "[" + p.joined(separator: ", ") + "]"
        case .patternMap(let m): return "{" + m.map { "\($0.pattern): \($0.value)" }.joined(separator: ", ") + "}"
        }
    }
}

/// The options a method receives: every declared key, with recipe values or defaults.
public struct MethodOptions: Sendable {
    public var values: [String: OptionValue]
    public init(_ values: [String: OptionValue]) { self.values = values }

    /// Defaults for every key of `specs`.
    public init(defaultsOf specs: [OptionSpec]) {
        values = Dictionary(uniqueKeysWithValues: specs.map { ($0.key, $0.defaultValue) })
    }

    /// Each accessor returns the value of `key` if it holds that type, and throws `OptionError`
    /// otherwise (an undeclared key, or a key declared with another type) — never traps.
    public func bool(_ key: String) throws -> Bool { if case .bool(let b)? = values[key] { return b }; throw mismatch(key, "bool") }
    public func int(_ key: String) throws -> Int { if case .int(let i)? = values[key] { return i }; throw mismatch(key, "int") }
    public func double(_ key: String) throws -> Double {
        switch values[key] { case .double(let d)?: return d; case .int(let i)?: return Double(i); default: throw mismatch(key, "number") }
    }
    public func string(_ key: String) throws -> String { if case .string(let s)? = values[key] { return s }; throw mismatch(key, "string") }
    /// A `.choice` option as the enum whose raw values are its choices.
    public func choice<T: RawRepresentable>(_ key: String, as: T.Type) throws -> T where T.RawValue == String {
        let s = try string(key)
        guard let v = T(rawValue: s) else { throw OptionError(key: key, message: "'\(s)' is not one of the values \(T.self) knows") }
        return v
    }
    public func isAuto(_ key: String) -> Bool { values[key] == .auto }
    public func patterns(_ key: String) throws -> [String] { if case .patterns(let p)? = values[key] { return p }; throw mismatch(key, "list of patterns") }
    public func patternMap(_ key: String) throws -> [(pattern: String, value: Double)] {
        if case .patternMap(let m)? = values[key] { return m }; throw mismatch(key, "map pattern → number")
    }
    private func mismatch(_ key: String, _ type: String) -> OptionError {
        OptionError(key: key, message: values[key].map { "read as \(type) but holds \($0)" } ?? "read as \(type) but was never declared")
    }
}

/// A method read an option with a type it was not declared with (a bug in the method or in a
/// hand-built `MethodOptions`), reported instead of trapping.
public struct OptionError: Error, CustomStringConvertible {
    public var key: String
    public var message: String
    public init(key: String, message: String) { self.key = key; self.message = message }
    public var description: String { "option '\(key)': \(message)" }
}

/// Glob matching over canonical names: `*` matches any run of characters (including dots),
/// `?` one character. `layers.*.mlp.down_proj` matches every block's down_proj.
public func globMatch(_ pattern: String, _ name: String) -> Bool {
    let p = Array(pattern.utf8), s = Array(name.utf8)
    var pi = 0, si = 0, star = -1, mark = 0
    while si < s.count {
        if pi < p.count && (p[pi] == UInt8(ascii: "?") || p[pi] == s[si]) { pi += 1; si += 1 }
        else if pi < p.count && p[pi] == UInt8(ascii: "*") { star = pi; mark = si; pi += 1 }
        else if star >= 0 { pi = star + 1; mark += 1; si = mark }
        else { return false }
    }
    while pi < p.count && p[pi] == UInt8(ascii: "*") { pi += 1 }
    return pi == p.count
}
