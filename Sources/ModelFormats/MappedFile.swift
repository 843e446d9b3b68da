import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A read-only, memory-mapped file. The mapping lives as long as this object; raw pointers
/// handed out by `bytes` are valid only while the object is alive.
public final class MappedFile: @unchecked Sendable {
    public let url: URL
    /// The whole file (empty buffer for a zero-length file).
    public let bytes: UnsafeRawBufferPointer
    private let mapping: UnsafeMutableRawPointer?

    public init(_ url: URL) throws {
        self.url = url
        let path = url.path
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else {
            throw ModelFormatError.unreadable(file: path, reason: String(cString: strerror(errno)))
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            throw ModelFormatError.unreadable(file: path, reason: String(cString: strerror(errno)))
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            throw ModelFormatError.unreadable(file: path, reason: "not a regular file")
        }
        let size = Int(st.st_size)
        if size == 0 {
            mapping = nil
            bytes = UnsafeRawBufferPointer(start: nil, count: 0)
            return
        }
        let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0)
        guard let p, p != MAP_FAILED else {
            throw ModelFormatError.unreadable(file: path, reason: "mmap failed: \(String(cString: strerror(errno)))")
        }
        mapping = p
        bytes = UnsafeRawBufferPointer(start: p, count: size)
    }

    public var count: Int { bytes.count }

    deinit {
        if let mapping { munmap(mapping, bytes.count) }
    }
}

/// Bounds-checked little-endian cursor over a byte buffer. Every read checks the remaining
/// length first and throws `ModelFormatError.truncated` naming `what`.
struct ByteCursor {
    let bytes: UnsafeRawBufferPointer
    let file: String
    var offset: Int = 0
    /// Bytes of heap the parsed structures may still take (see `charge`): parsing a header never
    /// costs more than `memoryLimit` = 2 × the file's size + 32 MiB, whatever its counts say.
    let memoryLimit: Int
    var memoryBudget: Int

    init(bytes: UnsafeRawBufferPointer, file: String) {
        self.bytes = bytes
        self.file = file
        memoryLimit = 2 * bytes.count + 32 << 20
        memoryBudget = memoryLimit
    }

    var remaining: Int { bytes.count - offset }

    mutating func need(_ n: Int, _ what: @autoclosure () -> String) throws {
        if n < 0 || n > remaining {
            throw ModelFormatError.truncated(file: file, what: what(), offset: offset, needed: n, available: remaining)
        }
    }

    mutating func read<T: FixedWidthInteger>(_: T.Type, _ what: @autoclosure () -> String) throws -> T {
        try need(MemoryLayout<T>.size, what())
        let v = bytes.loadUnaligned(fromByteOffset: offset, as: T.self)
        offset += MemoryLayout<T>.size
        return T(littleEndian: v)
    }

    mutating func readF32(_ what: @autoclosure () -> String) throws -> Float {
        Float(bitPattern: try read(UInt32.self, what()))
    }

    mutating func readF64(_ what: @autoclosure () -> String) throws -> Double {
        Double(bitPattern: try read(UInt64.self, what()))
    }

    /// A GGUF string: u64 length + UTF-8 bytes (length checked against the remaining bytes first).
    mutating func readString(_ what: @autoclosure () -> String) throws -> String {
        let len = try read(UInt64.self, what())
        guard len <= UInt64(remaining) else {
            throw ModelFormatError.implausibleCount(file: file, what: "length of \(what())", count: len, limit: UInt64(remaining))
        }
        let n = Int(len)
        let s = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + n]), as: UTF8.self)
        offset += n
        return s
    }
}
