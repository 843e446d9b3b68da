import XCTest
import QuantCore
import QuantKernels
import TrainingQuantization
import TrainingRTN

final class TrainingRTNTests: XCTestCase {
    /// Forward and both gradients against an f64 reference of the same quantizer (per-tensor
    /// absmax RTN of X, W, G; dequantized products in f64), on every kernel path; int8 and int4.
    func testMatchesF64ReferenceOnEveryPath() throws {
        var seed: UInt64 = 11
        func rand() -> Float { seed = seed &* 6364136223846793005 &+ 1442695040888963407; return Float(Int64(bitPattern: seed) >> 40) / Float(1 << 23) }
        let (n, cin, cout) = (37, 48, 29)
        let x = Matrix(rows: n, cols: cin, data: (0..<(n * cin)).map { _ in rand() })
        let w = Matrix(rows: cout, cols: cin, data: (0..<(cout * cin)).map { _ in rand() * 0.1 })
        let g = Matrix(rows: n, cols: cout, data: (0..<(n * cout)).map { _ in rand() * 0.01 })
        for bits in [8, 4] {
            let ref = reference(x, w, g, bits: bits)
            for path in KernelDispatch.available {
                try KernelDispatch.with(path) {
                    let layer = try TrainingRTN(options: MethodOptions(["bits": .int(bits)]))
                        .makeLinear(id: LinearID(layer: 0, name: "mlp.up_proj"), inFeatures: cin, outFeatures: cout, seed: 1)
                    let y = layer.forward(x: x, w: w, step: 0)
                    let (dx, dw) = layer.backward(g: g, step: 0)
                    for (got, want) in [(y.data, ref.y), (dx.data, ref.dx), (dw.data, ref.dw)] {
                        let scale = want.map { abs($0) }.max()!
                        for i in 0..<want.count { XCTAssertEqual(Double(got[i]), want[i], accuracy: 1e-5 * scale, "int\(bits) \(path)") }
                    }
                    XCTAssertEqual(layer.timing.integerRows, 2 * n)
                }
            }
        }
    }

    /// Fewer bits, larger error against the float products.
    func testInt4IsCoarserThanInt8() throws {
        let (n, cin, cout) = (64, 64, 32)
        let x = Matrix(rows: n, cols: cin, data: (0..<(n * cin)).map { Float(sin(Double($0) * 0.37)) })
        let w = Matrix(rows: cout, cols: cin, data: (0..<(cout * cin)).map { Float(cos(Double($0) * 0.11)) })
        let exact = x.timesTransposed(w)
        let e8 = RTNLinear(id: LinearID(layer: 0, name: "a"), bits: 8).forward(x: x, w: w, step: 0).relativeError(to: exact)
        let e4 = RTNLinear(id: LinearID(layer: 0, name: "a"), bits: 4).forward(x: x, w: w, step: 0).relativeError(to: exact)
        XCTAssertLessThan(e8, 0.02); XCTAssertGreaterThan(e4, 4 * e8)
    }

    func reference(_ x: Matrix, _ w: Matrix, _ g: Matrix, bits: Int) -> (y: [Double], dx: [Double], dw: [Double]) {
        let qmax = Float((1 << (bits - 1)) - 1)
        func fq(_ v: [Float]) -> [Double] {
            let step = v.map { abs($0) }.max()! / qmax
            return v.map { Double(min(max(($0 * (1 / step)).rounded(.toNearestOrEven), -qmax - 1), qmax)) * Double(step) }
        }
        let (xq, wq, gq) = (fq(x.data), fq(w.data), fq(g.data))
        let (n, cin, cout) = (x.rows, x.cols, w.rows)
        var y = [Double](repeating: 0, count: n * cout), dx = [Double](repeating: 0, count: n * cin), dw = [Double](repeating: 0, count: cout * cin)
        for i in 0..<n { for j in 0..<cout { for p in 0..<cin {
            y[i * cout + j] += xq[i * cin + p] * wq[j * cin + p]
            dx[i * cin + p] += gq[i * cout + j] * wq[j * cin + p]
            dw[j * cin + p] += gq[i * cout + j] * xq[i * cin + p]
        } } }
        return (y, dx, dw)
    }
}
