import XCTest
import QuantCore
import Recipes
import RTN
@testable import Runs

/// Rerunning a recipe with one variant added or changed computes only that variant.
final class ResultCacheTests: XCTestCase {
    let registry = MethodRegistry([RTN.self])

    func recipe(_ variants: String) throws -> Recipe {
        try Recipe.parse(yaml: """
            calibration: {windows: 2, seq_len: 32}
            evaluation: {seq_len: 32, max_windows: 2}
            variants:
            \(variants)
            """, file: "cache.yaml", registry: registry)
    }

    func testAnAddedVariantIsTheOnlyOneComputed() throws {
        let dir = NSTemporaryDirectory() + "qwb-cache-\(getpid())-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let cache = ResultCache(folder: dir)
        let w4 = "  - {name: W4, scheme: {weights: {bits: 4}}, pipeline: [rtn]}"
        let w8 = "  - {name: W8, scheme: {weights: {bits: 8}}, pipeline: [rtn]}"
        let first = try RecipeRunner(recipe: try recipe(w4), cache: cache).run()
        XCTAssertEqual(first.reused, [])

        let second = try RecipeRunner(recipe: try recipe(w4 + "\n" + w8), cache: cache).run()
        XCTAssertEqual(second.reused, ["W4"])
        XCTAssertEqual(second.variants.map(\.name), ["W4", "W8"])
        XCTAssertEqual(second.nll[1], first.nll[1])   // the reused variant's tokens
        XCTAssertEqual(second.nll[0], first.nll[0])   // FP recomputed, same numbers
        XCTAssertEqual(second.variants[0].scores?.perplexity, first.variants[0].scores?.perplexity)
        XCTAssertEqual(second.comparisons.count, 1)   // paired with the new variant from stored tokens

        // Nothing changed: everything reused, figures identical to a fresh computation.
        let third = try RecipeRunner(recipe: try recipe(w4 + "\n" + w8), cache: cache).run()
        XCTAssertEqual(Set(third.reused), ["W4", "W8", "FP"])
        XCTAssertEqual(third.nll, second.nll)
        var fresh = RecipeRunner(recipe: try recipe(w4 + "\n" + w8), cache: cache)
        fresh.reuseCached = false
        let recomputed = try fresh.run()
        XCTAssertEqual(recomputed.reused, [])
        XCTAssertEqual(recomputed.nll, third.nll)
        XCTAssertEqual(recomputed.comparisons.map(\.deltaNLL), third.comparisons.map(\.deltaNLL))

        // A changed option is a new key; a renamed variant is not.
        let changed = try RecipeRunner(recipe: try recipe("  - {name: W4, scheme: {weights: {bits: 4, symmetric: false}}, pipeline: [rtn]}"), cache: cache).run()
        XCTAssertEqual(changed.reused, [])
        let renamed = try RecipeRunner(recipe: try recipe("  - {name: four-bit, scheme: {weights: {bits: 4}}, pipeline: [rtn]}"), cache: cache).run()
        XCTAssertEqual(renamed.reused, ["four-bit", "FP"])
        XCTAssertEqual(renamed.variants[0].name, "four-bit")
    }
}
