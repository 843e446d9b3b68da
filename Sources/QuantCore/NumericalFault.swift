/// NaN or infinity appeared in the numbers of a run — activations, a Hessian or logits — where a
/// finite value is required. Raised at the first place the run reads them (the checks live in
/// passes that read the data anyway), so the error names where the fault first showed and the run
/// stops instead of carrying NaN into a perplexity. A run library maps it to exit code 1.
public struct NumericalFault: Error, CustomStringConvertible, Sendable, Equatable, Codable {
    /// What held the value: "activations", "Hessian", "logits".
    public var quantity: String
    /// Where: a site ("layers.3.qkv"), or "lm_head" for logits.
    public var site: String
    /// When: the pipeline step or evaluation window and position.
    public var step: String
    /// The recipe variant, when the caller knows it (set with `in(variant:)`).
    public var variant: String?
    /// The offending value (NaN, +inf or −inf).
    public var value: Float

    public init(quantity: String, site: String, step: String, variant: String? = nil, value: Float) {
        self.quantity = quantity; self.site = site; self.step = step; self.variant = variant; self.value = value
    }

    /// The same fault, attributed to `variant`.
    public func `in`(variant: String) -> NumericalFault {
        var f = self
        f.variant = variant
        return f
    }

    public var description: String {
        "numerical fault: \(value) in the \(quantity) at \(site), \(step)" + (variant.map { ", variant \($0)" } ?? "")
            + ". Values overflowed or became undefined; check the model file and the recipe (fewer bits, smaller α, or a transform that tames outliers), and rerun."
    }
}
