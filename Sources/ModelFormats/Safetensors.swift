import Foundation

/// The safetensors dtypes this reader accepts: floats (read as f32) and the integer types that
/// compressed-tensors checkpoints use for packed weights (`I32`) and shapes (`I64`/`I32`).
public enum SafetensorsDType: String, Sendable, CaseIterable {
    case f32 = "F32", f16 = "F16", bf16 = "BF16", i32 = "I32", i64 = "I64"

    /// Bytes per element.
    public var byteWidth: Int {
        switch self {
        case .f32, .i32: return 4
        case .f16, .bf16: return 2
        case .i64: return 8
        }
    }

    /// The float storage type, nil for integer dtypes.
    public var floatType: GGMLType? {
        switch self {
        case .f32: return .f32
        case .f16: return .f16
        case .bf16: return .bf16
        case .i32, .i64: return nil
        }
    }
}

/// One tensor of a safetensors file.
public struct SafetensorsTensorInfo: Sendable, Equatable {
    public let name: String
    public let dtype: SafetensorsDType
    /// Float storage type (`.f32`, `.f16` or `.bf16`); nil for integer tensors.
    public var type: GGMLType? { dtype.floatType }
    /// Row-major shape as stored (`[out, in]` for matrices).
    public let shape: [Int]
    /// Byte range relative to the start of the data section.
    public let begin: Int, end: Int
    public var elementCount: Int { shape.reduce(1, *) }
    public var byteCount: Int { end - begin }
}

/// A memory-mapped, validated `.safetensors` file.
///
/// Layout: u64 little-endian header length N, N bytes of JSON
/// `{"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}}`,
/// then the data section; offsets are relative to byte 8 + N.
public final class SafetensorsFile: @unchecked Sendable {
    public let url: URL
    /// Tensors ordered by data offset.
    public let tensors: [SafetensorsTensorInfo]
    /// The optional `__metadata__` string map.
    public let metadata: [String: String]
    public let dataOffset: Int
    private let file: MappedFile
    private let index: [String: Int]

    /// Safetensors dtypes we know but do not load.
    static let knownUnsupported: Set<String> = ["F64", "F8_E4M3", "F8_E5M2", "I8", "I16", "U8", "U16", "U32", "U64", "BOOL"]

