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

/// A GGUF metadata array, stored compactly: one native Swift array of the element type (a u8 array
/// of n elements costs n bytes, not n boxed values). Nested arrays hold `GGUFArray`s.
public struct GGUFArray: Sendable, Equatable {
    public enum Storage: Sendable, Equatable {
        case uint8([UInt8]), int8([Int8]), uint16([UInt16]), int16([Int16])
        case uint32([UInt32]), int32([Int32]), uint64([UInt64]), int64([Int64])
        case float32([Float]), float64([Double]), bool([Bool]), string([String])
        case array([GGUFArray])
    }
    public let storage: Storage

    public init(_ storage: Storage) { self.storage = storage }

    /// Packs boxed values of one element type (values of another type are an error of the caller).
    public init(_ type: GGUFValueType, _ values: [GGUFValue]) {
        func each<T>(_ f: (GGUFValue) -> T?) -> [T] {
            values.map { v in
                guard let x = f(v) else { preconditionFailure("GGUFArray: \(v) is not a \(type)") }
                return x
            }
        }
        switch type {
        case .uint8: storage = .uint8(each { if case .uint8(let x) = $0 { return x }; return nil })
        case .int8: storage = .int8(each { if case .int8(let x) = $0 { return x }; return nil })
        case .uint16: storage = .uint16(each { if case .uint16(let x) = $0 { return x }; return nil })
        case .int16: storage = .int16(each { if case .int16(let x) = $0 { return x }; return nil })
        case .uint32: storage = .uint32(each { if case .uint32(let x) = $0 { return x }; return nil })
        case .int32: storage = .int32(each { if case .int32(let x) = $0 { return x }; return nil })
        case .uint64: storage = .uint64(each { if case .uint64(let x) = $0 { return x }; return nil })
        case .int64: storage = .int64(each { if case .int64(let x) = $0 { return x }; return nil })
        case .float32: storage = .float32(each { if case .float32(let x) = $0 { return x }; return nil })
        case .float64: storage = .float64(each { if case .float64(let x) = $0 { return x }; return nil })
        case .bool: storage = .bool(each { if case .bool(let x) = $0 { return x }; return nil })
        case .string: storage = .string(each { if case .string(let x) = $0 { return x }; return nil })
        case .array: storage = .array(each { if case .array(let x) = $0 { return x }; return nil })
        }
    }

