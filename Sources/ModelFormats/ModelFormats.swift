// ModelFormats — reading LLaMA-family checkpoints into f32, format-neutrally.
//
//  * `GGUFFile`: memory-mapped GGUF v2/v3 reader (metadata as `GGUFValue`, tensor directory,
//    full validation before any allocation sized by the header).
//  * `QuantFormat.table` / `GGMLType.dequantize`: table-driven dequantization of
//    F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K — bit-identical to gguf-py.
//  * `SafetensorsFile` / `SafetensorsCollection`: single and index-sharded safetensors (F32/F16/BF16,
//    and I32/I64 for packed weights).
//  * `CompressedTensorsWriter`: writes a Hugging Face folder in the compressed-tensors
//    `pack-quantized` layout (int4/int8 weights, scales, zero points, quantization_config,
//    tokenizer.json); `SafetensorsCheckpoint` loads such folders back, dequantizing on load.
//  * `Checkpoint` (`GGUFCheckpoint`, `SafetensorsCheckpoint`), `openCheckpoint(_:)`: canonical
//    Hugging Face-style tensor names, `ArchitectureConfig`, `RopeLayout`.
//  * `locateReferenceModel(explicit:environment:)`: finds SmolLM2-135M-Instruct.Q4_1.gguf.
//
// Shapes are row-major, outermost first: matrices `[out, in]`, vectors `[n]`.
// All errors are `ModelFormatError`, whose description names the file, the tensor or key,
// and what to do.
