import XCTest
import QuantCore
import TestSupport

/// The integer engine and the simulated (quantize-dequantize) engine compute the same function.
final class ExecutionEngineTests: XCTestCase {
    override func tearDown() { ExecutionEngine.current = .integer }

    func site(weights: WeightScheme, activations: ActivationScheme) -> Site {
        let members = [Linear(name: "a", weight: randomMatrix(40, 96, seed: 1), bias: (0..<40).map { Float($0) / 10 }),
                       Linear(name: "b", weight: randomMatrix(24, 96, seed: 2))]
        let s = Site(name: "layers.0.gate_up", kind: .gateUp, block: 0, linears: members, activationScheme: activations)
        for l in members { l.scheme = weights; l.quantized = .roundToNearest(l.weight, scheme: weights) }
        return s
    }

    /// A NaN or ±inf in one token's activations makes that token's outputs NaN on both engines
    /// (never finite codes from a dropped NaN, never a trap); the other tokens are unchanged.
    func testNonFiniteActivationsPoisonTheirRowOnBothEngines() {
        for bad in [Float.nan, .infinity, -.infinity] {
            for cols in [96, 99] {  // 99: the scalar tail of the kernels runs too
                let members = [Linear(name: "a", weight: randomMatrix(16, cols, seed: 1))]
                let s = Site(name: "layers.0.o", kind: .o, block: 0, linears: members, activationScheme: ActivationScheme(bits: 8))
                members[0].scheme = WeightScheme(bits: 8); members[0].quantized = .roundToNearest(members[0].weight, scheme: WeightScheme(bits: 8))
                var x = randomMatrix(5, cols, seed: 3)
                for engine in [ExecutionEngine.integer, .simulated] {
                    ExecutionEngine.current = engine
                    let clean = s.forward(x, mode: .quantized)[0]
                    x[2, cols - 1] = bad
                    let y = s.forward(x, mode: .quantized)[0]
                    x[2, cols - 1] = 0.5
                    for r in 0..<5 {
                        for c in 0..<16 {
                            if r == 2 { XCTAssertTrue(y[r, c].isNaN, "\(engine) \(bad) cols \(cols): row 2 must be NaN") }
                            else { XCTAssertEqual(y[r, c], clean[r, c], "\(engine) \(bad): row \(r) changed") }
                        }
                    }
                }
            }
        }
    }

    func testIntegerAndSimulatedAgree() {
        let x = randomMatrix(37, 96, seed: 3)
        for (w, a) in [(WeightScheme(bits: 8), ActivationScheme(bits: 8)),
                       (WeightScheme(bits: 4), ActivationScheme(bits: 4, symmetric: true)),
                       (WeightScheme(bits: 4, granularity: .group(32), symmetric: false, clip: 0.8), ActivationScheme(bits: 4, clip: 0.9)),
                       (WeightScheme(bits: 6, symmetric: false), ActivationScheme(bits: 6))] {
            let s = site(weights: w, activations: a)
            ExecutionEngine.current = .integer
            let int = s.forward(x, mode: .quantized)
            ExecutionEngine.current = .simulated
            let sim = s.forward(x, mode: .quantized)
            for (i, f) in zip(int, sim) { XCTAssertLessThan(i.relativeError(to: f), 1e-5, "\(w) / \(a)") }
        }
    }

    /// Weight-only sites (`.quantizedWeights`, or `.quantized` with float activations) run on
    /// WeightOnlyGemm from the packed weights on the integer engine: equal to the simulated path up
    /// to f32 summation order, and bit for bit for more than 4 tokens (the same f32 GEMM runs on the
    /// same dequantized values).
    func testWeightOnlyIntegerAndSimulatedAgree() {
        for (w, mode) in [(WeightScheme(bits: 8), ExecutionMode.quantizedWeights),
                          (WeightScheme(bits: 4), .quantized),
                          (WeightScheme(bits: 4, granularity: .group(32), symmetric: false, clip: 0.8), .quantizedWeights),
                          (WeightScheme(bits: 6, symmetric: false), .quantized)] {
            let s = site(weights: w, activations: ActivationScheme())
            for tokens in [1, 3, 37] {
                let x = randomMatrix(tokens, 96, seed: 5)
                ExecutionEngine.current = .integer
                let int = s.forward(x, mode: mode)
                ExecutionEngine.current = .simulated
                let sim = s.forward(x, mode: mode)
                for (i, f) in zip(int, sim) {
                    XCTAssertLessThan(i.relativeError(to: f), 1e-5, "\(w) \(mode) tokens \(tokens)")
                    if tokens > 4 { XCTAssertEqual(i, f, "\(w) \(mode) tokens \(tokens)") }
                }
                // Float mode ignores the quantized weights on both engines.
                ExecutionEngine.current = .integer
                XCTAssertEqual(s.forward(x, mode: .float)[0], x.timesTransposed(s.linears[0].weight, bias: s.linears[0].bias))
            }
        }
    }

    /// `Linear.multiply` (for layers outside a site, such as lm_head) picks the same paths.
    func testLinearMultiplyMatchesEffectiveWeight() {
        let l = Linear(name: "lm_head", weight: randomMatrix(70, 64, seed: 6))
        let x = randomMatrix(2, 64, seed: 7)
        XCTAssertEqual(l.multiply(x, quantized: true), x.timesTransposed(l.weight))   // not quantized: float weights
        l.quantized = .roundToNearest(l.weight, scheme: WeightScheme(bits: 4, granularity: .group(32)))
        ExecutionEngine.current = .integer
        let int = l.multiply(x, quantized: true)
        XCTAssertLessThan(int.relativeError(to: x.timesTransposed(l.effectiveWeight(quantized: true))), 1e-5)
        XCTAssertGreaterThan(int.relativeError(to: x.timesTransposed(l.weight)), 1e-3, "the quantized weights are used")
        ExecutionEngine.current = .simulated
        XCTAssertEqual(l.multiply(x, quantized: true), x.timesTransposed(l.effectiveWeight(quantized: true)))
        XCTAssertEqual(l.multiply(x, quantized: false), x.timesTransposed(l.weight))
    }

    func testIneligibleSchemesFallBackToSimulation() {
        // Per-tensor activations cannot use per-token integer quantization: the result must equal simulation.
        let x = randomMatrix(5, 96, seed: 4)
        let s = site(weights: WeightScheme(bits: 4), activations: ActivationScheme(bits: 8, granularity: .tensor))
        ExecutionEngine.current = .integer
        let a = s.forward(x, mode: .quantized)
        ExecutionEngine.current = .simulated
        XCTAssertEqual(a, s.forward(x, mode: .quantized))
    }
}
