import XCTest
import QuantKernels
@testable import TrainingQuantization

/// Small deterministic generator for test data.
struct TestRNG {
    var state: UInt64
    init(_ seed: UInt64) { state = seed &+ 0x9E37_79B9_7F4A_7C15 }
    mutating func next() -> UInt64 { state = KeyedRandom.mix(state); return state }
    mutating func int(_ range: ClosedRange<Int>) -> Int { range.lowerBound + Int(next() % UInt64(range.count)) }
    mutating func uniform() -> Double { Double(next() >> 11) / Double(1 << 53) }
    mutating func normal() -> Float {
        let u = max(uniform(), 1e-12), v = uniform()
        return Float((-2 * log(u)).squareRoot() * cos(2 * .pi * v))
    }
    mutating func codes(_ n: Int, bits: Int) -> [Int8] { (0..<n).map { _ in Int8(int(-(1 << (bits - 1))...((1 << (bits - 1)) - 1))) } }
}

final class IntProductsTests: XCTestCase {
    /// The int32 sums of every operand-width combination the quantizers use, on every kernel path
    /// this CPU has, equal plain scalar loops exactly; odd K exercises the padding.
    func testAccumulatorsMatchScalarReferenceOnEveryPath() {
        var rng = TestRNG(1)
        for (aBits, bBits) in [(4, 4), (8, 4), (8, 8), (4, 8)] {
            for (m, n, k) in [(5, 17, 37), (33, 40, 64), (70, 19, 130)] {
                let a = IntCodes(rows: m, cols: k, bits: aBits, codes: rng.codes(m * k, bits: aBits), scale: 0.5)
                let b = IntCodes(rows: n, cols: k, bits: bBits, codes: rng.codes(n * k, bits: bBits), scale: 0.25)
                let want = IntProducts.referenceAccumulators(a, b)
                for path in KernelDispatch.available {
                    KernelDispatch.with(path) {
                        XCTAssertEqual(IntProducts.accumulators(a, b), want, "\(path) a\(aBits) b\(bBits) \(m)×\(n)×\(k)")
                        let y = IntProducts.multiply(a, b)
                        for i in 0..<(m * n) { XCTAssertEqual(y[i], Float(want[i]) * 0.125, "\(path)") }
                    }
                }
            }
        }
    }

    /// Bit splitting's two INT4 GEMMs `14·(h·Bᵀ) + l·Bᵀ` equal one GEMM of the 8-bit code `14h + l`
    /// exactly (int32), on every path; the halves themselves run as INT4 × INT4.
    func testFusedHalvesEqualTwoInt4Gemms() {
        var rng = TestRNG(2)
        let (m, n, k) = (24, 33, 96)
        let h = (0..<(m * k)).map { _ in Int8(rng.int(-6...6)) }, l = (0..<(m * k)).map { _ in Int8(rng.int(-6...6)) }
        let b = IntCodes(rows: n, cols: k, bits: 4, codes: rng.codes(n * k, bits: 4), scale: 1)
        let fused = IntCodes(rows: m, cols: k, bits: 8, codes: (0..<(m * k)).map { 14 * h[$0] + l[$0] }, scale: 1)
        for path in KernelDispatch.available {
            KernelDispatch.with(path) {
                let ah = IntProducts.accumulators(IntCodes(rows: m, cols: k, bits: 4, codes: h, scale: 1), b)
                let al = IntProducts.accumulators(IntCodes(rows: m, cols: k, bits: 4, codes: l, scale: 1), b)
                XCTAssertEqual(IntProducts.accumulators(fused, b), (0..<(m * n)).map { 14 * ah[$0] + al[$0] }, "\(path)")
            }
        }
    }

    /// The gradient GEMMs' packers — B from K-major codes (optionally gathering K rows), A transposed
    /// straight into bytes — give exactly the products of the plainly transposed operands, every path.
    func testKMajorAndTransposedPackingEqualPlainTransposes() {
        var rng = TestRNG(6)
        for bits in [4, 8] {
            let (kRows, n, m) = (45, 37, 21)
            let kMajor = IntCodes(rows: kRows, cols: n, bits: bits, codes: rng.codes(kRows * n, bits: bits), scale: 0.5)
            let gather = [3, 0, 44, 7, 7, 12, 30, 1, 2, 19, 40]
            let a = IntCodes(rows: m, cols: gather.count, bits: 8, codes: rng.codes(m * gather.count, bits: 8), scale: 1)
            let aFull = IntCodes(rows: m, cols: kRows, bits: 8, codes: rng.codes(m * kRows, bits: 8), scale: 1)
            let aT = aFull.transposed   // kRows × m: its transpose is aFull
            for path in KernelDispatch.available {
                KernelDispatch.with(path) {
                    let want = IntProducts.referenceAccumulators(aFull, kMajor.transposed)
                    let got = IntGemm.accumulators(IntProducts.activations(aFull), IntProducts.weights(kMajor: kMajor))
                    XCTAssertEqual(got, want, "kMajor \(bits) \(path)")
                    let gotT = IntGemm.accumulators(IntProducts.activationsTransposed(aT), IntProducts.weights(kMajor: kMajor))
                    XCTAssertEqual(gotT, want, "transposed A \(bits) \(path)")
                    let wantG = IntProducts.referenceAccumulators(a, kMajor.gatherRows(gather).transposed)
                    XCTAssertEqual(IntGemm.accumulators(IntProducts.activations(a), IntProducts.weights(kMajor: kMajor, rows: gather)), wantG,
                                   "gather \(bits) \(path)")
                }
            }
        }
    }

    func testTransposeAndGather() {
        let a = IntCodes(rows: 2, cols: 3, bits: 4, codes: [1, 2, 3, 4, 5, 6], scale: 1)
        XCTAssertEqual(a.transposed.codes, [1, 4, 2, 5, 3, 6])
        XCTAssertEqual(a.gatherRows([1, 1, 0]).codes, [4, 5, 6, 4, 5, 6, 1, 2, 3])
    }
}
