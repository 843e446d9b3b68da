import XCTest
import QuantCore
import Recipes
import Reporting
import RTN
@testable import Runs

/// The quickstart's output folder, and its report.html checked statically and in a real browser.
final class HTMLReportTests: XCTestCase {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..").standardized

    /// One quickstart run shared by the tests of this class.
    nonisolated(unsafe) static var cached: (RunReport, String)?
    func quickstartFolder() throws -> (RunReport, String) {
        if let c = Self.cached { return c }
        let recipe = try Recipe.load(path: Self.repo.appendingPathComponent("recipes/quickstart.yaml").path, registry: MethodRegistry([RTN.self]))
        let report = try RecipeRunner(recipe: recipe).run()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("qwb-html-\(getpid())").path
        try RunOutput.write(report, to: dir)
        Self.cached = (report, dir)
        return (report, dir)
    }

    func testTheOutputFolderHoldsEveryFile() throws {
        let (report, dir) = try quickstartFolder()
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir).sorted(), RunOutput.files.sorted())
        let csv = try String(contentsOfFile: dir + "/sites.csv", encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(csv.count, 1 + report.variants.count * 16)   // header + 5 variants × 16 sites
        XCTAssertTrue(csv[1].hasPrefix("RTN W8A8,layers.0.qkv,"), String(csv[1]))
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/results.json"))) as! [String: Any]
        let manifest = json["manifest"] as! [String: Any]
        XCTAssertEqual((manifest["tokenStreamSHA256"] as! String).count, 64)
        XCTAssertNotNil((manifest["tool"] as! [String: Any])["commit"])
        XCTAssertEqual((json["resolvedRecipe"] as! [String: Any])["seed"] as? Int, 0)
        // The default profiled sites: the first and the last down site, per variant.
        let profiled = report.variants.flatMap { v in v.sites.filter { $0.profile != nil }.map(\.site) }
        XCTAssertEqual(Set(profiled), ["layers.0.down", "layers.3.down"])
    }

    /// Loads nothing: a CSP that forbids every fetch, and no reference to anything outside the file.
    func testTheReportIsSelfContained() throws {
        let (_, dir) = try quickstartFolder()
        let html = try String(contentsOfFile: dir + "/report.html", encoding: .utf8)
        XCTAssertTrue(html.contains("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'"))
        for pattern in ["src=", "href=", "url(", "<script", "@import"] {
            XCTAssertFalse(html.lowercased().contains(pattern), "report.html contains \(pattern)")
        }
    }

    func chromium() -> String? {
        for name in ["chromium", "chromium-browser", "google-chrome"] {
            for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin").split(separator: ":") {
                let p = "\(dir)/\(name)"
                if FileManager.default.isExecutableFile(atPath: p) { return p }
            }
        }
        return nil
    }

    func runBrowser(_ exe: String, _ args: [String]) throws -> Data {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: exe)
        p.arguments = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--user-data-dir=\(NSTemporaryDirectory())qwb-chromium-\(getpid())"] + args
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return data
    }

    /// Renders the page in headless Chromium: every variant is in the table, every chart has drawn
    /// paths, and the screenshot is far from blank.
    func testTheReportRendersInAHeadlessBrowser() throws {
        guard let exe = chromium() else {
            throw XCTSkip("skipped: no headless Chromium on this machine (Debian: apt-get install chromium; .ci/run installs it)")
        }
        let (report, dir) = try quickstartFolder()
        let url = URL(fileURLWithPath: dir + "/report.html").absoluteString
        let dom = String(decoding: try runBrowser(exe, ["--dump-dom", url]), as: UTF8.self)
        XCTAssertTrue(dom.contains("<svg"), "the browser produced no SVG: \(dom.prefix(300))")
        for v in report.variants { XCTAssertTrue(dom.contains("<td>\(v.name)</td>"), "variant \(v.name) missing from the rendered table") }
        let paths = dom.components(separatedBy: "<path class=\"series\"").dropFirst()
        XCTAssertGreaterThanOrEqual(paths.count, 4 * report.variants.count)   // the per-site charts alone
        for p in paths {
            let d = p.components(separatedBy: " d=\"").dropFirst().first?.prefix { $0 != "\"" } ?? ""
            XCTAssertTrue(d.hasPrefix("M") && d.contains("L"), "an empty chart path: \(p.prefix(120))")
        }
        // Screenshot: the report against an empty page of the same size.
        let shot = dir + "/shot.png", blankHTML = dir + "/blank.html", blankShot = dir + "/blank.png"
        try "<!DOCTYPE html><html><body></body></html>".write(toFile: blankHTML, atomically: true, encoding: .utf8)
        _ = try runBrowser(exe, ["--window-size=1200,1600", "--screenshot=\(shot)", url])
        _ = try runBrowser(exe, ["--window-size=1200,1600", "--screenshot=\(blankShot)", URL(fileURLWithPath: blankHTML).absoluteString])
        defer { for f in [shot, blankHTML, blankShot] { try? FileManager.default.removeItem(atPath: f) } }
        let png = try Data(contentsOf: URL(fileURLWithPath: shot)), blank = try Data(contentsOf: URL(fileURLWithPath: blankShot))
        XCTAssertEqual(Array(png.prefix(4)), [0x89, 0x50, 0x4E, 0x47], "not a PNG")
        // A blank page compresses to almost nothing; tables and charts do not.
        XCTAssertGreaterThan(png.count, 10 * blank.count, "screenshot \(png.count) bytes vs blank \(blank.count)")
    }
}
