import QuantCore
import RTN
import SmoothQuant
import GPTQ
import Hadamard
import DuQuant
import TrainingQuantization
import HadamardQuantizer
import BitSplitLSS
import TrainingRTN
import WorkbenchCLI

// The built-in methods and training quantizers (f32 is always present). Adding one: one line
// here, and one in Package.swift's `methods` or `trainingQuantizers`.
WorkbenchMain.run(registry: MethodRegistry([
    RTN.self,
    SmoothQuant.self,
    GPTQ.self,
    Hadamard.self,
    DuQuant.self,
]), trainingQuantizers: TrainingQuantizerRegistry([
    HadamardQuantizer.self,
    BitSplitLSS.self,
    TrainingRTN.self,
]))
