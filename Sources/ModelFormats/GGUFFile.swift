import Foundation

/// One entry of a GGUF tensor directory.
public struct GGUFTensorInfo: Sendable, Equatable {
    public let name: String
    /// ggml dims, innermost first (`ne[0]` = row length).
    public let dims: [Int]
    public let type: GGMLType
    /// Offset relative to the start of the data section.
    public let offset: Int
    public let elementCount: Int
    public let byteCount: Int
    /// Row-major shape, outermost first (reversed `dims`): `[out, in]` for matrices, `[n]` for vectors.
    public var shape: [Int] { dims.reversed() }
}

/// A memory-mapped, fully validated GGUF (v2 or v3, little-endian) file.
///
/// Layout: magic "GGUF", u32 version, u64 tensor count, u64 metadata count, metadata
/// (string key, u32 type, value)*, tensor infos (string name, u32 n_dims, u64 dims[n_dims],
/// u32 type, u64 offset)*, padding to `alignment`, tensor data.
public final class GGUFFile: @unchecked Sendable {
    public let url: URL
    public let version: UInt32
    /// All metadata key/value pairs.
    public let metadata: [String: GGUFValue]
    /// Metadata keys in file order.
    public let metadataKeys: [String]
    /// Tensor directory in file order.
    public let tensors: [GGUFTensorInfo]
    /// `general.alignment`, default 32.
    public let alignment: Int
    /// Absolute byte offset of the data section.
    public let dataOffset: Int
    private let file: MappedFile
    private let index: [String: Int]

    public var fileSize: Int { file.count }

