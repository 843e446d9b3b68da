import Foundation

/// Writes a GGUF v3 file: metadata key/values, tensor infos, then the aligned tensor data.
/// The file is written to a temporary name beside the target and renamed when complete.
///
/// Tensors are given as raw bytes already in their ggml type's layout (`GGMLBlockEncoder` makes
/// Q8_0 / Q4_0 / Q4_1 blocks; F32 is little-endian floats). `shape` is row-major (out, in); GGUF
/// stores dims innermost first, so they are written reversed.
public struct GGUFFileWriter {
    public struct Tensor {
        public var name: String
        public var shape: [Int]
        public var type: GGMLType
        public var bytes: Data
        public init(name: String, shape: [Int], type: GGMLType, bytes: Data) {
            self.name = name; self.shape = shape; self.type = type; self.bytes = bytes
        }
    }

    public var alignment = 32
    public private(set) var metadata: [(String, GGUFValue)] = []
    public private(set) var tensors: [Tensor] = []

    public init() {}

    /// Sets a key (replacing an earlier value, keeping its position).
    public mutating func set(_ key: String, _ value: GGUFValue) {
        if let i = metadata.firstIndex(where: { $0.0 == key }) { metadata[i].1 = value } else { metadata.append((key, value)) }
    }

    public mutating func remove(_ key: String) { metadata.removeAll { $0.0 == key } }

    /// Adds a tensor; its byte count must match its type and element count.
    public mutating func add(_ t: Tensor) throws {
        let elements = t.shape.reduce(1, *)
        guard let expected = t.type.byteCount(elements: elements), expected == t.bytes.count else {
            throw ModelFormatError.badShape(file: "(export)", tensor: t.name,
                                             reason: "\(t.bytes.count) bytes for \(t.type.name) \(t.shape) (expected \(t.type.byteCount(elements: elements).map(String.init) ?? "a multiple of the block size"))")
        }
        tensors.append(t)
    }

    public func write(to path: String) throws {
        var header = Data()
        func u32(_ x: UInt32) { withUnsafeBytes(of: x.littleEndian) { header.append(contentsOf: $0) } }
        func u64(_ x: UInt64) { withUnsafeBytes(of: x.littleEndian) { header.append(contentsOf: $0) } }
        func str(_ s: String) { let u = Array(s.utf8); u64(UInt64(u.count)); header.append(contentsOf: u) }
        header.append(contentsOf: Array("GGUF".utf8))
        u32(3)
        u64(UInt64(tensors.count))
        var md = metadata.filter { $0.0 != "general.alignment" }
        if alignment != 32 { md.append(("general.alignment", .uint32(UInt32(alignment)))) }
        u64(UInt64(md.count))
        for (k, v) in md {
            str(k)
            u32(v.type.rawValue)
            Self.encode(v, into: &header)
        }
        var offset = 0
        var offsets: [Int] = []
        for t in tensors {
            offsets.append(offset)
            offset = align(offset + t.bytes.count)
        }
        for (t, o) in zip(tensors, offsets) {
            str(t.name)
            u32(UInt32(t.shape.count))
            for d in t.shape.reversed() { u64(UInt64(d)) }
            u32(t.type.rawValue)
            u64(UInt64(o))
        }
        header.append(Data(count: align(header.count) - header.count))

        let url = URL(fileURLWithPath: path)
        let dir = url.deletingLastPathComponent()
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let tmp = dir.appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())")
        guard FileManager.default.createFile(atPath: tmp.path, contents: nil), let h = FileHandle(forWritingAtPath: tmp.path) else {
            throw ModelFormatError.unwritable(file: path, reason: "cannot create \(tmp.path)")
        }
        do {
            try h.write(contentsOf: header)
            var written = 0
            for (t, o) in zip(tensors, offsets) {
                if o > written { try h.write(contentsOf: Data(count: o - written)); written = o }
                try h.write(contentsOf: t.bytes)
                written += t.bytes.count
            }
            if align(written) > written { try h.write(contentsOf: Data(count: align(written) - written)) }
            try h.close()
        } catch {
            try? h.close(); try? FileManager.default.removeItem(at: tmp)
            throw ModelFormatError.unwritable(file: path, reason: "\(error)")
        }
        guard rename(tmp.path, path) == 0 else {
            let e = String(cString: strerror(errno))
            try? FileManager.default.removeItem(at: tmp)
            throw ModelFormatError.unwritable(file: path, reason: e)
        }
    }

    private func align(_ x: Int) -> Int { (x + alignment - 1) / alignment * alignment }

    static func encode(_ v: GGUFValue, into d: inout Data) {
        func le<T: FixedWidthInteger>(_ x: T) { withUnsafeBytes(of: x.littleEndian) { d.append(contentsOf: $0) } }
        func str(_ s: String) { let u = Array(s.utf8); le(UInt64(u.count)); d.append(contentsOf: u) }
        switch v {
        case .uint8(let x): le(x)
        case .int8(let x): le(x)
        case .uint16(let x): le(x)
        case .int16(let x): le(x)
        case .uint32(let x): le(x)
        case .int32(let x): le(x)
        case .uint64(let x): le(x)
        case .int64(let x): le(x)
        case .float32(let x): le(x.bitPattern)
        case .float64(let x): le(x.bitPattern)
        case .bool(let b): le(UInt8(b ? 1 : 0))
        case .string(let s): str(s)
        case .array(let a): encodeArray(a, into: &d)
        }
    }

    static func encodeArray(_ a: GGUFArray, into d: inout Data) {
        func le<T: FixedWidthInteger>(_ x: T) { withUnsafeBytes(of: x.littleEndian) { d.append(contentsOf: $0) } }
        le(a.elementType.rawValue)
        le(UInt64(a.count))
        switch a.storage {
        case .uint8(let x): d.append(contentsOf: x)
        case .int8(let x): for v in x { le(v) }
        case .uint16(let x): for v in x { le(v) }
        case .int16(let x): for v in x { le(v) }
        case .uint32(let x): for v in x { le(v) }
        case .int32(let x): for v in x { le(v) }
        case .uint64(let x): for v in x { le(v) }
        case .int64(let x): for v in x { le(v) }
        case .float32(let x): for v in x { le(v.bitPattern) }
        case .float64(let x): for v in x { le(v.bitPattern) }
        case .bool(let x): for v in x { le(UInt8(v ? 1 : 0)) }
        case .string(let x): for s in x { let u = Array(s.utf8); le(UInt64(u.count)); d.append(contentsOf: u) }
        case .array(let x): for inner in x { encodeArray(inner, into: &d) }
        }
    }
}

