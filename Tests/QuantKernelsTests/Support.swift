import XCTest
@testable import QuantKernels

/// Deterministic xorshift generator so failures reproduce.
struct TestRNG {
    var state: UInt64
    init(_ seed: UInt64) { state = seed &* 0x9E3779B97F4A7C15 | 1 }
    mutating func next() -> UInt64 { state ^= state << 13; state ^= state >> 7; state ^= state << 17; return state }
    mutating func float(_ lo: Float = -1, _ hi: Float = 1) -> Float { lo + (hi - lo) * Float(next() >> 40) / Float(1 << 24) }
    mutating func int(_ range: ClosedRange<Int>) -> Int { range.lowerBound + Int(next() % UInt64(range.count)) }
    mutating func floats(_ n: Int, _ lo: Float = -1, _ hi: Float = 1) -> [Float] { (0..<n).map { _ in float(lo, hi) } }
}

/// Runs `body` once per available kernel path (portable always included).
func forEachPath(_ body: (KernelPath) throws -> Void) rethrows {
    for p in KernelDispatch.available { try KernelDispatch.with(p) { try body(p) } }
}

func assertClose(_ a: [Float], _ b: [Float], tol: Float, _ msg: @autoclosure () -> String = "", file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(a.count, b.count, msg(), file: file, line: line)
    var worst: Float = 0
    for i in 0..<min(a.count, b.count) { worst = max(worst, abs(a[i] - b[i]) / max(1, abs(b[i]))) }
    XCTAssertLessThanOrEqual(worst, tol, msg(), file: file, line: line)
}
