import Foundation
import XCTest
@testable import QuantKernels

final class ParallelTests: XCTestCase {
    /// Every item runs exactly once, on the deterministic partition, for any count and thread count
    /// (more threads than the pool has workers falls back to libdispatch).
    func testEveryItemRunsOnce() {
        for threads in [1, 2, 3, 8] {
            for count in [0, 1, 2, 3, 7, 64, 1000] {
                var hits = [Int](repeating: 0, count: count)
                hits.withUnsafeMutableBufferPointer { h in
                    let p = h.baseAddress
                    Parallel.forEach(count, threads: threads) { i in p![i] += 1 }
                }
                XCTAssertEqual(hits, [Int](repeating: 1, count: count), "threads \(threads) count \(count)")
            }
        }
    }

    /// A forEach inside a forEach body, and forEach calls from several threads at once, while the
    /// pool is busy: they run (on libdispatch) and still cover every item once.
    func testNestedAndConcurrentCalls() {
        let outer = 4, inner = 50
        var hits = [Int](repeating: 0, count: outer * inner)
        hits.withUnsafeMutableBufferPointer { h in
            let p = h.baseAddress!
            Parallel.forEach(outer, threads: 2) { o in
                Parallel.forEach(inner, threads: 2) { i in p[o * inner + i] += 1 }
            }
        }
        XCTAssertEqual(hits, [Int](repeating: 1, count: outer * inner))

        let callers = 4, count = 5000
        var sums = [Int](repeating: 0, count: callers)
        sums.withUnsafeMutableBufferPointer { s in
            let sp = s.baseAddress!
            DispatchQueue.concurrentPerform(iterations: callers) { c in
                for _ in 0..<20 {
                    var partial = [Int](repeating: 0, count: count)
                    partial.withUnsafeMutableBufferPointer { b in
                        let bp = b.baseAddress!
                        Parallel.forEach(count, threads: 2) { i in bp[i] = i }
                    }
                    sp[c] += partial.reduce(0, +)
                }
            }
        }
        XCTAssertEqual(sums, [Int](repeating: 20 * count * (count - 1) / 2, count: callers))
    }

    /// A pool with more workers than this machine has cores (QWB_THREADS above the core count):
    /// every chunk of every job runs once, and a job smaller than the pool leaves the rest idle.
    func testOversubscribedPool() {
        let pool = WorkerPool(workers: 3)
        for t in [4, 2, 4, 3] {
            for _ in 0..<50 {
                var hits = [Int](repeating: 0, count: t)
                hits.withUnsafeMutableBufferPointer { h in
                    let p = h.baseAddress!
                    XCTAssertTrue(pool.run(t) { p[$0] += 1 })
                }
                XCTAssertEqual(hits, [Int](repeating: 1, count: t), "t = \(t)")
            }
        }
        XCTAssertFalse(pool.run(5) { _ in }, "more threads than the pool has: the caller falls back")
    }

    /// Back-to-back jobs after the workers have parked (spin time exceeded) still complete.
    func testJobsAfterWorkersPark() {
        for _ in 0..<3 {
            var hits = [Int](repeating: 0, count: 16)
            hits.withUnsafeMutableBufferPointer { h in
                let p = h.baseAddress!
                Parallel.forEach(16, threads: 2) { i in p[i] += 1 }
            }
            XCTAssertEqual(hits, [Int](repeating: 1, count: 16))
            Thread.sleep(forTimeInterval: Double(WorkerPool.spinNanoseconds) / 1e9 * 3)
        }
    }
}
