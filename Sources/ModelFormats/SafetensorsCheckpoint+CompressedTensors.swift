import Foundation

/// One linear stored in the compressed-tensors `pack-quantized` layout, validated against its
/// header entries (the values are read and checked when the weight is requested).
struct PackedLinear: Sendable {
    /// HF module name, e.g. "model.layers.0.self_attn.q_proj".
    var module: String
    var group: String
    var scheme: CompressedTensorsScheme
    var rows: Int
    var cols: Int
    var packedName: String { module + ".weight_packed" }
    var scaleName: String { module + ".weight_scale" }
    var zeroName: String { module + ".weight_zero_point" }
    var shapeName: String { module + ".weight_shape" }
    var byteCount: Int
    var groups: Int { scheme.groupSize.map { cols / $0 } ?? 1 }
}

/// The `quantization_config` of a compressed-tensors checkpoint: weight-only `pack-quantized`
/// config groups with their targets, and the ignore list.
struct CompressedTensorsConfig {
    struct Group {
        var name: String
        var targets: [Target]
        var scheme: CompressedTensorsScheme
    }
    /// A module name, `re:<pattern>`, or the class `Linear`.
    struct Target {
        var text: String
        /// The compiled pattern of a `re:` target.
        var pattern: ModulePattern?

        /// How well this target names a linear module: 0 exact name, 1 `re:` pattern matching from
        /// the start, 2 the class `Linear`; nil if it does not.
        func rank(_ module: String) -> Int? {
            if text == module { return 0 }
            if let pattern { return pattern.matchesPrefix(module) ? 1 : nil }
            return text == "Linear" ? 2 : nil
        }
    }
    var groups: [Group]
    var ignore: [Target]
    let file: String

    /// NFA states all `re:` patterns of one config may compile to together: matching costs at
    /// most this many steps per character of a module name.
    static let maxPatternInstructions = 4 * ModulePattern.maxInstructions

    static let key = "quantization_config"

    /// nil when config.json has no compressed-tensors `quantization_config` (or its format is `dense`).
    init?(hfConfig cfg: [String: Any], file: String) throws {
        self.file = file
        guard let any = cfg[Self.key], !(any is NSNull) else { return nil }
        func bad(_ key: String, _ why: String) -> ModelFormatError { .badMetadata(file: file, key: "\(Self.key).\(key)", reason: why) }
        guard let q = any as? [String: Any] else { throw ModelFormatError.badMetadata(file: file, key: Self.key, reason: "expected an object") }
        var patternBudget = Self.maxPatternInstructions
        func target(_ text: String, key: String) throws -> Target {
            guard text.hasPrefix("re:") else { return Target(text: text, pattern: nil) }
            let p: ModulePattern
            do { p = try ModulePattern(String(text.dropFirst(3))) } catch let e as ModulePattern.PatternError {
                throw bad(key, "'\(text)': \(e.reason) (supported: \(ModulePattern.supported))")
            }
            patternBudget -= p.program.count
            guard patternBudget >= 0 else {
                throw bad(key, "'\(text)': the config's re: patterns together compile to over \(Self.maxPatternInstructions) NFA states; use fewer or simpler patterns")
            }
            return Target(text: text, pattern: p)
        }
        let method = q["quant_method"] as? String ?? "(none)"
        guard method == "compressed-tensors" else {
            throw bad("quant_method", "'\(method)' is not supported (supported: compressed-tensors with format pack-quantized)")
        }
        let format = q["format"] as? String ?? "(none)"
        if format == "dense" { return nil }
        func checkFormat(_ f: String, _ key: String) throws {
            guard f == "pack-quantized" else {
                throw bad(key, "'\(f)' is not supported (supported: pack-quantized, the weight-only int4/int8 layout; dense)")
            }
        }
        guard let groupsAny = q["config_groups"] as? [String: Any], !groupsAny.isEmpty else {
            throw bad("config_groups", "expected a non-empty object of config groups")
        }
        var groups: [Group] = []
        for name in groupsAny.keys.sorted() {
            let k = "config_groups.\(name)"
            guard let g = groupsAny[name] as? [String: Any] else { throw bad(k, "expected an object") }
            try checkFormat((g["format"] as? String) ?? format, (g["format"] as? String) != nil ? "\(k).format" : "format")
            guard let names = g["targets"] as? [String], !names.isEmpty else { throw bad("\(k).targets", "expected a non-empty list of strings") }
            let targets = try names.enumerated().map { try target($1, key: "\(k).targets[\($0)]") }
            for act in ["input_activations", "output_activations"] {
                if let v = g[act], !(v is NSNull) {
                    throw bad("\(k).\(act)", "activation quantization is not supported (only weight-only schemes load; activations stay float)")
                }
            }
            guard let w = g["weights"] as? [String: Any] else { throw bad("\(k).weights", "expected an object") }
            func wkey(_ s: String) -> String { "\(k).weights.\(s)" }
            guard let type = w["type"] as? String, type == "int" else {
                throw bad(wkey("type"), "expected \"int\", found \(w["type"] ?? "nothing")")
            }
            guard let bits = w["num_bits"] as? Int, CompressedTensorsScheme.supportedBits.contains(bits) else {
                throw bad(wkey("num_bits"), "expected an integer in \(CompressedTensorsScheme.supportedBits.lowerBound)...\(CompressedTensorsScheme.supportedBits.upperBound), found \(w["num_bits"] ?? "nothing")")
            }
            guard let sym = w["symmetric"] as? Bool else { throw bad(wkey("symmetric"), "expected true or false, found \(w["symmetric"] ?? "nothing")") }
            if let d = w["dynamic"], !(d is NSNull), d as? Bool != false {
                throw bad(wkey("dynamic"), "dynamic weight quantization is not supported (expected false)")
            }
            let strategy = w["strategy"] as? String ?? "(none)"
            var groupSize: Int?
            switch strategy {
            case "channel": groupSize = nil
            case "group":
                guard let gs = w["group_size"] as? Int, gs > 0 else {
                    throw bad(wkey("group_size"), "expected a positive integer for strategy group, found \(w["group_size"] ?? "nothing")")
                }
                groupSize = gs
            default:
                throw bad(wkey("strategy"), "'\(strategy)' is not supported (supported: channel, group)")
            }
            groups.append(Group(name: name, targets: targets, scheme: CompressedTensorsScheme(bits: bits, symmetric: sym, groupSize: groupSize)))
        }
        self.groups = groups
        if let v = q["ignore"], !(v is NSNull) {
            guard let list = v as? [String] else { throw bad("ignore", "expected a list of module names") }
            ignore = try list.enumerated().map { try target($1, key: "ignore[\($0)]") }
        } else {
            ignore = []
        }
    }

