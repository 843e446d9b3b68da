import XCTest
@testable import Reporting

final class ReportingTests: XCTestCase {
    func testReportsAreWrittenAtomically() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("qwb-\(getpid())")
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("out/report.json").path
        try writeAtomically("one", to: path)
        try writeAtomically("two", to: path)
        XCTAssertEqual(String(data: FileManager.default.contents(atPath: path)!, encoding: .utf8), "two")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.appendingPathComponent("out").path), ["report.json"])
    }

    func testAWriteIntoAFileInsteadOfAFolderIsAClearError() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("qwb-file-\(getpid())")
        try "x".write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }
        XCTAssertThrowsError(try writeAtomically("y", to: file.path + "/report.json")) { e in
            XCTAssertTrue(e is WriteError, "\(e)")
            XCTAssertTrue("\(e)".contains("report.json"), "\(e)")
        }
    }

    func testTableAlignsColumnsAndTrimsTrailingSpace() {
        var t = Table(["a", "bbb"])
        t.add(["xx", "y"])
        XCTAssertEqual(t.render(), "a   bbb\n--  ---\nxx  y\n")
    }

    func testDurations() {
        XCTAssertEqual(Format.duration(42.4), "42 s")
        XCTAssertEqual(Format.duration(185), "3 min 05 s")
        XCTAssertEqual(Format.duration(3720), "1 h 02 min")
        XCTAssertEqual(Format.duration(.nan), "?")
    }

    /// Not a terminal: a line when a task starts, then at most one per interval, and one at the end.
    func testPlainProgressLinesAreThrottled() {
        var now = 0.0, lines: [String] = []
        let d = ProgressDisplay(isTerminal: false, interval: 5, clock: { now }, write: { lines.append($0) })
        d.handle(.step(task: "eval", done: 0, total: 10, unit: "windows"))
        for i in 1...9 { now += 1; d.handle(.step(task: "eval", done: i, total: 10, unit: "windows")) }
        now += 1; d.handle(.step(task: "eval", done: 10, total: 10, unit: "windows"))
        XCTAssertEqual(lines.count, 3, "\(lines)")   // start, t = 5 (one interval later), end
        XCTAssertTrue(lines[1].contains("5/10 windows"), lines[1])
        XCTAssertTrue(lines[1].contains("1.0 windows/s"), lines[1])
        XCTAssertTrue(lines[1].contains("ETA 5 s"), lines[1])
        XCTAssertTrue(lines.last!.hasPrefix("· eval [########################] 10/10"), lines.last!)
        d.handle(.note("done"))
        XCTAssertEqual(lines.last, "· done\n")
    }

    /// On a terminal the bar is redrawn in place and a note starts on a fresh line.
    func testTerminalBarRedrawsInPlace() {
        var out = ""
        let d = ProgressDisplay(isTerminal: true, clock: { 0 }, write: { out += $0 })
        d.handle(.step(task: "q", done: 0, total: 2, unit: "blocks"))
        d.handle(.step(task: "q", done: 1, total: 2, unit: "blocks"))
        d.handle(.note("hello"))
        XCTAssertEqual(out.components(separatedBy: "\r\u{1B}[K").count, 3)
        XCTAssertTrue(out.hasSuffix("\n· hello\n"), out)
    }

    func testSlowRatesAreShownAsSecondsPerUnit() {
        let l = ProgressDisplay.line(task: "t", done: 1, total: 3, unit: "blocks", elapsed: 20)
        XCTAssertTrue(l.contains("20.0 s per block"), l)
        XCTAssertTrue(l.contains("ETA 40 s"), l)
    }
}
