import XCTest
import QuantCore
import QuantKernels
import Recipes
import Reporting
import RTN
import DuQuant
import LlamaModel
@testable import Benchmarks

/// `bench model` on the synthetic model: the accounting behind the bounds, and a quick run.
final class ModelBenchmarkTests: XCTestCase {
    let registry = MethodRegistry([RTN.self, DuQuant.self])

    func recipe() throws -> Recipe {
        try Recipe.parse(yaml: """
            calibration: {windows: 2, seq_len: 32}
            evaluation: {seq_len: 32, max_windows: 2}
            variants:
              - name: w8a8
                scheme: {weights: {bits: 8}, activations: {bits: 8}}
                pipeline: [rtn]
              - name: w8a8 head8
                scheme: {weights: {bits: 8}, activations: {bits: 8}}
                pipeline: [rtn]
                overrides:
                  - {pattern: lm_head, weights: {bits: 8}, activations: {bits: 8}}
              - name: w4a16
                scheme: {weights: {bits: 4, granularity: {group: 32}}}
                pipeline: [rtn]
              - name: duquant
                scheme: {weights: {bits: 4}, activations: {bits: 4}}
                pipeline: [{duquant: {block_size: 16}}, rtn]
            """, file: "bench.yaml", registry: registry)
    }

    /// The FLOPs behind the prefill bound, counted here independently from the model's shapes.
    func testWorkCountsEveryGEMMAndCausalAttention() {
        let model = SyntheticModel.make(seed: 0)
        let c = model.config, L = 32
        let w = ModelBenchmark.Work.of(model, mode: .float, windowLength: L)
        let blockParams = model.allSites.flatMap(\.linears).reduce(0) { $0 + $1.weight.data.count }
        let expected = Double(L) * 2 * Double(blockParams + c.vocabSize * c.hiddenSize)
            + Double(c.layerCount * c.headCount) * 2 * Double(c.headDim) * Double(L * (L + 1))   // QKᵀ + PV, causal
        XCTAssertEqual(w.flops.reduce(0) { $0 + $1.flops }, expected, accuracy: expected * 1e-12)
        XCTAssertTrue(w.flops.allSatisfy { $0.kind == .f32 })
        XCTAssertEqual(w.weightBytesReadPerToken, 4 * (blockParams + c.vocabSize * c.hiddenSize + c.hiddenSize))
    }

