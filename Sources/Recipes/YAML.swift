import CYAML
import Foundation

/// A position in a source file, 1-based; prints as `file:line:column`.
public struct SourceLocation: Hashable, Sendable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var column: Int
    public init(file: String, line: Int, column: Int) { self.file = file; self.line = line; self.column = column }
    public var description: String { "\(file):\(line):\(column)" }
}

/// A YAML document tree with source positions (aliases resolved).
public struct YAMLNode {
    public enum Kind {
        /// `quoted` is true for single- or double-quoted and block scalars: always strings.
        case scalar(String, quoted: Bool)
        /// Key/value pairs in file order.
        case mapping([(key: YAMLNode, value: YAMLNode)])
        case sequence([YAMLNode])
    }
    public var kind: Kind
    public var location: SourceLocation
    public var tag: String?

    public var kindName: String {
        switch kind {
        case .scalar(let s, let q): return q ? "a string" : (isNull ? "nothing (null)" : "'\(s)'")
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        }
    }

    /// A plain `~`, `null`, `Null`, `NULL` or empty scalar.
    public var isNull: Bool {
        if case .scalar(let s, false) = kind { return ["", "~", "null", "Null", "NULL"].contains(s) }
        return false
    }

    private var plain: String? { if case .scalar(let s, false) = kind, tag == nil { return s }; return nil }

    /// YAML 1.2 core-schema integer (decimal, 0x…, 0o…) of a plain scalar.
    public func asInt() -> Int? {
        guard var s = plain, !s.isEmpty else { return nil }
        var sign = 1
        if s.hasPrefix("-") { sign = -1; s.removeFirst() } else if s.hasPrefix("+") { s.removeFirst() }
        if s.hasPrefix("0x") { return Int(s.dropFirst(2), radix: 16).map { $0 * sign } }
        if s.hasPrefix("0o") { return Int(s.dropFirst(2), radix: 8).map { $0 * sign } }
        guard s.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        return Int(s).map { $0 * sign }
    }

    /// YAML 1.2 core-schema float (or integer) of a plain scalar.
    public func asDouble() -> Double? {
        if let i = asInt() { return Double(i) }
        guard let s = plain else { return nil }
        switch s {
        case ".inf", ".Inf", ".INF", "+.inf": return .infinity
        case "-.inf", "-.Inf", "-.INF": return -.infinity
        case ".nan", ".NaN", ".NAN": return .nan
        default: break
        }
        guard s.range(of: #"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$"#, options: .regularExpression) != nil else { return nil }
        return Double(s)
    }

    /// `true`/`false` (YAML 1.2: not yes/no/on/off) of a plain scalar.
    public func asBool() -> Bool? {
        switch plain {
        case "true", "True", "TRUE": return true
        case "false", "False", "FALSE": return false
        default: return nil
        }
    }

    public func value(forKey key: String) -> YAMLNode? {
        if case .mapping(let pairs) = kind {
            return pairs.first { if case .scalar(key, _) = $0.key.kind { return true }; return false }?.value
        }
        return nil
    }
}

public struct YAMLError: Error, CustomStringConvertible {
    public var location: SourceLocation
    public var message: String
    public init(_ location: SourceLocation, _ message: String) { self.location = location; self.message = message }
    public var description: String { "\(location): \(message)" }
}

/// Bounds that keep a hostile or broken file from exhausting time or memory.
public struct YAMLLimits: Sendable {
    public var maxFileBytes = 8 << 20
    public var maxDepth = 64
    /// Nodes in the tree after aliases are expanded (refuses "billion laughs").
    public var maxNodes = 100_000
    public init() {}
}

/// Parses YAML with the system libyaml (event API) into a `YAMLNode` tree.
public enum YAMLParser {
    public static func parse(file path: String, limits: YAMLLimits = .init()) throws -> YAMLNode {
        let start = SourceLocation(file: path, line: 1, column: 1)
        guard let attrs = try? FileManager.default.attributesOfItem(atPath: path) else {
            throw YAMLError(start, "file not found; check the path (relative paths start from the directory you run in)")
        }
        if let size = attrs[.size] as? Int, size > limits.maxFileBytes {
            throw YAMLError(start, "the file is \(size) bytes, more than the \(limits.maxFileBytes)-byte limit for a recipe")
        }
        guard let data = FileManager.default.contents(atPath: path) else { throw YAMLError(start, "cannot read the file") }
        return try parse(bytes: [UInt8](data), file: path, limits: limits)
    }

