/// An element of a `TokenizerHeap`: `comesBefore` is true when `a` must be popped before `b`.
protocol TokenizerHeapElement {
    static func comesBefore(_ a: Self, _ b: Self) -> Bool
}

/// A binary heap that pops the element that comes before all others first.
struct TokenizerHeap<Element: TokenizerHeapElement> {
    var items: [Element] = []

    var isEmpty: Bool { items.isEmpty }

    mutating func removeAll() { items.removeAll(keepingCapacity: true) }

    mutating func push(_ e: Element) {
        items.append(e)
        var i = items.count - 1
        while i > 0 {
            let parent = (i - 1) >> 1
            if !Element.comesBefore(items[i], items[parent]) { break }
            items.swapAt(i, parent)
            i = parent
        }
    }

    mutating func pop() -> Element? {
        guard let top = items.first else { return nil }
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            var i = 0
            let n = items.count
            while true {
                let l = 2 * i + 1
                if l >= n { break }
                var c = l
                if l + 1 < n && Element.comesBefore(items[l + 1], items[l]) { c = l + 1 }
                if !Element.comesBefore(items[c], items[i]) { break }
                items.swapAt(c, i)
                i = c
            }
        }
        return top
    }
}
