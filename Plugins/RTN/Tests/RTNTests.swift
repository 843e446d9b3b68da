import XCTest
import QuantCore
import LlamaModel
import RTN
import TestSupport

final class RTNTests: XCTestCase {
    func run(_ scheme: QuantScheme, overrides: [SchemeOverride] = []) throws -> (DecoderModel, PipelineReport) {
        let model = SyntheticModel.make(seed: 0)
        _ = try model.assignSchemes(scheme, overrides: overrides)
        let cal = SyntheticModel.tokens(seed: 1, windows: 2, length: 32)
        let report = try Pipeline(methods: [try RTN(options: MethodOptions([:]))]).run(model: model, calibration: cal, runner: LlamaForward())
        return (model, report)
    }

    func testQuantizesEveryBlockLinearWithItsSchemeAndLeavesLmHeadFloat() throws {
        let (model, _) = try run(QuantScheme(weights: WeightScheme(bits: 4, granularity: .group(16), symmetric: false)))
        for l in model.allSites.flatMap(\.linears) {
            let q = try XCTUnwrap(l.quantized, l.name)
            XCTAssertEqual(q.groupSize, 16); XCTAssertEqual(q.grid.bits, 4); XCTAssertFalse(q.grid.symmetric)
            // an independent computation (not the function RTN calls): min/max grid per group of 16
            let ref = Self.referenceAsymmetricRTN(l.weight, bits: 4, group: 16)
            XCTAssertEqual(q.scales, ref.scales, l.name)
            XCTAssertEqual(q.zeros, ref.zeros, l.name)
            XCTAssertEqual(q.codes, ref.codes, l.name)
            XCTAssertTrue(q.codes.allSatisfy { $0 >= 0 && $0 <= 15 })
        }
        XCTAssertNil(model.lmHead.quantized)
    }

    /// Asymmetric round-to-nearest written from the definition, loop by loop: per group of `group`
    /// columns, the range [min(x, 0), max(x, 0)] is cut into 2^bits − 1 steps of s; the zero point
    /// z = round(−lo / s) clamped to the grid; q = clamp(round(x / s) + z, 0, 2^bits − 1).
    static func referenceAsymmetricRTN(_ w: Matrix, bits: Int, group: Int) -> (codes: [Int32], scales: [Float], zeros: [Int32]) {
        let qmax = (1 << bits) - 1
        var codes: [Int32] = [], scales: [Float] = [], zeros: [Int32] = []
        var codeAt = [Int32](repeating: 0, count: w.rows * w.cols)
        for r in 0..<w.rows {
            for g in 0..<(w.cols / group) {
                let xs = (0..<group).map { w[r, g * group + $0] }
                let lo = min(xs.min()!, 0), hi = max(xs.max()!, 0)
                var s = (hi - lo) / Float(qmax)
                if !(s > 0) { s = 1 }
                let z = min(max(Int((-lo / s).rounded(.toNearestOrEven)), 0), qmax)
                scales.append(s); zeros.append(Int32(z))
                for (j, x) in xs.enumerated() {
                    let q = min(max(Int((x / s).rounded(.toNearestOrEven)) + z, 0), qmax)
                    codeAt[r * w.cols + g * group + j] = Int32(q)
                }
            }
        }
        codes = codeAt
        return (codes, scales, zeros)
    }

    func testOverridesChangeBitsPerLayer() throws {
        let (model, _) = try run(QuantScheme(weights: WeightScheme(bits: 4)),
                                 overrides: [SchemeOverride(pattern: "layers.*.mlp.down_proj", weights: WeightScheme(bits: 8))])
        for b in model.blocks {
            XCTAssertEqual(b.down.linears[0].quantized?.grid.bits, 8)
            XCTAssertEqual(b.qkv.linears[0].quantized?.grid.bits, 4)
        }
    }

    func testFewerBitsGiveLargerSiteErrors() throws {
        let (_, r8) = try run(QuantScheme(weights: WeightScheme(bits: 8)))
        let (_, r4) = try run(QuantScheme(weights: WeightScheme(bits: 4)))
        let (_, r4a4) = try run(QuantScheme(weights: WeightScheme(bits: 4), activations: ActivationScheme(bits: 4)))
        func mean(_ r: PipelineReport) -> Double { r.sites.map(\.relativeOutputError).reduce(0, +) / Double(r.sites.count) }
        XCTAssertLessThan(mean(r8), mean(r4))
        XCTAssertLessThan(mean(r4), mean(r4a4))
    }

    func testAGroupSizeThatDoesNotDivideIsRejected() {
        let model = SyntheticModel.make(seed: 0)
        XCTAssertThrowsError(try model.assignSchemes(QuantScheme(weights: WeightScheme(bits: 4, granularity: .group(7))), overrides: [])) {
            XCTAssertTrue("\($0)".contains("does not divide"), "\($0)")
        }
    }

    func testAnOverrideThatMatchesNothingIsRejected() {
        let model = SyntheticModel.make(seed: 0)
        XCTAssertThrowsError(try model.assignSchemes(QuantScheme(), overrides: [SchemeOverride(pattern: "layers.*.mlp.dwn_proj", weights: WeightScheme(bits: 8))])) { e in
            XCTAssertTrue("\(e)".contains("layers.*.mlp.dwn_proj"), "\(e)")
        }
    }
}
