import Foundation
import QuantCore
import QuantKernels
import ModelFormats

/// What a run's figures depend on, recorded beside them in `results.json`: the exact inputs
/// (file digests, the token stream), the code (commit and uncommitted diff), and the machine
/// settings that change numbers or speed.
public struct RunManifest: Codable, Equatable {
    public struct FileDigest: Codable, Equatable {
        public var path: String
        public var bytes: Int
        public var sha256: String
    }
    public struct ToolVersion: Codable, Equatable {
        /// `git rev-parse HEAD` of the source tree this binary was built from, or `unknown`.
        public var commit: String
        /// sha256 of `git diff HEAD` when the tree has uncommitted changes; nil when clean.
        public var dirtyDiffSHA256: String?
    }
    /// nil for the synthetic model.
    public var model: FileDigest?
    public var texts: [FileDigest]
    /// sha256 of the calibration and evaluation token ids (little-endian Int32, windows in order).
    public var tokenStreamSHA256: String
    public var tool: ToolVersion
    public var kernelPath: String
    public var cpu: String
    public var threads: Int
    public var engine: String
    public var seed: UInt64
    public var evaluationProtocol: String

    /// Digest of a file (its path as given, its size and sha256).
    public static func digest(_ path: String) throws -> FileDigest {
        let size = (try FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.intValue ?? 0
        return FileDigest(path: path, bytes: size, sha256: try SHA256.hex(fileAt: path))
    }

    /// Digest of every file in a Hugging Face folder (sorted by name, each file's name and digest).
    public static func digest(folder path: String) throws -> FileDigest {
        let names = try FileManager.default.contentsOfDirectory(atPath: path).sorted()
        var s = SHA256(), bytes = 0
        for n in names {
            let d = try digest(path + "/" + n)
            bytes += d.bytes
            s.update(Array("\(n) \(d.sha256)\n".utf8))
        }
        return FileDigest(path: path, bytes: bytes, sha256: s.finalizeHex())
    }

    public static func tokenStreamDigest(_ windows: [[Int]]...) -> String {
        var s = SHA256()
        for set in windows {
            for w in set {
                let le = w.map { Int32(truncatingIfNeeded: $0).littleEndian }
                le.withUnsafeBytes { s.update($0) }
            }
        }
        return s.finalizeHex()
    }

    /// The commit of the source tree this file was compiled from, and its uncommitted diff.
    public static let toolVersion: ToolVersion = {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
        guard let commit = git(["rev-parse", "HEAD"], in: root)?.trimmingCharacters(in: .whitespacesAndNewlines), !commit.isEmpty else {
            return ToolVersion(commit: "unknown", dirtyDiffSHA256: nil)
        }
        let status = git(["status", "--porcelain", "--untracked-files=no"], in: root) ?? ""
        let diff = status.isEmpty ? nil : git(["diff", "HEAD", "--binary"], in: root).map { SHA256.hex($0) }
        return ToolVersion(commit: commit, dirtyDiffSHA256: diff)
    }()

    static func git(_ args: [String], in dir: String) -> String? {
        commandOutput(["git", "-C", dir] + args)
    }
}
