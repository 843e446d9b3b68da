import CQuantCPU
import Foundation
import Synchronization

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

    /// Runs `body(i)` for every `i` in `0..<count`, spreading items over `threads` threads:
    /// thread w owns the contiguous items [w·count/t, (w+1)·count/t). The calling thread runs
    /// chunk 0 and `WorkerPool` threads the others; a nested call, or one made while another
    /// thread holds the pool, runs on libdispatch instead (same partition, same results).
    public static func forEach(_ count: Int, threads: Int? = nil, _ body: (Int) -> Void) {
        let t = min(threads ?? threadCount, count)
        if t <= 1 {
            for i in 0..<count { body(i) }
            return
        }
        withoutActuallyEscaping(body) { body in
            let chunk: (Int) -> Void = { worker in
                let lo = worker * count / t, hi = (worker + 1) * count / t
                for i in lo..<hi { body(i) }
            }
            if WorkerPool.shared.run(t, chunk) { return }
            let box = UncheckedBox(chunk)
            DispatchQueue.concurrentPerform(iterations: t) { box.value($0) }
        }
    }
}

/// Persistent worker threads for `Parallel.forEach`.
///
/// libdispatch wakes a parked worker in tens to hundreds of microseconds on a virtual machine —
/// as long as a whole int8 GEMM of the reference model (0.3 ms) — so the caller ends up running
/// most chunks itself. These workers instead spin for a while (`spinNanoseconds`) after each job,
/// watching a generation counter, and park on a semaphore only when no job came.
final class WorkerPool: @unchecked Sendable {
    static let shared = WorkerPool(workers: max(0, Parallel.threadCount - 1))

    /// How long an idle worker spins before it parks.
    static let spinNanoseconds: UInt64 = 2_000_000

    let workers: Int
    /// Bumped once per job; a worker runs the job whose generation it has not seen yet.
    private let generation = Atomic<Int>(0)
    /// Workers that have not yet finished (or, beyond the job's thread count, acknowledged) the
    /// current job; every worker acknowledges every job, so none can lag one behind.
    private let remaining = Atomic<Int>(0)
    /// Held by the thread whose job the pool is running.
    private let busy = Atomic<Bool>(false)
    private final class Slot: Sendable {
        let sleeping = Atomic<Bool>(false)
        let wakeup = DispatchSemaphore(value: 0)
    }
    private let slots: [Slot]
    /// The current job and its thread count; written before `generation` is bumped (release),
    /// read after a worker sees the bump (acquire).
    nonisolated(unsafe) private var job: ((Int) -> Void)?
    nonisolated(unsafe) private var jobThreads = 0

    init(workers: Int) {
        self.workers = workers
        slots = (0..<workers).map { _ in Slot() }
        for w in 0..<workers {
            // The workers hold the pool (they never exit): a pool lives as long as the process.
            let thread = Thread { self.workerLoop(index: w + 1) }
            thread.name = "quantwb-worker-\(w + 1)"
            thread.stackSize = 8 << 20
            thread.start()
        }
    }

    /// Runs `chunk(0)` here and `chunk(1…t−1)` on workers; false (nothing run) when the pool is
    /// too small or already in use (nested or concurrent calls).
    func run(_ t: Int, _ chunk: @escaping (Int) -> Void) -> Bool {
        guard t - 1 <= workers, busy.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged
        else { return false }
        job = chunk
        jobThreads = t
        remaining.store(workers, ordering: .relaxed)
        generation.add(1, ordering: .sequentiallyConsistent)
        for slot in slots where slot.sleeping.load(ordering: .sequentiallyConsistent) { slot.wakeup.signal() }
        chunk(0)
        var spins = 0
        while remaining.load(ordering: .acquiring) > 0 {
            qwb_cpu_relax()
            spins &+= 1
            if spins & 1023 == 0 { sched_yield() }   // more threads than cores: let the worker run
        }
        job = nil
        busy.store(false, ordering: .releasing)
        return true
    }

    private func workerLoop(index: Int) -> Never {
        var seen = 0
        while true {
            var spinStart: UInt64 = 0
            var spins = 0
            while generation.load(ordering: .acquiring) == seen {
                qwb_cpu_relax()
                spins += 1
                if spins & 255 == 0 {
                    sched_yield()   // a no-op when a core is free; lets other threads run when not
                    let now = DispatchTime.now().uptimeNanoseconds
                    if spinStart == 0 { spinStart = now } else if now - spinStart > Self.spinNanoseconds { break }
                }
            }
            if generation.load(ordering: .acquiring) == seen {
                // Park. Either `run` sees `sleeping` and signals, or this load sees the new generation.
                let slot = slots[index - 1]
                slot.sleeping.store(true, ordering: .sequentiallyConsistent)
                if generation.load(ordering: .sequentiallyConsistent) == seen { slot.wakeup.wait() }
                slot.sleeping.store(false, ordering: .relaxed)
                continue   // a stale signal only costs one more look at the counter
            }
            seen = generation.load(ordering: .acquiring)
            if index < jobThreads, let job { job(index) }
            remaining.subtract(1, ordering: .releasing)
        }
    }
}

/// Hands a non-Sendable value to worker threads whose accesses the caller keeps disjoint.
public struct UncheckedBox<T>: @unchecked Sendable {
    public let value: T
    public init(_ value: T) { self.value = value }
}

/// An array of `count` floats filled by `body`, which must write every element (a GEMM's output):
/// no zero fill first, which for a model's activations is a pass over hundreds of MB per window.
/// `body` is not called when `count` is 0.
@inlinable @inline(__always)
public func overwrittenArray(_ count: Int, _ body: (UnsafeMutablePointer<Float>) throws -> Void) rethrows -> [Float] {
    try [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
        if count > 0 { try body(buffer.baseAddress!) }
        initialized = count
    }
}