    public static func parse(bytes: [UInt8], file: String, limits: YAMLLimits = .init()) throws -> YAMLNode {
        if bytes.count > limits.maxFileBytes {
            throw YAMLError(SourceLocation(file: file, line: 1, column: 1), "the input is \(bytes.count) bytes, more than the \(limits.maxFileBytes)-byte limit for a recipe")
        }
        try validateUTF8(bytes, file: file)
        var builder = TreeBuilder(file: file, limits: limits)
        return try bytes.withUnsafeBufferPointer { buf in try builder.run(buf) }
    }

    /// Rejects UTF-16/32 byte-order marks and invalid UTF-8, naming the first bad byte's position.
    static func validateUTF8(_ b: [UInt8], file: String) throws {
        if b.count >= 2 && ((b[0] == 0xFE && b[1] == 0xFF) || (b[0] == 0xFF && b[1] == 0xFE)) {
            throw YAMLError(SourceLocation(file: file, line: 1, column: 1), "the file is UTF-16 (it starts with a UTF-16 byte-order mark); save it as UTF-8")
        }
        var i = 0, line = 1, col = 1
        while i < b.count {
            let c = b[i]
            let n: Int
            switch c {
            case 0x00...0x7F: n = 0
            case 0xC2...0xDF: n = 1
            case 0xE0...0xEF: n = 2
            case 0xF0...0xF4: n = 3
            default: n = -1
            }
            var ok = n >= 0 && i + n < b.count
            if ok && n > 0 {
                for j in 1...n where b[i + j] & 0xC0 != 0x80 { ok = false }
                // Overlong forms, UTF-16 surrogates, and code points above U+10FFFF.
                if ok && n == 2 && ((c == 0xE0 && b[i + 1] < 0xA0) || (c == 0xED && b[i + 1] >= 0xA0)) { ok = false }
                if ok && n == 3 && ((c == 0xF0 && b[i + 1] < 0x90) || (c == 0xF4 && b[i + 1] >= 0x90)) { ok = false }
            }
            if !ok {
                throw YAMLError(SourceLocation(file: file, line: line, column: col),
                                String(format: "not valid UTF-8 (byte 0x%02X); save the file as UTF-8", c))
            }
            if c == 0x0A { line += 1; col = 1 } else { col += 1 }
            i += n + 1
        }
    }
}

/// Builds the tree from libyaml events with an explicit stack (no recursion, so deep nesting
/// is bounded by `maxDepth`, not by the thread's stack).
private struct TreeBuilder {
    let file: String
    let limits: YAMLLimits
    var anchors: [String: (node: YAMLNode, size: Int)] = [:]
    var nodes = 0

    final class Frame {
        var isMapping: Bool
        var location: SourceLocation
        var tag: String?
        var anchor: String?
        var items: [YAMLNode] = []
        var sizes = 1
        init(isMapping: Bool, location: SourceLocation, tag: String?, anchor: String?) {
            self.isMapping = isMapping; self.location = location; self.tag = tag; self.anchor = anchor
        }
    }

    init(file: String, limits: YAMLLimits) { self.file = file; self.limits = limits }

    func loc(_ m: yaml_mark_t) -> SourceLocation { SourceLocation(file: file, line: Int(m.line) + 1, column: Int(m.column) + 1) }

    static func string(_ p: UnsafeMutablePointer<yaml_char_t>?) -> String? {
        guard let p else { return nil }
        return String(cString: UnsafeRawPointer(p).assumingMemoryBound(to: CChar.self))
    }

