import XCTest
@testable import QuantKernels

final class IntGemmTests: XCTestCase {
    /// Every (activation grid, weight grid, group size) combination on ragged shapes, every path:
    /// int32 group sums and f32 outputs must equal the scalar reference exactly.
    func testMatchesReferenceExactly() {
        var rng = TestRNG(3)
        let grids = [QuantGrid(bits: 8, symmetric: true), QuantGrid(bits: 8, symmetric: false),
                     QuantGrid(bits: 4, symmetric: true), QuantGrid(bits: 4, symmetric: false, clip: 0.9),
                     QuantGrid(bits: 8, symmetric: true, clip: 0.5)]
        let shapes = [(1, 1, 1), (1, 17, 5), (3, 16, 8), (5, 33, 24), (9, 20, 64), (2, 47, 131), (13, 31, 96), (3, 18, 600),
                      (19, 300, 40)]   // 300 columns: more than one 256-column block, ragged
        forEachPath { path in
            for (m, n, k) in shapes {
                for ag in grids { for wg in grids {
                    for gs in Set([k, k % 16 == 0 ? 16 : k, k % 8 == 0 ? 8 : k]) {
                        let x = rng.floats(m * k, -2, 3), w = rng.floats(n * k)
                        let bias = rng.floats(n)
                        let aq = x.withUnsafeBufferPointer { Quantizer.quantize($0.baseAddress!, rows: m, cols: k, groupSize: k, grid: ag) }
                        let wq = w.withUnsafeBufferPointer { Quantizer.quantize($0.baseAddress!, rows: n, cols: k, groupSize: gs, grid: wg) }
                        let act = x.withUnsafeBufferPointer { IntGemm.quantizeActivations($0.baseAddress!, m: m, k: k, grid: ag) }
                        XCTAssertEqual(act.unpackedCodes, aq.codes); XCTAssertEqual(act.scales, aq.scales); XCTAssertEqual(act.zeros, aq.zeros)
                        let pw = IntGemm.packWeights(codes: wq.codes, scales: wq.scales, zeros: wq.zeros, n: n, k: k, groupSize: gs, grid: wg)
                        let ref = Reference.intGemm(aCodes: aq.codes, aScales: aq.scales, aZeros: aq.zeros, wCodes: wq.codes,
                                                    wScales: wq.scales, wZeros: wq.zeros, m: m, n: n, k: k, groupSize: gs, bias: bias)
                        let what = "\(path) \(m)×\(n)×\(k) g\(gs) A \(ag) W \(wg)"
                        XCTAssertEqual(IntGemm.accumulators(act, pw), ref.acc, what)
                        XCTAssertEqual(IntGemm.multiply(act, pw, bias: bias), ref.y, what)
                    }
                } }
            }
        }
    }

    /// Extreme codes (−128·−128, 255·127 …) must not saturate anywhere.
    func testExtremeCodes() {
        let m = 5, n = 18, k = 72
        for (ag, wg) in [(QuantGrid(bits: 8, symmetric: false), QuantGrid(bits: 8, symmetric: true)),
                         (QuantGrid(bits: 8, symmetric: true), QuantGrid(bits: 8, symmetric: true)),
                         (QuantGrid(bits: 8, symmetric: false), QuantGrid(bits: 8, symmetric: false))] {
            var rng = TestRNG(9)
            let aCodes = (0..<(m * k)).map { _ in rng.next() % 2 == 0 ? ag.qmin : ag.qmax }
            let wCodes = (0..<(n * k)).map { _ in rng.next() % 3 == 0 ? wg.qmax : wg.qmin }
            let aS = [Float](repeating: 0.5, count: m), aZ = (0..<m).map { Int32($0) % (ag.qmax + 1) }
            let wS = [Float](repeating: 0.25, count: n), wZ = (0..<n).map { ag.symmetric ? 0 : Int32($0 * 7) % (wg.qmax + 1) }
            let act = QuantizedActivations(codes: aCodes, scales: aS, zeros: aZ, m: m, k: k, grid: ag)
            let pw = IntGemm.packWeights(codes: wCodes, scales: wS, zeros: wZ, n: n, k: k, groupSize: k, grid: wg)
            let ref = Reference.intGemm(aCodes: aCodes, aScales: aS, aZeros: aZ, wCodes: wCodes, wScales: wS, wZeros: wZ,
                                        m: m, n: n, k: k, groupSize: k)
            forEachPath { path in
                XCTAssertEqual(IntGemm.accumulators(act, pw), ref.acc, "\(path) \(ag) × \(wg)")
                XCTAssertEqual(IntGemm.multiply(act, pw), ref.y, "\(path) \(ag) × \(wg)")
            }
        }
    }