    func testQuickRunReportsEveryVariantAgainstItsBounds() throws {
        var s = ModelBenchmark.Settings()
        s.windows = 2; s.promptTokens = 16; s.decodeTokens = 4; s.profile = true; s.quick = true; s.rounds = 3
        let events = EventLog()
        let report = try ModelBenchmark(settings: s).run(recipe: try recipe(), progress: { events.append($0) })
        XCTAssertEqual(report.rows.map(\.name), ["FP", "w8a8", "w8a8 head8", "w4a16", "duquant"])
        XCTAssertEqual(report.rounds, 3)
        // The timing rounds and profile passes report steps (a display shows their rate and ETA):
        // from 0 to 3 rounds × 5 models.
        for task in ["bench: 3 timing round(s)", "bench: 3 profile pass(es)"] {
            let steps = events.steps(task)
            XCTAssertEqual(steps.first, 0, task); XCTAssertEqual(steps.last, 15, task); XCTAssertEqual(steps, steps.sorted(), task)
        }
        // The profile: each model's median-wall pass of 3, the models interleaved.
        XCTAssertEqual(report.profilePasses, 3)
        XCTAssertTrue(report.text.contains("profile (each model's median pass of 3, the models interleaved)"))
        // The decode bounds use the median bandwidth measured (once before the rounds, then each later round).
        XCTAssertEqual(report.readBandwidthRangeGBs.count, 2)
        XCTAssertTrue(report.readBandwidthRangeGBs[0] <= report.readBandwidthGBs && report.readBandwidthGBs <= report.readBandwidthRangeGBs[1])
        // GEMM rates: one entry per (kind, shape), the best of the rounds.
        let keys = report.gemmRates.map { "\($0.kind) \($0.shape.m)×\($0.shape.k)×\($0.shape.n)" }
        XCTAssertEqual(Set(keys).count, keys.count, "a GEMM rate listed twice: \(keys)")
        XCTAssertTrue(report.gemmRates.allSatisfy { $0.rate > 0 })
        XCTAssertTrue(report.text.contains("GEMM rates: the best of the 3 rounds"))
        for r in report.rows {
            XCTAssertGreaterThan(r.prefillTokensPerSecond, 0, r.name)
            XCTAssertGreaterThan(r.decodeTokensPerSecond, 0, r.name)
            // The median round lies within the slowest and fastest rounds.
            for (rate, range) in [(r.prefillTokensPerSecond, r.prefillRange), (r.decodeTokensPerSecond, r.decodeRange)] {
                XCTAssertEqual(range.count, 2, r.name)
                XCTAssertTrue(range[0] <= rate && rate <= range[1], "\(r.name): \(rate) outside \(range)")
            }
            XCTAssertTrue(r.prefillBoundTokensPerSecond.isFinite && r.prefillBoundTokensPerSecond > 0, r.name)
            XCTAssertTrue(r.decodeBoundTokensPerSecond.isFinite && r.decodeBoundTokensPerSecond > 0, r.name)
            let components = Set(r.profile.map(\.component))
            for c in ["GEMM qkv", "GEMM down", "lm_head", "attention (QKᵀ, softmax, PV)", "RMSNorm", "RoPE", "log-softmax", "NLL/KL scoring"] {
                XCTAssertTrue(components.contains(c), "\(r.name): no \(c) in \(components)")
            }
            XCTAssertLessThanOrEqual(r.profile.reduce(0) { $0 + $1.seconds }, r.profileWallSecondsPerWindow! * 1.0001, r.name)
        }
        let fp = report.rows[0], w8 = report.rows[1], head8 = report.rows[2], w4 = report.rows[3], du = report.rows[4]
        XCTAssertEqual(fp.integerFLOPsShare, 0)
        XCTAssertGreaterThan(w8.integerFLOPsShare, 0.3, "W8A8 block linears run on the integer GEMM")
        XCTAssertGreaterThan(head8.integerFLOPsShare, w8.integerFLOPsShare + 0.05, "lm_head on the integer GEMM too")
        XCTAssertLessThan(head8.bytesReadPerToken, w8.bytesReadPerToken, "lm_head read as packed int8")
        XCTAssertGreaterThan(w4.integerFLOPsShare, 0.3, "weight-only sites run on the weight-only GEMM")
        XCTAssertLessThan(w4.bytesReadPerToken, w8.bytesReadPerToken, "packed int4 block weights")
        // Compacted: the variants hold only packed codes for their block linears.
        for r in [w8, head8, w4, du] {
            let wb = try XCTUnwrap(r.weightBytes)
            XCTAssertEqual(wb.blockLinearsFloat, 0, r.name)
            XCTAssertEqual(wb.blockLinears, wb.blockLinearsPacked, r.name)
        }
        XCTAssertLessThan(Double(w4.weightBytes!.blockLinears), 0.3 * Double(w4.weightBytes!.blockLinearsF32Equivalent))
        XCTAssertLessThan(head8.weightBytes!.lmHead, w8.weightBytes!.lmHead / 3, "lm_head packed int8")
        XCTAssertTrue(Set(w8.profile.map(\.component)).contains("activation quantization"))
        XCTAssertTrue(Set(du.profile.map(\.component)).contains("online transforms"))
        XCTAssertNotNil(du.onlineTransformBoundSeconds)
        XCTAssertLessThan(w8.bytesReadPerToken, fp.bytesReadPerToken, "packed int8 block weights are read instead of f32")
        XCTAssertGreaterThan(report.readBandwidthGBs, 0)
        XCTAssertTrue(report.text.contains("duquant"))
        XCTAssertNoThrow(try report.json())
    }

    /// Rounds that spread more than 25% flag the model in the text report; tight rounds do not.
    func testNoisyRoundsAreFlagged() {
        var report = ModelBenchmarkReport(threads: 2, kernelPath: "portable", cpu: "test", model: "m", windowLength: 8,
                                          prefillWindows: 1, promptTokens: 4, decodeTokens: 2)
        var quiet = ModelBenchmarkReport.Row(name: "quiet", scheme: "f32")
        quiet.prefillRange = [100, 110]; quiet.decodeRange = [10, 12]
        var busy = ModelBenchmarkReport.Row(name: "busy", scheme: "W4A4")
        busy.prefillRange = [100, 120]; busy.decodeRange = [10, 16]
        report.rows = [quiet, busy]
        let noisy = report.noisyRows()
        XCTAssertEqual(noisy.map(\.name), ["busy"])
        XCTAssertEqual(noisy.first?.what, "decode")
        XCTAssertEqual(noisy.first?.spread ?? 0, 1.6, accuracy: 1e-12)
        XCTAssertTrue(report.text.contains("warning: the host was not quiet"), report.text)
        XCTAssertTrue(report.text.contains("busy (decode 1.60×)"), report.text)
        report.rows = [quiet]
        XCTAssertFalse(report.text.contains("warning: the host was not quiet"))
    }

    func testMachineLimitsMeasureSomething() {
        XCTAssertGreaterThan(MachineLimits.readBandwidth(bytes: 8 << 20, threads: 1, passes: 2), 1e8)
        XCTAssertGreaterThan(MachineLimits.gemmRate(.integer(weightBits: 4, activationBits: 8), .init(m: 8, k: 64, n: 32), threads: 1, budget: 0.01), 0)
    }
}

/// Progress events collected from a run (the handler may be called from any thread).
private final class EventLog: @unchecked Sendable {
    private var events: [ProgressEvent] = []
    private let lock = NSLock()
    func append(_ e: ProgressEvent) { lock.lock(); events.append(e); lock.unlock() }
    /// The `done` counts of `task`'s steps, in order.
    func steps(_ task: String) -> [Int] {
        lock.lock(); defer { lock.unlock() }
        return events.compactMap { if case .step(task, let done, _, _, _) = $0 { return done } else { return nil } }
    }
}