    public init(url: URL) throws {
        let path = url.path
        let file = try MappedFile(url)
        self.url = url
        self.file = file
        var c = ByteCursor(bytes: file.bytes, file: path)
        let n = try c.read(UInt64.self, "header length")
        let limit = UInt64(min(c.remaining, 100_000_000))
        guard n <= limit else {
            throw ModelFormatError.implausibleCount(file: path, what: "header length", count: n, limit: limit)
        }
        guard n >= 2, file.bytes[8] == UInt8(ascii: "{") else {
            throw ModelFormatError.badMagic(file: path, found: "a header that does not start with '{' (expected safetensors JSON header)")
        }
        let headerData = Data(UnsafeRawBufferPointer(rebasing: file.bytes[8..<(8 + Int(n))]))
        guard let json = (try? JSONSerialization.jsonObject(with: headerData)) as? [String: Any] else {
            throw ModelFormatError.badHeader(file: path, reason: "the JSON header does not parse as an object")
        }
        dataOffset = 8 + Int(n)
        let dataSize = file.count - dataOffset
        var meta: [String: String] = [:]
        var infos: [SafetensorsTensorInfo] = []
        for (name, value) in json {
            if name == "__metadata__" {
                guard let m = value as? [String: Any] else {
                    throw ModelFormatError.badHeader(file: path, reason: "__metadata__ is not an object")
                }
                for (k, v) in m { meta[k] = (v as? String) ?? "\(v)" }
                continue
            }
            guard let entry = value as? [String: Any], let dtype = entry["dtype"] as? String,
                  let shapeAny = entry["shape"] as? [Any], let offAny = entry["data_offsets"] as? [Any], offAny.count == 2 else {
                throw ModelFormatError.badHeader(file: path, reason: "tensor '\(name)' lacks dtype/shape/data_offsets")
            }
            guard let type = SafetensorsDType(rawValue: dtype) else {
                let what = Self.knownUnsupported.contains(dtype) ? dtype : "unknown dtype '\(dtype)'"
                throw ModelFormatError.unsupportedTensorType(file: path, tensor: name, type: what)
            }
            guard shapeAny.count <= 8 else {
                throw ModelFormatError.badShape(file: path, tensor: name, reason: "\(shapeAny.count) dimensions")
            }
            var shape: [Int] = []
            var elements = 1
            for d in shapeAny {
                guard let v = Self.integer(d), v >= 0 else {
                    throw ModelFormatError.badShape(file: path, tensor: name, reason: "dimension \(d) is not a non-negative integer")
                }
                let (e, o) = elements.multipliedReportingOverflow(by: v)
                guard !o else { throw ModelFormatError.badShape(file: path, tensor: name, reason: "element count overflows") }
                elements = e
                shape.append(v)
            }
            guard let b = Self.integer(offAny[0]), let e = Self.integer(offAny[1]), b >= 0, b <= e else {
                throw ModelFormatError.offsetOutOfRange(file: path, tensor: name, reason: "data_offsets \(offAny) are not an ordered pair of non-negative integers")
            }
            guard e <= dataSize else {
                throw ModelFormatError.offsetOutOfRange(file: path, tensor: name, reason: "bytes \(b)..<\(e) but the data section has \(dataSize) bytes")
            }
            let (bytes, o) = elements.multipliedReportingOverflow(by: type.byteWidth)
            guard !o, bytes == e - b else {
                throw ModelFormatError.badShape(file: path, tensor: name,
                    reason: "shape \(shape) × \(dtype) needs \(o ? "overflowing" : String(bytes)) bytes but data_offsets span \(e - b)")
            }
            infos.append(SafetensorsTensorInfo(name: name, dtype: type, shape: shape, begin: b, end: e))
        }
        infos.sort { ($0.begin, $0.end) < ($1.begin, $1.end) }
        for (a, b) in zip(infos, infos.dropFirst()) where a.end > b.begin {
            throw ModelFormatError.overlappingTensors(file: path, tensor: b.name, other: a.name)
        }
        tensors = infos
        metadata = meta
        index = Dictionary(uniqueKeysWithValues: infos.enumerated().map { ($1.name, $0) })
    }

    private static func integer(_ v: Any) -> Int? {
        if let i = v as? Int { return i }
        if let d = v as? Double, d == d.rounded(), abs(d) < 9e15 { return Int(d) }
        return nil
    }

    public func tensor(named name: String) -> SafetensorsTensorInfo? { index[name].map { tensors[$0] } }

    /// Raw bytes of a tensor (valid while this object is alive).
    public func rawBytes(_ t: SafetensorsTensorInfo) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: file.bytes[(dataOffset + t.begin)..<(dataOffset + t.end)])
    }

    /// Values as f32, row-major in `shape` (float tensors only).
    public func floats(_ name: String) throws -> [Float] {
        guard let t = tensor(named: name) else { throw ModelFormatError.missingTensor(file: url.path, tensor: name) }
        guard let type = t.type else {
            throw ModelFormatError.unsupportedTensorType(file: url.path, tensor: name, type: "\(t.dtype.rawValue) (an integer tensor where floats are expected)")
        }
        return withExtendedLifetime(file) { type.dequantize(rawBytes(t), count: t.elementCount) }
    }

    /// Values of an `I32` tensor, row-major in `shape`.
    public func int32s(_ name: String) throws -> [Int32] {
        guard let t = tensor(named: name) else { throw ModelFormatError.missingTensor(file: url.path, tensor: name) }
        guard t.dtype == .i32 else {
            throw ModelFormatError.unsupportedTensorType(file: url.path, tensor: name, type: "\(t.dtype.rawValue) (expected I32)")
        }
        return withExtendedLifetime(file) {
            let raw = rawBytes(t)
            return (0..<t.elementCount).map { Int32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * $0, as: Int32.self)) }
        }
    }

    /// Values of an integer tensor (`I32` or `I64`), row-major in `shape`.
    public func integers(_ name: String) throws -> [Int64] {
        guard let t = tensor(named: name) else { throw ModelFormatError.missingTensor(file: url.path, tensor: name) }
        return try withExtendedLifetime(file) {
            let raw = rawBytes(t)
            switch t.dtype {
            case .i32: return (0..<t.elementCount).map { Int64(Int32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * $0, as: Int32.self))) }
            case .i64: return (0..<t.elementCount).map { Int64(littleEndian: raw.loadUnaligned(fromByteOffset: 8 * $0, as: Int64.self)) }
            default:
                throw ModelFormatError.unsupportedTensorType(file: url.path, tensor: name, type: "\(t.dtype.rawValue) (expected an integer tensor, I32 or I64)")
            }
        }
    }
}