    public init(url: URL) throws {
        let file = try MappedFile(url)
        let path = url.path
        self.url = url
        self.file = file
        var c = ByteCursor(bytes: file.bytes, file: path)

        try c.need(4, "magic")
        let magic = [UInt8](UnsafeRawBufferPointer(rebasing: file.bytes[0..<4]))
        guard magic == Array("GGUF".utf8) else {
            let shown = magic.allSatisfy { $0 >= 32 && $0 < 127 } ? "'\(String(decoding: magic, as: UTF8.self))'"
                : magic.map { String(format: "%02x", $0) }.joined(separator: " ")
            throw ModelFormatError.badMagic(file: path, found: "\(shown) (expected 'GGUF')")
        }
        c.offset = 4
        let version = try c.read(UInt32.self, "version")
        guard version == 2 || version == 3 else { throw ModelFormatError.unsupportedVersion(file: path, version: version) }
        self.version = version
        let tensorCount = try c.read(UInt64.self, "tensor count")
        let kvCount = try c.read(UInt64.self, "metadata count")
        // A metadata entry takes ≥ 8 (key len) + 4 (type) + 1 bytes; a tensor info ≥ 8 + 4 + 8 + 4 + 8.
        let kvLimit = UInt64(c.remaining / 13)
        guard kvCount <= kvLimit else {
            throw ModelFormatError.implausibleCount(file: path, what: "metadata count", count: kvCount, limit: kvLimit)
        }

        var metadata: [String: GGUFValue] = [:]
        var keys: [String] = []
        keys.reserveCapacity(Int(kvCount))
        for i in 0..<Int(kvCount) {
            let key = try c.readString("key of metadata entry \(i)")
            try c.charge(GGUFMemoryCost.metadataEntry + GGUFMemoryCost.string(bytes: key.utf8.count), "metadata entry \(i)")
            let rawType = try c.read(UInt32.self, "type of metadata '\(key)'")
            guard let type = GGUFValueType(rawValue: rawType) else {
                throw ModelFormatError.badMetadata(file: path, key: key, reason: "unknown value type \(rawType)")
            }
            let value = try c.readValue(type, key: key)
            if metadata.updateValue(value, forKey: key) != nil {
                throw ModelFormatError.badMetadata(file: path, key: key, reason: "key appears twice")
            }
            keys.append(key)
        }
        self.metadata = metadata
        self.metadataKeys = keys

        var alignment = 32
        if let a = metadata["general.alignment"] {
            guard let v = a.int, v > 0, v <= 1 << 20, v & (v - 1) == 0 else {
                throw ModelFormatError.badMetadata(file: path, key: "general.alignment", reason: "must be a power of two integer (got \(a))")
            }
            alignment = v
        }
        self.alignment = alignment

        let tLimit = UInt64(c.remaining / 32)
        guard tensorCount <= tLimit else {
            throw ModelFormatError.implausibleCount(file: path, what: "tensor count", count: tensorCount, limit: tLimit)
        }
        struct Raw { var name: String; var dims: [Int]; var typeID: UInt32; var offset: UInt64; var elements: Int }
        var raws: [Raw] = []
        raws.reserveCapacity(Int(tensorCount))
        for i in 0..<Int(tensorCount) {
            let name = try c.readString("name of tensor \(i)")
            try c.charge(GGUFMemoryCost.tensorEntry + 2 * GGUFMemoryCost.string(bytes: name.utf8.count), "tensor directory entry \(i)")
            let nd = try c.read(UInt32.self, "n_dims of tensor '\(name)'")
            guard nd >= 1 && nd <= 4 else {
                throw ModelFormatError.badShape(file: path, tensor: name, reason: "n_dims = \(nd) (must be 1...4)")
            }
            var dims: [Int] = []
            var elements = 1
            for _ in 0..<Int(nd) {
                let d = try c.read(UInt64.self, "dims of tensor '\(name)'")
                guard d > 0 else { throw ModelFormatError.badShape(file: path, tensor: name, reason: "a dimension is 0") }
                guard d <= UInt64(Int.max) else { throw ModelFormatError.badShape(file: path, tensor: name, reason: "dimension \(d) overflows") }
                let (e, o) = elements.multipliedReportingOverflow(by: Int(d))
                guard !o, e <= file.count * 8 else {
                    throw ModelFormatError.badShape(file: path, tensor: name, reason: "element count overflows or exceeds the file size")
                }
                elements = e
                dims.append(Int(d))
            }
            let typeID = try c.read(UInt32.self, "type of tensor '\(name)'")
            let offset = try c.read(UInt64.self, "offset of tensor '\(name)'")
            raws.append(Raw(name: name, dims: dims, typeID: typeID, offset: offset, elements: elements))
        }

        let pad = (alignment - c.offset % alignment) % alignment
        let dataOffset = c.offset + pad
        // A file with no tensors may end right after the header.
        if !raws.isEmpty && dataOffset > file.count {
            throw ModelFormatError.truncated(file: path, what: "padding before tensor data", offset: c.offset, needed: pad, available: c.remaining)
        }
        self.dataOffset = dataOffset
        let dataSize = max(0, file.count - dataOffset)

        var infos: [GGUFTensorInfo] = []
        infos.reserveCapacity(raws.count)
        var index: [String: Int] = [:]
        for r in raws {
            guard let type = GGMLType(rawValue: r.typeID) else {
                throw ModelFormatError.unsupportedTensorType(file: path, tensor: r.name, type: GGMLType.describe(id: r.typeID))
            }
            guard r.dims[0] % type.blockSize == 0, let bytes = type.byteCount(elements: r.elements) else {
                throw ModelFormatError.badShape(file: path, tensor: r.name,
                    reason: "row length \(r.dims[0]) is not a multiple of the \(type.name) block size \(type.blockSize)")
            }
            guard r.offset % UInt64(alignment) == 0 else {
                throw ModelFormatError.misalignedOffset(file: path, tensor: r.name, offset: r.offset, alignment: alignment)
            }
            guard r.offset <= UInt64(dataSize), bytes <= dataSize - Int(r.offset) else {
                throw ModelFormatError.offsetOutOfRange(file: path, tensor: r.name,
                    reason: "bytes \(r.offset)..<\(r.offset &+ UInt64(bytes)) of the data section, which has \(dataSize) bytes")
            }
            guard index[r.name] == nil else { throw ModelFormatError.duplicateTensor(file: path, tensor: r.name) }
            index[r.name] = infos.count
            infos.append(GGUFTensorInfo(name: r.name, dims: r.dims, type: type, offset: Int(r.offset),
                                        elementCount: r.elements, byteCount: bytes))
        }
        let sorted = infos.sorted { $0.offset < $1.offset }
        for (a, b) in zip(sorted, sorted.dropFirst()) where a.offset + a.byteCount > b.offset {
            throw ModelFormatError.overlappingTensors(file: path, tensor: b.name, other: a.name)
        }
        self.tensors = infos
        self.index = index
    }

    public func tensor(named name: String) -> GGUFTensorInfo? { index[name].map { tensors[$0] } }

    /// The raw stored bytes of a tensor (valid while this object is alive).
    public func rawBytes(_ t: GGUFTensorInfo) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: file.bytes[(dataOffset + t.offset)..<(dataOffset + t.offset + t.byteCount)])
    }

    /// Dequantized values of a tensor in storage order (row-major `shape`).
    public func floats(_ name: String) throws -> [Float] {
        guard let t = tensor(named: name) else { throw ModelFormatError.missingTensor(file: url.path, tensor: name) }
        return withExtendedLifetime(file) { t.type.dequantize(rawBytes(t), count: t.elementCount) }
    }

    /// `general.architecture`, if present.
    public var architecture: String? { metadata["general.architecture"]?.string }
}
