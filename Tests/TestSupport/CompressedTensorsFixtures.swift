import Foundation
import ModelFormats

extension QuantizedTensorData {
    /// Round-to-nearest quantization of a row-major rows × cols matrix (a plain reference for
    /// tests): per group, symmetric scale = absmax / qmax; asymmetric scale = (max − min) / qmax
    /// over a range that includes 0, zero = round(−min / scale).
    public static func roundToNearest(name: String, values w: [Float], rows: Int, cols: Int, bits: Int,
                                      groupSize: Int, symmetric: Bool) -> QuantizedTensorData {
        let qmin: Int32 = symmetric ? -(1 << (bits - 1)) : 0
        let qmax: Int32 = symmetric ? (1 << (bits - 1)) - 1 : (1 << bits) - 1
        let groups = cols / groupSize
        var codes = [Int32](repeating: 0, count: rows * cols)
        var scales = [Float](repeating: 1, count: rows * groups), zeros = [Int32](repeating: 0, count: rows * groups)
        for r in 0..<rows {
            for g in 0..<groups {
                let seg = w[(r * cols + g * groupSize)..<(r * cols + (g + 1) * groupSize)]
                let lo = min(seg.min()!, 0), hi = max(seg.max()!, 0)
                var s: Float, z: Int32 = 0
                if symmetric {
                    s = max(-lo, hi) / Float(qmax)
                } else {
                    s = (hi - lo) / Float(qmax)
                }
                if !(s > 0) { s = 1 }
                if !symmetric { z = min(max(Int32((-lo / s).rounded()), 0), qmax) }
                scales[r * groups + g] = s
                zeros[r * groups + g] = z
                for c in 0..<groupSize {
                    let i = r * cols + g * groupSize + c
                    codes[i] = min(max(Int32((w[i] / s).rounded()) + z, qmin), qmax)
                }
            }
        }
        return QuantizedTensorData(name: name, rows: rows, cols: cols, bits: bits, groupSize: groupSize,
                                   symmetric: symmetric, codes: codes, scales: scales, zeros: zeros)
    }
}

/// A tiny model split into quantized linears and float tensors, as an export step hands it to
/// `CompressedTensorsWriter`.
public struct CompressedTensorsFixture {
    public var config: ArchitectureConfig
    public var quantized: [QuantizedTensorData]
    public var floats: [FloatTensorData]

    /// Schemes by linear: attention q/k/v/o int4 per-channel symmetric, MLP int4 group-32
    /// asymmetric in layer 0 and int8 per-channel symmetric in the other layers; lm_head float.
    /// `tensors` defaults to `config.randomTensors(seed:)`; its q/k rows are used as given.
    public static func make(config: ArchitectureConfig, seed: UInt64 = 3, tensors: [String: [Float]]? = nil) -> CompressedTensorsFixture {
        let t = tensors ?? config.randomTensors(seed: seed)
        var q: [QuantizedTensorData] = [], f: [FloatTensorData] = []
        for (name, shape) in config.expectedTensors {
            let v = t[name]!
            let isLinear = shape.count == 2 && name != "embed_tokens" && name != "lm_head"
            guard isLinear else { f.append(FloatTensorData(name: name, shape: shape, values: v)); continue }
            let (rows, cols) = (shape[0], shape[1])
            if name.contains("self_attn") {
                q.append(.roundToNearest(name: name, values: v, rows: rows, cols: cols, bits: 4, groupSize: cols, symmetric: true))
            } else if name.hasPrefix("layers.0.") {
                q.append(.roundToNearest(name: name, values: v, rows: rows, cols: cols, bits: 4, groupSize: 32, symmetric: false))
            } else {
                q.append(.roundToNearest(name: name, values: v, rows: rows, cols: cols, bits: 8, groupSize: cols, symmetric: true))
            }
        }
        return CompressedTensorsFixture(config: config, quantized: q, floats: f)
    }

    /// Every tensor as the float values the export stands for (quantized linears dequantized).
    public var dequantizedTensors: [String: [Float]] {
        var out: [String: [Float]] = [:]
        for x in floats { out[x.name] = x.values }
        for x in quantized { out[x.name] = x.dequantized() }
        return out
    }
}