    public var elementType: GGUFValueType {
        switch storage {
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

    public var count: Int {
        switch storage {
        case .uint8(let a): return a.count
        case .int8(let a): return a.count
        case .uint16(let a): return a.count
        case .int16(let a): return a.count
        case .uint32(let a): return a.count
        case .int32(let a): return a.count
        case .uint64(let a): return a.count
        case .int64(let a): return a.count
        case .float32(let a): return a.count
        case .float64(let a): return a.count
        case .bool(let a): return a.count
        case .string(let a): return a.count
        case .array(let a): return a.count
        }
    }

    /// The elements boxed one by one (allocates; prefer the typed accessors).
    public var values: [GGUFValue] {
        switch storage {
        case .uint8(let a): return a.map { .uint8($0) }
        case .int8(let a): return a.map { .int8($0) }
        case .uint16(let a): return a.map { .uint16($0) }
        case .int16(let a): return a.map { .int16($0) }
        case .uint32(let a): return a.map { .uint32($0) }
        case .int32(let a): return a.map { .int32($0) }
        case .uint64(let a): return a.map { .uint64($0) }
        case .int64(let a): return a.map { .int64($0) }
        case .float32(let a): return a.map { .float32($0) }
        case .float64(let a): return a.map { .float64($0) }
        case .bool(let a): return a.map { .bool($0) }
        case .string(let a): return a.map { .string($0) }
        case .array(let a): return a.map { .array($0) }
        }
    }

    /// All elements as `Int` when the element type is an integer type; nil for other types or when
    /// a u64 element does not fit in `Int`.
    public var ints: [Int]? {
        func conv<T: BinaryInteger>(_ a: [T]) -> [Int]? {
            var out: [Int] = []
            out.reserveCapacity(a.count)
            for x in a { guard let i = Int(exactly: x) else { return nil }; out.append(i) }
            return out
        }
        switch storage {
        case .uint8(let a): return conv(a)
        case .int8(let a): return conv(a)
        case .uint16(let a): return conv(a)
        case .int16(let a): return conv(a)
        case .uint32(let a): return conv(a)
        case .int32(let a): return conv(a)
        case .uint64(let a): return conv(a)
        case .int64(let a): return conv(a)
        default: return nil
        }
    }

    /// Float elements (f32 as is, f64 rounded); nil for other element types.
    public var floats: [Float]? {
        switch storage {
        case .float32(let a): return a
        case .float64(let a): return a.map { Float($0) }
        default: return nil
        }
    }

    public var strings: [String]? { if case .string(let a) = storage { return a }; return nil }
}

/// One GGUF metadata value. Arrays keep their element type so empty arrays stay typed.
public enum GGUFValue: Sendable, Equatable, CustomStringConvertible {
    case uint8(UInt8), int8(Int8), uint16(UInt16), int16(Int16)
    case uint32(UInt32), int32(Int32), uint64(UInt64), int64(Int64)
    case float32(Float), float64(Double), bool(Bool), string(String)
    case array(GGUFArray)

    /// An array of boxed values of one element type (e.g. `.array(.string, [.string("a")])`).
    public static func array(_ type: GGUFValueType, _ values: [GGUFValue]) -> GGUFValue {
        .array(GGUFArray(type, values))
    }

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
        case .int64(let v): return Int(exactly: v)
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
    /// The compact array, if this is an array.
    public var arrayValue: GGUFArray? { if case .array(let a) = self { return a }; return nil }
    /// Array elements boxed one by one (allocates; prefer `strings` / `ints` / `floats`).
    public var array: [GGUFValue]? { arrayValue?.values }
    /// Element count of an array value.
    public var count: Int? { arrayValue?.count }
    /// A string array's elements; nil when this is not an array of strings.
    public var strings: [String]? { arrayValue?.strings }
    /// An integer array's elements; nil when this is not an integer array or an element overflows `Int`.
    public var ints: [Int]? { arrayValue?.ints }
    /// A float array's elements; nil when this is not an f32/f64 array.
    public var floats: [Float]? { arrayValue?.floats }

    public var description: String {
        switch self {
        case .string(let s): return s.count > 80 ? "\"\(s.prefix(77))...\"" : "\"\(s)\""
        case .array(let a): return "[\(a.elementType); \(a.count)]"
        case .bool(let b): return "\(b)"
        default: return double.map { "\($0)" } ?? "?"
        }
    }
}

/// Estimated heap cost of parsed metadata, charged against `ByteCursor.memoryBudget` so that a
/// crafted header cannot make parsing allocate more than a small multiple of the file's size.
enum GGUFMemoryCost {
    /// An array buffer: header (32) and malloc's overhead and rounding (16) plus `count` elements.
    static func array(count: Int, stride: Int) -> Int { 48 + count * stride }
    /// A String: inline up to 15 UTF-8 bytes, else a heap buffer (header + bytes, malloc-rounded).
    static func string(bytes n: Int) -> Int { n <= 15 ? 0 : 48 + n }
    /// A metadata dictionary entry (key, value, hash-table slack, the ordered key list).
    static let metadataEntry = 96
    /// A tensor directory entry (name, dims array, type, offset, index entry), before the name's bytes.
    static let tensorEntry = 320
}

extension ByteCursor {
    /// Charges `bytes` of estimated memory for `what`; throws `memoryLimit` when the budget is spent.
    mutating func charge(_ bytes: Int, _ what: @autoclosure () -> String) throws {
        memoryBudget -= bytes
        if memoryBudget < 0 {
            throw ModelFormatError.memoryLimit(file: file, what: what(), limit: memoryLimit)
        }
    }

    /// Reads `n` little-endian integers after checking that they fit in the rest of the file.
    private mutating func readIntegers<T: FixedWidthInteger>(_: T.Type, _ n: Int, key: String) throws -> [T] {
        let size = MemoryLayout<T>.size
        try need(n * size, "array of \(key)")  // n ≤ remaining / size was checked, so n * size cannot overflow
        try charge(GGUFMemoryCost.array(count: n, stride: MemoryLayout<T>.stride), "array of \(key)")
        let base = offset
        let out = [T](unsafeUninitializedCapacity: n) { buf, initialized in
            for i in 0..<n { buf[i] = T(littleEndian: bytes.loadUnaligned(fromByteOffset: base + i * size, as: T.self)) }
            initialized = n
        }
        offset += n * size
        return out
    }

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
        case .bool: return .bool(try readBool(key: key))
        case .string:
            let s = try readString("string value of \(key)")
            try charge(GGUFMemoryCost.string(bytes: s.utf8.count), "string value of \(key)")
            return .string(s)
        case .array: return .array(try readArray(key: key, depth: depth))
        }
    }

