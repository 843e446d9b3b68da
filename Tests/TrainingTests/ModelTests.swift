import XCTest
import QuantCore
import QuantKernels
import LlamaModel
import ModelFormats
import TrainingQuantization
@testable import Training

final class ModelTests: XCTestCase {
    static func floatBackends(_ shape: ModelShape) -> [[any LinearBackend<Float>]] {
        (0..<shape.layers).map { i in shape.blockLinears.map { QuantizedLinearBackend(FloatLinear(id: LinearID(layer: i, name: $0.name))) } }
    }

    /// The training forward on a converted inference model gives `LlamaForward`'s logits, for both
    /// RoPE layouts (the GGUF interleaved pairs and Hugging Face's rotate-half).
    func testLogitsAgreeWithLlamaForward() throws {
        for layout in [DecoderConfig.RopeLayout.rotateHalf, .interleavedPairs] {
            var config = SyntheticModel.config
            config.ropeLayout = layout
            let model = SyntheticModel.make(seed: 3, config: config)
            let windows = SyntheticModel.tokens(seed: 4, windows: 2, length: 24)
            let reference = LlamaForward().logits(model, windows: windows, mode: .float)
            let p = try LlamaParameters<Float>.converting(model)
            XCTAssertFalse(p.shape.tied)
            let m = TrainableLlama(parameters: p, linears: Self.floatBackends(p.shape))
            let z = m.logits(tokens: windows.flatMap { $0 }, windowLength: 24, step: 0)
            let mine = Matrix(rows: reference.rows, cols: reference.cols, data: z)
            XCTAssertLessThan(mine.relativeError(to: reference), 1e-5, "\(layout)")
        }
    }

    func testConvertingRejectsBiasAndQuantizedAttention() {
        let model = SyntheticModel.make(seed: 1)
        model.blocks[0].qkv.linears[0].bias = [Float](repeating: 0, count: model.blocks[0].qkv.linears[0].weight.rows)
        XCTAssertThrowsError(try LlamaParameters<Float>.converting(model)) { XCTAssertTrue("\($0)".contains("bias")) }
        let m2 = SyntheticModel.make(seed: 1)
        m2.blocks[1].attentionQuantization = AttentionQuantization(bits: 8)
        XCTAssertThrowsError(try LlamaParameters<Float>.converting(m2))
    }

    /// A shape large enough that every parallel loop really splits.
    static let parallelShape = ModelShape(layers: 2, hidden: 64, heads: 4, kvHeads: 2, ffn: 96, context: 32, vocab: 256, tied: true)

    static func batch(_ n: Int, seed: UInt64) -> (tokens: [Int], targets: [Int]) {
        var g = SeededGenerator(seed: seed)
        let s = (0...n).map { _ in Int(g.next() % 256) }
        return (Array(s[0..<n]), Array(s[1...n]))
    }

    /// Same loss and gradients, bit for bit, on 1 and 3 threads.
    func testBitIdenticalOnAnyThreadCount() {
        let saved = Parallel.threadCount
        defer { Parallel.threadCount = saved }
        let (tokens, targets) = Self.batch(4 * 32, seed: 9)
        var results: [(Double, [[Float]])] = []
        for threads in [1, 3] {
            Parallel.threadCount = threads
            let p = LlamaParameters<Float>.initialize(shape: Self.parallelShape, seed: 5)
            let m = TrainableLlama(parameters: p, linears: Self.floatBackends(p.shape))
            m.zeroGrad()
            let loss = m.loss(tokens: tokens, targets: targets, windowLength: 32, step: 0)
            m.backward(step: 0)
            results.append((loss, p.all.map { $0.grad }))
        }
        XCTAssertEqual(results[0].0.bitPattern, results[1].0.bitPattern)
        for (a, b) in zip(results[0].1, results[1].1) { XCTAssertEqual(a.map(\.bitPattern), b.map(\.bitPattern)) }
    }

    /// The f32 model (shared GEMM kernel, FloatLinear) agrees with the Double reference model.
    func testFloatAgreesWithDoubleReference() {
        let (tokens, targets) = Self.batch(2 * 16, seed: 10)
        let pf = LlamaParameters<Float>.initialize(shape: Self.parallelShape, seed: 6)
        let mf = TrainableLlama(parameters: pf, linears: Self.floatBackends(pf.shape))
        let md = TrainableLlama(referenceParameters: LlamaParameters<Double>(converting: pf))
        mf.zeroGrad(); md.zeroGrad()
        let lf = mf.loss(tokens: tokens, targets: targets, windowLength: 16, step: 0)
        let ld = md.loss(tokens: tokens, targets: targets, windowLength: 16, step: 0)
        XCTAssertEqual(lf, ld, accuracy: 1e-5 * ld)
        mf.backward(step: 0); md.backward(step: 0)
        for (a, b) in zip(pf.all, md.parameters.all) {
            var num = 0.0, den = 0.0
            for (x, y) in zip(a.grad, b.grad) { num += (Double(x) - y) * (Double(x) - y); den += y * y }
            XCTAssertLessThan((num / max(den, 1e-30)).squareRoot(), 1e-3, a.name)
        }
    }
}

/// The reference model (when installed): converted weights give `LlamaForward`'s logits —
/// tied lm_head, GGUF interleaved RoPE, GQA 9/3.
final class ReferenceConversionTests: XCTestCase {
    func testReferenceModelLogits() throws {
        let model: DecoderModel
        do {
            let url = try locateReferenceModel(explicit: nil, environment: ProcessInfo.processInfo.environment)
            model = try CheckpointLoader.load(url).model
        } catch { throw XCTSkip("reference model not installed: \(error)") }
        let p = try LlamaParameters<Float>.converting(model)
        XCTAssertTrue(p.shape.tied)
        XCTAssertEqual(p.shape.ropeLayout, .interleavedPairs)
        let window = [1, 504, 3458, 314, 260, 1345, 282, 2626, 30, 378, 4127, 253, 1789, 13, 198, 504]
        let reference = LlamaForward().logits(model, windows: [window], mode: .float)
        let m = TrainableLlama(parameters: p, linears: ModelTests.floatBackends(p.shape))
        let z = m.logits(tokens: window, windowLength: window.count, step: 0)
        XCTAssertLessThan(Matrix(rows: reference.rows, cols: reference.cols, data: z).relativeError(to: reference), 1e-4)
    }
}
