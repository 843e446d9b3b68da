import Foundation

/// One row of the dequantization table: a ggml block format.
///
/// `dequantize(src, dst, blocks)` reads `blocks × bytesPerBlock` bytes at `src` (no alignment
/// assumed) and writes `blocks × blockSize` floats at `dst`. Layouts follow ggml's `block_*`
/// structs; all multi-byte fields are little-endian. Arithmetic matches gguf-py's
/// `gguf.quants.dequantize` operation for operation, so results are bit-identical.
public struct QuantFormat: Sendable {
    public let type: GGMLType
    public let blockSize: Int
    public let bytesPerBlock: Int
    public let dequantize: @Sendable (UnsafeRawPointer, UnsafeMutablePointer<Float>, Int) -> Void

    /// The table: one entry per supported storage type.
    public static let table: [GGMLType: QuantFormat] = Dictionary(uniqueKeysWithValues: [
        QuantFormat(type: .f32, blockSize: 1, bytesPerBlock: 4, dequantize: deqF32),
        QuantFormat(type: .f16, blockSize: 1, bytesPerBlock: 2, dequantize: deqF16),
        QuantFormat(type: .bf16, blockSize: 1, bytesPerBlock: 2, dequantize: deqBF16),
        QuantFormat(type: .q8_0, blockSize: 32, bytesPerBlock: 34, dequantize: deqQ8_0),
        QuantFormat(type: .q4_0, blockSize: 32, bytesPerBlock: 18, dequantize: deqQ4_0),
        QuantFormat(type: .q4_1, blockSize: 32, bytesPerBlock: 20, dequantize: deqQ4_1),
        QuantFormat(type: .q5_0, blockSize: 32, bytesPerBlock: 22, dequantize: deqQ5_0),
        QuantFormat(type: .q5_1, blockSize: 32, bytesPerBlock: 24, dequantize: deqQ5_1),
        QuantFormat(type: .q4_K, blockSize: 256, bytesPerBlock: 144, dequantize: deqQ4_K),
        QuantFormat(type: .q5_K, blockSize: 256, bytesPerBlock: 176, dequantize: deqQ5_K),
        QuantFormat(type: .q6_K, blockSize: 256, bytesPerBlock: 210, dequantize: deqQ6_K),
    ].map { ($0.type, $0) })
}

// MARK: - Scalar conversions

/// IEEE half → float for all 65536 bit patterns (exact; NaN payloads preserved).
private let halfTable: UnsafeMutablePointer<Float> = {
    let t = UnsafeMutablePointer<Float>.allocate(capacity: 65536)
    for h in 0..<65536 { t[h] = halfBitsToFloat(UInt16(h)) }
    return t
}()

/// Converts IEEE binary16 bits to Float (exact).
public func halfBitsToFloat(_ h: UInt16) -> Float {
    let sign: UInt32 = UInt32(h & 0x8000) << 16
    let exp = UInt32((h >> 10) & 0x1f)
    let man = UInt32(h & 0x3ff)
    if exp == 0 {
        let v = Float(man) * 0x1p-24
        return sign != 0 ? -v : v
    }
    if exp == 31 { return Float(bitPattern: sign | 0x7f80_0000 | (man << 13)) }
    return Float(bitPattern: sign | ((exp + 112) << 23) | (man << 13))
}

/// Converts Float to IEEE binary16 bits, round-to-nearest-even (overflow → ±inf).
public func floatToHalfBits(_ f: Float) -> UInt16 {
    let b = f.bitPattern
    let sign = UInt16((b >> 16) & 0x8000)
    if f.isNaN { return sign | 0x7e00 }
    let a = abs(f)
    if a >= 65520 { return sign | 0x7c00 }
    if a < 0x1p-14 {  // subnormal half: value = m × 2^-24
        let m = (a * 0x1p24).rounded(.toNearestOrEven)
        return sign | UInt16(m)
    }
    let e = Int((b >> 23) & 0xff) - 127 + 15
    var m = b & 0x7f_ffff
    var he = UInt32(e)
    // round 23-bit mantissa to 10 bits, ties to even
    let rest = m & 0x1fff
    m >>= 13
    if rest > 0x1000 || (rest == 0x1000 && (m & 1) == 1) {
        m += 1
        if m == 0x400 { m = 0; he += 1 }
    }
    return sign | UInt16(he << 10) | UInt16(m)
}

@inline(__always) private func half(_ p: UnsafeRawPointer, _ off: Int) -> Float {
    halfTable[Int(UInt16(littleEndian: p.loadUnaligned(fromByteOffset: off, as: UInt16.self)))]
}
@inline(__always) private func byte(_ p: UnsafeRawPointer, _ off: Int) -> UInt8 {
    p.load(fromByteOffset: off, as: UInt8.self)
}

// MARK: - Per-format kernels

@Sendable private func deqF32(_ s: UnsafeRawPointer, _ d: UnsafeMutablePointer<Float>, _ n: Int) {
    for i in 0..<n { d[i] = Float(bitPattern: UInt32(littleEndian: s.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))) }
}