/// ggml block layouts built from integer codes and scales that are already exactly f16 —
/// lossless: dequantizing the blocks gives back `(code − zero)·scale` bit for bit.
public enum GGMLBlockEncoder {
    /// `Float` → f16 bits when the value is exactly representable, else nil.
    public static func exactHalf(_ x: Float) -> UInt16? {
        #if arch(x86_64) || arch(arm64)
        let h = Float16(x)
        guard Float(h) == x || (x.isNaN && h.isNaN) else { return nil }
        return h.bitPattern
        #else
        return nil
        #endif
    }

    /// Q8_0: per 32 values `f16 d, i8 q[32]`, y = d·q. `codes` in −128…127, one scale per 32.
    public static func q8_0(codes: [Int32], scales: [Float]) -> Data? {
        guard codes.count == scales.count * 32 else { return nil }
        var out = Data(capacity: scales.count * 34)
        for (b, s) in scales.enumerated() {
            guard let h = exactHalf(s) else { return nil }
            withUnsafeBytes(of: h.littleEndian) { out.append(contentsOf: $0) }
            for j in 0..<32 {
                let q = codes[b * 32 + j]
                guard (-128...127).contains(q) else { return nil }
                out.append(UInt8(bitPattern: Int8(q)))
            }
        }
        return out
    }

    /// Q4_0: per 32 values `f16 d, u8 qs[16]`, y[j] = d·(lo(qs[j]) − 8), y[j+16] = d·(hi(qs[j]) − 8).
    /// `codes` are signed −8…7 (symmetric 4-bit), one scale per 32.
    public static func q4_0(codes: [Int32], scales: [Float]) -> Data? {
        guard codes.count == scales.count * 32 else { return nil }
        var out = Data(capacity: scales.count * 18)
        for (b, s) in scales.enumerated() {
            guard let h = exactHalf(s) else { return nil }
            withUnsafeBytes(of: h.littleEndian) { out.append(contentsOf: $0) }
            for j in 0..<16 {
                let lo = codes[b * 32 + j] + 8, hi = codes[b * 32 + j + 16] + 8
                guard (0...15).contains(lo), (0...15).contains(hi) else { return nil }
                out.append(UInt8(lo) | UInt8(hi) << 4)
            }
        }
        return out
    }

    /// Q4_1: per 32 values `f16 d, f16 m, u8 qs[16]`, y = d·q + m. From unsigned codes 0…15 with
    /// zero points: m = −zero·scale, which must itself be exactly f16 (else nil).
    public static func q4_1(codes: [Int32], scales: [Float], zeros: [Int32]) -> Data? {
        guard codes.count == scales.count * 32, zeros.count == scales.count else { return nil }
        var out = Data(capacity: scales.count * 20)
        for (b, s) in scales.enumerated() {
            let m = -Float(zeros[b]) * s
            guard let hd = exactHalf(s), let hm = exactHalf(m) else { return nil }
            withUnsafeBytes(of: hd.littleEndian) { out.append(contentsOf: $0) }
            withUnsafeBytes(of: hm.littleEndian) { out.append(contentsOf: $0) }
            for j in 0..<16 {
                let lo = codes[b * 32 + j], hi = codes[b * 32 + j + 16]
                guard (0...15).contains(lo), (0...15).contains(hi) else { return nil }
                out.append(UInt8(lo) | UInt8(hi) << 4)
            }
        }
        return out
    }

    /// F32, little-endian.
    public static func f32(_ x: [Float]) -> Data {
        var out = Data(capacity: x.count * 4)
        for v in x { withUnsafeBytes(of: v.bitPattern.littleEndian) { out.append(contentsOf: $0) } }
        return out
    }
}
