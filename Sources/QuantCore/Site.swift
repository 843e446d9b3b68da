import Foundation
import QuantKernels
import Synchronization

/// A linear layer `Y = X·Wᵀ (+ b)`, `W` out × in, inside a site.
public final class Linear {
    /// Canonical name, e.g. `layers.3.mlp.up_proj`.
    public let name: String
    /// The float weights in the site's current basis (transforms folded in), out × in.
    public var weight: Matrix
    public var bias: [Float]?
    /// The weight scheme after per-layer overrides.
    public var scheme: WeightScheme
    /// The quantization result, when a method has quantized this layer.
    public var quantized: QuantizedWeight? { didSet { cachedDequantized = nil; cachedPacked = nil } }
    private var cachedDequantized: Matrix?
    private var cachedPacked: PackedIntWeights?
    /// Set by `compactForInference`: the packed codes are all the layer keeps.
    public private(set) var compacted: PackedIntWeights?
    private let shape: (out: Int, in: Int)

    /// True when the layer holds quantized weights (as a `QuantizedWeight`, or only packed).
    public var isQuantized: Bool { quantized != nil || compacted != nil }

    /// The quantized weights packed for the integer GEMM, when they fit it (≤ 8 bits, groups a
    /// multiple of 8 or whole rows).
    public var packedForIntegerGemm: PackedIntWeights? {
        if let c = compacted { return c }
        guard let q = quantized, q.grid.bits <= 8, q.groupSize == q.cols || q.groupSize % 8 == 0 else { return nil }
        if let p = cachedPacked { return p }
        let p = IntGemm.packWeights(codes: q.codes, scales: q.scales, zeros: q.zeros, n: q.rows, k: q.cols,
                                    groupSize: q.groupSize, grid: q.grid)
        cachedPacked = p
        return p
    }

    public init(name: String, weight: Matrix, bias: [Float]? = nil, scheme: WeightScheme = .init()) {
        self.name = name; self.weight = weight; self.bias = bias; self.scheme = scheme
        shape = (weight.rows, weight.cols)
    }

    public var inFeatures: Int { compacted != nil ? shape.in : weight.cols }
    public var outFeatures: Int { compacted != nil ? shape.out : weight.rows }

    /// Keeps only the packed codes the integer and weight-only GEMMs read, dropping the f32
    /// weights, the Int32 codes and any dequantized copy — the model as a runtime holds it. For
    /// models that only run forward on the integer engine afterwards (`bench model`, `generate`);
    /// irreversible. Returns false (and changes nothing) when the weights do not pack.
    @discardableResult
    public func compactForInference() -> Bool {
        guard compacted == nil, let p = packedForIntegerGemm else { return compacted != nil }
        let dims = (outFeatures, inFeatures)
        precondition(dims == shape, "\(name): shape changed after construction")
        compacted = p
        quantized = nil
        weight = Matrix(rows: 0, cols: 0, data: [])
        return true
    }

    /// Bytes this layer holds in memory now: the f32 weights, the quantization result (Int32
    /// codes, scales, zeros), and the packed and dequantized copies made so far.
    public var residentBytes: (float: Int, codes: Int, packed: Int, dequantized: Int) {
        let q = quantized.map { 4 * ($0.codes.count + $0.scales.count + $0.zeros.count) } ?? 0
        return (4 * weight.data.count, q, (compacted ?? cachedPacked)?.byteCount ?? 0, 4 * (cachedDequantized?.data.count ?? 0))
    }

    /// Bytes of weights a forward pass reads per token in `arithmetic`: the packed integer weights
    /// for the integer and weight-only GEMMs, else the f32 (or dequantized f32) matrix.
    public func bytesReadPerToken(_ arithmetic: Arithmetic) -> Int {
        if arithmetic == .integer || arithmetic == .weightOnly, let p = packedForIntegerGemm { return p.byteCount }
        return 4 * inFeatures * outFeatures
    }

