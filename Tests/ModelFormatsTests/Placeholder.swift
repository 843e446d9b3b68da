import XCTest
final class ModelFormatsPlaceholderTests: XCTestCase { func testBuilds() {} }
