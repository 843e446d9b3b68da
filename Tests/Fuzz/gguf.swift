// Target `gguf`: a .gguf file through the whole loader — header, metadata, tensor directory,
// architecture config, the tokenizer from `tokenizer.ggml.*`, and every tensor dequantized.
import Foundation
import ModelFormats
import LlamaModel

func fuzzTarget(_ bytes: UnsafeRawBufferPointer) {
    let url = scratchFile("input.gguf", bytes)
    guard let ckpt = try? openCheckpoint(url) else {
        _ = try? GGUFFile(url: url)
        return
    }
    if let tok = try? CheckpointLoader.tokenizer(for: ckpt) {
        let ids = tok.encode("Hello world, <s> 12345 \u{00e9}\n")
        _ = tok.decode(ids)
    }
    _ = try? CheckpointLoader.decoderModel(from: ckpt)
}
