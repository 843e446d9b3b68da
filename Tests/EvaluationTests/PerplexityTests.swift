import XCTest
import QuantCore
import LlamaModel
import Evaluation

final class PerplexityTests: XCTestCase {
    func testStandardWindowsAreNonOverlappingAndDropTheRemainder() {
        let p = PerplexityProtocol.standard(seqLen: 4)
        XCTAssertEqual(p.windows(Array(0..<11)), [[0, 1, 2, 3], [4, 5, 6, 7]])
        XCTAssertEqual(p.windows(Array(0..<11), maxWindows: 1), [[0, 1, 2, 3]])
        XCTAssertEqual(p.firstScored, 0)
    }

    func testLlamaCppWindowsPutBOSFirstAndScoreTheSecondHalf() {
        let p = PerplexityProtocol.llamaCpp(nCtx: 8, bos: 99)
        XCTAssertEqual(p.windows(Array(0..<17)), [[99, 1, 2, 3, 4, 5, 6, 7], [99, 9, 10, 11, 12, 13, 14, 15]])
        XCTAssertEqual(PerplexityProtocol.llamaCpp(nCtx: 8, bos: nil).windows(Array(0..<8)), [Array(0..<8)])
        XCTAssertEqual(p.firstScored, 4)
    }

    func testScoredTokenCountsFollowTheProtocol() {
        let model = SyntheticModel.make(seed: 0)
        let tokens = SyntheticModel.tokens(seed: 1, windows: 1, length: 64)[0]
        let std = Evaluator().evaluate(float: model, variants: [], windows: PerplexityProtocol.standard(seqLen: 32).windows(tokens),
                                       protocol: .standard(seqLen: 32))
        XCTAssertEqual(std[0].nll.count, 2 * 31)
        let lc = PerplexityProtocol.llamaCpp(nCtx: 32, bos: nil)
        let l = Evaluator().evaluate(float: model, variants: [], windows: lc.windows(tokens), protocol: lc)
        XCTAssertEqual(l[0].nll.count, 2 * (32 - 1 - 16))
    }

    /// NaN in a variant's logits is a NumericalFault naming the variant, window and position — never
    /// a NaN (or finite) perplexity; a variant whose NaN would vanish in activation quantization too.
    func testNonFiniteLogitsAreANumericalFaultOfThatVariant() throws {
        let fp = SyntheticModel.make(seed: 0)
        let windows = SyntheticModel.tokens(seed: 2, windows: 3, length: 16)
        let good = fp.copy()
        let badHead = fp.copy()
        badHead.lmHead.weight.data[3] = .nan
        let badActs = fp.copy()
        _ = try badActs.assignSchemes(QuantScheme(weights: WeightScheme(bits: 8), activations: ActivationScheme(bits: 8)), overrides: [])
        for l in badActs.allSites.flatMap(\.linears) { l.quantized = .roundToNearest(l.weight, scheme: l.scheme) }
        badActs.blocks[0].qkv.linears[0].weight.data[0] = .nan  // float weight, used by no quantized path…
        badActs.blocks[0].o.linears[0].quantized!.scales[0] = .nan  // …but this one is
        for (variants, names, expect) in [([good, badHead], ["ok", "head"], "head"), ([badActs], ["w8a8"], "w8a8")] {
            XCTAssertThrowsError(try Evaluator().evaluate(float: fp, variants: variants, names: names, windows: windows,
                                                          protocol: .standard(seqLen: 16))) { e in
                guard let f = e as? NumericalFault else { return XCTFail("expected a NumericalFault, got \(e)") }
                XCTAssertEqual(f.variant, expect)
                XCTAssertEqual(f.quantity, "logits")
                XCTAssertTrue(f.step.hasPrefix("evaluation window 0, position 0"), f.step)
                XCTAssertTrue(f.value.isNaN)
            }
        }
        // the non-throwing API keeps the fault in the scores and stops scoring that model
        let s = Evaluator().evaluate(float: fp, variants: [good, badHead], windows: windows, protocol: .standard(seqLen: 16))
        XCTAssertNil(s[0].numericalFault); XCTAssertNil(s[1].numericalFault)
        XCTAssertNotNil(s[2].numericalFault)
        XCTAssertEqual(s[1].nll.count, 3 * 15)
        XCTAssertTrue(s[2].nll.isEmpty)
        XCTAssertNoThrow(try Evaluator().evaluate(float: fp, variants: [good], names: ["ok"], windows: windows, protocol: .standard(seqLen: 16)))
    }

    func testKLOfTheSameModelIsZeroAndOfAQuantizedOneIsPositive() throws {
        let fp = SyntheticModel.make(seed: 0)
        let same = fp.copy()
        let q = fp.copy()
        _ = try q.assignSchemes(QuantScheme(weights: WeightScheme(bits: 3), activations: ActivationScheme(bits: 4)), overrides: [])
        for l in q.allSites.flatMap(\.linears) { l.quantized = .roundToNearest(l.weight, scheme: l.scheme) }
        let windows = SyntheticModel.tokens(seed: 2, windows: 2, length: 32)
        let s = Evaluator().evaluate(float: fp, variants: [same, q], windows: windows, protocol: .standard(seqLen: 32))
        XCTAssertEqual(s[1].meanKL, 0, accuracy: 1e-6)
        XCTAssertEqual(s[1].top1Agreement, 1)
        XCTAssertEqual(s[1].nll, s[0].nll)
        XCTAssertGreaterThan(s[2].meanKL, 1e-3)
        XCTAssertGreaterThan(s[2].klP99, s[2].meanKL)
        XCTAssertLessThan(s[2].top1Agreement, 1)
        XCTAssertEqual(s[2].kl.count, s[2].nll.count)
    }

    func testPairedDifferenceAndStandardError() {
        let d = Stats.pairedDifference([1, 2, 3, 4], [0, 1, 2, 3])
        XCTAssertEqual(d.mean, 1); XCTAssertEqual(d.se, 0)
        XCTAssertEqual(Stats.standardError([1, 3]), 1, accuracy: 1e-12)
        XCTAssertEqual(Stats.percentile(Array(stride(from: 0.0, through: 100, by: 1)), 0.99), 99)
    }
}

final class ActivationStatisticsTests: XCTestCase {
    func testMassiveActivationsAreFoundAtDownProjOnSinkTokens() {
        let model = SyntheticModel.make(seed: 0)
        let windows = SyntheticModel.tokens(seed: 3, windows: 2, length: 48)
        let stats = ActivationStatistics.collect(model: model, windows: windows)
        XCTAssertEqual(stats.count, 16)
        for s in stats where s.site.hasSuffix(".down") {
            XCTAssertGreaterThan(s.ratio, 50, s.site)
            XCTAssertTrue(SyntheticModel.sinkTokens.contains(s.topTokens[0].token), "\(s.site): \(s.topTokens)")
            XCTAssertEqual(s.topTokens[0].channel, s.topChannels[0].channel)
        }
    }
}
