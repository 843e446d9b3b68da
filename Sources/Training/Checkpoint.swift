import Foundation
import TrainingQuantization

/// The training checkpoint: everything needed to continue bit-identically.
///
/// Little-endian binary, version 1:
///
///     "QWBTRAIN" u32 version
///     shape: u32 layers hidden heads kvHeads headDim ffn context vocab, u8 tied, u8 ropeLayout, f64 ropeTheta normEps
///     u64 seed, u64 step (steps done), u64 adamT, str quantizer
///     u32 P, P × { str name, u32 rows, u32 cols, f32[rows·cols] value, m, v }
///     u32 Q, Q × { str layerID, u32 n, f32[n] scalars, m, v, u32 S, S × { str key, i64 value } }
///     u32 R, R × step record, u32 V, V × validation record
///     u64 FNV-1a hash of every byte before it
///
/// Batches are keyed by (seed, step), so seed and step are the whole random state. `str` is u32
/// length + UTF-8. Every count and size is checked against the run being resumed and against the
/// bytes left before anything is allocated.
enum TrainingCheckpoint {
    static let magic = Array("QWBTRAIN".utf8)
    static let version: UInt32 = 1

    struct Writer {
        var bytes: [UInt8] = []
        mutating func u8(_ v: UInt8) { bytes.append(v) }
        mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
        mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
        mutating func i64(_ v: Int) { u64(UInt64(bitPattern: Int64(v))) }
        mutating func f64(_ v: Double) { u64(v.bitPattern) }
        mutating func int(_ v: Int) { u32(UInt32(v)) }
        mutating func str(_ s: String) { let u = Array(s.utf8); int(u.count); bytes += u }
        mutating func floats(_ a: [Float]) {
            bytes.reserveCapacity(bytes.count + 4 * a.count)
            for x in a { u32(x.bitPattern) }
        }
    }

    struct Reader {
        let bytes: [UInt8]
        let path: String
        var at = 0
        func fail(_ what: String) -> TrainingInputError { TrainingInputError("\(path): checkpoint \(what) (at byte \(at))") }
        mutating func take(_ n: Int, _ what: String) throws -> ArraySlice<UInt8> {
            guard n >= 0, n <= bytes.count - 8 - at else { throw fail("is truncated reading \(what)") }
            defer { at += n }
            return bytes[at..<(at + n)]
        }
        mutating func u8(_ what: String) throws -> UInt8 { try take(1, what).first! }
        mutating func u32(_ what: String) throws -> UInt32 {
            try take(4, what).reversed().reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        }
        mutating func u64(_ what: String) throws -> UInt64 {
            try take(8, what).reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        }
        mutating func i64(_ what: String) throws -> Int { Int(Int64(bitPattern: try u64(what))) }
        mutating func f64(_ what: String) throws -> Double { Double(bitPattern: try u64(what)) }
        /// A count in `range`, named in the error.
        mutating func count(_ what: String, _ range: ClosedRange<Int>) throws -> Int {
            let v = Int(try u32(what))
            guard range.contains(v) else { throw fail("has \(what) = \(v), expected \(range.lowerBound)…\(range.upperBound)") }
            return v
        }
        mutating func str(_ what: String) throws -> String {
            let n = try count(what + " length", 0...4096)
            guard let s = String(bytes: try take(n, what), encoding: .utf8) else { throw fail("has a \(what) that is not UTF-8") }
            return s
        }
        mutating func floats(_ n: Int, _ what: String) throws -> [Float] {
            guard n >= 0, n <= (bytes.count - 8 - at) / 4 else { throw fail("is truncated reading \(what) (\(n) values)") }
            var out = [Float](repeating: 0, count: n)
            for i in 0..<n {
                let o = at + 4 * i
                out[i] = Float(bitPattern: UInt32(bytes[o]) | UInt32(bytes[o + 1]) << 8 | UInt32(bytes[o + 2]) << 16 | UInt32(bytes[o + 3]) << 24)
            }
            at += 4 * n
            return out
        }
    }

    static func fnv1a(_ bytes: ArraySlice<UInt8>) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in bytes { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        return h
    }
}

