// `VectorLanes` compiled for cascadelake (AVX-512) (only call when KernelDispatch says so).
#if arch(x86_64)
import QuantKernelsVector

/// The element-wise kernels of `VectorMath` (QuantKernels), inlined here and compiled for cascadelake (AVX-512).
public enum AVX512Vector {
    public static func siluMultiply(gate: UnsafePointer<Float>, up: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, _ n: Int) { VectorLanes.siluMultiply(gate: gate, up: up, into: out, n) }
    public static func add(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, _ n: Int) { VectorLanes.add(a, b, into: out, n) }
    public static func dotKeyBlocks(_ q: UnsafePointer<Float>, _ blocks: UnsafePointer<Float>, depth: Int, count: Int, into s: UnsafeMutablePointer<Float>) { VectorLanes.dotKeyBlocks(q, blocks, depth: depth, count: count, into: s) }
    public static func weightedRowSum(_ rows: UnsafePointer<Float>, ld: Int, weights w: UnsafePointer<Float>, count: Int, width n: Int, into out: UnsafeMutablePointer<Float>) { VectorLanes.weightedRowSum(rows, ld: ld, weights: w, count: count, width: n, into: out) }
    public static func rmsNorm(_ x: UnsafePointer<Float>, _ gamma: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, _ n: Int, eps: Float) { VectorLanes.rmsNorm(x, gamma, out, n, eps: eps) }
    public static func maximum(_ x: UnsafePointer<Float>, _ n: Int) -> Float { VectorLanes.maximum(x, n) }
    public static func maximumChecked(_ x: UnsafePointer<Float>, _ n: Int) -> (max: Float, finite: Bool) { VectorLanes.maximumChecked(x, n) }
    public static func exponentiateShifted(_ x: UnsafeMutablePointer<Float>, _ n: Int, scale: Float) -> Float { VectorLanes.exponentiateShifted(x, n, scale: scale) }
    public static func sumExp(_ x: UnsafePointer<Float>, _ n: Int, shift: Float) -> Double { VectorLanes.sumExp(x, n, shift: shift) }
    public static func subtract(_ x: UnsafePointer<Float>, _ c: Float, into y: UnsafeMutablePointer<Float>, _ n: Int) { VectorLanes.subtract(x, c, into: y, n) }
    public static func scale(_ y: UnsafeMutablePointer<Float>, _ n: Int, by c: Float) { VectorLanes.scale(y, n, by: c) }
}
#endif
