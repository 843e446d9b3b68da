import Foundation
import QuantCore
import QuantKernels

/// Incremental decoding of one sequence with a KV cache: a prompt, then one token at a time.
///
/// Runs the same block (`LlamaForward.blockBody`), sites, kernels and online transforms as the
/// prefill forward; only attention differs: the keys and values of every earlier position are
/// kept (after RoPE and any attention quantization) and each new query attends to all of them.
/// Appending tokens one by one gives the prefill's logits up to f32 summation order.
///
/// ```swift
/// let decoder = LlamaDecoder(model: model, mode: .quantized, capacity: 640)
/// var logits = try decoder.append(promptTokens)          // 1 × vocab: the last position
/// let next = Sampler.greedy.pick(logits.data)
/// logits = try decoder.append([next])
/// ```
public final class LlamaDecoder {
    public let model: DecoderModel
    public let mode: ExecutionMode
    /// Positions the cache holds.
    public let capacity: Int
    /// Tokens appended so far (the next token's position).
    public private(set) var position = 0
    /// Per block: keys in blocks of 16 positions, `[kvHead][position/16][headDim][position%16]`, and
    /// values `[kvHead][position][headDim]` (capacity rounded up to 16 positions): QKᵀ reads 16
    /// positions' keys as one contiguous block (`VectorMath.dotKeyBlocks`), P·V streams value rows.
    private var keys: [[Float]], values: [[Float]]
    /// Positions one attention work item covers (a multiple of the key blocks' 16).
    static let positionsPerItem = 128

    /// Which positions' logits `append` returns.
    public enum LogitRows: Sendable { case last, all, none }

    public struct Full: Error, CustomStringConvertible {
        public let capacity: Int, requested: Int
        public var description: String { "the KV cache holds \(capacity) positions; \(requested) were requested" }
    }

    public init(model: DecoderModel, mode: ExecutionMode, capacity: Int) {
        precondition(capacity > 0)
        self.model = model; self.mode = mode; self.capacity = capacity
        let c = model.config
        let size = c.kvHeadCount * ((capacity + 15) / 16 * 16) * c.headDim
        keys = model.blocks.map { _ in [Float](repeating: 0, count: size) }
        values = keys
    }

    /// Bytes of the KV cache (f32 keys and values of every block).
    public var cacheBytes: Int { 2 * keys.reduce(0) { $0 + $1.count } * MemoryLayout<Float>.size }

    /// Bytes of keys and values read per generated token at `position` (all blocks, all KV heads).
    public static func cacheBytesRead(_ c: DecoderConfig, positions: Int) -> Int {
        2 * c.layerCount * c.kvHeadCount * c.headDim * positions * MemoryLayout<Float>.size
    }

    /// Forgets the sequence (keeps the allocation).
    public func reset() { position = 0 }

    /// Appends `tokens` at the next positions and returns their logits (`rows`: the last
    /// position's, every appended position's, or none: an empty matrix).
    @discardableResult
    public func append(_ tokens: [Int], logits rows: LogitRows = .last) throws -> Matrix {
        guard !tokens.isEmpty else { return Matrix(zeros: 0, model.config.vocabSize) }
        guard position + tokens.count <= capacity else { throw Full(capacity: capacity, requested: position + tokens.count) }
        let c = model.config
        let runner = LlamaForward()
        var h = runner.embed(model, windows: [tokens])
        let start = position
        for (b, block) in model.blocks.enumerated() {
            h = LlamaForward.blockBody(block, config: c, hidden: h, mode: mode, visited: nil) { qkv in
                LlamaForward.prepareAttentionInputs(&qkv, block, config: c, windowLength: tokens.count, startPosition: start, mode: mode)
                return Profiler.measure("attention (QKᵀ, softmax, PV)") { attend(block: b, qkv: qkv, start: start) }
            }
        }
        position += tokens.count
        switch rows {
        case .none: return Matrix(zeros: 0, c.vocabSize)
        case .all: break
        case .last: h = Matrix(rows: 1, cols: h.cols, data: Array(h.data[((h.rows - 1) * h.cols)...]))
        }
        let normed = Profiler.measure("RMSNorm") { LlamaForward.rmsNorm(h, model.finalNorm, eps: c.rmsNormEps) }
        return LlamaForward.lmHead(model, normed, mode: mode)
    }