    /// The weights a forward pass uses: dequantized integers when quantized, else the float weights.
    public func effectiveWeight(quantized useQuantized: Bool) -> Matrix {
        precondition(compacted == nil, "\(name) keeps only packed codes (compactForInference); it runs on the integer engine only")
        guard useQuantized, let q = quantized else { return weight }
        if let c = cachedDequantized { return c }
        let d = q.dequantized()
        cachedDequantized = d
        return d
    }

    /// `Y = X·Wᵀ (+ bias)` for float activations X (tokens × in): the quantized weights when
    /// `useQuantized` and the layer is quantized, else the float weights. On the integer engine,
    /// quantized weights that fit the integer GEMM run from their packed codes (`WeightOnlyGemm`,
    /// the same packed copy the integer GEMM uses); otherwise from the dequantized f32 weights.
    /// Both give the same numbers up to f32 summation order.
    public func multiply(_ x: Matrix, quantized useQuantized: Bool) -> Matrix {
        precondition(x.cols == inFeatures, "\(name): X has \(x.cols) columns, W has \(inFeatures)")
        if useQuantized, isQuantized, ExecutionEngine.current == .integer, let p = packedForIntegerGemm {
            return Matrix(rows: x.rows, cols: p.n, data: WeightOnlyGemm.multiply(x.data, m: x.rows, p, bias: bias))
        }
        return x.timesTransposed(effectiveWeight(quantized: useQuantized), bias: bias)
    }

    /// Multiply output row `r` by `factors[r]` (folding a diagonal transform of the next site
    /// into this producer). Keeps a quantization result consistent.
    public func scaleOutputRows(by factors: [Float]) {
        precondition(factors.count == weight.rows)
        for r in 0..<weight.rows { for c in 0..<weight.cols { weight.data[r * weight.cols + c] *= factors[r] } }
        if let b = bias { bias = zip(b, factors).map { $0 * $1 } }
        if var q = quantized { q.scaleRows(by: factors); quantized = q }
    }

    public func copy() -> Linear {
        precondition(compacted == nil, "\(name): a compacted layer (packed codes only) is not copied")
        let l = Linear(name: name, weight: weight, bias: bias, scheme: scheme)
        l.quantized = quantized
        return l
    }
}

/// The kinds of sites in a LLaMA block, in dependency order.
public enum SiteKind: String, CaseIterable, Sendable {
    case qkv, o, gateUp = "gate_up", down
}

/// The arithmetic of one site's (or lm_head's) products in a forward pass.
public enum Arithmetic: String, Sendable, Codable {
    case float = "f32"
    /// Quantize-dequantize, then the f32 GEMM.
    case simulated
    /// Integer codes × integer codes (IntGemm).
    case integer
    /// f32 activations × packed integer weights (WeightOnlyGemm).
    case weightOnly = "weight-only"
}

/// Which arithmetic runs quantized sites.
public enum ExecutionEngine: String, Sendable {
    /// Integer codes × integer codes with int32 accumulation (IntGemm), where the scheme allows;
    /// float activations × packed integer weights (WeightOnlyGemm) for weight-only sites.
    case integer
    /// Quantize-dequantize to f32, then the f32 GEMM.
    case simulated

    /// Defaults to `integer`; `QWB_ENGINE=simulated` or a recipe's `engine:` changes it.
    nonisolated(unsafe) public static var current: ExecutionEngine = {
        ProcessInfo.processInfo.environment["QWB_ENGINE"].flatMap(ExecutionEngine.init(rawValue:)) ?? .integer
    }()
}

/// How a site runs in a forward pass.
public enum ExecutionMode: Sendable {
    /// Float weights (transforms folded) and float activations: must equal the original model.
    case float
    /// Quantized weights, float activations (GPTQ's propagation convention).
    case quantizedWeights
    /// Quantized weights and quantized activations: the model as deployed.
    case quantized
}