/// Several safetensors files seen as one tensor namespace: a single file, or shards listed by a
/// `model.safetensors.index.json` (`{"weight_map": {tensor: shard file name}}`).
public final class SafetensorsCollection: @unchecked Sendable {
    /// The index file, or the single file.
    public let url: URL
    public let files: [SafetensorsFile]
    private let location: [String: (file: Int, info: SafetensorsTensorInfo)]
    /// All tensor names, sorted.
    public let tensorNames: [String]

    public convenience init(file: URL) throws {
        try self.init(url: file, files: [SafetensorsFile(url: file)], weightMap: nil)
    }

    /// Several files without an index; a tensor name may appear in only one of them.
    public convenience init(files: [URL]) throws {
        try self.init(url: files.first?.deletingLastPathComponent() ?? URL(fileURLWithPath: "."),
                      files: files.map(SafetensorsFile.init(url:)), weightMap: nil)
    }

    /// Opens every shard named in the index and checks that each listed tensor is in its shard.
    public convenience init(index: URL) throws {
        let path = index.path
        let data: Data
        do { data = try Data(contentsOf: index) } catch {
            throw ModelFormatError.unreadable(file: path, reason: error.localizedDescription)
        }
        guard let obj = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any],
              let map = obj["weight_map"] as? [String: Any] else {
            throw ModelFormatError.badHeader(file: path, reason: "no 'weight_map' object")
        }
        var weightMap: [String: String] = [:]
        for (k, v) in map {
            guard let s = v as? String, !s.contains("/"), !s.isEmpty else {
                throw ModelFormatError.badHeader(file: path, reason: "weight_map entry for '\(k)' is not a plain file name")
            }
            weightMap[k] = s
        }
        let folder = index.deletingLastPathComponent()
        let shardNames = Set(weightMap.values).sorted()
        let files = try shardNames.map { name -> SafetensorsFile in
            let u = folder.appendingPathComponent(name)
            guard FileManager.default.fileExists(atPath: u.path) else {
                throw ModelFormatError.unreadable(file: u.path, reason: "shard listed in \(index.lastPathComponent) does not exist")
            }
            return try SafetensorsFile(url: u)
        }
        try self.init(url: index, files: files, weightMap: weightMap)
    }

    private init(url: URL, files: [SafetensorsFile], weightMap: [String: String]?) throws {
        self.url = url
        self.files = files
        var loc: [String: (file: Int, info: SafetensorsTensorInfo)] = [:]
        for (i, f) in files.enumerated() {
            for t in f.tensors {
                if let w = weightMap, w[t.name] != f.url.lastPathComponent { continue }  // not the listed shard
                if loc[t.name] != nil { throw ModelFormatError.duplicateTensor(file: f.url.path, tensor: t.name) }
                loc[t.name] = (i, t)
            }
        }
        if let w = weightMap {
            for (name, shard) in w where loc[name] == nil {
                throw ModelFormatError.missingTensor(file: url.deletingLastPathComponent().appendingPathComponent(shard).path, tensor: name)
            }
        }
        location = loc
        tensorNames = loc.keys.sorted()
    }

    public func tensor(named name: String) -> SafetensorsTensorInfo? { location[name]?.info }
    /// The file holding `name`.
    public func file(for name: String) -> SafetensorsFile? { location[name].map { files[$0.file] } }

    public func floats(_ name: String) throws -> [Float] {
        guard let f = file(for: name) else { throw ModelFormatError.missingTensor(file: url.path, tensor: name) }
        return try f.floats(name)
    }

    public func integers(_ name: String) throws -> [Int64] {
        guard let f = file(for: name) else { throw ModelFormatError.missingTensor(file: url.path, tensor: name) }
        return try f.integers(name)
    }

    public func int32s(_ name: String) throws -> [Int32] {
        guard let f = file(for: name) else { throw ModelFormatError.missingTensor(file: url.path, tensor: name) }
        return try f.int32s(name)
    }
}
