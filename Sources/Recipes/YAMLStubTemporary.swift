// TEMPORARY: replaced by the libyaml layer (YAML*.swift) when that branch merges.
public struct SourceLocation: Hashable, Sendable, CustomStringConvertible {
    public var file: String; public var line: Int; public var column: Int
    public var description: String { "\(file):\(line):\(column)" }
}
public struct YAMLNode {
    public enum Kind { case scalar(String, quoted: Bool); case mapping([(key: YAMLNode, value: YAMLNode)]); case sequence([YAMLNode]) }
    public var kind: Kind; public var location: SourceLocation; public var tag: String?
    public var kindName: String { "" }
    public var isNull: Bool { false }
    public func asInt() -> Int? { nil }
    public func asDouble() -> Double? { nil }
    public func asBool() -> Bool? { nil }
}
public struct YAMLError: Error, CustomStringConvertible { public var location: SourceLocation; public var message: String; public var description: String { message } }
public enum YAMLParser {
    public static func parse(file path: String) throws -> YAMLNode { throw YAMLError(location: .init(file: path, line: 0, column: 0), message: "stub") }
    public static func parse(bytes: [UInt8], file: String) throws -> YAMLNode { throw YAMLError(location: .init(file: file, line: 0, column: 0), message: "stub") }
}
