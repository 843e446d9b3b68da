import XCTest
import QuantCore
import QuantKernels
import LlamaModel
import TestSupport

/// Decoding with a KV cache against the prefill forward over the same tokens.
final class LlamaDecoderTests: XCTestCase {
    let runner = LlamaForward()

    /// Largest |a − b| over the largest |b|: logits agree up to f32 summation order.
    func maxError(_ a: Matrix, _ b: Matrix) -> Float {
        precondition(a.rows == b.rows && a.cols == b.cols)
        let scale = b.data.map(abs).max() ?? 1
        return zip(a.data, b.data).map { abs($0 - $1) }.max()! / scale
    }

    func decodeOneByOne(_ model: DecoderModel, _ tokens: [Int], mode: ExecutionMode, prompt: Int) throws -> Matrix {
        let d = LlamaDecoder(model: model, mode: mode, capacity: tokens.count)
        var rows = try d.append(Array(tokens.prefix(prompt)), logits: .all).data
        for t in tokens.dropFirst(prompt) { rows += try d.append([t]).data }
        XCTAssertEqual(d.position, tokens.count)
        return Matrix(rows: tokens.count, cols: model.config.vocabSize, data: rows)
    }

    func testFloatDecodeEqualsPrefill() throws {
        let model = SyntheticModel.make(seed: 0)
        let w = SyntheticModel.tokens(seed: 4, windows: 1, length: 40)[0]
        let prefill = runner.logits(model, windows: [w], mode: .float)
        for prompt in [1, 17] {
            let decoded = try decodeOneByOne(model, w, mode: .float, prompt: prompt)
            XCTAssertLessThan(maxError(decoded, prefill), 1e-4, "prompt \(prompt)")
        }
        // A wrong position would rotate the keys differently: the error would be of order 1.
        let other = runner.logits(model, windows: [Array(w.dropFirst())], mode: .float)
        XCTAssertGreaterThan(maxError(other, prefill.rows(1..<40)), 1e-2)
    }

    /// Contexts longer than one attention work item's positions (128): the ranges' partial softmaxes
    /// are merged, for prompts that end inside, on and across range boundaries.
    func testDecodeAcrossAttentionRangesEqualsPrefill() throws {
        let model = SyntheticModel.make(seed: 2)
        let w = SyntheticModel.tokens(seed: 6, windows: 1, length: 300)[0]
        let prefill = runner.logits(model, windows: [w], mode: .float)
        for prompt in [1, 128, 200] {
            let decoded = try decodeOneByOne(model, w, mode: .float, prompt: prompt)
            XCTAssertLessThan(maxError(decoded, prefill), 1e-4, "prompt \(prompt)")
        }
    }

    /// W8A8 on the integer kernels, an online Hadamard at the down sites, 8-bit attention inputs with
    /// a Hadamard on head_dim: every quantizer is per token, so the decoder sees what the prefill sees.
    func testQuantizedDecodeEqualsPrefill() throws {
        let model = SyntheticModel.make(seed: 1)
        _ = try model.assignSchemes(QuantScheme(weights: WeightScheme(bits: 8, granularity: .group(32)), activations: ActivationScheme(bits: 8)),
                                    overrides: [])
        for b in model.blocks {
            b.down.addTransform(.hadamard(size: b.down.inFeatures, blockSize: 64, signs: nil), addedBy: "test")
            b.attentionQuantization = AttentionQuantization(bits: 8, hadamardOnHeadDim: true)
            for l in b.sites.flatMap(\.linears) { l.quantized = QuantizedWeight.roundToNearest(l.weight, scheme: l.scheme) }
        }
        XCTAssertTrue(model.blocks.allSatisfy { $0.sites.allSatisfy { $0.linears.allSatisfy { $0.packedForIntegerGemm != nil } } })
        let w = SyntheticModel.tokens(seed: 5, windows: 1, length: 33)[0]
        let prefill = runner.logits(model, windows: [w], mode: .quantized)
        let decoded = try decodeOneByOne(model, w, mode: .quantized, prompt: 8)
        XCTAssertLessThan(maxError(decoded, prefill), 1e-3)
        // Quantization changed the logits by much more than that.
        XCTAssertGreaterThan(maxError(runner.logits(model, windows: [w], mode: .float), prefill), 1e-3)
    }

    /// A model that keeps only its packed codes (W8A8 sites, W4A16 lm_head) computes the same bits.
    func testCompactedModelComputesTheSameLogits() throws {
        let model = SyntheticModel.make(seed: 2)
        _ = try model.assignSchemes(QuantScheme(weights: WeightScheme(bits: 8), activations: ActivationScheme(bits: 8)),
                                    overrides: [SchemeOverride(pattern: "lm_head", weights: WeightScheme(bits: 4, granularity: .group(32)))])
        for l in model.allSites.flatMap(\.linears) + [model.lmHead] { l.quantized = QuantizedWeight.roundToNearest(l.weight, scheme: l.scheme) }
        let w = SyntheticModel.tokens(seed: 6, windows: 1, length: 24)
        let before = runner.logits(model, windows: w, mode: .quantized)
        let floatBytes = model.allLinears.reduce(0) { $0 + $1.residentBytes.float }
        XCTAssertEqual(model.compactForInference(), model.allLinears.count)
        XCTAssertEqual(model.allLinears.reduce(0) { $0 + $1.residentBytes.float + $1.residentBytes.codes }, 0)
        XCTAssertLessThan(model.allLinears.reduce(0) { $0 + $1.residentBytes.packed }, floatBytes / 3)
        XCTAssertEqual(runner.logits(model, windows: w, mode: .quantized), before)
        XCTAssertEqual(try decodeOneByOne(model, w[0], mode: .quantized, prompt: 4).rows, 24)
    }

    func testCacheCapacityIsAnErrorNotATrap() throws {
        let d = LlamaDecoder(model: SyntheticModel.make(seed: 0), mode: .float, capacity: 4)
        try d.append([1, 2, 3])
        XCTAssertThrowsError(try d.append([4, 5])) { XCTAssertTrue("\($0)".contains("holds 4 positions")) }
        d.reset()
        XCTAssertNoThrow(try d.append([4, 5, 6, 7]))
    }

    func testSamplerIsSeededAndGreedyIsArgmax() {
        let logits: [Float] = [0.1, 2, 1.9, -3, 2]
        var g = Sampler.greedy
        XCTAssertEqual(g.pick(logits), 1, "argmax, lowest id on ties")
        func draws(_ seed: UInt64) -> [Int] { var s = Sampler(temperature: 1, topK: 3, seed: seed); return (0..<200).map { _ in s.pick(logits) } }
        XCTAssertEqual(draws(7), draws(7))
        XCTAssertNotEqual(draws(7), draws(8))
        XCTAssertEqual(Set(draws(7)), [1, 2, 4], "top-3 only")
    }
}
