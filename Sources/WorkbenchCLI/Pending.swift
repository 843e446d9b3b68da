import Foundation
import QuantKernels

// Commands whose back ends land with the model-formats and kernels modules.
enum InspectCommand {
    static func run(model: String, activations: String?, windows: Int, seqLen: Int) throws {
        throw WorkbenchFailure.badInput("\(model): loading model files is not available in this build")
    }
}
enum TokenizeCommand {
    static func run(model: String, file: String) throws {
        throw WorkbenchFailure.badInput("\(model): loading model files is not available in this build")
    }
}
enum BenchCommand {
    static func run(json: String?, quick: Bool, threads: [Int], only: Set<String>?) throws {
        print(KernelDispatch.summary)
        let report = KernelBenchmark.run(threads: threads, quick: quick, only: only)
        print(report.text)
        if let json { try writeAtomically(try report.json(), to: json) }
    }
}
