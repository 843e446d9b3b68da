import XCTest
final class QuantCorePlaceholderTests: XCTestCase { func testBuilds() {} }
