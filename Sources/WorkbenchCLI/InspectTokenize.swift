import ArgumentParser
import Foundation

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print a model's architecture, tensors and (with --activations) outlier statistics.")
    @Option(help: "A .gguf file or a Hugging Face folder; `reference` locates SmolLM2-135M.") var model: String
    @Option(help: "A text file: run a few windows and print per-site activation statistics.") var activations: String?
    @Option(help: "Windows of text to run for --activations.") var windows: Int = 4
    @Option(help: "Tokens per window for --activations.") var seqLen: Int = 512
    func run() throws { try failing { try InspectCommand.run(model: model, activations: activations, windows: windows, seqLen: seqLen) } }
}

struct Tokenize: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the token ids of a text file, one per line (compare with llama.cpp's llama-tokenize).")
    @Option(help: "A .gguf file or a Hugging Face folder; `reference` locates SmolLM2-135M.") var model: String
    @Argument(help: "The text file.") var file: String
    func run() throws { try failing { try TokenizeCommand.run(model: model, file: file) } }
}

struct BenchKernels: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "kernels", abstract: "Kernel throughput on the reference model's shapes vs this machine's peaks.")
    @Option(help: "Also write the results as JSON.") var json: String?
    @Flag(help: "Fewer shapes and repetitions.") var quick = false
    @Option(help: "Thread counts, comma-separated.") var threads: String = "1,2"
    @Option(help: "Only these kernel families, comma-separated: f32, int, weightonly, hadamard, openblas.") var only: String?
    func run() throws {
        let t = threads.split(separator: ",").compactMap { Int($0) }
        guard !t.isEmpty, t.allSatisfy({ $0 > 0 }) else { throw ValidationError("--threads takes positive integers, e.g. 1,2") }
        try failing { try BenchCommand.run(json: json, quick: quick, threads: t, only: only.map { Set($0.split(separator: ",").map(String.init)) }) }
    }
}
