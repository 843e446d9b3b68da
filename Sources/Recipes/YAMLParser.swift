// Safe YAML parsing on top of the system libyaml event API.
//
// Safety properties (each covered by YAMLParserTests):
// - file size is checked (fstat + a capped read) before the whole file is read;
// - bytes are validated as UTF-8 here, before libyaml, so errors point at the first bad byte;
// - the tree is built iteratively from the event stream (no recursion), nesting is bounded by
//   `maxDepth` as each collection opens, so deep input can neither overflow the stack nor build
//   a deep tree;
// - aliases are resolved by sharing the anchored subtree (copy-on-write, O(1) per alias) while
//   counting the nodes they would materialize, so an alias bomb is refused at the first alias
//   that crosses `maxNodes`, using neither the memory nor the time of the expansion;
// - exactly one document; duplicate keys, non-scalar keys and merge keys (`<<`) are rejected;
// - libyaml's parser and event structures are freed on every path (`defer`).
import CYAML

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Resource limits applied while reading and parsing a YAML file.
public struct YAMLLimits: Sendable {
    /// Largest accepted input, in bytes (default 8 MiB).
    public var maxFileBytes: Int
    /// Deepest accepted nesting of mappings/lists; the root collection is depth 1 (default 64).
    public var maxDepth: Int
    /// Most nodes in the document after alias expansion (default 100 000).
    public var maxNodes: Int
    /// Most alias (`*name`) uses in the document (default 10 000).
    public var maxAliasExpansions: Int

    public init(maxFileBytes: Int = 8 << 20, maxDepth: Int = 64, maxNodes: Int = 100_000,
                maxAliasExpansions: Int = 10_000) {
        self.maxFileBytes = maxFileBytes
        self.maxDepth = maxDepth
        self.maxNodes = maxNodes
        self.maxAliasExpansions = maxAliasExpansions
    }
}

public enum YAMLParser {
    /// Reads and parses the single YAML document in `path`. All failures are `YAMLError`s whose
    /// `description` starts with `path:line:column:`.
    public static func parse(file path: String, limits: YAMLLimits = .init()) throws -> YAMLNode {
        let bytes = try readFile(path, maxBytes: limits.maxFileBytes)
        return try parse(bytes: bytes, file: path, limits: limits)
    }

    /// Parses the single YAML document in `bytes`; `file` is used in source locations.
    public static func parse(bytes: [UInt8], file: String, limits: YAMLLimits = .init()) throws -> YAMLNode {
        let start = SourceLocation(file: file, line: 1, column: 1)
        if bytes.count > limits.maxFileBytes {
            throw YAMLError(location: start, message: tooLargeMessage(bytes.count, limits.maxFileBytes))
        }
        try checkEncoding(bytes, file: file)
        if bytes.isEmpty {
            throw YAMLError(location: start, message: emptyMessage)
        }
        return try runLibYAML(bytes: bytes, file: file, limits: limits)
    }

    static let emptyMessage = "recipe is empty (the file contains no YAML document)"

    static func tooLargeMessage(_ size: Int, _ limit: Int) -> String {
        "file is too large: \(size) bytes, over the limit of \(limit) bytes (YAMLLimits.maxFileBytes)"
    }

    // MARK: - File reading

    static func readFile(_ path: String, maxBytes: Int) throws -> [UInt8] {
        let start = SourceLocation(file: path, line: 1, column: 1)
        func fail(_ message: String) -> YAMLError { YAMLError(location: start, message: message) }

        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            let err = errno
            switch err {
            case ENOENT, ENOTDIR:
                throw fail("cannot open recipe file '\(path)': no such file; check the path")
            case EACCES:
                throw fail("cannot open recipe file '\(path)': permission denied")
            default:
                throw fail("cannot open recipe file '\(path)': \(String(cString: strerror(err)))")
            }
        }
        defer { close(fd) }

