import XCTest
final class QuantKernelsPlaceholderTests: XCTestCase { func testBuilds() {} }
