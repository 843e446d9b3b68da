/// A merge candidate: `priority` (smaller first), then `left` (smaller first) decide the order;
/// `a`, `b`, `c` carry whatever the tokenizer needs to check and apply the merge.
struct TokenizerMergeCandidate {
    var priority: Int64
    var left: Int32
    var a: Int32
    var b: Int32
    var c: Int32

    @inline(__always)
    static func comesBefore(_ x: Self, _ y: Self) -> Bool {
        x.priority < y.priority || (x.priority == y.priority && x.left < y.left)
    }

    /// A priority that puts higher scores first (a total order on the float bits).
    @inline(__always)
    static func priority(forScore score: Float) -> Int64 {
        let bits = score.bitPattern
        let ordered = bits & 0x8000_0000 != 0 ? ~bits : bits | 0x8000_0000  // ascending with the float
        return -Int64(ordered)
    }
}

/// A binary min-heap of merge candidates. Deliberately not generic: debug builds compile file by
/// file, where a generic heap defined in another file runs unspecialized (several times slower).
struct TokenizerHeap {
    var items: [TokenizerMergeCandidate] = []

    var isEmpty: Bool { items.isEmpty }

    mutating func removeAll() { items.removeAll(keepingCapacity: true) }

    mutating func push(_ e: TokenizerMergeCandidate) {
        items.append(e)
        items.withUnsafeMutableBufferPointer { h in
            var i = h.count - 1
            while i > 0 {
                let parent = (i - 1) >> 1
                if !TokenizerMergeCandidate.comesBefore(h[i], h[parent]) { break }
                h.swapAt(i, parent)
                i = parent
            }
        }
    }

    mutating func pop() -> TokenizerMergeCandidate? {
        guard let top = items.first else { return nil }
        let last = items.removeLast()
        if !items.isEmpty {
            items.withUnsafeMutableBufferPointer { h in
                h[0] = last
                var i = 0
                let n = h.count
                while true {
                    let l = 2 * i + 1
                    if l >= n { break }
                    var c = l
                    if l + 1 < n && TokenizerMergeCandidate.comesBefore(h[l + 1], h[l]) { c = l + 1 }
                    if !TokenizerMergeCandidate.comesBefore(h[c], h[i]) { break }
                    h.swapAt(c, i)
                    i = c
                }
            }
        }
        return top
    }
}
