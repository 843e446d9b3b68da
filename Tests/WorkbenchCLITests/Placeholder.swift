import XCTest
final class WorkbenchCLIPlaceholderTests: XCTestCase { func testBuilds() {} }
