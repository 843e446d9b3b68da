import QuantCore
import RTN
import WorkbenchCLI

// The built-in methods. Adding a method: one line here (and one in Package.swift's `methods`).
WorkbenchMain.run(registry: MethodRegistry([
    RTN.self,
]))
