import Foundation

/// Every failure raised by `ModelFormats`. The description names the file, the tensor or
/// metadata key involved, and what to do about it.
public enum ModelFormatError: Error, Equatable, CustomStringConvertible, LocalizedError {
    /// The file or folder could not be opened or mapped.
    case unreadable(file: String, reason: String)
    /// An output file could not be written.
    case unwritable(file: String, reason: String)
    /// The first bytes are not the expected magic.
    case badMagic(file: String, found: String)
    /// A GGUF version other than 2 or 3 (or a big-endian file).
    case unsupportedVersion(file: String, version: UInt32)
    /// The file ends before `what` is complete.
    case truncated(file: String, what: String, offset: Int, needed: Int, available: Int)
    /// A length/count field (string, array, tensor or metadata count) is larger than the rest of the file allows.
    case implausibleCount(file: String, what: String, count: UInt64, limit: UInt64)
    /// Parsing `what` would take more memory than `limit` bytes (2 × the file's size + 32 MiB).
    case memoryLimit(file: String, what: String, limit: Int)
    /// A tensor's stored values are unusable (NaN or infinity).
    case badTensorData(file: String, tensor: String, reason: String)
    /// A metadata value has an unknown type tag, or a required key has the wrong type / is missing.
    case badMetadata(file: String, key: String, reason: String)
    /// n_dims out of range, zero-size dimension, or element-count overflow.
    case badShape(file: String, tensor: String, reason: String)
    /// A tensor storage type this reader does not know or support.
    case unsupportedTensorType(file: String, tensor: String, type: String)
    /// A tensor's data lies (partly) outside the file's data section.
    case offsetOutOfRange(file: String, tensor: String, reason: String)
    /// Two tensors share bytes.
    case overlappingTensors(file: String, tensor: String, other: String)
    /// A tensor offset is not a multiple of the file's alignment.
    case misalignedOffset(file: String, tensor: String, offset: UInt64, alignment: Int)
    /// A tensor name appears twice.
    case duplicateTensor(file: String, tensor: String)
    /// A tensor the architecture needs is absent.
    case missingTensor(file: String, tensor: String)
    /// A tensor exists but its shape does not match the architecture config.
    case shapeMismatch(file: String, tensor: String, expected: [Int], found: [Int])
    /// A malformed header / JSON document (safetensors header, config.json, index.json).
    case badHeader(file: String, reason: String)
    /// A model architecture we do not load.
    case unsupportedArchitecture(file: String, architecture: String)
    /// The reference model could not be located.
    case modelNotFound(reason: String)

    public var errorDescription: String? { description }

    public var description: String {
        switch self {
        case let .unreadable(file, reason):
            return "\(file): cannot open (\(reason)). Check that the path exists and is readable."
        case let .unwritable(file, reason):
            return "\(file): cannot write (\(reason)). Check that the folder exists, is writable and has space."
        case let .badMagic(file, found):
            return "\(file): wrong magic \(found). This is not a GGUF/safetensors file of the expected kind; check the path."
        case let .unsupportedVersion(file, version):
            if version.byteSwapped == 2 || version.byteSwapped == 3 {
                return "\(file): big-endian GGUF v\(version.byteSwapped) is not supported. Convert the model again without --bigendian."
            }
            return "\(file): unsupported GGUF version \(version) (only little-endian v2 and v3 are read). Re-convert the model with a current llama.cpp convert script."
        case let .truncated(file, what, offset, needed, available):
            return "\(file): truncated while reading \(what) at byte \(offset) (needs \(needed) bytes, \(available) left). The file is incomplete; download or copy it again."
        case let .implausibleCount(file, what, count, limit):
            return "\(file): \(what) claims \(count), but at most \(limit) fit in the rest of the file. The header is corrupt; re-download the file."
        case let .memoryLimit(file, what, limit):
            return "\(file): \(what) would need more than \(limit) bytes of memory (2 × the file's size + 32 MiB). The header's counts are corrupt or absurd; re-download or re-convert the file."
        case let .badTensorData(file, tensor, reason):
            return "\(file): tensor '\(tensor)' holds bad data: \(reason). The file is corrupt; re-download or re-convert it."
        case let .badMetadata(file, key, reason):
            return "\(file): metadata key '\(key)': \(reason). Fix or re-convert the model file."
        case let .badShape(file, tensor, reason):
            return "\(file): tensor '\(tensor)' has an invalid shape: \(reason). The tensor directory is corrupt; re-download or re-convert the file."
        case let .unsupportedTensorType(file, tensor, type):
            return "\(file): tensor '\(tensor)' has storage type \(type), which is not supported (supported: \(GGMLType.allCases.map(\.name).joined(separator: ", ")); safetensors F32/F16/BF16, and I32/I64 in compressed-tensors packed weights). Re-quantize the model to a supported type."
        case let .offsetOutOfRange(file, tensor, reason):
            return "\(file): tensor '\(tensor)' data is out of range: \(reason). The file is truncated or corrupt; download it again."
        case let .overlappingTensors(file, tensor, other):
            return "\(file): tensor '\(tensor)' overlaps tensor '\(other)'. The tensor directory is corrupt; re-convert the file."
        case let .misalignedOffset(file, tensor, offset, alignment):
            return "\(file): tensor '\(tensor)' offset \(offset) is not a multiple of the alignment \(alignment). The file is corrupt or written by a broken tool; re-convert it."
        case let .duplicateTensor(file, tensor):
            return "\(file): tensor '\(tensor)' appears more than once. Re-convert the file."
        case let .missingTensor(file, tensor):
            return "\(file): required tensor '\(tensor)' is missing. The checkpoint is incomplete or of a different architecture; check the model files (and, if sharded, the index and all shards)."
        case let .shapeMismatch(file, tensor, expected, found):
            return "\(file): tensor '\(tensor)' has shape \(found) but the config implies \(expected). The config does not belong to these weights; check config.json / the GGUF metadata."
        case let .badHeader(file, reason):
            return "\(file): invalid header: \(reason). The file is corrupt or not of the expected kind; re-download or re-export it."
        case let .unsupportedArchitecture(file, architecture):
            return "\(file): architecture '\(architecture)' is not supported (supported: llama, mistral, qwen2 / LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM)."
        case let .modelNotFound(reason):
            return "Reference model not found: \(reason)"
        }
    }
}
