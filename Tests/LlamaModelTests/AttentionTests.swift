import XCTest
import QuantCore
@testable import LlamaModel
import TestSupport

/// The tiled causal attention of the prefill against the plain reference.
final class AttentionTests: XCTestCase {
    func testTiledAttentionEqualsReference() {
        let model = SyntheticModel.make(seed: 2)
        let c = model.config
        var rng = SplitMix(seed: 9)
        // Windows longer than a tile and not a multiple of it, so tile pairs and a short last tile run.
        for L in [5, 64, 150] {
            let tokens = 2 * L
            let q = Matrix(rows: tokens, cols: c.headCount * c.headDim, data: (0..<(tokens * c.headCount * c.headDim)).map { _ in rng.uniform() * 4 - 2 })
            let kv = (0..<2).map { _ in Matrix(rows: tokens, cols: c.kvHeadCount * c.headDim, data: (0..<(tokens * c.kvHeadCount * c.headDim)).map { _ in rng.uniform() * 4 - 2 }) }
            let got = LlamaForward().attention(config: c, qkv: [q] + kv, windowLength: L)
            let want = LlamaForward.attentionReference(config: c, qkv: [q] + kv, windowLength: L)
            let worst = zip(got.data, want.data).map { abs($0 - $1) }.max()!
            XCTAssertLessThan(worst, 2e-5, "L = \(L)")
        }
    }
}

private struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func uniform() -> Float {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return Float((z ^ (z >> 31)) >> 40) / Float(1 << 24)
    }
}
