import Foundation

/// The threading primitive for all numeric code.
///
/// Work is split into `count` items and dealt to threads by a *deterministic* partition: item `i`
/// always computes the same thing no matter how many threads run, so 1 and N threads give
/// bit-identical results. Callers capture raw pointers in the body; each item must write a
/// disjoint part of the output.
public enum Parallel {
    /// Threads used by kernels. Defaults to the number of active cores; `QWB_THREADS` overrides.
    nonisolated(unsafe) public static var threadCount: Int = {
        if let s = ProcessInfo.processInfo.environment["QWB_THREADS"], let n = Int(s), n > 0 { return n }
        return max(1, ProcessInfo.processInfo.activeProcessorCount)
    }()

    /// Runs `body(i)` for every `i` in `0..<count`, spreading items over `threads` threads.
    public static func forEach(_ count: Int, threads: Int? = nil, _ body: (Int) -> Void) {
        let t = min(threads ?? threadCount, count)
        if t <= 1 {
            for i in 0..<count { body(i) }
            return
        }
        withoutActuallyEscaping(body) { body in
            let box = UncheckedBox(body)
            DispatchQueue.concurrentPerform(iterations: t) { worker in
                // Contiguous chunks: worker w owns items [w·count/t, (w+1)·count/t).
                let lo = worker * count / t, hi = (worker + 1) * count / t
                for i in lo..<hi { box.value(i) }
            }
        }
    }
}

/// Hands a non-Sendable value to worker threads whose accesses the caller keeps disjoint.
public struct UncheckedBox<T>: @unchecked Sendable {
    public let value: T
    public init(_ value: T) { self.value = value }
}
