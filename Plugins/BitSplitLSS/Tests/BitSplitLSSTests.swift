import XCTest
import QuantCore
import TrainingQuantization
import BitSplitLSS

final class BitSplitLSSTests: XCTestCase {
    /// f32 forward is exact; the gradients equal the f64 products with the dequantized sampled
    /// gradient (same keyed draws), for both `lss` forms; `skip_zero` drops nothing non-zero.
    func testGradientsAreTheSampledGradientsProducts() throws {
        let (n, cin, cout) = (40, 24, 16)
        let x = Matrix(rows: n, cols: cin, data: (0..<(n * cin)).map { Float(sin(Double($0) * 0.7)) })
        let w = Matrix(rows: cout, cols: cin, data: (0..<(cout * cin)).map { Float(cos(Double($0) * 0.3)) })
        let g = Matrix(rows: n, cols: cout, data: (0..<(n * cout)).map { i in Float(sin(Double(i) * 1.3)) * (i / cout % 5 == 0 ? 5 : 0.2) })
        let id = LinearID(layer: 1, name: "self_attn.o_proj")
        for mode in LSSMode.allCases {
            let layer = try BitSplitLSS(options: MethodOptions(["lss": .string(mode.rawValue)])).makeLinear(id: id, inFeatures: cin, outFeatures: cout, seed: 3)
            XCTAssertEqual(layer.forward(x: x, w: w, step: 4).data, x.timesTransposed(w).data)
            let (dx, dw) = layer.backward(g: g, step: 4)
            // The reference: the same split and draws, then plain f64 products.
            let split = BitSplit(g.data, rows: n, cols: cout, random: KeyedRandom(seed: 3, step: 4, layer: id, stream: .splitRounding))
            let norms = split.rowNorms()
            let px = LeverageSampling.probabilities(norms, mode: mode)
            let kx = LeverageSampling.keep(px, random: KeyedRandom(seed: 3, step: 4, layer: id, stream: .sampleInputGradient))
            let xn = (0..<n).map { i in (0..<cin).reduce(0.0) { $0 + Double(x[i, $1]) * Double(x[i, $1]) }.squareRoot() }
            let pw = LeverageSampling.probabilities((0..<(2 * n)).map { norms[$0] * xn[$0 % n] }, mode: mode)
            let kw = LeverageSampling.keep(pw, random: KeyedRandom(seed: 3, step: 4, layer: id, stream: .sampleWeightGradient))
            let gx = SampledGradient(split: split, p: px, keep: kx).dense, gw = SampledGradient(split: split, p: pw, keep: kw).dense
            if mode == .skipZero { XCTAssertEqual(gx, split.dequantized) }
            for i in 0..<n { for c in 0..<cin {
                var s = 0.0; for j in 0..<cout { s += Double(gx[i * cout + j]) * Double(w[j, c]) }
                XCTAssertEqual(Double(dx[i, c]), s, accuracy: 1e-4 * max(1, abs(s)))
            } }
            for j in 0..<cout { for c in 0..<cin {
                var s = 0.0; for i in 0..<n { s += Double(gw[i * cout + j]) * Double(x[i, c]) }
                XCTAssertEqual(Double(dw[j, c]), s, accuracy: 1e-4 * max(1, abs(s)))
            } }
            XCTAssertGreaterThan(layer.timing.floatRows, 0)
        }
    }
}
