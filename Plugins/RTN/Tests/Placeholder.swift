import XCTest
final class RTNPlaceholderTests: XCTestCase { func testBuilds() {} }
