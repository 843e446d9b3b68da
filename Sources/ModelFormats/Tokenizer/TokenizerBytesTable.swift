/// An open-addressing hash table from byte strings to token ids, looked up through raw pointers
/// (a Dictionary keyed by ArraySlice<UInt8> hashes byte by byte through SipHash and is several
/// times slower in the merge loops).
struct TokenizerBytesTable {
    private var flat: [UInt8] = []
    private var offsets: [Int] = []
    private var ids: [Int32] = []
    private var slots: [Int32]  // index into offsets/ids, -1 = empty
    private let mask: Int

    init(capacity: Int) {
        var size = 16
        while size < capacity * 2 { size <<= 1 }
        slots = [Int32](repeating: -1, count: size)
        mask = size - 1
        offsets = [0]
    }

    @inline(__always)
    static func hash(_ p: UnsafePointer<UInt8>, _ n: Int) -> Int {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for i in 0..<n { h = (h ^ UInt64(p[i])) &* 0x0000_0100_0000_01B3 }
        return Int(truncatingIfNeeded: h ^ (h >> 29))
    }

    /// Adds `bytes` → `id`; a later insert of the same bytes replaces the id.
    mutating func insert(_ bytes: [UInt8], id: Int32) {
        bytes.withUnsafeBufferPointer { b in
            let n = b.count
            guard let base = b.baseAddress ?? UnsafePointer(bitPattern: 1) else { return }
            var slot = Self.hash(base, n) & mask
            while true {
                let e = Int(slots[slot])
                if e < 0 { break }
                if equal(e, base, n) { ids[e] = id; return }
                slot = (slot + 1) & mask
            }
            slots[slot] = Int32(ids.count)
            ids.append(id)
            flat.append(contentsOf: b)
            offsets.append(flat.count)
        }
    }

    @inline(__always)
    private func equal(_ e: Int, _ p: UnsafePointer<UInt8>, _ n: Int) -> Bool {
        let a = offsets[e], z = offsets[e + 1]
        if z - a != n { return false }
        var i = 0
        while i < n { if flat[a + i] != p[i] { return false }; i += 1 }
        return true
    }

    @inline(__always)
    func find(_ p: UnsafePointer<UInt8>, _ n: Int) -> Int32? {
        var slot = Self.hash(p, n) & mask
        while true {
            let e = Int(slots[slot])
            if e < 0 { return nil }
            if equal(e, p, n) { return ids[e] }
            slot = (slot + 1) & mask
        }
    }

    func find(_ bytes: ArraySlice<UInt8>) -> Int32? {
        bytes.withUnsafeBufferPointer { b in
            guard let base = b.baseAddress else { return find(UnsafePointer(bitPattern: 1)!, 0) }
            return find(base, b.count)
        }
    }
}
