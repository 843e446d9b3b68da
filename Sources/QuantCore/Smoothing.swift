/// Diagonal input scales ("smoothing"), shared by SmoothQuant and DuQuant.
extension SiteKind {
    /// Where a diagonal scale of this site's input (in block `block`) can be folded offline: the
    /// RMSNorm weight for q/k/v and gate/up, up_proj's output rows for down, v_proj's output rows
    /// for o when every head has its own K/V head (plain multi-head attention); otherwise (GQA's
    /// o) it runs online.
    public func diagonalScalePlacement(block: Int, config: DecoderConfig) -> TransformPlacement {
        switch self {
        case .qkv, .gateUp, .down: return .folded(into: DecoderBlock.producer(of: self, block: block))
        case .o: return config.headCount == config.kvHeadCount ? .folded(into: DecoderBlock.producer(of: self, block: block)) : .online
        }
    }
}

extension DecoderBlock {
    /// The member linear whose canonical name ends in `suffix`.
    public func member(_ site: Site, _ suffix: String) -> Linear? { site.linears.first { $0.name.hasSuffix(suffix) } }
}

extension DecoderModel {
    /// Smooths site `site` of `block`: `X ← X·diag(s)⁻¹`, `W ← W·diag(s)` for every member, with
    /// `diag(s)⁻¹` folded into the producer of the input when `diagonalScalePlacement` allows it
    /// (the producer may already be quantized: row scaling keeps its quantization exact).
    @discardableResult
    public func smooth(_ site: Site, in block: DecoderBlock, by s: [Float], addedBy: String) -> TransformPlacement {
        let inv = s.map { 1 / $0 }
        let placement = site.kind.diagonalScalePlacement(block: block.index, config: config)
        if placement != .online {
            switch site.kind {
            case .qkv, .gateUp: foldScaleIntoNorm(block: block.index, site: site.kind, scale: inv)
            case .down: (block.member(block.gateUp, "up_proj") ?? block.gateUp.linears[1]).scaleOutputRows(by: inv)
            case .o: (block.member(block.qkv, "v_proj") ?? block.qkv.linears[2]).scaleOutputRows(by: inv)
            }
        }
        site.addTransform(.scale(inv), placement: placement, addedBy: addedBy)
        return placement
    }
}
