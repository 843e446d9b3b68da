import Foundation
import XCTest
import QuantCore
import LlamaModel
import RTN
import TestSupport

// The README's method tutorial, compiled and tested here; `testTheReadmeShowsThisCode` keeps the
// two identical. BEGIN TUTORIAL
/// Per layer, try clip ratios c ∈ {1, 0.95, …, min_clip} and keep the RTN result with the
/// smallest output error ‖X·Ŵᵀ − X·Wᵀ‖ on the calibration inputs.
public final class ClipSearch: QuantMethod {
    public static let name = "clipsearch"
    public static let summary = "RTN with a per-layer clip ratio searched on calibration data"
    public static let options: [OptionSpec] = [
        OptionSpec("min_clip", .double(0.5...1), default: .double(0.7), "smallest clip ratio tried"),
    ]
    public static let role = MethodRole.weightQuantizer  // runs after every transform of a site
    let minClip: Double
    public init(options: MethodOptions) throws { minClip = try options.double("min_clip") }

    public var needs: CalibrationNeeds { .inputs }

    public func plan(site: Site, config: DecoderConfig) throws -> SitePlan {
        SitePlan(weights: "RTN, clip searched in [\(minClip), 1]")
    }

    public func apply(to site: Site, calibration: SiteCalibration?, context: MethodContext) throws {
        let x = calibration!.inputs
        for l in site.linears where l.scheme.isQuantized {
            let reference = x.timesTransposed(l.weight)
            var best: (Double, QuantizedWeight)?
            for c in stride(from: 1.0, through: minClip, by: -0.05) {
                var s = l.scheme; s.clip = c
                let q = QuantizedWeight.roundToNearest(l.weight, scheme: s, producedBy: Self.name)
                let e = x.timesTransposed(q.dequantized()).relativeError(to: reference)
                if best == nil || e < best!.0 { best = (e, q) }
            }
            l.quantized = best!.1
        }
    }
}
// END TUTORIAL

final class TutorialTests: XCTestCase {
    func testTheReadmeShowsThisCode() throws {
        let here = URL(fileURLWithPath: #filePath)
        let readme = try String(contentsOf: here.deletingLastPathComponent().appendingPathComponent("../../../README.md").standardized, encoding: .utf8)
        let source = try String(contentsOf: here, encoding: .utf8)
        let start = try XCTUnwrap(readme.range(of: "1. `Plugins/ClipSearch/ClipSearch.swift`:"))
        let fence = try XCTUnwrap(readme.range(of: "```swift\nimport QuantCore\n\n", range: start.upperBound..<readme.endIndex))
        let end = try XCTUnwrap(readme.range(of: "```", range: fence.upperBound..<readme.endIndex))
        let begin = try XCTUnwrap(source.range(of: "BEGIN TUTORIAL\n"))
        let stop = try XCTUnwrap(source.range(of: "// END TUTORIAL"))
        XCTAssertEqual(String(readme[fence.upperBound..<end.lowerBound]), String(source[begin.upperBound..<stop.lowerBound]))
    }

    /// Clip 1 is plain RTN, so with the same (float-model) inputs every site's error is at most RTN's.
    func testClipSearchIsNeverWorseThanRTN() throws {
        func run(_ method: any QuantMethod) throws -> [SiteReport] {
            let model = SyntheticModel.make(seed: 0)
            _ = try model.assignSchemes(QuantScheme(weights: WeightScheme(bits: 3), activations: ActivationScheme(bits: 16)), overrides: [])
            let cal = SyntheticModel.tokens(seed: 1, windows: 2, length: 32)
            return try Pipeline(methods: [method], propagation: .floatModel).run(model: model, calibration: cal, runner: LlamaForward()).sites
        }
        let searched = try run(try ClipSearch(options: MethodOptions(defaultsOf: ClipSearch.options)))
        let rtn = try run(try RTN(options: MethodOptions([:])))
        XCTAssertEqual(searched.count, rtn.count)
        var better = 0
        for (s, r) in zip(searched, rtn) {
            XCTAssertLessThanOrEqual(s.relativeOutputError, r.relativeOutputError * (1 + 1e-6), s.site)
            if s.relativeOutputError < r.relativeOutputError * 0.99 { better += 1 }
        }
        XCTAssertGreaterThan(better, 0, "a searched clip should help somewhere at 3 bits")
    }
}