    mutating func run(_ buf: UnsafeBufferPointer<UInt8>) throws -> YAMLNode {
        var parser = yaml_parser_t()
        guard yaml_parser_initialize(&parser) == 1 else { throw YAMLError(SourceLocation(file: file, line: 1, column: 1), "libyaml could not start") }
        defer { yaml_parser_delete(&parser) }
        yaml_parser_set_input_string(&parser, buf.baseAddress ?? UnsafePointer(bitPattern: 1)!, buf.count)
        var stack: [Frame] = []
        var root: (YAMLNode, Int)?
        var documents = 0
        while true {
            var event = yaml_event_t()
            guard yaml_parser_parse(&parser, &event) == 1 else {
                let problem = parser.problem.map { String(cString: $0) } ?? "syntax error"
                let context = parser.context.map { String(cString: $0) + ": " } ?? ""
                throw YAMLError(loc(parser.problem_mark), "YAML syntax: \(context)\(problem)")
            }
            defer { yaml_event_delete(&event) }
            let here = loc(event.start_mark)
            switch event.type {
            case YAML_STREAM_END_EVENT:
                guard let (r, _) = root else { throw YAMLError(here, "the recipe is empty") }
                return r
            case YAML_DOCUMENT_START_EVENT:
                documents += 1
                if documents > 1 { throw YAMLError(here, "a recipe is one YAML document; remove the second `---` document") }
            case YAML_MAPPING_START_EVENT, YAML_SEQUENCE_START_EVENT:
                let isMap = event.type == YAML_MAPPING_START_EVENT
                if stack.count >= limits.maxDepth {
                    throw YAMLError(here, "nesting deeper than \(limits.maxDepth) levels; a recipe never needs that")
                }
                let tag = isMap ? Self.string(event.data.mapping_start.tag) : Self.string(event.data.sequence_start.tag)
                let anchor = isMap ? Self.string(event.data.mapping_start.anchor) : Self.string(event.data.sequence_start.anchor)
                stack.append(Frame(isMapping: isMap, location: here, tag: tag, anchor: anchor))
                try count(1, at: here)
            case YAML_MAPPING_END_EVENT, YAML_SEQUENCE_END_EVENT:
                let f = stack.removeLast()
                var node: YAMLNode
                if f.isMapping {
                    var pairs: [(key: YAMLNode, value: YAMLNode)] = []
                    var seen: [String: SourceLocation] = [:]
                    var i = 0
                    while i + 1 < f.items.count {
                        let k = f.items[i], v = f.items[i + 1]
                        if case .scalar(let name, _) = k.kind {
                            if name == "<<" { throw YAMLError(k.location, "merge keys (`<<`) are not supported; write the keys out") }
                            if let first = seen[name] {
                                throw YAMLError(k.location, "duplicate key '\(name)' (first defined at line \(first.line)); remove one")
                            }
                            seen[name] = k.location
                        }
                        pairs.append((k, v))
                        i += 2
                    }
                    node = YAMLNode(kind: .mapping(pairs), location: f.location, tag: f.tag)
                } else {
                    node = YAMLNode(kind: .sequence(f.items), location: f.location, tag: f.tag)
                }
                try add(node, size: f.sizes, anchor: f.anchor, to: &stack, root: &root)
            case YAML_SCALAR_EVENT:
                let s = event.data.scalar
                let value = s.value.map { p in
                    String(decoding: UnsafeBufferPointer(start: p, count: s.length), as: UTF8.self)
                } ?? ""
                let quoted = s.style != YAML_PLAIN_SCALAR_STYLE && s.style != YAML_ANY_SCALAR_STYLE
                try count(1, at: here)
                try add(YAMLNode(kind: .scalar(value, quoted: quoted), location: here, tag: Self.string(s.tag)),
                        size: 1, anchor: Self.string(s.anchor), to: &stack, root: &root)
            case YAML_ALIAS_EVENT:
                let name = Self.string(event.data.alias.anchor) ?? ""
                guard let (target, size) = anchors[name] else { throw YAMLError(here, "unknown alias '*\(name)'") }
                try count(size, at: here)
                var copy = target
                copy.location = here
                try add(copy, size: size, anchor: nil, to: &stack, root: &root)
            default:
                break
            }
        }
    }

    mutating func count(_ n: Int, at here: SourceLocation) throws {
        nodes += n
        if nodes > limits.maxNodes {
            throw YAMLError(here, "the document expands to more than \(limits.maxNodes) nodes (aliases included); refusing it (alias bomb?)")
        }
    }

    mutating func add(_ node: YAMLNode, size: Int, anchor: String?, to stack: inout [Frame], root: inout (YAMLNode, Int)?) throws {
        if let anchor { anchors[anchor] = (node, size) }
        if let top = stack.last {
            top.items.append(node)
            top.sizes += size
        } else {
            root = (node, size)
        }
    }
}
