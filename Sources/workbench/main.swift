import QuantCore
import RTN
import Hadamard
import DuQuant
import WorkbenchCLI

// The built-in methods. Adding a method: one line here (and one in Package.swift's `methods`).
WorkbenchMain.run(registry: MethodRegistry([
    RTN.self,
    Hadamard.self,
    DuQuant.self,
]))
