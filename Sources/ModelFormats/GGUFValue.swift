import Foundation

/// GGUF metadata value type tags (as stored in the file).
public enum GGUFValueType: UInt32, Sendable, CaseIterable {
    case uint8 = 0, int8 = 1, uint16 = 2, int16 = 3, uint32 = 4, int32 = 5, float32 = 6, bool = 7
    case string = 8, array = 9, uint64 = 10, int64 = 11, float64 = 12

    /// Smallest encoded size of one value of this type (used to bound array counts before allocating).
    var minEncodedSize: Int {
        switch self {
        case .uint8, .int8, .bool: return 1
        case .uint16, .int16: return 2
        case .uint32, .int32, .float32: return 4
        case .uint64, .int64, .float64, .string: return 8
        case .array: return 12  // element type u32 + count u64
        }
    }
}

/// One GGUF metadata value. Arrays keep their element type so empty arrays stay typed.
public enum GGUFValue: Sendable, Equatable, CustomStringConvertible {
    case uint8(UInt8), int8(Int8), uint16(UInt16), int16(Int16)
    case uint32(UInt32), int32(Int32), uint64(UInt64), int64(Int64)
    case float32(Float), float64(Double), bool(Bool), string(String)
    case array(GGUFValueType, [GGUFValue])

    public var type: GGUFValueType {
        switch self {
        case .uint8: return .uint8
        case .int8: return .int8
        case .uint16: return .uint16
        case .int16: return .int16
        case .uint32: return .uint32
        case .int32: return .int32
        case .uint64: return .uint64
        case .int64: return .int64
        case .float32: return .float32
        case .float64: return .float64
        case .bool: return .bool
        case .string: return .string
        case .array: return .array
        }
    }

    /// Any integer type as `Int` (nil if not an integer or out of `Int` range).
    public var int: Int? {
        switch self {
        case .uint8(let v): return Int(v)
        case .int8(let v): return Int(v)
        case .uint16(let v): return Int(v)
        case .int16(let v): return Int(v)
        case .uint32(let v): return Int(v)
        case .int32(let v): return Int(v)
        case .uint64(let v): return Int(exactly: v)
        case .int64(let v): return Int(v)
        default: return nil
        }
    }

    /// Any numeric type as `Double`.
    public var double: Double? {
        switch self {
        case .float32(let v): return Double(v)
        case .float64(let v): return v
        default: return int.map(Double.init)
        }
    }

    public var bool: Bool? { if case .bool(let b) = self { return b }; return nil }
    public var string: String? { if case .string(let s) = self { return s }; return nil }
    public var array: [GGUFValue]? { if case .array(_, let a) = self { return a }; return nil }
    /// Element count of an array value.
    public var count: Int? { array?.count }
    public var strings: [String]? { array.map { $0.compactMap(\.string) } }
    public var ints: [Int]? { array.map { $0.compactMap(\.int) } }
    public var floats: [Float]? { array.map { $0.compactMap { $0.double.map(Float.init) } } }

    public var description: String {
        switch self {
        case .string(let s): return s.count > 80 ? "\"\(s.prefix(77))...\"" : "\"\(s)\""
        case .array(let t, let a): return "[\(t); \(a.count)]"
        case .bool(let b): return "\(b)"
        default: return double.map { "\($0)" } ?? "?"
        }
    }
}

extension ByteCursor {
    /// Reads one value of `type`; `key` is used for error messages. Nested arrays are allowed up to depth 4.
    mutating func readValue(_ type: GGUFValueType, key: String, depth: Int = 0) throws -> GGUFValue {
        switch type {
        case .uint8: return .uint8(try read(UInt8.self, "value of \(key)"))
        case .int8: return .int8(try read(Int8.self, "value of \(key)"))
        case .uint16: return .uint16(try read(UInt16.self, "value of \(key)"))
        case .int16: return .int16(try read(Int16.self, "value of \(key)"))
        case .uint32: return .uint32(try read(UInt32.self, "value of \(key)"))
        case .int32: return .int32(try read(Int32.self, "value of \(key)"))
        case .uint64: return .uint64(try read(UInt64.self, "value of \(key)"))
        case .int64: return .int64(try read(Int64.self, "value of \(key)"))
        case .float32: return .float32(try readF32("value of \(key)"))
        case .float64: return .float64(try readF64("value of \(key)"))
        case .bool:
            let b = try read(UInt8.self, "value of \(key)")
            guard b <= 1 else { throw ModelFormatError.badMetadata(file: file, key: key, reason: "bool value \(b) is neither 0 nor 1") }
            return .bool(b == 1)
        case .string: return .string(try readString("string value of \(key)"))
        case .array:
            guard depth < 4 else { throw ModelFormatError.badMetadata(file: file, key: key, reason: "arrays nested deeper than 4 levels") }
            let raw = try read(UInt32.self, "array element type of \(key)")
            guard let et = GGUFValueType(rawValue: raw) else {
                throw ModelFormatError.badMetadata(file: file, key: key, reason: "unknown array element type \(raw)")
            }
            let n = try read(UInt64.self, "array length of \(key)")
            let limit = UInt64(remaining / et.minEncodedSize)
            guard n <= limit else {
                throw ModelFormatError.implausibleCount(file: file, what: "array length of '\(key)'", count: n, limit: limit)
            }
            var out: [GGUFValue] = []
            out.reserveCapacity(Int(n))
            for _ in 0..<Int(n) { out.append(try readValue(et, key: key, depth: depth + 1)) }
            return .array(et, out)
        }
    }
}
