import Foundation
import QuantCore
import TrainingQuantization

/// A parsed, validated training recipe (`workbench train`). See README "Training".
public struct TrainingRecipe {
    /// A LLaMA configuration trained from scratch on a byte-level vocabulary (256 symbols).
    public struct Architecture: Equatable, Sendable {
        public var layers: Int, hidden: Int, heads: Int, kvHeads: Int, ffn: Int, context: Int, tied: Bool
        public var headDim: Int { hidden / heads }
    }
    public enum Model: Equatable {
        case scratch(Architecture)
        /// A model file to fine-tune; nil = the reference model.
        case file(String?)
    }
    /// One named training run; runs share model, data and hyperparameters.
    public struct Run {
        public var name: String
        public var quantizer: any TrainingQuantizer.Type
        public var options: MethodOptions
        public var seed: UInt64
        /// Where the run (or its quantizer) is written: errors creating its layers point here.
        public var location: SourceLocation

        /// `name(key=value, …)` with the options that differ from their defaults.
        public var quantizerSummary: String {
            let defaults = MethodOptions(defaultsOf: quantizer.options).values
            let changed = options.values.filter { defaults[$0.key] != $0.value }.sorted { $0.key < $1.key }
            return quantizer.name + (changed.isEmpty ? "" : "(" + changed.map { "\($0.key)=\($0.value)" }.joined(separator: ", ") + ")")
        }
    }

    public var file: String
    public var model: Model
    public var modelLocation: SourceLocation
    public var trainText: String
    public var validationText: String
    public var steps: Int
    public var batchSize: Int
    public var seqLen: Int
    public var lr: Double
    public var warmup: Int
    public var minLR: Double
    public var beta1 = 0.9, beta2 = 0.95, eps = 1e-8, weightDecay = 0.1
    /// Global gradient-norm clip; 0 = off.
    public var gradClip = 1.0
    public var seed: UInt64 = 0
    public var validateEvery: Int
    public var validationWindows: Int
    /// Validation windows from the start of the file, one after another (the perplexity
    /// protocol), instead of spread evenly over it.
    public var validationFromStart = false
    public var checkpointEvery = 0
    public var output: String?
    public var runs: [Run]

    /// Keys that mark a YAML file as a training recipe (a post-training recipe has none of them).
    public static let markerKeys = ["train_text", "validation_text"]

    /// True when the file parses and its top level has a training key.
    public static func isTrainingRecipe(path: String) -> Bool {
        guard let root = try? YAMLParser.parse(file: path) else { return false }
        return root.keys.contains { markerKeys.contains($0) }
    }

    public static func load(path: String, registry: TrainingQuantizerRegistry) throws -> TrainingRecipe {
        try TrainingRecipeDecoder(file: path, registry: registry).decode(try YAMLParser.parse(file: path))
    }

    public static func parse(yaml: String, file: String = "<recipe>", registry: TrainingQuantizerRegistry) throws -> TrainingRecipe {
        try TrainingRecipeDecoder(file: file, registry: registry).decode(try YAMLParser.parse(bytes: Array(yaml.utf8), file: file))
    }
}

/// Decodes a training recipe with the post-training decoder's located-node helpers.
struct TrainingRecipeDecoder {
    let file: String
    let registry: TrainingQuantizerRegistry
    var base: RecipeDecoder { RecipeDecoder(file: file, registry: MethodRegistry()) }

    static let topKeys = ["model", "train_text", "validation_text", "steps", "batch_size", "seq_len", "lr", "warmup", "min_lr",
                          "adamw", "grad_clip", "seed", "validate_every", "validation_windows", "validation_placement", "checkpoint_every", "output",
                          "quantizer", "variants"]

