// Target `tokenizer_json`: a Hugging Face tokenizer.json, then encode and decode a text.
import Foundation
import ModelFormats

func fuzzTarget(_ bytes: UnsafeRawBufferPointer) {
    guard let t = try? BPETokenizer(tokenizerJSONData: Data(bytes)) else { return }
    let ids = t.encode("Hello world, <|endoftext|> 12345 caf\u{00e9}\n\n  x")
    _ = t.decode(ids, renderSpecial: true)
}
