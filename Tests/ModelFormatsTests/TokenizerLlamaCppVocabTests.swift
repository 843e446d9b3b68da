import Foundation
import XCTest
@testable import ModelFormats

/// Opt-in: llama.cpp's own tokenizer test vectors. Point `QUANTWB_LLAMA_CPP_VOCABS` at a folder
/// holding llama.cpp's `models/ggml-vocab-*.gguf` files with their `.gguf.inp` / `.gguf.out`
/// companions (inputs separated by `\n__ggml_vocab_test__\n`; one line of ids per input, encoded
/// without BOS and without parsing special tokens). Vocabularies whose tokenizer type or
/// pre-tokenizer is not supported are reported and skipped.
final class TokenizerLlamaCppVocabTests: XCTestCase {
    func testLlamaCppVocabTestVectors() throws {
        guard let dir = ProcessInfo.processInfo.environment["QUANTWB_LLAMA_CPP_VOCABS"] else {
            throw XCTSkip("set QUANTWB_LLAMA_CPP_VOCABS to a folder of llama.cpp ggml-vocab-*.gguf test files")
        }
        let fm = FileManager.default
        let files = try fm.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".gguf") }.sorted()
        var checkedVocabs = 0
        for file in files {
            let base = URL(fileURLWithPath: dir).appendingPathComponent(file)
            let inp = base.appendingPathExtension("inp"), out = base.appendingPathExtension("out")
            guard fm.fileExists(atPath: inp.path), fm.fileExists(atPath: out.path) else { continue }
            let gguf = try TokenizerGGUFTestReader(url: base)
            let tokenizer: TextTokenizer
            do {
                tokenizer = try gguf.makeTokenizer()
            } catch {
                print("\(file): skipped (\(error))")
                continue
            }
            let inputText = try String(contentsOf: inp, encoding: .utf8)
            var inputs = inputText.components(separatedBy: "\n__ggml_vocab_test__\n")
            if inputs.last == "" { inputs.removeLast() }
            let lines = try String(contentsOf: out, encoding: .utf8).components(separatedBy: "\n")
            XCTAssertGreaterThanOrEqual(lines.count, inputs.count, file)
            var failures = 0
            for (i, text) in inputs.enumerated() {
                let expected = lines[i].split(separator: " ").map { Int($0)! }
                let got = tokenizer.encode(text, parseSpecial: false, addBOS: false)
                if got != expected {
                    failures += 1
                    XCTFail("\(file) input \(i) \(text.debugDescription): got \(got) expected \(expected)")
                }
            }
            print("\(file): \(inputs.count - failures)/\(inputs.count) inputs match")
            // speed and round trip on the whole of wiki.test.raw
            if let wiki = try? Data(contentsOf: TokenizerTestPaths.wikiTest) {
                let bytes = [UInt8](wiki)
                let start = Date()
                let ids = tokenizer.encode(bytes: bytes, parseSpecial: false, addBOS: false)
                let seconds = Date().timeIntervalSince(start)
                print("\(file): wiki.test.raw -> \(ids.count) ids in \(String(format: "%.3f", seconds)) s")
                XCTAssertTrue(tokenizer.decodeBytes(ids) == bytes, "\(file): round trip of wiki.test.raw")
            }
            checkedVocabs += 1
        }
        XCTAssertGreaterThan(checkedVocabs, 0)
    }
}