@Sendable private func deqF16(_ s: UnsafeRawPointer, _ d: UnsafeMutablePointer<Float>, _ n: Int) {
    for i in 0..<n { d[i] = half(s, 2 * i) }
}

@Sendable private func deqBF16(_ s: UnsafeRawPointer, _ d: UnsafeMutablePointer<Float>, _ n: Int) {
    for i in 0..<n {
        d[i] = Float(bitPattern: UInt32(UInt16(littleEndian: s.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) << 16)
    }
}

/// block_q8_0 { f16 d; i8 qs[32] }: y = d·q.
@Sendable private func deqQ8_0(_ s: UnsafeRawPointer, _ d: UnsafeMutablePointer<Float>, _ n: Int) {
    for b in 0..<n {
        let p = s + 34 * b, y = d + 32 * b
        let scale = half(p, 0)
        for j in 0..<32 { y[j] = scale * Float(Int8(bitPattern: byte(p, 2 + j))) }
    }
}

/// block_q4_0 { f16 d; u8 qs[16] }: y[j] = d·(lo(qs[j]) − 8), y[j+16] = d·(hi(qs[j]) − 8).
@Sendable private func deqQ4_0(_ s: UnsafeRawPointer, _ d: UnsafeMutablePointer<Float>, _ n: Int) {
    for b in 0..<n {
        let p = s + 18 * b, y = d + 32 * b
        let scale = half(p, 0)
        for j in 0..<16 {
            let q = byte(p, 2 + j)
            y[j] = scale * Float(Int(q & 0xf) - 8)
            y[j + 16] = scale * Float(Int(q >> 4) - 8)
        }
    }
}

/// block_q4_1 { f16 d; f16 m; u8 qs[16] }: y = d·q + m.
@Sendable private func deqQ4_1(_ s: UnsafeRawPointer, _ d: UnsafeMutablePointer<Float>, _ n: Int) {
    for b in 0..<n {
        let p = s + 20 * b, y = d + 32 * b
        let scale = half(p, 0), mn = half(p, 2)
        for j in 0..<16 {
            let q = byte(p, 4 + j)
            y[j] = scale * Float(q & 0xf) + mn
            y[j + 16] = scale * Float(q >> 4) + mn
        }
    }
}

/// block_q5_0 { f16 d; u32 qh; u8 qs[16] }: 5th bit of element j is bit j of qh; y = d·(q − 16).
@Sendable private func deqQ5_0(_ s: UnsafeRawPointer, _ d: UnsafeMutablePointer<Float>, _ n: Int) {
    for b in 0..<n {
        let p = s + 22 * b, y = d + 32 * b
        let scale = half(p, 0)
        let qh = UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 2, as: UInt32.self))
        for j in 0..<16 {
            let q = byte(p, 6 + j)
            let lo = Int(q & 0xf) | Int((qh >> UInt32(j)) & 1) << 4
            let hi = Int(q >> 4) | Int((qh >> UInt32(j + 16)) & 1) << 4
            y[j] = scale * Float(lo - 16)
            y[j + 16] = scale * Float(hi - 16)
        }
    }
}

/// block_q5_1 { f16 d; f16 m; u32 qh; u8 qs[16] }: y = d·q + m.
@Sendable private func deqQ5_1(_ s: UnsafeRawPointer, _ d: UnsafeMutablePointer<Float>, _ n: Int) {
    for b in 0..<n {
        let p = s + 24 * b, y = d + 32 * b
        let scale = half(p, 0), mn = half(p, 2)
        let qh = UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 4, as: UInt32.self))
        for j in 0..<16 {
            let q = byte(p, 8 + j)
            let lo = UInt32(q & 0xf) | ((qh >> UInt32(j)) & 1) << 4
            let hi = UInt32(q >> 4) | ((qh >> UInt32(j + 16)) & 1) << 4
            y[j] = scale * Float(lo) + mn
            y[j + 16] = scale * Float(hi) + mn
        }
    }
}

/// 6-bit scale and min of sub-block `j` (0..<8) from the 12 packed bytes at `q` (ggml's get_scale_min_k4).
@inline(__always) private func scaleMinK4(_ j: Int, _ q: UnsafeRawPointer) -> (Float, Float) {
    if j < 4 {
        return (Float(byte(q, j) & 63), Float(byte(q, j + 4) & 63))
    }
    let sc = (byte(q, j + 4) & 0xf) | ((byte(q, j - 4) >> 6) << 4)
    let m = (byte(q, j + 4) >> 4) | ((byte(q, j) >> 6) << 4)
    return (Float(sc), Float(m))
}

