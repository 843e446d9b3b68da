import Foundation

/// This machine's limits, measured in the same run as the benchmark that compares against them:
/// the practical FMA / integer-dot peaks, the GEMM rates on given shapes, and the memory read
/// bandwidth on a buffer far larger than the last-level cache. Shared by `bench kernels`,
/// `bench train` and `bench model`.
public enum MachineLimits {
    /// A GEMM kind: f32, or the integer GEMM with `weightBits`-bit weights and `activationBits`-bit
    /// per-token activations.
    public enum Kind: Hashable, Sendable, Codable, CustomStringConvertible {
        case f32
        case integer(weightBits: Int, activationBits: Int)
        /// f32 activations × packed `weightBits`-bit weights (WeightOnlyGemm).
        case weightOnly(weightBits: Int)

        public var description: String {
            switch self {
            case .f32: return "f32"
            case let .integer(w, a): return "W\(w)A\(a) int"
            case let .weightOnly(w): return "W\(w)A16 weight-only"
            }
        }
    }

    /// One measured GEMM shape `Y = X·Wᵀ`, X m×k, W n×k.
    public struct Shape: Hashable, Sendable, Codable {
        public var m: Int, k: Int, n: Int
        public init(m: Int, k: Int, n: Int) { self.m = m; self.k = k; self.n = n }
        public var flops: Double { 2 * Double(m) * Double(k) * Double(n) }
    }

    public struct GemmRate: Sendable, Codable {
        public var kind: String
        public var shape: Shape
        public var threads: Int
        /// GFLOP/s (integer: GOP/s, counted as 2·m·n·k like the f32 rows).
        public var rate: Double
        public init(kind: String, shape: Shape, threads: Int, rate: Double) {
            self.kind = kind; self.shape = shape; self.threads = threads; self.rate = rate
        }
    }

    /// Best rate of `kind` on `shape` with `threads` threads over about `budget` seconds of repeats
    /// (random inputs; integer rows time the GEMM on pre-quantized activations).
    public static func gemmRate(_ kind: Kind, _ s: Shape, threads: Int, budget: Double = 0.25) -> Double {
        var rng: UInt64 = 0x2545_F491_4F6C_DD1D
        func rand() -> Float { rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17; return Float(Int64(rng >> 40) - (1 << 23)) / Float(1 << 23) }
        let x = (0..<(s.m * s.k)).map { _ in rand() }, w = (0..<(s.n * s.k)).map { _ in rand() }
        var y = [Float](repeating: 0, count: s.m * s.n)
        let seconds: Double
        switch kind {
        case .f32:
            seconds = x.withUnsafeBufferPointer { xp in w.withUnsafeBufferPointer { wp in y.withUnsafeMutableBufferPointer { yp in
                KernelBenchmark.time(budget: budget) {
                    Gemm.multiply(xp.baseAddress!, wp.baseAddress!, into: yp.baseAddress!, m: s.m, n: s.n, k: s.k, threads: threads)
                }
            } } }
        case let .integer(wb, ab):
            let wg = QuantGrid(bits: wb, symmetric: true), ag = QuantGrid(bits: ab, symmetric: false)
            let q = w.withUnsafeBufferPointer { Quantizer.quantize($0.baseAddress!, rows: s.n, cols: s.k, groupSize: s.k, grid: wg) }
            let p = IntGemm.packWeights(codes: q.codes, scales: q.scales, zeros: q.zeros, n: s.n, k: s.k, groupSize: s.k, grid: wg)
            let a = x.withUnsafeBufferPointer { IntGemm.quantizeActivations($0.baseAddress!, m: s.m, k: s.k, grid: ag) }
            seconds = y.withUnsafeMutableBufferPointer { yp in
                KernelBenchmark.time(budget: budget) { IntGemm.multiply(a, p, into: yp.baseAddress!, threads: threads) }
            }
        case let .weightOnly(wb):
            let wg = QuantGrid(bits: wb, symmetric: true)
            let q = w.withUnsafeBufferPointer { Quantizer.quantize($0.baseAddress!, rows: s.n, cols: s.k, groupSize: s.k, grid: wg) }
            let p = IntGemm.packWeights(codes: q.codes, scales: q.scales, zeros: q.zeros, n: s.n, k: s.k, groupSize: s.k, grid: wg)
            seconds = x.withUnsafeBufferPointer { xp in y.withUnsafeMutableBufferPointer { yp in
                KernelBenchmark.time(budget: budget) { WeightOnlyGemm.multiply(xp.baseAddress!, m: s.m, p, into: yp.baseAddress!, threads: threads) }
            } }
        }
        return s.flops / seconds / 1e9
    }

    /// Memory read bandwidth in bytes/s: the best of a few passes summing a `bytes`-byte buffer
    /// (default 512 MiB, far beyond any last-level cache) split over `threads` threads. Every 4 KiB
    /// page holds different values: pages of identical content can be merged by the host (KSM on a
    /// virtual machine), and reading one physical page over and over measures the cache (a buffer
    /// of ones measured 34–62 GB/s here from run to run). The host's bandwidth still moves by ±15%
    /// over minutes, so `bench model` measures it again each round.
    public static func readBandwidth(bytes: Int = 512 << 20, threads: Int, passes: Int = 4) -> Double {
        let count = bytes / MemoryLayout<SIMD16<Float>>.size
        let buffer = UnsafeMutablePointer<SIMD16<Float>>.allocate(capacity: count)
        defer { buffer.deallocate() }
        for i in 0..<count { (buffer + i).initialize(to: SIMD16<Float>(repeating: Float(i))) }   // no two 64-byte lines alike
        let box = UncheckedBox(UnsafePointer(buffer))
        var best = Double.infinity
        var sink: Float = 0
        var partial = [Float](repeating: 0, count: threads)
        for _ in 0..<passes {
            let t0 = DispatchTime.now().uptimeNanoseconds
            partial.withUnsafeMutableBufferPointer { pp in
                let out = UncheckedBox(pp.baseAddress!)
                Parallel.forEach(threads, threads: threads) { c in
                    let lo = c * count / threads, hi = (c + 1) * count / threads
                    var a0 = SIMD16<Float>(), a1 = a0, a2 = a0, a3 = a0
                    var i = lo
                    let p = box.value
                    while i + 4 <= hi { a0 += p[i]; a1 += p[i + 1]; a2 += p[i + 2]; a3 += p[i + 3]; i += 4 }
                    while i < hi { a0 += p[i]; i += 1 }
                    out.value[c] = (a0 + a1 + a2 + a3).sum()
                }
            }
            best = min(best, Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
            sink += partial.reduce(0, +)
        }
        precondition(sink.isFinite)
        return Double(count * MemoryLayout<SIMD16<Float>>.size) / best
    }
}
