import Foundation
import QuantCore
import ModelFormats

/// A variant cannot be exported in the requested format.
public struct ExportError: Error, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// What an export wrote, for the run log and the user.
public struct ExportSummary: Sendable {
    public var path: String
    /// ggml / storage type → number of tensors written with it.
    public var tensorTypes: [String: Int] = [:]
    /// Tensors whose quantized weights could not be stored exactly in a quantized format and were
    /// written as F32 of their dequantized values (with why).
    public var fallbacks: [String] = []
    /// What the exported file does not carry (activation quantization, …).
    public var notes: [String] = []
    public var bytes: Int = 0

    public var text: String {
        var s = "wrote \(path) (\(bytes) bytes): " + tensorTypes.sorted { $0.key < $1.key }.map { "\($0.value) × \($0.key)" }.joined(separator: ", ")
        for f in fallbacks { s += "\n  as F32: \(f)" }
        for n in notes { s += "\n  note: \(n)" }
        return s
    }
}

/// Things every export checks first: weights only are exported, so online transforms (which a
/// runtime would have to apply to every token) cannot be, and activation quantization is not carried.
public enum ExportChecks {
    /// Throws for transforms that run online at any site; returns notes for what is not carried.
    public static func check(_ model: DecoderModel, variant: String) throws -> [String] {
        for s in model.allSites {
            for t in s.transforms where t.placement == .online {
                throw ExportError("variant \(variant): \(s.name) applies \(t.transform.kindName) (added by \(t.addedBy)) to its input online, at run time; no runtime that loads GGUF or compressed-tensors files applies it, so the exported weights would compute a different function. Export a variant whose transforms fold offline (SmoothQuant, or RTN / GPTQ alone).")
            }
        }
        var notes: [String] = []
        let quantizedSites = model.allSites.filter { $0.activationScheme.isQuantized }
        if let s = quantizedSites.first {
            notes.append("activation quantization (\(s.activationScheme) at \(quantizedSites.count) sites) is not carried: the file holds weights only; a runtime quantizes activations its own way")
        }
        if let a = model.blocks.first?.attentionQuantization {
            notes.append("attention Q/K/V quantization (int\(a.bits)) is not carried")
        }
        return notes
    }
}

