import XCTest
import QuantCore
import TrainingQuantization
@testable import Training

final class OptimizerCheckpointTests: XCTestCase {
    func testScheduleWarmupThenCosine() {
        let s = LearningRateSchedule(peak: 1e-3, warmup: 10, minimum: 1e-4, totalSteps: 110)
        XCTAssertEqual(s.rate(at: 0), 1e-4, accuracy: 1e-12)
        XCTAssertEqual(s.rate(at: 9), 1e-3, accuracy: 1e-12)
        XCTAssertEqual(s.rate(at: 10), 1e-3, accuracy: 1e-12)
        XCTAssertEqual(s.rate(at: 109), 1e-4, accuracy: 1e-12)
        XCTAssertEqual(s.rate(at: 59) + s.rate(at: 60), 1.1e-3, accuracy: 2e-5, "the cosine is symmetric about its midpoint")
    }

    /// With zero gradients only weight decay acts: matrices shrink, RMSNorm weights and the
    /// quantizer's scalars do not.
    func testWeightDecaySkipsNormsAndScalars() {
        let shape = ModelShape(layers: 1, hidden: 8, heads: 2, kvHeads: 1, ffn: 8, context: 4, vocab: 16)
        let p = LlamaParameters<Float>.initialize(shape: shape, seed: 1)
        let layer = ScaledLinear(id: LinearID(layer: 0, name: "mlp.up_proj"))
        let opt = AdamW(settings: AdamWSettings(weightDecay: 0.5), parameters: p.all, layers: [layer])
        let before = p.all.map { $0.value }
        opt.update(parameters: p.all, layers: [layer], lr: 0.1, gradScale: 1)
        for (q, old) in zip(p.all, before) {
            if q.decays { XCTAssertEqual(q.value[0], old[0] * 0.95, accuracy: 1e-7, q.name) } else { XCTAssertEqual(q.value, old, q.name) }
        }
        XCTAssertEqual(layer.scalars, [1])
    }

    func testBatchesAreKeyedByStep() {
        let s = TokenStream(path: "x", tokens: Array(0..<1000).map { $0 % 256 }, byteCount: 1000)
        let a = s.batch(step: 5, count: 3, length: 10, seed: 1), b = s.batch(step: 5, count: 3, length: 10, seed: 1)
        XCTAssertEqual(a.tokens, b.tokens)
        XCTAssertNotEqual(a.tokens, s.batch(step: 6, count: 3, length: 10, seed: 1).tokens)
        // Targets are the inputs shifted by one inside each window.
        for w in 0..<3 { XCTAssertEqual(Array(a.tokens[(w * 10 + 1)..<(w * 10 + 10)]), Array(a.targets[(w * 10)..<(w * 10 + 9)])) }
    }

    func testUnigramBaseline() {
        let u = UnigramBaseline(training: [0, 0, 0, 1], vocab: 3)   // counts with add-one: 4, 2, 1
        XCTAssertEqual(u.meanLoss([0]), -log(4.0 / 7), accuracy: 1e-12)
        XCTAssertEqual(u.meanLoss([2, 1]), -(log(1.0 / 7) + log(2.0 / 7)) / 2, accuracy: 1e-12)
    }

    /// Bad checkpoints are errors naming the file — never a crash or a partial restore.
    func testCorruptCheckpointsAreRejected() throws {
        let dir = TrainingRunTests.folder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let s = TrainingRunTests.settings(dir: dir, steps: 4)
        let run = try TrainingRun(name: "c", settings: s, quantizer: ScaledQuantizer(), quantizerName: "scaled")
        _ = run.trainStep(); _ = run.trainStep()
        let path = dir + "/ck.qwbt"
        try run.saveCheckpoint(to: path)
        let good = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        func expectError(_ bytes: [UInt8], _ fragment: String, settings: TrainingSettings? = nil, line: UInt = #line) throws {
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            let fresh = try TrainingRun(name: "c", settings: settings ?? s, quantizer: ScaledQuantizer(), quantizerName: "scaled")
            let before = fresh.model.parameters.all.map { $0.value }
            XCTAssertThrowsError(try fresh.restore(from: path), line: line) { e in
                XCTAssertTrue("\(e)".contains(path) && "\(e)".contains(fragment), "\(e)", line: line)
            }
            XCTAssertEqual(fresh.model.parameters.all.map { $0.value }, before, "nothing restored", line: line)
            XCTAssertEqual(fresh.step, 0, line: line)
        }
        func resealed(_ b: [UInt8]) -> [UInt8] {
            var b = Array(b.dropLast(8))
            withUnsafeBytes(of: TrainingCheckpoint.fnv1a(b[...]).littleEndian) { b += $0 }
            return b
        }
        try expectError(Array("hello".utf8), "not a quantwb training checkpoint")
        try expectError(Array(good.prefix(good.count / 2)), "checksum")
        var flipped = good; flipped[200] ^= 1
        try expectError(flipped, "checksum")
        // A valid seal around a bad header value: the step field (after magic, version, 8 sizes, 2 flags, 2 f64, seed).
        let stepOffset = 8 + 4 + 8 * 4 + 2 + 16 + 8
        var beyond = good; beyond[stepOffset] = 200
        try expectError(resealed(beyond), "beyond")
        var hugeName = good
        let paramCountOffset = stepOffset + 8 + 8 + 4 + "scaled".utf8.count
        hugeName[paramCountOffset + 4 + 3] = 0x7f   // first parameter name length ≈ 2³¹
        try expectError(resealed(hugeName), "name length")
        var other = s; other.seed = 8
        try expectError(good, "seed", settings: other)
        // The good file restores.
        try Data(good).write(to: URL(fileURLWithPath: path))
        let fresh = try TrainingRun(name: "c", settings: s, quantizer: ScaledQuantizer(), quantizerName: "scaled")
        try fresh.restore(from: path)
        XCTAssertEqual(fresh.step, 2)
        XCTAssertEqual(fresh.model.parameters.all.map { $0.value }, run.model.parameters.all.map { $0.value })
    }
}
