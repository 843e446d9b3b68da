import Foundation

/// A file could not be written.
public struct WriteError: Error, CustomStringConvertible {
    public var path: String
    public var reason: String
    public var description: String { "\(path): cannot write the file (\(reason))" }
}

/// Writes `data` to `path` atomically: a temporary file in the same folder, then a rename, so a
/// reader (or a run killed midway) sees the old file or the new one, never half of one.
/// Creates the folder when needed.
public func writeAtomically(_ data: Data, to path: String) throws {
    let url = URL(fileURLWithPath: path)
    let dir = url.deletingLastPathComponent()
    do { try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true) }
    catch { throw WriteError(path: path, reason: "cannot create the folder \(dir.path): \(error.localizedDescription)") }
    let tmp = dir.appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())")
    do { try data.write(to: tmp) }
    catch { throw WriteError(path: path, reason: error.localizedDescription) }
    guard rename(tmp.path, url.path) == 0 else {
        let err = String(cString: strerror(errno))
        try? FileManager.default.removeItem(at: tmp)
        throw WriteError(path: path, reason: err)
    }
}

/// `writeAtomically` for text.
public func writeAtomically(_ text: String, to path: String) throws {
    try writeAtomically(Data(text.utf8), to: path)
}
