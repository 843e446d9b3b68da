import XCTest
import QuantCore
import QuantKernels
@testable import LlamaModel
import TestSupport

/// Without a visitor, a site on the integer GEMM gets its input quantized row by row by the
/// operation that produces it (RMSNorm, the residual add with RMSNorm, SwiGLU: `runSite`); with
/// one, every input is built as an f32 matrix and quantized inside the site. Both give the same bits.
final class FusedSiteInputTests: XCTestCase {
    func testFusedAndBuiltInputsGiveTheSameBits() throws {
        let model = SyntheticModel.make(seed: 3)
        _ = try model.assignSchemes(QuantScheme(weights: WeightScheme(bits: 4), activations: ActivationScheme(bits: 4)), overrides: [])
        // An online transform keeps block 0's down_proj input in f32 (the transform runs on it first).
        let b0 = model.blocks[0]
        b0.down.addTransform(.hadamard(size: b0.down.inFeatures, blockSize: 64, signs: nil), addedBy: "test")
        for l in model.allSites.flatMap(\.linears) { l.quantized = QuantizedWeight.roundToNearest(l.weight, scheme: l.scheme) }
        XCTAssertNil(b0.down.integerInputGrid(.quantized))
        XCTAssertNotNil(model.blocks[1].down.integerInputGrid(.quantized))
        // 4 windows of 96 tokens: 384 × 96 ≥ 2¹⁵ elements, so rows are split over threads.
        let runner = LlamaForward(), c = model.config, length = 96
        var h = runner.embed(model, windows: SyntheticModel.tokens(seed: 7, windows: 4, length: length))
        for (i, b) in model.blocks.enumerated() {
            Profiler.start()
            let fused = runner.runBlock(b, config: c, hidden: h, windowLength: length, mode: .quantized)
            let components = Profiler.stop()
            var visits: [SiteKind] = []
            let built = runner.stepThroughBlock(b, config: c, hidden: h, windowLength: length, mode: .quantized) { site, _ in visits.append(site.kind) }
            XCTAssertEqual(visits, [.qkv, .o, .gateUp, .down])
            XCTAssertEqual(fused.data.map(\.bitPattern), built.data.map(\.bitPattern), "block \(i)")
            // The fused paths ran (and block 0's down_proj input was built).
            XCTAssertNotNil(components["RMSNorm + activation quantization"], "block \(i)")
            XCTAssertNotNil(components["residual add + RMSNorm + activation quantization"], "block \(i)")
            XCTAssertNotNil(components[i == 0 ? "SwiGLU" : "SwiGLU + activation quantization"], "block \(i)")
            // Quantization did something: the float block differs.
            XCTAssertNotEqual(runner.runBlock(b, config: c, hidden: h, windowLength: length, mode: .float).data, fused.data)
            h = fused
        }
    }
}
