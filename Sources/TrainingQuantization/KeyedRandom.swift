/// Counter-based random numbers: every draw is a pure function of (seed, step, layer, stream, row,
/// column), so a draw does not depend on which thread makes it or in which order — the same seed
/// gives the same bits on any thread count.
///
/// The generator is the SplitMix64 finalizer applied to a key built by chaining the coordinates
/// through the same finalizer (each coordinate changes every bit of the key).
public struct KeyedRandom: Sendable, Equatable {
    /// The key of one (seed, step, layer, stream); rows and columns are mixed in per draw.
    public let key: UInt64

    /// Streams keep different uses of randomness independent within one layer and step.
    public enum Stream: UInt64, Sendable {
        /// Stochastic rounding of the low half in bit splitting (per element).
        case splitRounding = 1
        /// Bernoulli draws of leverage-score sampling for ∂X and for ∂W (per split row).
        case sampleInputGradient = 2
        case sampleWeightGradient = 3
    }

    public init(seed: UInt64, step: Int, layer: LinearID, stream: Stream) {
        var k = KeyedRandom.mix(seed ^ 0x5851_F42D_4C95_7F2D)
        k = KeyedRandom.mix(k ^ UInt64(bitPattern: Int64(step)))
        k = KeyedRandom.mix(k ^ KeyedRandom.hash(layer.description))
        key = KeyedRandom.mix(k ^ stream.rawValue)
    }

    /// A uniform draw in (0, 1), 16 bits, `(b + ½)/2¹⁶` with b uniform in 0…65535
    /// (mean exactly ½): element `column` of the SplitMix64 stream of `row`. One 64-bit output serves
    /// four neighbouring columns (bits 48…63, 32…47, 16…31, 0…15). 16 bits bound stochastic rounding's
    /// bias by 2⁻¹⁶ of a step.
    @inline(__always) public func uniform(row: Int, column: Int = 0) -> Float {
        uniform(rowKey: rowKey(row), column: column)
    }

    /// A uniform draw in [0, 1) with 53 bits, one per row (for Bernoulli draws with small p).
    @inline(__always) public func uniformDouble(row: Int) -> Double {
        Double(KeyedRandom.block(rowKey: rowKey(row), 0) >> 11) * (1.0 / 9_007_199_254_740_992.0)
    }

    /// The per-row part of `uniform(row:column:)`, hoisted out of loops over columns.
    @inline(__always) public func rowKey(_ row: Int) -> UInt64 {
        KeyedRandom.mix(key &+ UInt64(truncatingIfNeeded: row) &* 0xD1B5_4A32_D192_ED03)
    }

    @inline(__always) public func uniform(rowKey: UInt64, column: Int) -> Float {
        let z = KeyedRandom.block(rowKey: rowKey, column >> 2)
        return KeyedRandom.unit(z, column & 3)
    }

    /// The 64 random bits shared by columns 4b…4b+3.
    @inline(__always) public static func block(rowKey: UInt64, _ b: Int) -> UInt64 {
        mix(rowKey &+ UInt64(truncatingIfNeeded: b) &* 0x9E37_79B9_7F4A_7C15)
    }

    /// Lane `lane` (0…3) of a block as a uniform in (0, 1): `(b + ½)/2¹⁶`.
    @inline(__always) public static func unit(_ z: UInt64, _ lane: Int) -> Float {
        let b = (z >> UInt64(48 - 16 * lane)) & 0xFFFF
        return (Float(b) + 0.5) * (1.0 / 65_536.0)
    }

    /// SplitMix64's finalizer (a bijection of UInt64 with full avalanche).
    @inline(__always) public static func mix(_ x: UInt64) -> UInt64 {
        var z = x &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// FNV-1a of the UTF-8 bytes: a hash that is the same in every process (Swift's `Hasher` is not).
    public static func hash(_ s: String) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for b in s.utf8 { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01B3 }
        return h
    }
}