extension TrainingRun {
    /// Writes the checkpoint atomically (temporary file, then rename).
    public func saveCheckpoint(to path: String) throws {
        var w = TrainingCheckpoint.Writer()
        w.bytes += TrainingCheckpoint.magic
        w.u32(TrainingCheckpoint.version)
        let s = model.shape
        for v in [s.layers, s.hidden, s.heads, s.kvHeads, s.headDim, s.ffn, s.context, s.vocab] { w.int(v) }
        w.u8(s.tied ? 1 : 0); w.u8(s.ropeLayout == .interleavedPairs ? 1 : 0)
        w.f64(s.ropeTheta); w.f64(s.normEps)
        w.u64(settings.seed); w.u64(UInt64(step)); w.u64(UInt64(optimizer.t)); w.str(quantizerName)
        let params = model.parameters.all
        w.int(params.count)
        for (i, p) in params.enumerated() {
            w.str(p.name); w.int(p.rows); w.int(p.cols)
            w.floats(p.value); w.floats(optimizer.m[i]); w.floats(optimizer.v[i])
        }
        w.int(layers.count)
        for (i, l) in layers.enumerated() {
            w.str(l.id.description)
            let sc = l.scalars
            w.int(sc.count); w.floats(sc)
            let hasMoments = optimizer.scalarM[i].count == sc.count
            w.floats(hasMoments ? optimizer.scalarM[i] : [Float](repeating: 0, count: sc.count))
            w.floats(hasMoments ? optimizer.scalarV[i] : [Float](repeating: 0, count: sc.count))
            let st = l.state.sorted { $0.key < $1.key }
            w.int(st.count)
            for (k, v) in st { w.str(k); w.i64(v) }
        }
        w.int(records.count)
        for r in records {
            w.u64(UInt64(r.step)); w.f64(r.loss); w.f64(r.learningRate); w.f64(r.gradNorm); w.f64(r.seconds); w.f64(r.tokensPerSecond)
            w.f64(r.linear.integerGemm); w.f64(r.linear.quantize); w.f64(r.linear.floatGemm)
            w.i64(r.linear.integerRows); w.i64(r.linear.floatRows)
        }
        w.int(validations.count)
        for v in validations { w.u64(UInt64(v.step)); w.f64(v.quantizedLoss); w.f64(v.floatLoss) }
        w.u64(TrainingCheckpoint.fnv1a(w.bytes[...]))
        try writeFileAtomically(Data(w.bytes), to: path)
    }

