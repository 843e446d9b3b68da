import XCTest
import QuantCore
import QuantKernels
import TrainingQuantization
@testable import Training

/// A test layer with one learned scalar: `Y = a·X·Wᵀ` (its gradient `Σ G ⊙ X·Wᵀ`) and a state
/// entry counting forwards — exercises the optimizer's scalar path and the checkpoint's
/// `scalars`/`state`.
final class ScaledLinear: TrainingLinear {
    let id: LinearID
    let inner: FloatLinear
    var scalars: [Float] = [1]
    private var grad: Float = 0
    var scalarGradients: [Float] { [grad] }
    var state: [String: Int] = ["forwards": 0]
    var timing: LinearTiming { inner.timing }
    private var y0 = Matrix(zeros: 0, 0)
    init(id: LinearID) { self.id = id; inner = FloatLinear(id: id) }
    func zeroScalarGradients() { grad = 0 }
    func forward(x: Matrix, w: Matrix, step: Int) -> Matrix {
        state["forwards", default: 0] += 1
        y0 = inner.forward(x: x, w: w, step: step)
        var y = y0
        for i in 0..<y.data.count { y.data[i] *= scalars[0] }
        return y
    }
    func backward(g: Matrix, step: Int) -> (dx: Matrix, dw: Matrix) {
        var s: Float = 0
        for i in 0..<g.data.count { s += g.data[i] * y0.data[i] }
        grad += s
        var gs = g
        for i in 0..<gs.data.count { gs.data[i] *= scalars[0] }
        return inner.backward(g: gs, step: step)
    }
}

final class ScaledQuantizer: TrainingQuantizer {
    static let name = "scaled"
    static let summary = "test: f32 with a learned output scale"
    static let options: [OptionSpec] = []
    init(options: MethodOptions) throws {}
    init() {}
    var planDescription: String { "f32 with a learned scale" }
    func makeLinear(id: LinearID, inFeatures: Int, outFeatures: Int, seed: UInt64) throws -> any TrainingLinear { ScaledLinear(id: id) }
}

final class TrainingRunTests: XCTestCase {
    /// A text with structure a tiny model can learn quickly: sentences from a small seeded grammar.
    static func syntheticText(bytes: Int, seed: UInt64) -> String {
        var g = SeededGenerator(seed: seed)
        let subjects = ["the cat", "a dog", "my friend", "the old man", "every bird"]
        let verbs = ["sees", "likes", "follows", "eats", "finds"]
        let objects = ["the red ball", "a small fish", "the river", "some bread", "the moon"]
        var s = ""
        while s.utf8.count < bytes {
            s += subjects[Int(g.next() % 5)] + " " + verbs[Int(g.next() % 5)] + " " + objects[Int(g.next() % 5)] + ". "
        }
        return s
    }