    func decode(_ root: YAMLNode) throws -> TrainingRecipe {
        let b = base
        let top = try Fields(root, path: "", allowed: Self.topKeys)
        func required(_ key: String, _ hint: String) throws -> YAMLNode {
            guard let n = top[key] else { throw b.error(root, key, "a training recipe needs `\(key)` (\(hint))") }
            return n
        }
        let modelNode = try required("model", "`{layers, hidden, heads, kv_heads, ffn, context, tied}` to train from scratch, or `reference` / `{path: FILE}` to fine-tune")
        let model = try self.model(modelNode)
        let train = try textFile(try required("train_text", "a text file to train on"), "train_text")
        let valid = try textFile(try required("validation_text", "a text file to validate on"), "validation_text")
        let stepsNode = try required("steps", "the number of optimizer steps")
        let steps = try b.int(stepsNode, "steps", 1...10_000_000)
        let batch = try b.int(try required("batch_size", "windows per step"), "batch_size", 1...4096)
        let seqNode = try required("seq_len", "tokens per window")
        let seqLen = try b.int(seqNode, "seq_len", 2...65_536)
        if case .scratch(let a) = model, seqLen > a.context {
            throw b.error(seqNode, "seq_len", "\(seqLen) is longer than the model's context \(a.context); lower seq_len or raise model.context")
        }
        let lrNode = try required("lr", "the peak learning rate")
        let lr = try b.double(lrNode, "lr", 1e-12...10)
        let warmup = try top["warmup"].map { try b.int($0, "warmup", 0...steps - 1) } ?? 0
        let minLR = try top["min_lr"].map { try b.double($0, "min_lr", 0...lr) } ?? lr / 10
        let validateEvery = try top["validate_every"].map { try b.int($0, "validate_every", 1...steps) } ?? steps
        var r = TrainingRecipe(file: file, model: model, modelLocation: modelNode.location, trainText: train, validationText: valid,
                               steps: steps, batchSize: batch, seqLen: seqLen, lr: lr, warmup: warmup, minLR: minLR,
                               validateEvery: validateEvery,
                               validationWindows: try top["validation_windows"].map { try b.int($0, "validation_windows", 1...1_000_000) } ?? 16,
                               runs: [])
        if let a = top["adamw"] {
            let f = try Fields(a, path: "adamw", allowed: ["beta1", "beta2", "eps", "weight_decay"])
            if let v = f["beta1"] { r.beta1 = try b.double(v, "adamw.beta1", 0...0.999_999) }
            if let v = f["beta2"] { r.beta2 = try b.double(v, "adamw.beta2", 0...0.999_999_999) }
            if let v = f["eps"] { r.eps = try b.double(v, "adamw.eps", 1e-30...1) }
            if let v = f["weight_decay"] { r.weightDecay = try b.double(v, "adamw.weight_decay", 0...10) }
        }
        if let v = top["validation_placement"] {
            let s = try b.string(v, "validation_placement")
            guard ["spread", "start"].contains(s) else {
                throw b.error(v, "validation_placement", "'\(s)' is not spread or start" + suggestion(s, ["spread", "start"]))
            }
            r.validationFromStart = s == "start"
        }
        if let g = top["grad_clip"] { r.gradClip = try b.double(g, "grad_clip", 0...1e9) }
        if let s = top["seed"] { r.seed = UInt64(try b.int(s, "seed", 0...Int(Int32.max))) }
        if let c = top["checkpoint_every"] { r.checkpointEvery = try b.int(c, "checkpoint_every", 0...steps) }
        if let o = top["output"] { r.output = try b.string(o, "output") }
        // Runs: one default run, or named variants starting from it.
        // Without `quantizer`, runs train in f32.
        let defaultQuantizer = try top["quantizer"].map { try quantizer($0, path: "quantizer", model: model) }
            ?? (FloatQuantizer.self, MethodOptions(defaultsOf: []), root.location)
        if let vs = top["variants"] {
            guard case .sequence(let items) = vs.kind, !items.isEmpty else { throw b.error(vs, "variants", "expected a non-empty list of runs, found \(vs.kindName)") }
            var names = Set<String>()
            for (i, item) in items.enumerated() {
                let p = "variants[\(i)]"
                let f = try Fields(item, path: p, allowed: ["name", "quantizer", "seed"])
                guard let n = f["name"] else { throw b.error(item, p, "every run needs a name") }
                let name = try b.string(n, p + ".name")
                guard name.range(of: "^[A-Za-z0-9._-]+$", options: .regularExpression) != nil else {
                    throw b.error(n, p + ".name", "'\(name)' names the run's output folder: use letters, digits, '.', '_' and '-'")
                }
                if !names.insert(name).inserted { throw b.error(n, p + ".name", "run name '\(name)' is used twice") }
                let q = try f["quantizer"].map { try quantizer($0, path: p + ".quantizer", model: model) } ?? defaultQuantizer
                let seed = try f["seed"].map { UInt64(try b.int($0, p + ".seed", 0...Int(Int32.max))) } ?? r.seed
                r.runs.append(TrainingRecipe.Run(name: name, quantizer: q.type, options: q.options, seed: seed, location: item.location))
            }
        } else {
            let q = defaultQuantizer
            r.runs = [TrainingRecipe.Run(name: q.type.name, quantizer: q.type, options: q.options, seed: r.seed, location: q.location)]
        }
        return r
    }

