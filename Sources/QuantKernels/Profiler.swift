import Foundation

/// Wall-clock time per component of a forward pass, for `workbench bench model --profile`.
///
/// Off by default: `measure` then costs one branch. Components are leaves (a site's GEMM, its
/// activation quantization, attention, a norm, …) measured on the calling thread around work that
/// may itself run on the worker pool; measured regions never nest, so the shares add up to at
/// most the wall time and the remainder is reported as "other".
public enum Profiler {
    nonisolated(unsafe) public private(set) static var isEnabled = false
    nonisolated(unsafe) private static var nanoseconds: [String: UInt64] = [:]
    nonisolated(unsafe) private static var depth = 0

    /// Starts collecting (clearing earlier totals).
    public static func start() { nanoseconds = [:]; depth = 0; isEnabled = true }

    /// Stops collecting and returns seconds per component.
    @discardableResult
    public static func stop() -> [String: Double] {
        isEnabled = false
        return nanoseconds.mapValues { Double($0) / 1e9 }
    }

    /// Runs `body`, adding its wall time to `component` when profiling (only the outermost
    /// measured region counts, so a component called inside another is not counted twice).
    @inline(__always)
    public static func measure<T>(_ component: @autoclosure () -> String, _ body: () throws -> T) rethrows -> T {
        // Only the main thread records (the dictionary is not shared with the worker pool).
        guard isEnabled, depth == 0, Thread.isMainThread else { return try body() }
        depth += 1
        let t0 = DispatchTime.now().uptimeNanoseconds
        defer {
            nanoseconds[component(), default: 0] += DispatchTime.now().uptimeNanoseconds - t0
            depth -= 1
        }
        return try body()
    }
}
