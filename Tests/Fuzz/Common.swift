// libFuzzer entry point shared by every target (compiled by scripts/fuzz.sh, not by SwiftPM).
// Each target file defines `fuzzTarget(_:)`: it feeds the bytes to a parser and must return
// normally or throw — a trap, an abort, an out-of-memory or a 5 s hang is a finding.
import Foundation

/// A per-process scratch directory (on /dev/shm when available) for targets whose API takes a path.
let scratch: URL = {
    let base = FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()
    let u = URL(fileURLWithPath: base).appendingPathComponent("qwb-fuzz-\(getpid())")
    try? FileManager.default.createDirectory(at: u, withIntermediateDirectories: true)
    return u
}()

/// Writes `bytes` to `name` in the scratch directory (a fresh file each time).
func scratchFile(_ name: String, _ bytes: UnsafeRawBufferPointer) -> URL {
    let u = scratch.appendingPathComponent(name)
    _ = FileManager.default.createFile(atPath: u.path, contents: Data(bytes))
    return u
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    fuzzTarget(bytes)
    return 0
}
