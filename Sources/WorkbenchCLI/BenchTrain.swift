import ArgumentParser
import Foundation
import Reporting
import TrainingQuantization

struct BenchTrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "One INT4 (HQ + BS + LSS) training linear layer — forward and both gradient GEMMs, quantization included — against the f32 layer.")
    @Option(help: "Also write the results as JSON.") var json: String?
    @Flag(help: "Fewer repetitions.") var quick = false
    @Option(help: "Thread counts, comma-separated.") var threads: String = "1,2"
    @Option(help: "Tokens per step (batch × sequence length).") var tokens: Int = 4096

    func run() throws {
        let t = threads.split(separator: ",").compactMap { Int($0) }
        guard !t.isEmpty, t.allSatisfy({ $0 > 0 }) else { throw ValidationError("--threads takes positive integers, e.g. 1,2") }
        guard tokens >= 1 && tokens <= 1 << 16 else { throw ValidationError("--tokens must be 1…65536") }
        let report = TrainingBenchmark.run(threads: t, tokens: tokens, quick: quick)
        print(report.text, terminator: "")
        if let json { try failing { try writeAtomically(try report.json(), to: json) } }
    }
}