        var st = stat()
        guard fstat(fd, &st) == 0 else {
            throw fail("cannot read recipe file '\(path)': \(String(cString: strerror(errno)))")
        }
        if (st.st_mode & S_IFMT) == S_IFDIR {
            throw fail("'\(path)' is a directory, not a recipe file; check the path")
        }
        // Refuse before reading anything. The read below is capped too, for files whose
        // reported size is wrong (pipes, /proc, files growing while we read).
        if Int(st.st_size) > maxBytes {
            throw fail(tooLargeMessage(Int(st.st_size), maxBytes))
        }

        var bytes: [UInt8] = []
        bytes.reserveCapacity(max(0, Int(st.st_size)))
        let chunkSize = 64 << 10
        var chunk = [UInt8](repeating: 0, count: chunkSize)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, chunkSize) }
            if n < 0 {
                if errno == EINTR { continue }
                throw fail("cannot read recipe file '\(path)': \(String(cString: strerror(errno)))")
            }
            if n == 0 { break }
            bytes.append(contentsOf: chunk[0..<n])
            if bytes.count > maxBytes {
                throw fail("file is too large: more than \(maxBytes) bytes, over the limit of "
                           + "\(maxBytes) bytes (YAMLLimits.maxFileBytes)")
            }
        }
        return bytes
    }

    // MARK: - Encoding

    /// Rejects UTF-16/UTF-32 byte-order marks, NUL bytes and invalid UTF-8, pointing at the
    /// line and column (in characters, like libyaml) of the first offending byte.
    static func checkEncoding(_ bytes: [UInt8], file: String) throws {
        let n = bytes.count
        func bom(_ name: String, _ hex: String) -> YAMLError {
            YAMLError(location: SourceLocation(file: file, line: 1, column: 1),
                      message: "file is \(name) encoded (byte-order mark \(hex)); recipes must be UTF-8 "
                               + "— save the file as UTF-8")
        }
        if n >= 4, bytes[0] == 0, bytes[1] == 0, bytes[2] == 0xFE, bytes[3] == 0xFF { throw bom("UTF-32", "00 00 FE FF") }
        if n >= 4, bytes[0] == 0xFF, bytes[1] == 0xFE, bytes[2] == 0, bytes[3] == 0 { throw bom("UTF-32", "FF FE 00 00") }
        if n >= 2, bytes[0] == 0xFE, bytes[1] == 0xFF { throw bom("UTF-16", "FE FF") }
        if n >= 2, bytes[0] == 0xFF, bytes[1] == 0xFE { throw bom("UTF-16", "FF FE") }

        var line = 1, column = 1
        var i = hasUTF8BOM(bytes) ? 3 : 0  // like libyaml, the mark does not count a UTF-8 BOM
        while i < n {
            let b = bytes[i]
            if b < 0x80 {
                if b == 0 {
                    throw YAMLError(location: SourceLocation(file: file, line: line, column: column),
                                    message: "file contains a NUL byte (it may be UTF-16/UTF-32 without a "
                                             + "byte-order mark, or binary); save the file as UTF-8 text")
                }
                if b == 0x0A || (b == 0x0D && (i + 1 == n || bytes[i + 1] != 0x0A)) {
                    line += 1
                    column = 1
                } else if b != 0x0D {
                    column += 1
                }
                i += 1
                continue
            }
            let width: Int
            var lo: UInt8 = 0x80, hi: UInt8 = 0xBF  // allowed range of the second byte
            switch b {
            case 0xC2...0xDF: width = 2
            case 0xE0: width = 3; lo = 0xA0
            case 0xE1...0xEC, 0xEE...0xEF: width = 3
            case 0xED: width = 3; hi = 0x9F  // no UTF-16 surrogates
            case 0xF0: width = 4; lo = 0x90
            case 0xF1...0xF3: width = 4
            case 0xF4: width = 4; hi = 0x8F  // ≤ U+10FFFF
            default: width = 0  // continuation byte without a lead, overlong lead C0/C1, or F5...FF
            }
            var ok = width > 0 && i + width <= n
            if ok {
                let b1 = bytes[i + 1]
                ok = b1 >= lo && b1 <= hi
                var k = 2
                while ok && k < width {
                    ok = bytes[i + k] & 0xC0 == 0x80
                    k += 1
                }
            }
            if !ok {
                let hex = String(b, radix: 16, uppercase: true)
                throw YAMLError(location: SourceLocation(file: file, line: line, column: column),
                                message: "file is not valid UTF-8 (byte 0x\(hex.count == 1 ? "0" : "")\(hex) "
                                         + "at byte offset \(i)); it may be in Latin-1 or another legacy "
                                         + "encoding — save the file as UTF-8")
            }
            // U+0085, U+2028, U+2029 are line breaks for libyaml.
            if (b == 0xC2 && bytes[i + 1] == 0x85)
                || (b == 0xE2 && bytes[i + 1] == 0x80 && (bytes[i + 2] == 0xA8 || bytes[i + 2] == 0xA9)) {
                line += 1
                column = 1
            } else {
                column += 1
            }
            i += width
        }
    }

    static func hasUTF8BOM(_ bytes: [UInt8]) -> Bool {
        bytes.count >= 3 && bytes[0] == 0xEF && bytes[1] == 0xBB && bytes[2] == 0xBF
    }

    /// 1-based line/column (columns in characters) of a byte offset into valid UTF-8.
    static func location(ofByteOffset offset: Int, in bytes: [UInt8], file: String) -> SourceLocation {
        var line = 1, column = 1
        var i = hasUTF8BOM(bytes) ? 3 : 0
        let end = min(offset, bytes.count)
        while i < end {
            let b = bytes[i]
            if b == 0x0A || (b == 0x0D && (i + 1 == bytes.count || bytes[i + 1] != 0x0A)) {
                line += 1
                column = 1
            } else if b != 0x0D && (b & 0xC0) != 0x80 {
                column += 1
            }
            i += 1
        }
        return SourceLocation(file: file, line: line, column: column)
    }

    // MARK: - libyaml

    static func runLibYAML(bytes: [UInt8], file: String, limits: YAMLLimits) throws -> YAMLNode {
        let parser = UnsafeMutablePointer<yaml_parser_t>.allocate(capacity: 1)
        defer { parser.deallocate() }
        let event = UnsafeMutablePointer<yaml_event_t>.allocate(capacity: 1)
        defer { event.deallocate() }
        guard yaml_parser_initialize(parser) != 0 else {
            throw YAMLError(location: SourceLocation(file: file, line: 1, column: 1),
                            message: "cannot initialize the YAML parser (out of memory)")
        }
        defer { yaml_parser_delete(parser) }
        // Leave the encoding to libyaml's detection: UTF-16/32 were refused above, so it picks UTF-8
        // and skips a UTF-8 byte-order mark (setting YAML_UTF8_ENCODING explicitly would not).

        var builder = TreeBuilder(file: file, limits: limits)
        try bytes.withUnsafeBufferPointer { buffer in
            // libyaml keeps this pointer; it is only used inside this closure.
            yaml_parser_set_input_string(parser, buffer.baseAddress, buffer.count)
            var done = false
            while !done {
                guard yaml_parser_parse(parser, event) != 0 else {
                    throw libyamlError(parser.pointee, bytes: bytes, file: file)
                }
                defer { yaml_event_delete(event) }
                done = try builder.handle(event.pointee)
            }
        }
        return try builder.finish()
    }

    static func libyamlError(_ p: yaml_parser_t, bytes: [UInt8], file: String) -> YAMLError {
        let problem = p.problem.map { String(cString: $0) } ?? "unknown YAML error"
        switch p.error {
        case YAML_MEMORY_ERROR:
            return YAMLError(location: SourceLocation(file: file, line: 1, column: 1),
                             message: "out of memory while parsing YAML")
        case YAML_READER_ERROR:
            var message = problem
            if p.problem_value != -1 {
                message += " (character U+\(String(p.problem_value, radix: 16, uppercase: true)))"
            }
            return YAMLError(location: location(ofByteOffset: Int(p.problem_offset), in: bytes, file: file),
                             message: message)
        default:
            var message = problem
            if let context = p.context.map({ String(cString: $0) }) {
                let cm = p.context_mark
                message += " (\(context) starting at line \(Int(cm.line) + 1), column \(Int(cm.column) + 1))"
            }
            let pm = p.problem_mark
            return YAMLError(location: SourceLocation(file: file, line: Int(pm.line) + 1, column: Int(pm.column) + 1),
                             message: message)
        }
    }
}