/// Writes a quantized variant of a GGUF model as GGUF: block linears whose weights map exactly
/// onto a ggml format — groups of 32, that format's grid, scales exactly f16 (`scales: f16`) —
/// as Q8_0 (int8 symmetric), Q4_0 (int4 symmetric) or Q4_1 (int4 asymmetric, when the offsets
/// −zero·scale are exactly f16); every other changed tensor as F32; unchanged tensors copied
/// byte for byte from the source with their type. Metadata (architecture, tokenizer) is copied
/// from the source.
public enum GGUFExport {
    public static func write(_ model: DecoderModel, float fp: DecoderModel, source: GGUFCheckpoint, variant: String,
                             to path: String) throws -> ExportSummary {
        var summary = ExportSummary(path: path)
        summary.notes = try ExportChecks.check(model, variant: variant)
        var w = GGUFFileWriter()
        w.alignment = source.gguf.alignment
        for k in source.gguf.metadataKeys where k != "general.file_type" && k != "general.alignment" {
            if let v = source.gguf.metadata[k] { w.set(k, v) }
        }
        w.set("general.quantized_by", .string("quantwb"))
        w.set("quantwb.variant", .string(variant))

        var linears: [String: Linear] = ["lm_head": model.lmHead]
        var fpLinears: [String: Linear] = ["lm_head": fp.lmHead]
        for l in model.allSites.flatMap(\.linears) { linears[l.name] = l }
        for l in fp.allSites.flatMap(\.linears) { fpLinears[l.name] = l }
        func floats(_ canonical: String, _ m: DecoderModel) -> [Float]? {
            if canonical == "embed_tokens" { return m.embedding.data }
            if canonical == "norm" { return m.finalNorm }
            let parts = canonical.split(separator: ".")
            if parts.count == 3, parts[0] == "layers", let i = Int(parts[1]), i < m.blocks.count {
                if parts[2] == "input_layernorm" { return m.blocks[i].attentionNorm }
                if parts[2] == "post_attention_layernorm" { return m.blocks[i].mlpNorm }
            }
            return nil
        }
        func add(_ name: String, _ shape: [Int], _ type: GGMLType, _ bytes: Data) throws {
            try w.add(.init(name: name, shape: shape, type: type, bytes: bytes))
            summary.tensorTypes[type.name, default: 0] += 1
        }
        func copySource(_ t: GGUFTensorInfo) throws {
            let raw = source.gguf.rawBytes(t)
            try add(t.name, t.shape, t.type, Data(raw))
        }
        for t in source.gguf.tensors {
            guard let canonical = GGUFCheckpoint.canonicalName(t.name) else { try copySource(t); continue }
            let name = canonical
            if name.hasSuffix(".bias"), let l = linears[String(name.dropLast(5))], let f = fpLinears[String(name.dropLast(5))] {
                if l.bias == f.bias { try copySource(t) } else { try add(t.name, t.shape, .f32, GGMLBlockEncoder.f32(l.bias ?? [])) }
            } else if let l = linears[name], let f = fpLinears[name] {
                try addLinear(t.name, l, unchanged: l.quantized == nil && l.weight == f.weight, source: t)
            } else if let now = floats(name, model), let before = floats(name, fp) {
                if now == before { try copySource(t) } else { try add(t.name, t.shape, .f32, GGMLBlockEncoder.f32(now)) }
            } else {
                try copySource(t)
            }
        }
        // A tied head that the variant changed (quantized, or rotated apart from the embedding)
        // needs its own output tensor.
        if source.info("lm_head") == nil, model.lmHead.quantized != nil || model.lmHead.weight != model.embedding {
            try addLinear("output.weight", model.lmHead, unchanged: false, source: nil)
        }

        func addLinear(_ storage: String, _ l: Linear, unchanged: Bool, source t: GGUFTensorInfo?) throws {
            if unchanged, let t { return try copySource(t) }
            let shape = [l.outFeatures, l.inFeatures]
            guard let q = l.quantized else { return try add(storage, shape, .f32, GGMLBlockEncoder.f32(l.weight.data)) }
            if let (type, bytes) = encode(q) { return try add(storage, shape, type, bytes) }
            summary.fallbacks.append("\(l.name) (\(q.grid) groups of \(q.groupSize): \(whyNot(q)))")
            try add(storage, shape, .f32, GGMLBlockEncoder.f32(q.dequantized().data))
        }

        try w.write(to: path)
        summary.bytes = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
        return summary
    }

    /// The ggml block type that stores `q` exactly, with its bytes.
    static func encode(_ q: QuantizedWeight) -> (GGMLType, Data)? {
        guard q.groupSize == 32 else { return nil }
        switch (q.grid.bits, q.grid.symmetric) {
        case (8, true): return GGMLBlockEncoder.q8_0(codes: q.codes, scales: q.scales).map { (.q8_0, $0) }
        case (4, true): return GGMLBlockEncoder.q4_0(codes: q.codes, scales: q.scales).map { (.q4_0, $0) }
        case (4, false): return GGMLBlockEncoder.q4_1(codes: q.codes, scales: q.scales, zeros: q.zeros).map { (.q4_1, $0) }
        default: return nil
        }
    }

    static func whyNot(_ q: QuantizedWeight) -> String {
        if q.groupSize != 32 { return "ggml blocks hold 32 values; use granularity {group: 32}" }
        if ![4, 8].contains(q.grid.bits) || (q.grid.bits == 8 && !q.grid.symmetric) { return "no ggml block format for this grid (Q8_0 is int8 symmetric, Q4_0 int4 symmetric, Q4_1 int4 asymmetric)" }
        if !q.grid.f16Scales { return "scales are not f16; set the weight scheme's `scales: f16`" }
        return "some group's offset −zero·scale is not exactly f16 (Q4_1 stores it as f16); use symmetric int4 (Q4_0)"
    }
}
