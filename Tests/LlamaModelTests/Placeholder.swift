import XCTest
final class LlamaModelPlaceholderTests: XCTestCase { func testBuilds() {} }
