import Foundation
import QuantCore

extension ModelLoading {
    /// Loading real model files arrives with the model-formats module.
    static func loadFile(_ path: String?) throws -> LoadedModel {
        throw WorkbenchFailure.badInput("\(path ?? "reference model"): loading model files is not available in this build")
    }
}