// MARK: - Event stream → tree

/// Builds the tree iteratively from libyaml events with an explicit stack of open collections.
struct TreeBuilder {
    struct Anchored {
        var node: YAMLNode
        var count: Int   // nodes in the subtree, aliases inside it already expanded
        var height: Int  // collection nesting of the subtree (a scalar is 0)
    }

    struct Frame {
        var isMapping: Bool
        var location: SourceLocation
        var tag: String?
        var anchor: String?
        var items: [YAMLNode] = []
        var entries: [(key: YAMLNode, value: YAMLNode)] = []
        var pendingKey: YAMLNode? = nil
        var seenKeys: [String: SourceLocation] = [:]
        var count = 1
        var childHeight = 0
    }

    let file: String
    let limits: YAMLLimits
    var stack: [Frame] = []
    var anchors: [String: Anchored] = [:]
    var totalNodes = 0
    var aliasUses = 0
    var documents = 0
    var root: YAMLNode? = nil

    init(file: String, limits: YAMLLimits) {
        self.file = file
        self.limits = limits
    }

    func loc(_ mark: yaml_mark_t) -> SourceLocation {
        SourceLocation(file: file, line: Int(mark.line) + 1, column: Int(mark.column) + 1)
    }

    static func cString(_ p: UnsafeMutablePointer<yaml_char_t>?) -> String? {
        p.map { String(cString: UnsafePointer($0)) }
    }

