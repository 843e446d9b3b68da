/// A per-layer override from a recipe: a glob over canonical names and the scheme parts it changes.
///
/// Weight schemes match linear names (`layers.*.mlp.down_proj`, `lm_head`, `embed_tokens`);
/// activation schemes match site names (`layers.*.down`) — the activation scheme belongs to the site.
public struct SchemeOverride: Sendable {
    public var pattern: String
    public var weights: WeightScheme?
    public var activations: ActivationScheme?
    /// Where the override was written (for error messages), e.g. `recipe.yaml:12:5`.
    public var origin: String
    public init(pattern: String, weights: WeightScheme? = nil, activations: ActivationScheme? = nil, origin: String = "") {
        self.pattern = pattern; self.weights = weights; self.activations = activations; self.origin = origin
    }
}

public struct SchemeError: Error, CustomStringConvertible {
    public var description: String
}

extension DecoderModel {
    /// Sets every block linear's weight scheme and every site's activation scheme from the
    /// default scheme, then applies overrides in order (later ones win). `lm_head` and
    /// `embed_tokens` stay float unless an override names them. Throws when a pattern matches
    /// nothing or a group size does not divide a matched layer's input dimension.
    public func assignSchemes(_ scheme: QuantScheme, overrides: [SchemeOverride]) throws -> (lmHead: WeightScheme, embedding: WeightScheme) {
        for site in allSites {
            site.activationScheme = scheme.activations
            for l in site.linears { l.scheme = scheme.weights }
        }
        var head = WeightScheme(bits: 16), embed = WeightScheme(bits: 16)
        lmHeadActivations = ActivationScheme()
        for o in overrides {
            var matched = false
            if let w = o.weights {
                for l in allSites.flatMap({ $0.linears }) where globMatch(o.pattern, l.name) { l.scheme = w; matched = true }
                if globMatch(o.pattern, "lm_head") { head = w; matched = true }
                if globMatch(o.pattern, "embed_tokens") { embed = w; matched = true }
            }
            if let a = o.activations {
                for s in allSites where globMatch(o.pattern, s.name) { s.activationScheme = a; matched = true }
                if globMatch(o.pattern, "lm_head") { lmHeadActivations = a; matched = true }
            }
            if !matched {
                let what = o.weights != nil ? "linear names such as layers.0.mlp.down_proj, lm_head" : "site names such as layers.0.down"
                throw SchemeError(description: "\(o.origin): override pattern '\(o.pattern)' matches nothing (weights match \(what.contains("linear") ? what : "linear names"); activations match site names such as layers.0.qkv, layers.0.o, layers.0.gate_up, layers.0.down, and lm_head)")
            }
        }
        lmHead.scheme = head
        // Every group size must divide the input dimension of the layers it applies to.
        for l in allSites.flatMap({ $0.linears }) + [lmHead] {
            if case .group(let g) = l.scheme.granularity, l.scheme.isQuantized, l.inFeatures % g != 0 {
                let divisors = (1...l.inFeatures).filter { l.inFeatures % $0 == 0 && $0 >= 8 && $0 <= 256 }
                throw SchemeError(description: "group size \(g) does not divide the input dimension \(l.inFeatures) of \(l.name); valid group sizes here include \(divisors.map(String.init).joined(separator: ", "))")
            }
        }
        return (head, embed)
    }
}