    private mutating func readBool(key: String) throws -> Bool {
        let b = try read(UInt8.self, "value of \(key)")
        guard b <= 1 else { throw ModelFormatError.badMetadata(file: file, key: key, reason: "bool value \(b) is neither 0 nor 1") }
        return b == 1
    }

    /// An array: u32 element type, u64 count, elements. Stored compactly (see `GGUFArray`).
    mutating func readArray(key: String, depth: Int) throws -> GGUFArray {
        guard depth < 4 else { throw ModelFormatError.badMetadata(file: file, key: key, reason: "arrays nested deeper than 4 levels") }
        let raw = try read(UInt32.self, "array element type of \(key)")
        guard let et = GGUFValueType(rawValue: raw) else {
            throw ModelFormatError.badMetadata(file: file, key: key, reason: "unknown array element type \(raw) (allowed: 0...12)")
        }
        let count = try read(UInt64.self, "array length of \(key)")
        let limit = UInt64(remaining / et.minEncodedSize)
        guard count <= limit else {
            throw ModelFormatError.implausibleCount(file: file, what: "array length of '\(key)'", count: count, limit: limit)
        }
        let n = Int(count)
        switch et {
        case .uint8: return GGUFArray(.uint8(try readIntegers(UInt8.self, n, key: key)))
        case .int8: return GGUFArray(.int8(try readIntegers(Int8.self, n, key: key)))
        case .uint16: return GGUFArray(.uint16(try readIntegers(UInt16.self, n, key: key)))
        case .int16: return GGUFArray(.int16(try readIntegers(Int16.self, n, key: key)))
        case .uint32: return GGUFArray(.uint32(try readIntegers(UInt32.self, n, key: key)))
        case .int32: return GGUFArray(.int32(try readIntegers(Int32.self, n, key: key)))
        case .uint64: return GGUFArray(.uint64(try readIntegers(UInt64.self, n, key: key)))
        case .int64: return GGUFArray(.int64(try readIntegers(Int64.self, n, key: key)))
        case .float32: return GGUFArray(.float32(try readIntegers(UInt32.self, n, key: key).map(Float.init(bitPattern:))))
        case .float64: return GGUFArray(.float64(try readIntegers(UInt64.self, n, key: key).map(Double.init(bitPattern:))))
        case .bool:
            try charge(GGUFMemoryCost.array(count: n, stride: 1), "array of \(key)")
            var out: [Bool] = []
            out.reserveCapacity(n)
            for _ in 0..<n { out.append(try readBool(key: key)) }
            return GGUFArray(.bool(out))
        case .string:
            try charge(GGUFMemoryCost.array(count: n, stride: MemoryLayout<String>.stride), "array of \(key)")
            var out: [String] = []
            out.reserveCapacity(n)
            for _ in 0..<n {
                let s = try readString("string in array \(key)")
                try charge(GGUFMemoryCost.string(bytes: s.utf8.count), "string in array \(key)")
                out.append(s)
            }
            return GGUFArray(.string(out))
        case .array:
            try charge(GGUFMemoryCost.array(count: n, stride: MemoryLayout<GGUFArray>.stride), "array of \(key)")
            var out: [GGUFArray] = []
            out.reserveCapacity(n)
            for _ in 0..<n { out.append(try readArray(key: key, depth: depth + 1)) }
            return GGUFArray(.array(out))
        }
    }
}