    /// Loads a checkpoint written by a run of the same recipe (same shape, quantizer, seed) and
    /// continues from it. Nothing is changed unless the whole file is valid.
    public func restore(from path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else { throw TrainingInputError("\(path): cannot read the checkpoint") }
        var r = TrainingCheckpoint.Reader(bytes: [UInt8](data), path: path)
        guard r.bytes.count >= TrainingCheckpoint.magic.count + 12, Array(r.bytes.prefix(8)) == TrainingCheckpoint.magic else {
            throw TrainingInputError("\(path): not a quantwb training checkpoint")
        }
        let stored = r.bytes.suffix(8).reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        guard stored == TrainingCheckpoint.fnv1a(r.bytes.dropLast(8)) else {
            throw TrainingInputError("\(path): the checkpoint is corrupt (checksum mismatch); delete it to start over")
        }
        r.at = 8
        let version = try r.u32("version")
        guard version == TrainingCheckpoint.version else {
            throw r.fail("has version \(version); this workbench reads version \(TrainingCheckpoint.version)")
        }
        let s = model.shape
        let expected = [("layers", s.layers), ("hidden", s.hidden), ("heads", s.heads), ("kv_heads", s.kvHeads), ("head size", s.headDim),
                        ("ffn", s.ffn), ("context", s.context), ("vocab", s.vocab)]
        for (name, v) in expected {
            let got = Int(try r.u32(name))
            guard got == v else { throw r.fail("was written for \(name) \(got), the recipe has \(v)") }
        }
        guard try r.u8("tied") == (s.tied ? 1 : 0) else { throw r.fail("differs from the recipe in tied/untied lm_head") }
        guard try r.u8("rope layout") == (s.ropeLayout == .interleavedPairs ? 1 : 0) else { throw r.fail("has another RoPE layout") }
        guard try r.f64("rope theta") == s.ropeTheta, try r.f64("norm eps") == s.normEps else { throw r.fail("has another RoPE θ or norm ε") }
        let seed = try r.u64("seed")
        guard seed == settings.seed else { throw r.fail("was written with seed \(seed), the recipe has \(settings.seed)") }
        let doneSteps = Int(try r.u64("step"))
        guard doneSteps >= 0, doneSteps <= settings.steps else { throw r.fail("is at step \(doneSteps), beyond the recipe's \(settings.steps) steps") }
        let adamT = Int(try r.u64("optimizer step"))
        guard adamT == doneSteps else { throw r.fail("has optimizer step \(adamT) ≠ step \(doneSteps)") }
        let q = try r.str("quantizer")
        guard q == quantizerName else { throw r.fail("was written by quantizer '\(q)', the recipe has '\(quantizerName)'") }
        let params = model.parameters.all
        _ = try r.count("parameter count", params.count...params.count)
        var values: [[Float]] = [], ms: [[Float]] = [], vs: [[Float]] = []
        for p in params {
            let name = try r.str("parameter name")
            guard name == p.name else { throw r.fail("has parameter '\(name)' where '\(p.name)' was expected") }
            _ = try r.count("\(name) rows", p.rows...p.rows); _ = try r.count("\(name) cols", p.cols...p.cols)
            values.append(try r.floats(p.value.count, name)); ms.append(try r.floats(p.value.count, name + " m"))
            vs.append(try r.floats(p.value.count, name + " v"))
        }
        _ = try r.count("layer count", layers.count...layers.count)
        var scalars: [[Float]] = [], sm: [[Float]] = [], sv: [[Float]] = [], states: [[String: Int]] = []
        for l in layers {
            let id = try r.str("layer id")
            guard id == l.id.description else { throw r.fail("has layer '\(id)' where '\(l.id)' was expected") }
            let n = try r.count("\(id) scalar count", 0...(1 << 20))
            scalars.append(try r.floats(n, id + " scalars")); sm.append(try r.floats(n, id + " scalar m")); sv.append(try r.floats(n, id + " scalar v"))
            let sn = try r.count("\(id) state count", 0...1024)
            var st: [String: Int] = [:]
            for _ in 0..<sn { let k = try r.str("\(id) state key"); st[k] = try r.i64("\(id) state \(k)") }
            states.append(st)
        }
        let rn = try r.count("step record count", doneSteps...doneSteps)
        var recs: [StepRecord] = []
        for _ in 0..<rn {
            let st = Int(try r.u64("record step"))
            let loss = try r.f64("loss"), lr = try r.f64("lr"), gn = try r.f64("grad norm"), sec = try r.f64("seconds"), tps = try r.f64("tokens/s")
            var t = LinearTiming()
            t.integerGemm = try r.f64("timing"); t.quantize = try r.f64("timing"); t.floatGemm = try r.f64("timing")
            t.integerRows = try r.i64("rows"); t.floatRows = try r.i64("rows")
            recs.append(StepRecord(step: st, loss: loss, learningRate: lr, gradNorm: gn, seconds: sec, tokensPerSecond: tps, linear: t))
        }
        let vn = try r.count("validation count", 0...doneSteps)
        var vals: [ValidationRecord] = []
        for _ in 0..<vn { vals.append(ValidationRecord(step: Int(try r.u64("validation step")), quantizedLoss: try r.f64("val loss"), floatLoss: try r.f64("val loss"))) }
        guard r.at == r.bytes.count - 8 else { throw r.fail("has \(r.bytes.count - 8 - r.at) unexpected bytes at the end") }
        for (i, l) in layers.enumerated() {
            if let problem = l.problem(restoring: states[i], scalars: scalars[i]) { throw r.fail("layer \(l.id): \(problem)") }
        }
        // Valid: apply.
        for (i, p) in params.enumerated() { p.value = values[i] }
        optimizer.m = ms; optimizer.v = vs; optimizer.t = adamT
        for (i, l) in layers.enumerated() {
            l.state = states[i]; l.scalars = scalars[i]
        }
        optimizer.scalarM = sm; optimizer.scalarV = sv
        step = doneSteps; records = recs; validations = vals
    }
}