/// A group of linear layers that share one input. Quantization happens here.
///
/// The input `X` (tokens × in) goes through the online part of `transforms`, is quantized with
/// `activationScheme`, and multiplies every member: `Y_m = X'·W_mᵀ`.
public final class Site {
    /// Canonical name, e.g. `layers.3.gate_up`.
    public let name: String
    public let kind: SiteKind
    public let block: Int
    public var linears: [Linear]
    public var transforms: [TransformStep] = [] { didSet { onlinePlan.withLock { $0 = nil } } }
    public var activationScheme: ActivationScheme
    /// The compiled online chain (`TransformPlan`), built on first use and dropped whenever
    /// `transforms` changes.
    private let onlinePlan = Mutex<TransformPlan?>(nil)

    public init(name: String, kind: SiteKind, block: Int, linears: [Linear], activationScheme: ActivationScheme = .init()) {
        self.name = name; self.kind = kind; self.block = block; self.linears = linears
        self.activationScheme = activationScheme
    }

    public var inFeatures: Int { linears[0].inFeatures }

    /// Appends a transform: folds `T⁻ᵀ` into every member's weights. When `placement` is
    /// `.folded`, the caller has already changed the producer (norm or linear) accordingly.
    public func addTransform(_ t: Transform, placement: TransformPlacement = .online, addedBy: String) {
        for l in linears {
            precondition(l.quantized == nil, "\(name): transform added after \(l.name) was quantized")
            t.foldIntoWeights(&l.weight)
        }
        transforms.append(TransformStep(t, placement: placement, addedBy: addedBy))
    }

    /// Applies every transform of the chain (online and folded) to `x`, taken in the basis the
    /// site had before any transform was added. Used to bring captured calibration inputs
    /// into the current basis.
    /// Compiled per call (calibration runs it once per method on all captured rows; caching it
    /// would keep a second packed copy of every rotation for the model's lifetime).
    public func applyAllTransforms(_ x: inout Matrix) {
        guard !transforms.isEmpty else { return }
        TransformPlan(transforms.map(\.transform), features: inFeatures).apply(&x)
    }

    /// The compiled chain of the online transforms, cached until `transforms` changes.
    public var onlineTransformPlan: TransformPlan {
        if let p = onlinePlan.withLock({ $0 }) { return p }
        let p = TransformPlan(transforms.filter { $0.placement == .online }.map(\.transform), features: inFeatures)
        onlinePlan.withLock { $0 = p }
        return p
    }

    /// `x` with the folded (not online) transforms from index `start` on applied: what the site's
    /// producer emits once those transforms are folded into it. Returns `x` when there are none.
    public func applyingFoldedTransforms(to x: Matrix, addedSince start: Int) -> Matrix {
        let folded = transforms.dropFirst(start).filter { $0.placement != .online }
        guard !folded.isEmpty else { return x }
        var y = x
        for step in folded { step.transform.applyToActivations(&y) }
        return y
    }

    /// Applies the online transforms to a run-time input.
    public func applyOnlineTransforms(_ x: inout Matrix) {
        guard transforms.contains(where: { $0.placement == .online }) else { return }
        onlineTransformPlan.apply(&x)
    }

    /// The forward pass of the site: one output per member linear. Fully quantized sites whose
    /// activations are per-token and whose weights fit the integer GEMM run on integer kernels
    /// (`ExecutionEngine.integer`); otherwise activations and weights are quantize-dequantized
    /// and multiplied in f32 (simulated). With float activations (`.quantizedWeights`, or an
    /// activation scheme that does not quantize) the integer engine runs the packed weights on
    /// `WeightOnlyGemm` (`Linear.multiply`). All give the same numbers up to f32 summation order.
    /// `input` is consumed: pass a matrix nothing else holds (`consume x`) and the online
    /// transforms run in place instead of on a copy.
    public func forward(_ input: consuming Matrix, mode: ExecutionMode) -> [Matrix] {
        var x = input
        if !transforms.isEmpty { Profiler.measure("online transforms") { applyOnlineTransforms(&x) } }
        return Site.multiply(x, linears, activations: activationScheme, mode: mode, component: "GEMM " + kind.rawValue)
    }