    static func folder() -> String {
        let dir = NSTemporaryDirectory() + "qwb-train-\(UUID().uuidString)"
        try! FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    static func settings(dir: String, steps: Int) -> TrainingSettings {
        try! syntheticText(bytes: 40_000, seed: 1).write(toFile: dir + "/train.txt", atomically: true, encoding: .utf8)
        try! syntheticText(bytes: 8_000, seed: 2).write(toFile: dir + "/valid.txt", atomically: true, encoding: .utf8)
        var s = TrainingSettings(model: .scratch(ModelShape(layers: 2, hidden: 32, heads: 2, kvHeads: 1, ffn: 64, context: 32, tied: false)),
                                 trainText: dir + "/train.txt", validationText: dir + "/valid.txt", steps: steps, batchSize: 8,
                                 seqLen: 32, learningRate: 1e-2, warmup: 10, minLearningRate: 1e-3, validateEvery: 20, validationWindows: 8)
        s.seed = 7
        s.output = dir + "/out"
        return s
    }

    /// A few seconds of training take the validation loss clearly below the unigram baseline.
    func testTinyRunBeatsUnigram() throws {
        let dir = Self.folder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let run = try TrainingRun(name: "tiny", settings: Self.settings(dir: dir, steps: 80), quantizer: FloatQuantizer(), quantizerName: "f32")
        let summary = try run.run()
        let first = try XCTUnwrap(summary.steps.first).loss, last = try XCTUnwrap(summary.finalValidation)
        XCTAssertEqual(first, log(256), accuracy: 0.1, "a fresh model is near uniform over bytes")
        XCTAssertLessThan(last.floatLoss, summary.unigramLoss - 0.5, "validation \(last.floatLoss) vs unigram \(summary.unigramLoss)")
        XCTAssertEqual(last.quantizedLoss, last.floatLoss, "with f32 layers both forwards are the same")
        let csv = try String(contentsOfFile: dir + "/out/curve.csv", encoding: .utf8)
        XCTAssertEqual(csv.split(separator: "\n").count, 82, "header, step 0 (before training), 80 steps")
        XCTAssertEqual(summary.validations.first?.floatLoss ?? 0, log(256), accuracy: 0.1)
    }

    /// Checkpoint at step k, resume in a new run → the same curve, bit for bit, as one uninterrupted run.
    func testResumeIsBitIdentical() throws {
        let k = 6
        let dirA = Self.folder(), dirB = Self.folder()
        defer { try? FileManager.default.removeItem(atPath: dirA); try? FileManager.default.removeItem(atPath: dirB) }
        var sa = Self.settings(dir: dirA, steps: 2 * k); sa.validateEvery = 4
        let fullRun = try TrainingRun(name: "a", settings: sa, quantizer: ScaledQuantizer(), quantizerName: "scaled")
        let full = try fullRun.run()
        var sb = Self.settings(dir: dirB, steps: 2 * k); sb.validateEvery = 4; sb.checkpointEvery = k
        // The first process stops right after its checkpoint at k (as if killed).
        let first = try TrainingRun(name: "b", settings: sb, quantizer: ScaledQuantizer(), quantizerName: "scaled")
        _ = first.validateBeforeTraining()
        for _ in 0..<k { _ = first.trainStep(); if first.step % 4 == 0 { _ = first.validate() } }
        try first.saveCheckpoint(to: try XCTUnwrap(first.checkpointPath))
        XCTAssertNotEqual((first.layers[0] as! ScaledLinear).scalars, [1], "the learned scalar moved")
        let resumed = try TrainingRun(name: "b", settings: sb, quantizer: ScaledQuantizer(), quantizerName: "scaled")
        let second = try resumed.run(resume: true)
        XCTAssertEqual(second.resumedFrom, k)
        XCTAssertEqual(second.steps.map { $0.loss.bitPattern }, full.steps.map { $0.loss.bitPattern })
        XCTAssertEqual(second.steps.map { $0.gradNorm.bitPattern }, full.steps.map { $0.gradNorm.bitPattern })
        XCTAssertEqual(second.validations, full.validations)
        XCTAssertEqual(resumed.model.parameters.all.map { $0.value }, fullRun.model.parameters.all.map { $0.value })
        XCTAssertEqual(resumed.layers.map { $0.scalars }, fullRun.layers.map { $0.scalars })
        XCTAssertEqual(resumed.layers.map { $0.state }, fullRun.layers.map { $0.state })
        XCTAssertEqual(resumed.curveCSV().split(separator: "\n").map { $0.split(separator: ",")[2] },
                       fullRun.curveCSV().split(separator: "\n").map { $0.split(separator: ",")[2] })
    }

    /// Whole training steps (forward, backward, clipping, AdamW, validation) give the same bits on
    /// 1 and 3 threads, at a size where every parallel loop splits.
    func testRunIsBitIdenticalOnAnyThreadCount() throws {
        let saved = Parallel.threadCount
        defer { Parallel.threadCount = saved }
        var curves: [[UInt64]] = [], weights: [[[Float]]] = []
        for threads in [1, 3] {
            Parallel.threadCount = threads
            let dir = Self.folder()
            defer { try? FileManager.default.removeItem(atPath: dir) }
            var s = Self.settings(dir: dir, steps: 3)
            s.model = .scratch(ModelShape(layers: 2, hidden: 64, heads: 4, kvHeads: 2, ffn: 96, context: 32))
            s.batchSize = 16; s.validateEvery = 3; s.output = nil
            let run = try TrainingRun(name: "t", settings: s, quantizer: FloatQuantizer(), quantizerName: "f32")
            let summary = try run.run()
            curves.append(summary.steps.flatMap { [$0.loss.bitPattern, $0.gradNorm.bitPattern] } + summary.validations.map { $0.floatLoss.bitPattern })
            weights.append(run.model.parameters.all.map { $0.value })
        }
        XCTAssertEqual(curves[0], curves[1])
        XCTAssertEqual(weights[0], weights[1])
    }
}
