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
            XCTAssertEqual(q.codes, QuantizedWeight.roundToNearest(l.weight, scheme: l.scheme).codes)
            XCTAssertTrue(q.codes.allSatisfy { $0 >= 0 && $0 <= 15 })
        }
        XCTAssertNil(model.lmHead.quantized)
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
        XCTAssertThrowsError(try model.assignSchemes(QuantScheme(), overrides: [SchemeOverride(pattern: "layers.*.mlp.dwn_proj", weights: WeightScheme(bits: 8))]))
    }
}
