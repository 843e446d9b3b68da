// Target `safetensors`: a Hugging Face folder. Input = u32 little-endian length n, then n bytes
// of config.json, then the model.safetensors file. Opens the folder (config validation and
// tensor checks, and with a `quantization_config` the compressed-tensors pack-quantized path),
// unpacks every packed linear, builds the model (every tensor converted), and opens the file alone.
import Foundation
import ModelFormats
import LlamaModel

func fuzzTarget(_ bytes: UnsafeRawBufferPointer) {
    guard bytes.count >= 4 else { return }
    let n = Int(bytes.loadUnaligned(as: UInt32.self).littleEndian)
    let split = min(bytes.count, 4 + n)
    let folder = scratch.appendingPathComponent("hf")
    try? FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    _ = FileManager.default.createFile(atPath: folder.appendingPathComponent("config.json").path,
                                   contents: Data(UnsafeRawBufferPointer(rebasing: bytes[4..<split])))
    let file = folder.appendingPathComponent("model.safetensors")
    _ = FileManager.default.createFile(atPath: file.path, contents: Data(UnsafeRawBufferPointer(rebasing: bytes[split...])))
    if let st = try? SafetensorsFile(url: file) {
        for t in st.tensors { _ = try? st.floats(t.name) }
    }
    if let ckpt = try? openCheckpoint(folder) {
        if let st = ckpt as? SafetensorsCheckpoint {   // compressed-tensors: every packed linear unpacked
            for name in st.packedTensorNames { _ = try? st.quantizedTensor(name) }
        }
        _ = try? CheckpointLoader.decoderModel(from: ckpt)
    }
}
