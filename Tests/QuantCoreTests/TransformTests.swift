import XCTest
import QuantCore
import TestSupport

/// Each transform kind, and a composed chain, leaves `X·Wᵀ` unchanged before quantization.
final class TransformTests: XCTestCase {
    let x = randomMatrix(37, 96, seed: 11)
    let w = randomMatrix(40, 96, seed: 12)

    func invariance(_ chain: [Transform], file: StaticString = #filePath, line: UInt = #line) {
        let reference = x.timesTransposed(w)
        var xt = x, wt = w
        for t in chain { t.applyToActivations(&xt); t.foldIntoWeights(&wt) }
        XCTAssertLessThan(xt.timesTransposed(wt).relativeError(to: reference), 1e-5, file: file, line: line)
        // And the inverse brings the activations back.
        for t in chain.reversed() { t.invertActivations(&xt) }
        XCTAssertLessThan(xt.relativeError(to: x), 1e-5, file: file, line: line)
    }

    var scale: Transform { .scale((0..<96).map { 0.1 + Float($0 % 7) }) }
    var permutation: Transform { var g = SeededGenerator(seed: 4); return .permutation(Array(0..<96).shuffled(using: &g)) }
    var blocks: Transform { .blockOrthogonal(blockSize: 32, blocks: (0..<3).map { randomOrthogonal(32, seed: UInt64($0)).data }) }
    var shared: Transform { .blockOrthogonal(blockSize: 24, blocks: [randomOrthogonal(24, seed: 9).data]) }
    var hadamard: Transform {
        var g = SeededGenerator(seed: 5)
        return .hadamard(size: 96, blockSize: 96, signs: (0..<96).map { _ in g.next() & 1 == 0 ? 1 : -1 })
    }
    var blockHadamard: Transform { .hadamard(size: 96, blockSize: 32, signs: nil) }
    var dense: Transform { .orthogonal(randomOrthogonal(96, seed: 7)) }

    func testScale() { invariance([scale]) }
    func testPermutation() { invariance([permutation]) }
    func testBlockOrthogonal() { invariance([blocks]); invariance([shared]) }
    func testHadamardNonPowerOfTwo() { invariance([hadamard]); invariance([blockHadamard]) }
    func testDenseOrthogonal() { invariance([dense]) }
    func testComposedChain() { invariance([scale, blocks, permutation, shared, hadamard, dense]) }

    func testSiteForwardIsInvariantInFloatMode() {
        let site = Site(name: "layers.0.gate_up", kind: .gateUp, block: 0,
                        linears: [Linear(name: "a", weight: w), Linear(name: "b", weight: randomMatrix(8, 96, seed: 3))])
        let before = site.forward(x, mode: .float)
        site.addTransform(scale, addedBy: "test")
        site.addTransform(hadamard, addedBy: "test")
        site.addTransform(permutation, addedBy: "test")
        let after = site.forward(x, mode: .float)
        for (a, b) in zip(after, before) { XCTAssertLessThan(a.relativeError(to: b), 1e-5) }
    }

    func testGlobMatching() {
        XCTAssertTrue(globMatch("layers.*.mlp.down_proj", "layers.12.mlp.down_proj"))
        XCTAssertFalse(globMatch("layers.*.mlp.down_proj", "layers.12.mlp.up_proj"))
        XCTAssertTrue(globMatch("layers.?.qkv", "layers.3.qkv"))
        XCTAssertFalse(globMatch("layers.?.qkv", "layers.13.qkv"))
        XCTAssertTrue(globMatch("*", "lm_head"))
    }
}
