import Foundation
import XCTest
@testable import ModelFormats

/// `re:` targets of compressed-tensors configs: the linear-time matcher agrees with Foundation's
/// (backtracking) regular expressions on the syntax it supports, finishes on patterns that make
/// a backtracking engine exponential, and rejects the syntax it does not support.
final class ModulePatternTests: XCTestCase {
    let modules = ["model.layers.0.self_attn.q_proj", "model.layers.12.mlp.down_proj", "lm_head", "model.layers.3.mlp.gate_proj",
                   "model.layers.0.self_attn.o_proj", "", "a", "aaa", "ab{2}", "x-y", "model\nlayers", "módulo.ß.0"]
    let patterns = [".*q_proj", ".*q_proj$", "model\\.layers\\.\\d+\\.mlp\\..*", "model.layers.(0|12).*", "lm_head",
                    ".*self_attn\\.(q|k|v)_proj$", "[a-z_.]+", "[^.]*", "[^.]*$", "\\w+\\.\\w+", "\\W", "\\S+\\s", "a{2}", "a{2,}",
                    "a{1,2}b", "a?a?a?aaa$", "(?:a|b)*$", "ab\\{2\\}", "x\\-y", "x[-]y", "[]a]", "^model", "^$",
                    "(a*)*$", "(|a)+$", ".*?proj", "model.layers.[0-9]{1,2}.mlp.(gate|up|down)_proj$", "m.dulo\\.\\w\\.0",
                    ".", "model.layers", "\\d", ".*\\d.*", "(a|ab)(c|bcd)?", "[\\d.]+"]

    func testAgreesWithFoundationRegularExpressions() throws {
        for p in patterns {
            let mine = try ModulePattern(p)
            let re = try NSRegularExpression(pattern: p)
            for m in modules {
                let expected = re.firstMatch(in: m, options: [.anchored], range: NSRange(m.startIndex..., in: m)) != nil
                XCTAssertEqual(mine.matchesPrefix(m), expected, "pattern \(p) on \(m.debugDescription)")
            }
        }
    }

    func testPathologicalPatternsAreLinear() throws {
        let name = "model.layers.10.self_attn.q_proj_with_a_long_suffix"
        for p in ["(.*)*z", "((.*)*)*z", "(.?){30}.{30}z", "(a|.|\\w)*z", "((((.*)*)*)*)*z", "(x+x+)+y"] {
            XCTAssertFalse(try ModulePattern(p).matchesPrefix(name), p)
        }
        XCTAssertTrue(try ModulePattern("(.*)*suffix").matchesPrefix(name))
    }

    /// Python's `{,n}` ("at most n") and a `{` that starts no count (a literal), which Foundation rejects.
    func testPythonCountSyntax() throws {
        let p = try ModulePattern("a{,2}$")
        XCTAssertEqual(["", "a", "aa", "aaa", "b"].map(p.matchesPrefix), [true, true, true, false, false])
        XCTAssertEqual(["ab{2", "abb", "ab{"].map(try ModulePattern("ab{2").matchesPrefix), [true, false, false])
    }

    func testUnsupportedOrMalformedPatternsAreErrors() {
        for (p, reason) in [("(?=a)", "not supported"), ("(?P<n>a)", "not supported"), ("\\1", "not supported"), ("\\b", "not supported"),
                            ("(a", "missing ')'"), ("a)", "unbalanced"), ("[a", "missing ']'"), ("*a", "nothing to repeat"),
                            ("a**", "multiple repeat"), ("a{3,2}", "below the minimum"), ("a{5000}", "over 1024"), ("\\", "lone backslash"),
                            ("[z-a]", "bad character range"), ("(((a{30}){30}){30})", "too complex"),
                            (String(repeating: "(", count: 100) + String(repeating: ")", count: 100), "nested deeper")] {
            XCTAssertThrowsError(try ModulePattern(p), p) { e in
                XCTAssertTrue((e as? ModulePattern.PatternError)?.reason.contains(reason) == true, "\(p): \(e)")
            }
        }
    }
}