/// block_q4_K { f16 d; f16 dmin; u8 scales[12]; u8 qs[128] }, 8 sub-blocks of 32:
/// y = (d·sc)·q − (dmin·m); sub-blocks 2i/2i+1 use the low/high nibbles of qs[32i..<32i+32].
@Sendable private func deqQ4_K(_ s: UnsafeRawPointer, _ d: UnsafeMutablePointer<Float>, _ n: Int) {
    for b in 0..<n {
        let p = s + 144 * b, y = d + 256 * b
        let dd = half(p, 0), dmin = half(p, 2)
        let sc = p + 4, qs = p + 16
        for g in 0..<4 {
            let (s1, m1) = scaleMinK4(2 * g, sc), (s2, m2) = scaleMinK4(2 * g + 1, sc)
            let d1 = dd * s1, dm1 = dmin * m1, d2 = dd * s2, dm2 = dmin * m2
            for l in 0..<32 {
                let q = byte(qs, 32 * g + l)
                y[64 * g + l] = d1 * Float(q & 0xf) - dm1
                y[64 * g + 32 + l] = d2 * Float(q >> 4) - dm2
            }
        }
    }
}

/// block_q5_K { f16 d; f16 dmin; u8 scales[12]; u8 qh[32]; u8 qs[128] }: like Q4_K, the 5th bit of
/// element 32k+l is bit k of qh[l].
@Sendable private func deqQ5_K(_ s: UnsafeRawPointer, _ d: UnsafeMutablePointer<Float>, _ n: Int) {
    for b in 0..<n {
        let p = s + 176 * b, y = d + 256 * b
        let dd = half(p, 0), dmin = half(p, 2)
        let sc = p + 4, qh = p + 16, qs = p + 48
        for g in 0..<4 {
            let (s1, m1) = scaleMinK4(2 * g, sc), (s2, m2) = scaleMinK4(2 * g + 1, sc)
            let d1 = dd * s1, dm1 = dmin * m1, d2 = dd * s2, dm2 = dmin * m2
            for l in 0..<32 {
                let q = byte(qs, 32 * g + l), h = byte(qh, l)
                let lo = (q & 0xf) | (((h >> UInt8(2 * g)) & 1) << 4)
                let hi = (q >> 4) | (((h >> UInt8(2 * g + 1)) & 1) << 4)
                y[64 * g + l] = d1 * Float(lo) - dm1
                y[64 * g + 32 + l] = d2 * Float(hi) - dm2
            }
        }
    }
}

/// block_q6_K { u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d }: y = (d·scale[k/16])·(q − 32), two halves of 128.
@Sendable private func deqQ6_K(_ s: UnsafeRawPointer, _ d: UnsafeMutablePointer<Float>, _ n: Int) {
    for b in 0..<n {
        let p = s + 210 * b, y = d + 256 * b
        let dd = half(p, 208)
        for h in 0..<2 {
            let ql = p + 64 * h, qh = p + 128 + 32 * h, sc = p + 192 + 8 * h, yy = y + 128 * h
            for l in 0..<32 {
                let a = byte(ql, l), c = byte(ql, l + 32), e = byte(qh, l)
                let q1 = Int((a & 0xf) | ((e & 3) << 4)) - 32
                let q2 = Int((c & 0xf) | (((e >> 2) & 3) << 4)) - 32
                let q3 = Int((a >> 4) | (((e >> 4) & 3) << 4)) - 32
                let q4 = Int((c >> 4) | (((e >> 6) & 3) << 4)) - 32
                let i = l / 16
                @inline(__always) func scl(_ k: Int) -> Float { dd * Float(Int8(bitPattern: byte(sc, k))) }
                yy[l] = scl(i) * Float(q1)
                yy[l + 32] = scl(i + 2) * Float(q2)
                yy[l + 64] = scl(i + 4) * Float(q3)
                yy[l + 96] = scl(i + 6) * Float(q4)
            }
        }
    }
}

// MARK: - Public entry points

extension GGMLType {
    /// Dequantizes `dst.count` values (a multiple of `blockSize`) from `src` into `dst`, in
    /// storage order. Large inputs are split over threads by block ranges (results do not
    /// depend on the thread count).
    public func dequantize(_ src: UnsafeRawBufferPointer, into dst: UnsafeMutableBufferPointer<Float>) {
        let f = QuantFormat.table[self]!
        let blocks = dst.count / f.blockSize
        precondition(blocks * f.blockSize == dst.count && blocks * f.bytesPerBlock <= src.count,
                     "dequantize: buffer sizes do not match \(name)")
        guard blocks > 0, let s = src.baseAddress, let d = dst.baseAddress else { return }
        let minChunk = max(1, 16384 / f.blockSize)
        let chunks = min(ProcessInfo.processInfo.activeProcessorCount * 4, (blocks + minChunk - 1) / minChunk)
        if chunks <= 1 { f.dequantize(s, d, blocks); return }
        DispatchQueue.concurrentPerform(iterations: chunks) { c in
            let lo = c * blocks / chunks, hi = (c + 1) * blocks / chunks
            f.dequantize(s + lo * f.bytesPerBlock, d + lo * f.blockSize, hi - lo)
        }
    }

    /// Dequantizes `count` values from `src` into a new array (throws-free; sizes are preconditions).
    public func dequantize(_ src: UnsafeRawBufferPointer, count: Int) -> [Float] {
        [Float](unsafeUninitializedCapacity: count) { buf, n in
            dequantize(src, into: buf)
            n = count
        }
    }
}
