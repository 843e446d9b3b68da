import Foundation

/// A `re:` target of a compressed-tensors config: a regular expression matched from the start of a
/// module name (Python's `re.match`), run as a Thompson NFA — time linear in the name's length
/// times the pattern's size whatever the pattern, where a backtracking engine takes exponential
/// time on `(.*)*x` (a config file is input like any other).
///
/// The subset config files use: literals, `.`, classes `[a-z_]` / `[^…]`, escapes `\d \w \s \D \W
/// \S`, `\n \t` and escaped punctuation, groups `(…)` / `(?:…)`, `|`, `*` `+` `?` `{m}` `{m,}`
/// `{,n}` `{m,n}` (a lazy `?` suffix is accepted: it does not change whether a name matches), and
/// the anchors `^` and `$`. Anything else (look-around, back-references, `\b`, …) is an error.
struct ModulePattern {
    struct PatternError: Error { var reason: String }

    /// Instructions one pattern may compile to (counted repetitions are expanded).
    static let maxInstructions = 1024
    static let supported = "literals, ., [classes], \\d \\w \\s, (groups), (?:…), |, * + ? {m,n}, ^ $"

    enum Instruction {
        case char((Unicode.Scalar) -> Bool)
        case split(Int, Int)
        case jump(Int)
        case atStart, atEnd
        case match
    }
    let program: [Instruction]

    init(_ pattern: String) throws {
        var parser = Parser(scalars: Array(pattern.unicodeScalars))
        let tree = try parser.alternation()
        if parser.i < parser.scalars.count { throw PatternError(reason: "unbalanced ')' at character \(parser.i + 1)") }
        var compiler = Compiler()
        try compiler.emit(tree)
        compiler.program.append(.match)
        program = compiler.program
    }

    /// True when the pattern matches a prefix of `name` (the whole name with a final `$`).
    func matchesPrefix(_ name: String) -> Bool {
        let s = Array(name.unicodeScalars)
        var mark = [Int](repeating: -1, count: program.count)
        // Adds the threads reachable from `pc` without consuming a character; true on a match.
        func closure(_ pc: Int, at pos: Int, into list: inout [Int]) -> Bool {
            var stack = [pc]
            while let pc = stack.popLast() {
                if mark[pc] == pos { continue }
                mark[pc] = pos
                switch program[pc] {
                case .match: return true
                case .jump(let t): stack.append(t)
                case .split(let a, let b): stack.append(b); stack.append(a)
                case .atStart: if pos == 0 { stack.append(pc + 1) }
                case .atEnd: if pos == s.count { stack.append(pc + 1) }
                case .char: list.append(pc)
                }
            }
            return false
        }
        var current: [Int] = []
        if closure(0, at: 0, into: &current) { return true }
        for pos in 0..<s.count where !current.isEmpty {
            var next: [Int] = []
            for pc in current {
                if case .char(let test) = program[pc], test(s[pos]), closure(pc + 1, at: pos + 1, into: &next) { return true }
            }
            current = next
        }
        return false
    }

    indirect enum Node {
        case set((Unicode.Scalar) -> Bool)
        case atStart, atEnd
        case sequence([Node])
        case either([Node])
        case repeated(Node, min: Int, max: Int?)
    }

    struct Parser {
        let scalars: [Unicode.Scalar]
        var i = 0
        /// Open groups; bounded so that parsing, compiling and freeing the tree cannot overflow the stack.
        var depth = 0
        static let maxDepth = 64
        var peek: Unicode.Scalar? { i < scalars.count ? scalars[i] : nil }

        mutating func alternation() throws -> Node {
            var options = [try sequence()]
            while peek == "|" { i += 1; options.append(try sequence()) }
            return options.count == 1 ? options[0] : .either(options)
        }

        mutating func sequence() throws -> Node {
            var items: [Node] = []
            while let c = peek, c != "|", c != ")" {
                var atom = try self.atom()
                var repeated = false
                while let (lo, hi) = try quantifier() {
                    if repeated { throw PatternError(reason: "multiple repeat at character \(i)") }
                    atom = .repeated(atom, min: lo, max: hi)
                    repeated = true
                    if peek == "?" { i += 1 }   // lazy: the same names match
                }
                items.append(atom)
            }
            return .sequence(items)
        }

        /// `*`, `+`, `?` or a well-formed `{m}` `{m,}` `{,n}` `{m,n}` (anything else starting with `{` is a literal).
        mutating func quantifier() throws -> (Int, Int?)? {
            switch peek {
            case "*": i += 1; return (0, nil)
            case "+": i += 1; return (1, nil)
            case "?": i += 1; return (0, 1)
            case "{":
                var j = i + 1
                func number() -> Int? {
                    var v = 0, digits = 0
                    while j < scalars.count, ("0"..."9").contains(scalars[j]) {
                        v = min(v * 10 + Int(scalars[j].value) - 48, Int(Int32.max)); digits += 1; j += 1
                    }
                    return digits == 0 ? nil : v
                }
                let lo = number()
                var hi = lo, comma = false
                if j < scalars.count, scalars[j] == "," { comma = true; j += 1; hi = number() }
                guard j < scalars.count, scalars[j] == "}", lo != nil || hi != nil else { return nil }
                i = j + 1
                let m = lo ?? 0, n = comma ? hi : lo
                let limit = ModulePattern.maxInstructions
                if m > limit || (n ?? 0) > limit { throw PatternError(reason: "repeat count over \(limit)") }
                if let n, n < m { throw PatternError(reason: "repeat {\(m),\(n)}: the maximum is below the minimum") }
                return (m, n)
            default: return nil
            }
        }

