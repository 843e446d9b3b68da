import XCTest
import QuantCore
import TestSupport

/// A calibration seen through a site's transforms: its inputs are the transformed inputs, and its
/// Hessian — derived by congruence `Tᵀ·H·T` without transforming the tokens — is the Gram matrix
/// of those inputs up to f32 rounding.
final class SiteCalibrationTests: XCTestCase {
    let cols = 96

    /// Inputs with a massive channel (×400) and a larger one (×20), as DuQuant's sites see them.
    func inputs(rows: Int) -> Matrix {
        var x = randomMatrix(rows, cols, seed: 11)
        for r in 0..<rows { x.data[r * cols + 5] *= 400; x.data[r * cols + 50] *= 20 }
        return x
    }

    var chains: [[Transform]] {
        var g = SeededGenerator(seed: 3)
        let perm = Array(0..<cols).shuffled(using: &g)
        let rotation = { (seed: UInt64) in
            Transform.blockOrthogonal(blockSize: 32, blocks: (0..<3).map { randomOrthogonal(32, seed: seed + UInt64($0)).data })
        }
        let scale = Transform.scale((0..<cols).map { 1 / (0.5 + Float($0 % 7)) })
        return [
            [scale, rotation(1), .permutation(perm), rotation(7)],            // DuQuant's chain
            [.hadamard(size: cols, blockSize: cols, signs: (0..<cols).map { $0 % 3 == 0 ? -1 : 1 })],
            [scale, .permutation(perm)],                                      // not orthogonal: order matters
        ]
    }

    func testTransformedHessianIsTheGramOfTheTransformedInputs() {
        let x = inputs(rows: 700)
        let raw = SiteCalibration(inputs: x, windowLength: 100)
        for (i, chain) in chains.enumerated() {
            let seen = SiteCalibration(base: raw, transforms: chain)
            var expectedInputs = x
            TransformPlan(chain, features: cols).apply(&expectedInputs)
            let direct = SiteCalibration(inputs: expectedInputs, windowLength: 100).hessian
            let h = seen.hessian
            let scale = direct.data.map { abs($0) }.max()!
            let worst = zip(h.data, direct.data).map { abs($0 - $1) }.max()!
            XCTAssertLessThan(worst / scale, 2e-6, "chain \(i): congruence vs Gram of the transformed inputs")
            for r in 0..<cols { for c in 0..<cols { XCTAssertEqual(h[r, c], h[c, r], "chain \(i): not symmetric at (\(r), \(c))") } }
            XCTAssertEqual(seen.inputs.data, expectedInputs.data, "chain \(i): inputs")
            XCTAssertEqual(seen.rows, 700); XCTAssertEqual(seen.windowCount, 7)
        }
    }

    /// The raw calibration's Hessian is the Gram matrix itself (a transformed view must not have
    /// replaced it).
    func testRawHessianIsUntouchedByAView() {
        let x = inputs(rows: 300)
        let raw = SiteCalibration(inputs: x, windowLength: 100)
        _ = SiteCalibration(base: raw, transforms: chains[0]).hessian
        let fresh = SiteCalibration(inputs: x, windowLength: 100).hessian
        XCTAssertEqual(raw.hessian.data, fresh.data)
    }
}
