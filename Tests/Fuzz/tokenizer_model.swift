// Target `tokenizer_model`: a SentencePiece tokenizer.model, then encode and decode a text.
import Foundation
import ModelFormats

func fuzzTarget(_ bytes: UnsafeRawBufferPointer) {
    let url = scratchFile("tokenizer.model", bytes)
    guard let t = try? SentencePieceTokenizer(sentencePieceModel: url) else { return }
    let ids = t.encode("Hello world, <s> 12345 caf\u{00e9}\n\n  x")
    _ = t.decode(ids, renderSpecial: true)
}