        mutating func atom() throws -> Node {
            let c = scalars[i]
            i += 1
            switch c {
            case ".": return .set { $0 != "\n" }
            case "^": return .atStart
            case "$": return .atEnd
            case "(":
                depth += 1
                defer { depth -= 1 }
                if depth > Self.maxDepth { throw PatternError(reason: "groups nested deeper than \(Self.maxDepth)") }
                if peek == "?" {
                    guard i + 1 < scalars.count, scalars[i + 1] == ":" else {
                        throw PatternError(reason: "(?…) groups other than (?:…) are not supported")
                    }
                    i += 2
                }
                let inner = try alternation()
                guard peek == ")" else { throw PatternError(reason: "missing ')'") }
                i += 1
                return inner
            case "[": return .set(try characterClass())
            case "\\": return .set(try escape(inClass: false))
            case "*", "+", "?": throw PatternError(reason: "nothing to repeat at character \(i)")
            default: return .set { $0 == c }
            }
        }

        mutating func escape(inClass: Bool) throws -> (Unicode.Scalar) -> Bool {
            guard let e = peek else { throw PatternError(reason: "the pattern ends with a lone backslash") }
            i += 1
            let digit: (Unicode.Scalar) -> Bool = { ("0"..."9").contains($0) }
            let word: (Unicode.Scalar) -> Bool = { $0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "_" }
            let space: (Unicode.Scalar) -> Bool = { $0.properties.isWhitespace }
            switch e {
            case "d": return digit
            case "D": return { !digit($0) }
            case "w": return word
            case "W": return { !word($0) }
            case "s": return space
            case "S": return { !space($0) }
            case "n": return { $0 == "\n" }
            case "t": return { $0 == "\t" }
            default:
                guard !e.properties.isAlphabetic, !("0"..."9").contains(e) else {
                    throw PatternError(reason: "the escape \\\(e) is not supported")
                }
                return { $0 == e }
            }
        }

        /// After `[`: `^` negates, `]` first is literal, `a-z` ranges, escapes.
        mutating func characterClass() throws -> (Unicode.Scalar) -> Bool {
            var negate = false
            if peek == "^" { negate = true; i += 1 }
            var tests: [(Unicode.Scalar) -> Bool] = []
            var first = true
            while true {
                guard let c = peek else { throw PatternError(reason: "missing ']'") }
                if c == "]" && !first { i += 1; break }
                first = false
                if c == "\\" { i += 1; tests.append(try escape(inClass: true)); continue }
                i += 1
                if peek == "-", i + 1 < scalars.count, scalars[i + 1] != "]" {
                    let hi = scalars[i + 1]
                    guard hi != "\\" else { throw PatternError(reason: "a range ending in an escape is not supported") }
                    guard c.value <= hi.value else { throw PatternError(reason: "bad character range \(c)-\(hi)") }
                    i += 2
                    tests.append { (c.value...hi.value).contains($0.value) }
                } else {
                    tests.append { $0 == c }
                }
            }
            return { s in tests.contains { $0(s) } != negate }
        }
    }

    struct Compiler {
        var program: [Instruction] = []

        mutating func append(_ op: Instruction) throws -> Int {
            guard program.count < ModulePattern.maxInstructions else {
                throw PatternError(reason: "the pattern is too complex (over \(ModulePattern.maxInstructions) NFA states)")
            }
            program.append(op)
            return program.count - 1
        }

        mutating func emit(_ n: Node) throws {
            switch n {
            case .set(let test): _ = try append(.char(test))
            case .atStart: _ = try append(.atStart)
            case .atEnd: _ = try append(.atEnd)
            case .sequence(let items): for x in items { try emit(x) }
            case .either(let options):
                var jumps: [Int] = []
                for (k, x) in options.enumerated() {
                    if k == options.count - 1 { try emit(x); break }
                    let split = try append(.jump(0))
                    try emit(x)
                    jumps.append(try append(.jump(0)))
                    program[split] = .split(split + 1, program.count)
                }
                for j in jumps { program[j] = .jump(program.count) }
            case .repeated(let x, let lo, let hi):
                for _ in 0..<lo { try emit(x) }
                if let hi {
                    var splits: [Int] = []
                    for _ in lo..<hi {
                        splits.append(try append(.jump(0)))
                        try emit(x)
                    }
                    for s in splits { program[s] = .split(s + 1, program.count) }
                } else {
                    let split = try append(.jump(0))
                    try emit(x)
                    _ = try append(.jump(split))
                    program[split] = .split(split + 1, program.count)
                }
            }
        }
    }
}
