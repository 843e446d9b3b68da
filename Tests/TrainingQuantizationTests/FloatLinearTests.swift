import XCTest
import QuantCore
@testable import TrainingQuantization

final class FloatLinearTests: XCTestCase {
    /// The three products against plain triple loops.
    func testProductsMatchLoops() {
        let n = 5, k = 7, m = 3
        let x = Matrix(rows: n, cols: k, data: (0..<(n * k)).map { Float(($0 * 37 % 11) - 5) / 4 })
        let w = Matrix(rows: m, cols: k, data: (0..<(m * k)).map { Float(($0 * 17 % 13) - 6) / 8 })
        let g = Matrix(rows: n, cols: m, data: (0..<(n * m)).map { Float(($0 * 29 % 7) - 3) / 2 })
        let layer = FloatLinear(id: LinearID(layer: 0, name: "mlp.up_proj"))
        let y = layer.forward(x: x, w: w, step: 0)
        let (dx, dw) = layer.backward(g: g, step: 0)
        for i in 0..<n { for j in 0..<m {
            var s: Float = 0; for c in 0..<k { s += x[i, c] * w[j, c] }
            XCTAssertEqual(y[i, j], s, accuracy: 1e-5)
        } }
        for i in 0..<n { for c in 0..<k {
            var s: Float = 0; for j in 0..<m { s += g[i, j] * w[j, c] }
            XCTAssertEqual(dx[i, c], s, accuracy: 1e-5)
        } }
        for j in 0..<m { for c in 0..<k {
            var s: Float = 0; for i in 0..<n { s += g[i, j] * x[i, c] }
            XCTAssertEqual(dw[j, c], s, accuracy: 1e-5)
        } }
    }

    func testRegistryAlwaysHasF32() {
        XCTAssertEqual(TrainingQuantizerRegistry().names, ["f32"])
        XCTAssertNotNil(TrainingQuantizerRegistry().lookup("f32"))
    }
}
