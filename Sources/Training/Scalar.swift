import Foundation
import QuantKernels

/// The element type of the training code: `Float` for training, `Double` for the gradient checks
/// (the same code runs in both; see `Ops`).
public protocol TrainScalar: BinaryFloatingPoint, Sendable {
    static func exponential(_ x: Self) -> Self
    static func logarithm(_ x: Self) -> Self
}

extension Float: TrainScalar {
    @inline(__always) public static func exponential(_ x: Float) -> Float { exp(x) }
    @inline(__always) public static func logarithm(_ x: Float) -> Float { log(x) }
}

extension Double: TrainScalar {
    @inline(__always) public static func exponential(_ x: Double) -> Double { exp(x) }
    @inline(__always) public static func logarithm(_ x: Double) -> Double { log(x) }
}

/// Dense products on row-major arrays. `Float` goes to the shared f32 GEMM kernel (bit-identical
/// on any thread count); any other type (Double, for the gradient checks) to the plain loops.
public enum DenseOps {
    /// `Y = A·Bᵀ`: A is m×k, B is n×k, Y is m×n. `threads: 1` inside parallel work items.
    @_specialize(where T == Float)
    public static func timesTransposed<T: TrainScalar>(_ a: [T], _ b: [T], m: Int, n: Int, k: Int, threads: Int? = nil) -> [T] {
        precondition(a.count == m * k && b.count == n * k, "timesTransposed: shape mismatch")
        if T.self == Float.self {
            var y = [T](repeating: 0, count: m * n)
            guard m > 0, n > 0, k > 0 else { return y }
            a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in y.withUnsafeMutableBufferPointer { yp in
                ap.withMemoryRebound(to: Float.self) { af in bp.withMemoryRebound(to: Float.self) { bf in
                    yp.withMemoryRebound(to: Float.self) { yf in
                        Gemm.multiply(af.baseAddress!, bf.baseAddress!, into: yf.baseAddress!, m: m, n: n, k: k, threads: threads)
                    }
                } }
            } } }
            return y
        }
        return referenceTimesTransposed(a, b, m: m, n: n, k: k)
    }

    /// The plain loop `Y = A·Bᵀ` (any scalar type; rows in parallel — each row is one thread's).
    @_specialize(where T == Float)
    public static func referenceTimesTransposed<T: TrainScalar>(_ a: [T], _ b: [T], m: Int, n: Int, k: Int) -> [T] {
        var y = [T](repeating: 0, count: m * n)
        y.withUnsafeMutableBufferPointer { yp in
            let out = UncheckedBox(yp.baseAddress!)
            a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in
                let ins = UncheckedBox((ap.baseAddress!, bp.baseAddress!))
                Parallel.forEach(m, threads: m * n * k < 1 << 16 ? 1 : nil) { i in
                    let (ab, bb) = ins.value
                    for j in 0..<n {
                        var s: T = 0
                        for p in 0..<k { s += ab[i * k + p] * bb[j * k + p] }
                        out.value[i * n + j] = s
                    }
                }
            } }
        }
        return y
    }

    /// The transpose of a rows×cols row-major matrix.
    @_specialize(where T == Float)
    public static func transpose<T>(_ a: [T], rows: Int, cols: Int) -> [T] {
        precondition(a.count == rows * cols)
        if a.isEmpty { return [] }
        var out = a
        a.withUnsafeBufferPointer { src in out.withUnsafeMutableBufferPointer { dst in
            // 32×32 tiles keep both sides in cache.
            var r0 = 0
            while r0 < rows {
                var c0 = 0
                while c0 < cols {
                    for r in r0..<min(r0 + 32, rows) { for c in c0..<min(c0 + 32, cols) { dst[c * rows + r] = src[r * cols + c] } }
                    c0 += 32
                }
                r0 += 32
            }
        } }
        return out
    }

    /// `Y = A·B`: A is m×k, B is k×n.
    @_specialize(where T == Float)
    public static func times<T: TrainScalar>(_ a: [T], _ b: [T], m: Int, n: Int, k: Int, threads: Int? = nil) -> [T] {
        timesTransposed(a, transpose(b, rows: k, cols: n), m: m, n: n, k: k, threads: threads)
    }

    /// `Y = Aᵀ·B`: A is k×m, B is k×n (the weight gradient `Gᵀ·X`).
    @_specialize(where T == Float)
    public static func transposedTimes<T: TrainScalar>(_ a: [T], _ b: [T], m: Int, n: Int, k: Int, threads: Int? = nil) -> [T] {
        timesTransposed(transpose(a, rows: k, cols: m), transpose(b, rows: k, cols: n), m: m, n: n, k: k, threads: threads)
    }
}

/// `y += x` elementwise.
@_specialize(where T == Float)
func addInPlace<T: TrainScalar>(_ y: inout [T], _ x: [T]) {
    precondition(y.count == x.count)
    y.withUnsafeMutableBufferPointer { yp in x.withUnsafeBufferPointer { xp in
        for i in 0..<yp.count { yp[i] += xp[i] }
    } }
}