    func model(_ n: YAMLNode) throws -> TrainingRecipe.Model {
        let b = base
        if let s = n.scalarString {
            switch s {
            case "reference", "smollm2": return .file(nil)
            default: return .file(try existingFile(n, "model", s))
            }
        }
        if let p = n.value(forKey: "path") {
            _ = try Fields(n, path: "model", allowed: ["path"])
            return .file(try existingFile(p, "model.path", try b.string(p, "model.path")))
        }
        let keys = ["layers", "hidden", "heads", "kv_heads", "ffn", "context", "tied"]
        let f = try Fields(n, path: "model", allowed: keys + ["path"])
        func need(_ k: String, _ r: ClosedRange<Int>) throws -> Int {
            guard let v = f[k] else { throw b.error(n, "model", "a model trained from scratch needs `\(k)` (keys: \(keys.joined(separator: ", ")))") }
            return try b.int(v, "model." + k, r)
        }
        let a = TrainingRecipe.Architecture(layers: try need("layers", 1...256), hidden: try need("hidden", 2...65_536),
                                            heads: try need("heads", 1...1024), kvHeads: try need("kv_heads", 1...1024),
                                            ffn: try need("ffn", 1...1_000_000), context: try need("context", 2...65_536),
                                            tied: try f["tied"].map { try b.bool($0, "model.tied") } ?? false)
        if a.hidden % a.heads != 0 { throw b.error(f["heads"]!, "model.heads", "hidden \(a.hidden) is not a multiple of \(a.heads) heads") }
        if a.heads % a.kvHeads != 0 { throw b.error(f["kv_heads"]!, "model.kv_heads", "\(a.heads) heads are not a multiple of \(a.kvHeads) KV heads") }
        if a.headDim % 2 != 0 { throw b.error(f["heads"]!, "model.heads", "the head size hidden/heads = \(a.headDim) must be even for RoPE") }
        return .scratch(a)
    }

    func existingFile(_ n: YAMLNode, _ path: String, _ value: String) throws -> String {
        let p = base.resolve(value)
        guard FileManager.default.fileExists(atPath: p) else {
            throw base.error(n, path, "file '\(value)' not found (paths are relative to the directory you run the workbench in)")
        }
        return p
    }

    func textFile(_ n: YAMLNode, _ path: String) throws -> String {
        try existingFile(n, path, try base.string(n, path))
    }

    /// `NAME` or `{NAME: {options}}`, checked against the registry and, for a model trained from
    /// scratch, against every linear's shape (e.g. a Hadamard block size that does not divide).
    func quantizer(_ n: YAMLNode, path: String, model: TrainingRecipe.Model) throws -> (type: any TrainingQuantizer.Type, options: MethodOptions, location: SourceLocation) {
        let b = base
        let name: String, optionsNode: YAMLNode?
        if let s = n.scalarString, !n.isNull { name = s; optionsNode = nil }
        else if case .mapping(let pairs) = n.kind, pairs.count == 1, let k = pairs[0].key.scalarString {
            name = k; optionsNode = pairs[0].value.isNull ? nil : pairs[0].value
        } else {
            throw b.error(n, path, "a quantizer is a name (`quantizer: f32`) or a one-key mapping (`quantizer: {NAME: {option: value}}`)")
        }
        guard let q = registry.lookup(name) else {
            throw b.error(n, path, "unknown training quantizer '\(name)'" + suggestion(name, registry.names) + "; known: \(registry.names.joined(separator: ", "))")
        }
        let opts = try b.options(optionsNode, specs: q.options, path: path + "." + name)
        let where_ = optionsNode ?? n
        let instance: any TrainingQuantizer
        do { instance = try q.init(options: opts) } catch { throw b.error(where_, path + "." + name, "\(error)") }
        if case .scratch(let a) = model {
            let shapes = [(a.hidden, a.hidden), (a.hidden, a.kvHeads * a.headDim), (a.hidden, a.ffn), (a.ffn, a.hidden)]
            for (inn, out) in shapes {
                do { _ = try instance.makeLinear(id: LinearID(layer: 0, name: "check"), inFeatures: inn, outFeatures: out, seed: 0) } catch {
                    throw b.error(where_, path + "." + name, "cannot quantize a \(out)×\(inn) linear of this model: \(error)")
                }
            }
        }
        return (q, opts, n.location)
    }
}
