import Foundation

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
    static func run(json: String?, quick: Bool) throws {
        throw WorkbenchFailure.runtime("the kernel benchmark is not available in this build")
    }
}