    /// Handles one event; returns true at the end of the stream.
    mutating func handle(_ e: yaml_event_t) throws -> Bool {
        let here = loc(e.start_mark)
        switch e.type {
        case YAML_STREAM_START_EVENT, YAML_DOCUMENT_END_EVENT, YAML_NO_EVENT:
            return false
        case YAML_STREAM_END_EVENT:
            return true
        case YAML_DOCUMENT_START_EVENT:
            documents += 1
            if documents > 1 {
                throw YAMLError(location: here, message: "a second YAML document starts here; a recipe file "
                                + "must contain exactly one document (remove this '---' or split the file)")
            }
            return false
        case YAML_SCALAR_EVENT:
            let s = e.data.scalar
            let text = s.value.map {
                String(decoding: UnsafeBufferPointer(start: UnsafePointer($0), count: Int(s.length)), as: UTF8.self)
            } ?? ""
            let node = YAMLNode(kind: .scalar(text, quoted: s.style != YAML_PLAIN_SCALAR_STYLE),
                                location: here, tag: Self.cString(s.tag))
            try countNodes(1, at: here, alias: nil)
            try attach(node, count: 1, height: 0, anchor: Self.cString(s.anchor))
            return false
        case YAML_SEQUENCE_START_EVENT, YAML_MAPPING_START_EVENT:
            let isMapping = e.type == YAML_MAPPING_START_EVENT
            let anchor = Self.cString(isMapping ? e.data.mapping_start.anchor : e.data.sequence_start.anchor)
            let tag = Self.cString(isMapping ? e.data.mapping_start.tag : e.data.sequence_start.tag)
            if let top = stack.last, top.isMapping, top.pendingKey == nil {
                throw YAMLError(location: here, message: "mapping keys must be plain scalars (strings), "
                                + "found \(isMapping ? "a mapping" : "a list") used as a key")
            }
            if stack.count + 1 > limits.maxDepth {
                throw YAMLError(location: here, message: "nesting is too deep: more than \(limits.maxDepth) "
                                + "levels of mappings/lists (YAMLLimits.maxDepth)")
            }
            try countNodes(1, at: here, alias: nil)
            stack.append(Frame(isMapping: isMapping, location: here, tag: tag, anchor: anchor))
            return false
        case YAML_SEQUENCE_END_EVENT, YAML_MAPPING_END_EVENT:
            let f = stack.removeLast()
            let node = YAMLNode(kind: f.isMapping ? .mapping(f.entries) : .sequence(f.items),
                                location: f.location, tag: f.tag)
            try attach(node, count: f.count, height: f.childHeight + 1, anchor: f.anchor)
            return false
        case YAML_ALIAS_EVENT:
            let name = Self.cString(e.data.alias.anchor) ?? ""
            guard let target = anchors[name] else {
                throw YAMLError(location: here, message: "unknown alias '*\(name)': no anchor '&\(name)' is "
                                + "defined before this point")
            }
            aliasUses += 1
            if aliasUses > limits.maxAliasExpansions {
                throw YAMLError(location: here, message: "too many aliases: alias '*\(name)' is use number "
                                + "\(aliasUses), over the limit of \(limits.maxAliasExpansions) "
                                + "(YAMLLimits.maxAliasExpansions)")
            }
            if stack.count + target.height > limits.maxDepth {
                throw YAMLError(location: here, message: "nesting is too deep: alias '*\(name)' expands to more "
                                + "than \(limits.maxDepth) levels of mappings/lists (YAMLLimits.maxDepth)")
            }
            try countNodes(target.count, at: here, alias: name)
            var node = target.node  // shares storage with the anchor (copy-on-write)
            node.location = here
            try attach(node, count: target.count, height: target.height, anchor: nil)
            return false
        default:
            return false
        }
    }

