import XCTest
import QuantCore
import TestSupport

/// `TransformPlan` (a site's chain compiled, DuQuant's runs fused) gives the same bits as the
/// steps applied one by one, is rebuilt when the site's transforms change, and leaves what it
/// cannot fuse to the steps.
final class TransformPlanTests: XCTestCase {
    let cols = 128
    func rotation(_ b: Int, shared: Bool, seed: UInt64) -> Transform {
        .blockOrthogonal(blockSize: b, blocks: (0..<(shared ? 1 : cols / b)).map { randomOrthogonal(b, seed: seed + UInt64($0)).data })
    }
    var scale: Transform { .scale((0..<cols).map { 0.25 + Float($0 % 5) }) }
    var permutation: Transform { var g = SeededGenerator(seed: 8); return .permutation(Array(0..<cols).shuffled(using: &g)) }

    func stepByStep(_ chain: [Transform], _ x: Matrix) -> Matrix {
        var y = x
        for t in chain { t.applyToActivations(&y) }
        return y
    }

    func testPlanEqualsStepsBitForBit() {
        let chains: [[Transform]] = [
            [scale, rotation(32, shared: false, seed: 1), permutation, rotation(32, shared: false, seed: 9)],
            [rotation(64, shared: true, seed: 2), permutation, rotation(64, shared: true, seed: 3)],
            // Two rounds (permutation_times 2): R₁·P·R₂ fused, then P as a step and R₃ fused alone.
            [rotation(32, shared: false, seed: 4), permutation, rotation(32, shared: false, seed: 5), permutation, rotation(32, shared: false, seed: 6)],
            // Not fusable (Hadamard; a permutation not followed by a rotation): steps only.
            [scale, .hadamard(size: cols, blockSize: 32, signs: nil), permutation],
        ]
        for (i, chain) in chains.enumerated() {
            let plan = TransformPlan(chain, features: cols)
            XCTAssertEqual(plan.isFused, i < 3, "chain \(i)")
            for rows in [1, 4, 5, 130] {
                let x = randomMatrix(rows, cols, seed: UInt64(rows))
                var y = x
                plan.apply(&y)
                XCTAssertEqual(y.data.map(\.bitPattern), stepByStep(chain, x).data.map(\.bitPattern), "chain \(i) rows \(rows)")
            }
        }
    }

    /// The site's cached plans follow its transforms (online only, or all of them).
    func testSitePlanIsRebuiltWhenTransformsChange() {
        let site = Site(name: "layers.0.o", kind: .o, block: 0, linears: [Linear(name: "o", weight: randomMatrix(16, cols, seed: 2))])
        let x = randomMatrix(6, cols, seed: 3)
        site.addTransform(scale, placement: .folded(into: "v_proj"), addedBy: "test")
        site.addTransform(rotation(32, shared: false, seed: 1), addedBy: "test")
        var online = x, all = x
        site.applyOnlineTransforms(&online)
        site.applyAllTransforms(&all)
        XCTAssertEqual(online.data, stepByStep([rotation(32, shared: false, seed: 1)], x).data)
        XCTAssertEqual(all.data, stepByStep([scale, rotation(32, shared: false, seed: 1)], x).data)
        site.addTransform(permutation, addedBy: "test")
        site.addTransform(rotation(32, shared: false, seed: 9), addedBy: "test")
        online = x; all = x
        site.applyOnlineTransforms(&online)
        site.applyAllTransforms(&all)
        XCTAssertEqual(online.data, stepByStep([rotation(32, shared: false, seed: 1), permutation, rotation(32, shared: false, seed: 9)], x).data)
        XCTAssertEqual(all.data, stepByStep([scale, rotation(32, shared: false, seed: 1), permutation, rotation(32, shared: false, seed: 9)], x).data)
        site.transforms.removeAll()
        online = x
        site.applyOnlineTransforms(&online)
        XCTAssertEqual(online.data, x.data)
    }
}