    /// The group whose targets match `module` most specifically; errors when the module is
    /// ignored, unmatched, or matched equally well by two groups.
    func group(for module: String, tensor: String) throws -> Group {
        if ignore.contains(where: { $0.rank(module).map { $0 < 2 } ?? false }) {
            throw ModelFormatError.badMetadata(file: file, key: "\(Self.key).ignore",
                reason: "lists \(module), but the weights store it packed (\(tensor)); remove it from ignore or store it as float")
        }
        let ranked = groups.compactMap { g in g.targets.compactMap { $0.rank(module) }.min().map { ($0, g) } }
        guard let best = ranked.map(\.0).min() else {
            throw ModelFormatError.badMetadata(file: file, key: "\(Self.key).config_groups",
                reason: "no config group targets \(module), which is stored packed (\(tensor)); add it (or \"Linear\") to a group's targets")
        }
        let winners = ranked.filter { $0.0 == best }.map(\.1)
        guard winners.count == 1 else {
            throw ModelFormatError.badMetadata(file: file, key: "\(Self.key).config_groups",
                reason: "\(module) is targeted equally by \(winners.map(\.name).joined(separator: " and ")); name it in one group only")
        }
        return winners[0]
    }
}

extension SafetensorsCheckpoint {
    /// Finds and validates every `<module>.weight_packed` against the header: dtypes, shapes,
    /// `weight_shape` values, group sizes dividing the input size, packed lengths, zero points
    /// present exactly for asymmetric schemes. Returns the packed linears by canonical name and
    /// the stored names they consume.
    static func packedLinears(tensors: SafetensorsCollection, hfConfig: [String: Any], file: String, configFile: String)
        throws -> (linears: [String: PackedLinear], consumed: Set<String>) {
        let suffix = ".weight_packed"
        let packedNames = tensors.tensorNames.filter { $0.hasSuffix(suffix) }
        let config = try CompressedTensorsConfig(hfConfig: hfConfig, file: configFile)
        guard let config else {
            if let first = packedNames.first {
                throw ModelFormatError.badMetadata(file: configFile, key: CompressedTensorsConfig.key,
                    reason: "missing, but the weights hold packed tensors (\(first)); a compressed-tensors folder needs its quantization_config (quant_method compressed-tensors, format pack-quantized)")
            }
            return ([:], [])
        }
        var linears: [String: PackedLinear] = [:]
        var consumed = Set<String>()
        for name in packedNames {
            let module = String(name.dropLast(suffix.count))
            func bad(_ tensor: String, _ why: String) -> ModelFormatError { .badShape(file: file, tensor: tensor, reason: why) }
            let group = try config.group(for: module, tensor: name)
            let s = group.scheme, f = s.packFactor
            let p = tensors.tensor(named: name)!
            guard p.dtype == .i32, p.shape.count == 2 else {
                throw bad(name, "\(p.dtype.rawValue) \(p.shape); packed weights are I32 [out, ceil(in / \(f))]")
            }
            // weight_shape: [out, in]
            let shapeName = module + ".weight_shape"
            guard let st = tensors.tensor(named: shapeName) else { throw ModelFormatError.missingTensor(file: file, tensor: shapeName) }
            guard st.dtype == .i32 || st.dtype == .i64, st.shape == [2] else {
                throw bad(shapeName, "\(st.dtype.rawValue) \(st.shape); expected I64 or I32 [2] holding [out, in]")
            }
            let dims = try tensors.integers(shapeName)
            let rows = p.shape[0], words = p.shape[1]
            guard dims[0] == Int64(rows), dims[1] > 0, dims[1] <= Int64(words * f), (Int(dims[1]) + f - 1) / f == words else {
                throw bad(name, "weight_shape \(dims) does not match the packed shape \(p.shape): int\(s.bits) packs \(f) codes per I32, so [out, in] needs [out, ceil(in / \(f))]")
            }
            let cols = Int(dims[1])
            var linear = PackedLinear(module: module, group: group.name, scheme: s, rows: rows, cols: cols,
                                      byteCount: p.byteCount + st.byteCount)
            if let gs = s.groupSize, cols % gs != 0 {
                throw ModelFormatError.badMetadata(file: configFile, key: "\(CompressedTensorsConfig.key).config_groups.\(group.name).weights.group_size",
                    reason: "group size \(gs) does not divide the \(cols) input columns of \(module) (allowed: a divisor of \(cols))")
            }
            let groups = linear.groups
            guard let sc = tensors.tensor(named: linear.scaleName) else { throw ModelFormatError.missingTensor(file: file, tensor: linear.scaleName) }
            guard sc.type != nil, sc.shape == [rows, groups] || (groups == 1 && sc.shape == [rows]) else {
                throw bad(linear.scaleName, "\(sc.dtype.rawValue) \(sc.shape); expected a float tensor [\(rows), \(groups)] (\(s.strategy)\(s.groupSize.map { " of \($0)" } ?? ""))")
            }
            linear.byteCount += sc.byteCount
            consumed.formUnion([name, shapeName, linear.scaleName])
            let zp = tensors.tensor(named: linear.zeroName)
            if s.symmetric {
                if zp != nil {
                    throw bad(linear.zeroName, "present, but group \(group.name) is symmetric (a symmetric scheme stores no zero points)")
                }
            } else {
                guard let zp else { throw ModelFormatError.missingTensor(file: file, tensor: "\(linear.zeroName) (group \(group.name) is asymmetric)") }
                let zwords = (rows + f - 1) / f
                guard zp.dtype == .i32, zp.shape == [zwords, groups] else {
                    throw bad(linear.zeroName, "\(zp.dtype.rawValue) \(zp.shape); asymmetric zero points are I32 [ceil(out / \(f)), groups] = [\(zwords), \(groups)]")
                }
                linear.byteCount += zp.byteCount
                consumed.insert(linear.zeroName)
            }
            if tensors.tensor(named: module + ".weight_g_idx") != nil {
                throw ModelFormatError.unsupportedTensorType(file: file, tensor: module + ".weight_g_idx",
                    type: "activation-order group index (g_idx); re-export without actorder")
            }
            if tensors.tensor(named: module + ".weight") != nil {
                throw ModelFormatError.duplicateTensor(file: file, tensor: "\(module).weight (stored both as float and packed)")
            }
            linears[canonicalName(module)] = linear
        }
        return (linears, consumed)
    }
}