    /// The per-token grid `forward` quantizes its input with when, in `mode`, it runs on the
    /// integer GEMM straight from that input (no online transforms); nil otherwise. The site's
    /// producer may then quantize its rows as it writes them and call `forward(quantized:)`.
    public func integerInputGrid(_ mode: ExecutionMode) -> QuantGrid? {
        guard !transforms.contains(where: { $0.placement == .online }), arithmetic(mode) == .integer else { return nil }
        return activationScheme.grid
    }

    /// `forward` on an input already quantized with `integerInputGrid(…)`'s grid: the integer GEMM
    /// of every member.
    public func forward(quantized qa: QuantizedActivations) -> [Matrix] {
        Site.integerProducts(qa, linears, component: "GEMM " + kind.rawValue)
    }

    /// `Y_m = X·W_mᵀ (+ b_m)` on the integer GEMM for quantized X.
    static func integerProducts(_ qa: QuantizedActivations, _ linears: [Linear], component: @autoclosure () -> String) -> [Matrix] {
        Profiler.measure(component()) {
            linears.map { l in
                let w = l.packedForIntegerGemm!
                return Matrix(rows: qa.m, cols: w.n, data: IntGemm.multiply(qa, w, bias: l.bias))
            }
        }
    }

    /// The arithmetic `forward` runs in `mode` (with the current engine).
    public func arithmetic(_ mode: ExecutionMode) -> Arithmetic { Site.arithmetic(linears, activations: activationScheme, mode: mode) }

    /// True when `forward` in `.quantized` mode runs this site on the integer GEMM.
    public var runsOnIntegerGemm: Bool { arithmetic(.quantized) == .integer }

    /// `Y_m = X·W_mᵀ (+ b_m)` for every member, in the arithmetic `arithmetic(…)` picks: shared by
    /// the sites and lm_head. X is tokens × in, after any online transforms.
    public static func multiply(_ input: Matrix, _ linears: [Linear], activations: ActivationScheme, mode: ExecutionMode,
                                component: @autoclosure () -> String) -> [Matrix] {
        var x = input
        switch arithmetic(linears, activations: activations, mode: mode) {
        case .integer:
            let grid = activations.grid
            let qa = Profiler.measure("activation quantization") {
                x.data.withUnsafeBufferPointer { IntGemm.quantizeActivations($0.baseAddress!, m: x.rows, k: x.cols, grid: grid) }
            }
            return integerProducts(qa, linears, component: component())
        case .simulated where mode == .quantized && activations.isQuantized:
            Profiler.measure("activation quantization") { activations.fakeQuantize(&x) }
            return Profiler.measure(component()) { linears.map { x.timesTransposed($0.effectiveWeight(quantized: true), bias: $0.bias) } }
        default:
            // Float activations (weight-only, or an activation scheme that does not quantize).
            return Profiler.measure(component()) { linears.map { $0.multiply(x, quantized: mode != .float) } }
        }
    }

    /// Which arithmetic multiplies `linears` in `mode`: the integer GEMM when running quantized
    /// with per-token activations of ≤ 8 bits and every member's weights packable (integer
    /// engine); quantize-dequantize in f32 when activations are quantized otherwise; for float
    /// activations, the weight-only GEMM when every member is quantized and packable (integer
    /// engine), f32 on dequantized weights when some member is quantized, else plain f32.
    public static func arithmetic(_ linears: [Linear], activations a: ActivationScheme, mode: ExecutionMode) -> Arithmetic {
        let integerEngine = ExecutionEngine.current == .integer
        if mode == .quantized && a.isQuantized {
            if integerEngine, a.granularity == .token, a.bits <= 8, linears.allSatisfy({ $0.packedForIntegerGemm != nil }) { return .integer }
            return .simulated
        }
        guard mode != .float, linears.contains(where: { $0.isQuantized }) else { return .float }
        if integerEngine, linears.allSatisfy({ $0.isQuantized && $0.packedForIntegerGemm != nil }) { return .weightOnly }
        return .simulated
    }

    public func copy() -> Site {
        let s = Site(name: name, kind: kind, block: block, linears: linears.map { $0.copy() }, activationScheme: activationScheme)
        s.transforms = transforms
        return s
    }
}
