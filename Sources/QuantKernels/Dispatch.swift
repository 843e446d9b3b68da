import CQuantCPU
import Foundation

/// Which instruction-set path the kernels use.
///
/// - `portable`: Swift SIMD types only, compiles everywhere (arm64 included).
/// - `avx2`: AVX2 + FMA (f32 6×16 micro-kernel; integer dot products with `vpmaddubsw`/`vpmaddwd`).
/// - `vnni`: AVX-512 + VNNI (f32 12×32 micro-kernel; integer dot products with `vpdpbusd`).
public enum KernelPath: String, CaseIterable, Comparable, Sendable, Codable {
    case portable, avx2, vnni

    public static func < (a: KernelPath, b: KernelPath) -> Bool {
        allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
    }
}

/// Run-time CPU dispatch. The best path the CPU (and this build) supports is chosen once;
/// `QWB_KERNELS=portable|avx2|vnni` forces a path (clamped to what is available).
public enum KernelDispatch {
    /// Paths this process can run, ascending (always contains `.portable`).
    public static let available: [KernelPath] = {
        var paths: [KernelPath] = [.portable]
        #if arch(x86_64)
        let f = qwb_detect_cpu()
        if f.avx2 != 0 { paths.append(.avx2) }
        if f.avx512vnni != 0 { paths.append(.vnni) }
        #endif
        return paths
    }()

    /// The fastest available path.
    public static var best: KernelPath { available.last! }

    /// The path kernels use now. Defaults to `best`, or `QWB_KERNELS` when set. Tests may assign
    /// it (assigning a path that is not available traps).
    nonisolated(unsafe) public static var active: KernelPath = {
        if let s = ProcessInfo.processInfo.environment["QWB_KERNELS"], let p = KernelPath(rawValue: s.lowercased()) {
            return available.contains(p) ? p : best
        }
        return best
    }() {
        didSet { precondition(available.contains(active), "kernel path \(active) is not available on this CPU") }
    }

    /// Runs `body` with `active` temporarily set to `path` (not thread-safe; for tests and benchmarks).
    public static func with<R>(_ path: KernelPath, _ body: () throws -> R) rethrows -> R {
        let saved = active
        active = path
        defer { active = saved }
        return try body()
    }

    /// One line for logs: active path and what the CPU offers.
    public static var summary: String {
        "kernels: \(active.rawValue) (available: \(available.map(\.rawValue).joined(separator: ", ")))"
    }
}