    mutating func countNodes(_ n: Int, at location: SourceLocation, alias: String?) throws {
        if n > limits.maxNodes - totalNodes {
            if let alias = alias {
                throw YAMLError(location: location, message: "alias '*\(alias)' would expand the document to "
                                + "more than \(limits.maxNodes) nodes (YAMLLimits.maxNodes); refusing what looks "
                                + "like an alias bomb")
            }
            throw YAMLError(location: location, message: "document has more than \(limits.maxNodes) nodes "
                            + "(YAMLLimits.maxNodes)")
        }
        totalNodes += n
    }

    mutating func attach(_ node: YAMLNode, count: Int, height: Int, anchor: String?) throws {
        if let anchor = anchor {
            anchors[anchor] = Anchored(node: node, count: count, height: height)
        }
        guard !stack.isEmpty else {
            root = node
            return
        }
        let top = stack.count - 1
        if stack[top].isMapping {
            if stack[top].pendingKey == nil {
                try checkKey(node, in: &stack[top])
                stack[top].pendingKey = node
            } else {
                stack[top].entries.append((key: stack[top].pendingKey!, value: node))
                stack[top].pendingKey = nil
            }
        } else {
            stack[top].items.append(node)
        }
        stack[top].count += count
        stack[top].childHeight = max(stack[top].childHeight, height)
    }

    func checkKey(_ key: YAMLNode, in frame: inout Frame) throws {
        guard case .scalar(let text, let quoted) = key.kind else {
            throw key.error("mapping keys must be plain scalars (strings), found \(key.kindName) used as a key")
        }
        if text == "<<" && !quoted && key.tag == nil {
            throw key.error("merge keys ('<<') are not supported; repeat the keys, or use an alias ('*name') "
                            + "for the whole mapping")
        }
        if let first = frame.seenKeys[text] {
            let shown = text.count > 60 ? String(text.prefix(57)) + "..." : text
            throw key.error("duplicate key '\(shown)' in this mapping (first defined at line \(first.line), "
                            + "column \(first.column))")
        }
        frame.seenKeys[text] = key.location
    }

    func finish() throws -> YAMLNode {
        guard let root = root else {
            throw YAMLError(location: SourceLocation(file: file, line: 1, column: 1), message: YAMLParser.emptyMessage)
        }
        // A document with only comments / '---' yields an empty plain scalar.
        if case .scalar("", quoted: false) = root.kind, root.tag == nil {
            throw YAMLError(location: SourceLocation(file: file, line: 1, column: 1), message: YAMLParser.emptyMessage)
        }
        return root
    }
}
