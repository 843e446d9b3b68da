import QuantKernels

/// A transform chain compiled for running: `x ← x·T₁·T₂·…` on a tokens × features matrix,
/// with runs of `[scale] → blockOrthogonal [→ permutation → blockOrthogonal]` of one block size
/// (DuQuant's `Λ⁻¹·R₁·P·R₂`) fused into one pass (`FusedRotationChain`). Every other step runs
/// as `Transform.applyToActivations`. Same bits as applying the steps one by one.
public struct TransformPlan: Sendable {
    enum Stage: Sendable {
        case fused(FusedRotationChain)
        case step(Transform)
    }
    let stages: [Stage]

    /// The plan for `transforms` on rows of `features` values.
    public init(_ transforms: [Transform], features: Int) {
        var stages: [Stage] = []
        var i = 0
        while i < transforms.count {
            if let (chain, used) = Self.fusedChain(transforms[i...], features: features) {
                stages.append(.fused(chain)); i += used
            } else {
                stages.append(.step(transforms[i])); i += 1
            }
        }
        self.stages = stages
    }

    /// The longest fusable run at the start of `t`, and how many transforms it covers.
    static func fusedChain(_ t: ArraySlice<Transform>, features n: Int) -> (FusedRotationChain, Int)? {
        var k = t.startIndex
        var scale: [Float]?
        if case .scale(let s) = t[k], k + 1 < t.endIndex { scale = s; k += 1 }
        guard case let .blockOrthogonal(b, first) = t[k] else { return nil }
        k += 1
        var perm: [Int]?, second: [[Float]]?
        if k + 1 < t.endIndex, case .permutation(let p) = t[k], case let .blockOrthogonal(b2, r2) = t[k + 1], b2 == b {
            perm = p; second = r2; k += 2
        }
        guard let chain = FusedRotationChain(cols: n, blockSize: b, scale: scale, first: first, permutation: perm, second: second)
        else { return nil }
        return (chain, k - t.startIndex)
    }

    /// True when some stage is fused.
    public var isFused: Bool { stages.contains { if case .fused = $0 { return true } else { return false } } }

    /// `x ← x·T₁·T₂·…`.
    public func apply(_ x: inout Matrix, threads: Int? = nil) {
        for stage in stages {
            switch stage {
            case .step(let t): t.applyToActivations(&x)
            case .fused(let chain):
                precondition(chain.cols == x.cols, "transform plan for \(chain.cols) features on \(x.cols)")
                let rows = x.rows
                x.data.withUnsafeMutableBufferPointer { chain.apply($0.baseAddress!, rows: rows, threads: threads) }
            }
        }
    }
}