    /// Stores the new keys and values of block `b` at positions `start…`, then causal attention of
    /// the new queries over positions `0…start+t`. Returns tokens × heads·headDim.
    private func attend(block b: Int, qkv: [Matrix], start: Int) -> Matrix {
        let c = model.config
        let hd = c.headDim, nh = c.headCount, nkv = c.kvHeadCount, n = qkv[0].rows
        let group = nh / nkv
        let cap = capacity
        let slots = (cap + 15) / 16 * 16
        keys[b].withUnsafeMutableBufferPointer { kp in values[b].withUnsafeMutableBufferPointer { vp in
            for t in 0..<n {
                let p = start + t
                for g in 0..<nkv {
                    let kBlock = kp.baseAddress! + (g * slots + p / 16 * 16) * hd + p % 16
                    let vRow = vp.baseAddress! + (g * slots + p) * hd
                    for d in 0..<hd {
                        kBlock[d * 16] = qkv[1].data[t * qkv[1].cols + g * hd + d]
                        vRow[d] = qkv[2].data[t * qkv[2].cols + g * hd + d]
                    }
                }
            }
        } }
        // Work items are (token, KV head, range of `positionsPerItem` positions): an item reads its
        // range's keys and values once (then in cache) for all the query heads sharing the KV
        // head, and keeps per head the range's largest scaled score m, Σ e^(s−m) and Σ e^(s−m)·v.
        // The ranges are then merged in order, rescaled to the overall maximum. The partition does
        // not depend on the thread count.
        let span = Self.positionsPerItem
        let ranges = (start + n + span - 1) / span
        let stride = hd + 2
        var partials = [Float](repeating: 0, count: n * nh * ranges * stride)
        let scale = 1 / Float(hd).squareRoot()
        let q = qkv[0]
        let threads = n * (start + n) * nh * hd < 1 << 15 ? 1 : Parallel.threadCount
        partials.withUnsafeMutableBufferPointer { pp in
            let partialBox = UncheckedBox(pp.baseAddress!)
            q.data.withUnsafeBufferPointer { qp in keys[b].withUnsafeBufferPointer { kp in values[b].withUnsafeBufferPointer { vp in
                let box = UncheckedBox((qp.baseAddress!, kp.baseAddress!, vp.baseAddress!))
                Parallel.forEach(n * nkv * ranges, threads: threads) { item in
                    let (qb, kb, vb) = box.value
                    let t = item / (nkv * ranges), g = item / ranges % nkv, r = item % ranges
                    let lo = r * span, hi = min(start + t + 1, lo + span)
                    guard hi > lo else { return }
                    withUnsafeTemporaryAllocation(of: Float.self, capacity: span) { sp in
                        let s = sp.baseAddress!
                        for head in (g * group)..<((g + 1) * group) {
                            VectorMath.dotKeyBlocks(qb + t * q.cols + head * hd, kb + (g * slots + lo) * hd, depth: hd, count: hi - lo, into: s)
                            let dst = partialBox.value + ((t * nh + head) * ranges + r) * stride
                            dst[0] = VectorMath.maximum(s, hi - lo) * scale
                            dst[1] = VectorMath.exponentiateShifted(s, hi - lo, scale: scale)
                            VectorMath.weightedRowSum(vb + (g * slots + lo) * hd, ld: hd, weights: s, count: hi - lo, width: hd, into: dst + 2)
                        }
                    }
                }
            } } }
        }
        var out = Matrix(zeros: n, nh * hd)
        out.data.withUnsafeMutableBufferPointer { op in partials.withUnsafeBufferPointer { pp in
            let box = UncheckedBox((op.baseAddress!, pp.baseAddress!))
            Parallel.forEach(n * nh, threads: n < 8 ? 1 : Parallel.threadCount) { item in
                let (o, p) = box.value
                let t = item / nh, used = (start + t + span) / span
                let first = p + item * ranges * stride, dst = o + item * hd
                var m = -Float.infinity
                for r in 0..<used { m = max(m, first[r * stride]) }
                var total: Float = 0
                for r in 0..<used {
                    let part = first + r * stride, f = VectorMath.exp(part[0] - m)
                    total += f * part[1]
                    for d in 0..<hd { dst[d] += f * part[2 + d] }
                }
                VectorMath.scale(dst, hd, by: 1 / total)
            }
        } }
        return out
    }
}

/// Picks the next token from a row of logits: greedy (argmax, lowest id on ties) or sampling
/// with a temperature and top-k from a seeded generator (same seed, same text).
public struct Sampler: Sendable {
    public var temperature: Double
    public var topK: Int
    private var state: UInt64

    public static let greedy = Sampler(temperature: 0, topK: 1, seed: 0)

    public init(temperature: Double, topK: Int = 40, seed: UInt64) {
        self.temperature = temperature; self.topK = max(1, topK)
        state = seed &+ 0x9E37_79B9_7F4A_7C15
    }

    /// splitmix64.
    private mutating func nextUniform() -> Double {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        return Double(z >> 11) / Double(1 << 53)
    }

    public mutating func pick(_ logits: [Float]) -> Int {
        precondition(!logits.isEmpty)
        if temperature <= 0 || topK == 1 {
            var best = 0
            for i in 1..<logits.count where logits[i] > logits[best] { best = i }
            return best
        }
        // Top-k by value (ties to the lower id), then softmax at the temperature.
        let k = min(topK, logits.count)
        let top = logits.indices.sorted { logits[$0] != logits[$1] ? logits[$0] > logits[$1] : $0 < $1 }.prefix(k)
        let mx = Double(logits[top.first!])
        let weights = top.map { exp((Double(logits[$0]) - mx) / temperature) }
        var u = nextUniform() * weights.reduce(0, +)
        for (i, w) in zip(top, weights) {
            u -= w
            if u < 0 { return i }
        }
        return top.last!
    }
}
