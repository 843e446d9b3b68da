import XCTest
@testable import Runs

final class SHA256Tests: XCTestCase {
    /// FIPS 180-4 example vectors, and a message fed in uneven pieces across block boundaries.
    func testKnownDigests() throws {
        XCTAssertEqual(SHA256.hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(SHA256.hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(SHA256.hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
                       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        let million = Data(repeating: UInt8(ascii: "a"), count: 1_000_000)
        XCTAssertEqual(SHA256.hex(million), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
        var s = SHA256()
        var i = 0
        for n in [1, 63, 64, 65, 127, 1000, 3] where i < million.count {
            s.update(million.subdata(in: i..<min(million.count, i + n))); i += n
        }
        s.update(million.subdata(in: i..<million.count))
        XCTAssertEqual(s.finalizeHex(), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    func testFileDigestMatchesTheDataDigest() throws {
        let path = NSTemporaryDirectory() + "sha-\(getpid()).bin"
        let data = Data((0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 31) })
        try data.write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        XCTAssertEqual(try SHA256.hex(fileAt: path), SHA256.hex(data))
    }
}
