// Target `recipe`: one YAML text parsed and validated twice — as a run/check recipe against the
// built-in methods, and as a training recipe (`workbench train` / `check`) against the built-in
// training quantizers (f32, rtn, hq, bs_lss).
//
// Training recipes name files that must exist (train_text, validation_text, model path). The
// target runs in a scratch working directory laid out like the repository's (FuzzCorpusTests
// builds the same one): `train.txt`, `valid.txt`, `model.gguf` in it, and
// `../shared/data/wikitext-2-raw/wiki.{valid,test}.raw` for the committed recipes' paths.
import Foundation
import QuantCore
import Recipes
import RTN
import SmoothQuant
import Hadamard
import DuQuant
import GPTQ
import TrainingQuantization
import TrainingRTN
import HadamardQuantizer
import BitSplitLSS

let registry = MethodRegistry([RTN.self, SmoothQuant.self, Hadamard.self, DuQuant.self, GPTQ.self])
let trainingRegistry = TrainingQuantizerRegistry([HadamardQuantizer.self, BitSplitLSS.self, TrainingRTN.self])

/// Creates the working directory's files once and moves into it.
let workingDirectory: Void = {
    let fm = FileManager.default
    let work = scratch.appendingPathComponent("work")
    let data = scratch.appendingPathComponent("shared/data/wikitext-2-raw")
    try? fm.createDirectory(at: work, withIntermediateDirectories: true)
    try? fm.createDirectory(at: data, withIntermediateDirectories: true)
    for u in [work.appendingPathComponent("train.txt"), work.appendingPathComponent("valid.txt"),
              work.appendingPathComponent("model.gguf"),
              data.appendingPathComponent("wiki.valid.raw"), data.appendingPathComponent("wiki.test.raw")] {
        _ = fm.createFile(atPath: u.path, contents: Data("some text\n".utf8))
    }
    _ = fm.changeCurrentDirectoryPath(work.path)
}()

func fuzzTarget(_ bytes: UnsafeRawBufferPointer) {
    _ = workingDirectory
    let text = String(decoding: bytes, as: UTF8.self)
    _ = try? Recipe.parse(yaml: text, file: "fuzz.yaml", registry: registry)
    _ = try? TrainingRecipe.parse(yaml: text, file: "fuzz.yaml", registry: trainingRegistry)
}
