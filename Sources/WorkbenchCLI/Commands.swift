import ArgumentParser
import Foundation
import QuantCore
import QuantKernels
import Recipes

/// The command-line front end as a library, so another package's executable can register its
/// own methods beside the built-in ones:
///
/// ```swift
/// import WorkbenchCLI
/// WorkbenchMain.run(registry: MethodRegistry([RTN.self, MyMethod.self]))
/// ```
public enum WorkbenchMain {
    nonisolated(unsafe) static var registry = MethodRegistry()

    public static func run(registry: MethodRegistry) -> Never {
        WorkbenchMain.registry = registry
        Workbench.main()
        exit(0)
    }
}

struct Workbench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "workbench",
        abstract: "A post-training quantization workbench for LLaMA-family models.",
        discussion: "`workbench RECIPE.yaml` runs a recipe (same as `workbench run RECIPE.yaml`).",
        subcommands: [Run.self, Check.self, Methods.self, Inspect.self, Tokenize.self, Bench.self],
        defaultSubcommand: Run.self)
}

/// Maps failures to exit codes: 2 for bad input (recipe, model, data), 1 while running.
func failing<T>(_ body: () throws -> T) throws -> T {
    do { return try body() } catch let e as RecipeError {
        FileHandle.standardError.write(Data("error: \(e)\n".utf8)); throw ExitCode(2)
    } catch let e as YAMLError {
        FileHandle.standardError.write(Data("error: \(e)\n".utf8)); throw ExitCode(2)
    } catch WorkbenchFailure.badInput(let s) {
        FileHandle.standardError.write(Data("error: \(s)\n".utf8)); throw ExitCode(2)
    } catch WorkbenchFailure.runtime(let s) {
        FileHandle.standardError.write(Data("error: \(s)\n".utf8)); throw ExitCode(1)
    } catch let e as ExitCode { throw e
    } catch {
        FileHandle.standardError.write(Data("error: \(error)\n".utf8)); throw ExitCode(1)
    }
}

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run a recipe: quantize every variant, evaluate, print the comparison.")
    @Argument(help: "The recipe (YAML).") var recipe: String
    @Option(help: "Also write machine-readable results to this JSON file.") var json: String?
    @Flag(help: "Print the per-site error tables too (on by default for the synthetic model).") var perSite = false
    @Option(help: "Also write every scored token's NLL (FP and each variant) to this tab-separated file.") var tokenNll: String?

    func run() throws {
        let report = try failing { () -> RunReport in
            let r = try Recipe.load(path: recipe, registry: WorkbenchMain.registry)
            return try RecipeRunner(recipe: r, registry: WorkbenchMain.registry).run()
        }
        let recipeObj = try? Recipe.load(path: recipe, registry: WorkbenchMain.registry)
        let synthetic: Bool = { if case .synthetic? = recipeObj?.model { return true }; return false }()
        print(report.render(perSite: perSite || synthetic), terminator: "")
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data = try enc.encode(report)
        if let json { try failing { try writeAtomically(data, to: json) } }
        if let tokenNll { try failing { try writeAtomically(Data(report.tokenNLLTable().utf8), to: tokenNll) } }
        if let out = recipeObj?.output {
            try failing {
                try writeAtomically(data, to: out + "/report.json")
                try writeAtomically(Data(report.render(perSite: true).utf8), to: out + "/report.txt")
            }
            progress("wrote \(out)/report.json and \(out)/report.txt")
        }
    }
}

struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Validate a recipe and print the resolved plan without computing anything.")
    @Argument(help: "The recipe (YAML).") var recipe: String

    func run() throws {
        try failing {
            let r = try Recipe.load(path: recipe, registry: WorkbenchMain.registry)
            print(try Planner(recipe: r).render())
        }
    }
}

struct Methods: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List every registered method with its options.")
    func run() throws {
        for m in WorkbenchMain.registry.methods {
            print("\(m.name) — \(m.summary)")
            if m.options.isEmpty { print("    (no options; bits, granularity, symmetry and clip come from the scheme)") }
            for o in m.options {
                print("    \(o.key.padding(toLength: 22, withPad: " ", startingAt: 0)) \(o.typeDescription.padding(toLength: 30, withPad: " ", startingAt: 0)) default \(o.defaultValue)  — \(o.help)")
            }
            print("")
        }
    }
}

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Benchmarks.", subcommands: [BenchKernels.self, BenchTrain.self])
}