    func testThreadsBitIdenticalAndEmpty() {
        var rng = TestRNG(4)
        let (m, n, k) = (70, 90, 256)
        let x = rng.floats(m * k), w = rng.floats(n * k)
        let g = QuantGrid(bits: 4, symmetric: false)
        let wq = w.withUnsafeBufferPointer { Quantizer.quantize($0.baseAddress!, rows: n, cols: k, groupSize: 64, grid: g) }
        let pw = IntGemm.packWeights(codes: wq.codes, scales: wq.scales, zeros: wq.zeros, n: n, k: k, groupSize: 64, grid: g)
        let act = x.withUnsafeBufferPointer { IntGemm.quantizeActivations($0.baseAddress!, m: m, k: k, grid: QuantGrid(bits: 8, symmetric: true)) }
        forEachPath { path in
            let y1 = IntGemm.multiply(act, pw, threads: 1)
            XCTAssertEqual(y1, IntGemm.multiply(act, pw, threads: 2), "\(path)")
            XCTAssertEqual(y1, IntGemm.multiply(act, pw, threads: 3), "\(path)")
        }
        let empty = QuantizedActivations(codes: [], scales: [], zeros: [], m: 0, k: k, grid: g)
        XCTAssertEqual(IntGemm.multiply(empty, pw).count, 0)
    }

    /// Activations quantized from a row producer (rows written into the scratch row, as a norm or
    /// SwiGLU does) equal those quantized from the stored matrix: codes, padding bytes, scales and
    /// zero points, rows holding NaN included, on every path and thread count.
    func testActivationsFromARowProducerEqualTheStoredMatrixPath() {
        var rng = TestRNG(15)
        forEachPath { path in
            for (m, k) in [(3, 20), (200, 250), (64, 576)] {
                var x = rng.floats(m * k, -3, 3)
                x[k + 1] = .nan                                            // row 1: NaN
                for j in 0..<k { x[2 * k + j] = 0.5 }                      // row 2: constant
                for grid in [QuantGrid(bits: 8, symmetric: true), QuantGrid(bits: 4, symmetric: false)] {
                    x.withUnsafeBufferPointer { xp in
                        let stored = QuantizedActivations(xp.baseAddress!, m: m, k: k, grid: grid)
                        for threads in [1, 2, 3] {
                            let produced = QuantizedActivations(m: m, k: k, grid: grid, threads: threads) { i, scratch in
                                scratch.update(from: xp.baseAddress! + i * k, count: k)
                                return UnsafePointer(scratch)
                            }
                            let what = "\(path) \(m)×\(k) \(grid) threads \(threads)"
                            XCTAssertEqual(produced.codes, stored.codes, what)
                            XCTAssertEqual(produced.scales.map(\.bitPattern), stored.scales.map(\.bitPattern), what)
                            XCTAssertEqual(produced.zeros, stored.zeros, what)
                            XCTAssertEqual(produced.storedZeros, stored.storedZeros, what)
                        }
                        XCTAssertTrue(stored.scales[1].isNaN && stored.codes[stored.stride..<(stored.stride + k)].allSatisfy { $0 == 0 })
                        for i in 0..<m { XCTAssertTrue(stored.codes[(i * stored.stride + k)..<((i + 1) * stored.stride)].allSatisfy { $0 == 0 }, "padding") }
                    }
                }
            }
        }
    }

    func testDispatchPicksBestAvailable() {
        XCTAssertEqual(KernelDispatch.available.first, .portable)
        XCTAssertEqual(KernelDispatch.best, KernelDispatch.available.max())
        XCTAssertTrue(KernelDispatch.rejected.isEmpty, KernelDispatch.summary)
        for p in KernelDispatch.available { XCTAssertTrue(KernelDispatch.selfTest(p), "\(p)") }
        #if arch(x86_64)
        XCTAssertTrue(KernelDispatch.available.contains(.avx2), "every x86_64 test machine here has AVX2")
        #endif
        if ProcessInfo.processInfo.environment["QWB_KERNELS"] == nil { XCTAssertEqual(KernelDispatch.active, KernelDispatch.best) }
    }
}

final class IntLinearTests: XCTestCase {
    /// `linear` equals quantize-then-multiply, and approximates the f32 product of the fake-quantized
    /// operands (same values, different summation order).
    func testLinearMatchesFakeQuantizedGemm() {
        var rng = TestRNG(12)
        let (m, n, k, gs) = (7, 40, 128, 32)
        let x = rng.floats(m * k), w = rng.floats(n * k)
        let ga = QuantGrid(bits: 8, symmetric: false), gw = QuantGrid(bits: 4, symmetric: true)
        let wq = w.withUnsafeBufferPointer { Quantizer.quantize($0.baseAddress!, rows: n, cols: k, groupSize: gs, grid: gw) }
        let pw = IntGemm.packWeights(codes: wq.codes, scales: wq.scales, zeros: wq.zeros, n: n, k: k, groupSize: gs, grid: gw)
        var y = [Float](repeating: 0, count: m * n)
        x.withUnsafeBufferPointer { xp in y.withUnsafeMutableBufferPointer { yp in
            IntGemm.linear(xp.baseAddress!, m: m, weights: pw, activationGrid: ga, into: yp.baseAddress!)
        } }
        let a = x.withUnsafeBufferPointer { IntGemm.quantizeActivations($0.baseAddress!, m: m, k: k, grid: ga) }
        XCTAssertEqual(y, IntGemm.multiply(a, pw))
        var xf = x, wf = w
        xf.withUnsafeMutableBufferPointer { Quantizer.fakeQuantize($0.baseAddress!, rows: m, cols: k, groupSize: k, grid: ga) }
        wf.withUnsafeMutableBufferPointer { Quantizer.fakeQuantize($0.baseAddress!, rows: n, cols: k, groupSize: gs, grid: gw) }
        assertClose(y, Reference.gemm(xf, wf, m: m, n: n, k: k), tol: 1e-4)
    }
}
