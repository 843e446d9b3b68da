// Target `recipe`: a run/check recipe (YAML) parsed and validated against the built-in methods.
import Foundation
import QuantCore
import Recipes
import RTN
import SmoothQuant
import Hadamard
import DuQuant
import GPTQ

let registry = MethodRegistry([RTN.self, SmoothQuant.self, Hadamard.self, DuQuant.self, GPTQ.self])

func fuzzTarget(_ bytes: UnsafeRawBufferPointer) {
    let text = String(decoding: bytes, as: UTF8.self)
    _ = try? Recipe.parse(yaml: text, file: "fuzz.yaml", registry: registry)
}
