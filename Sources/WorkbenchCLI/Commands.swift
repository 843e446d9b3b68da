import ArgumentParser
import Foundation
import QuantCore
import QuantKernels
import Recipes
import Reporting
import Runs
import Export
import TrainingQuantization

/// The command-line front end as a library, so another package's executable can register its
/// own methods beside the built-in ones:
///
/// ```swift
/// import WorkbenchCLI
/// WorkbenchMain.run(registry: MethodRegistry([RTN.self, MyMethod.self]))
/// ```
public enum WorkbenchMain {
    nonisolated(unsafe) static var registry = MethodRegistry()
    /// Exit status for a command line that cannot be parsed (no arguments, an unknown flag): 64,
    /// EX_USAGE. Besides it: 0 success, 1 a failure while running, 2 a bad recipe, model or data file.
    public static let usageExitCode: Int32 = 64
    /// The training quantizers `workbench train` selects from (f32 is always there).
    nonisolated(unsafe) public static var trainingRegistry = TrainingQuantizerRegistry()

    public static func run(registry: MethodRegistry, trainingQuantizers: TrainingQuantizerRegistry? = nil) -> Never {
        WorkbenchMain.registry = registry
        if let trainingQuantizers { WorkbenchMain.trainingRegistry = trainingQuantizers }
        // No arguments: the usage, and the usage-error status (as for an unknown flag).
        if CommandLine.arguments.count <= 1 {
            FileHandle.standardError.write(Data((Workbench.helpMessage() + "\n").utf8))
            exit(usageExitCode)
        }
        ProcessMemory.keepFreedMemory()
        Workbench.main()
        exit(0)
    }
}

struct Workbench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "workbench",
        abstract: "A post-training quantization workbench for LLaMA-family models.",
        discussion: "`workbench RECIPE.yaml` runs a recipe (same as `workbench run RECIPE.yaml`).",
        subcommands: [Run.self, Check.self, Export.self, Train.self, Generate.self, Methods.self, Inspect.self, Tokenize.self, Bench.self],
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
    } catch let e as ExportError {
        FileHandle.standardError.write(Data("error: \(e)\n".utf8)); throw ExitCode(2)
    } catch let e as WriteError {
        FileHandle.standardError.write(Data("error: \(e)\n".utf8)); throw ExitCode(1)
    } catch let e as ExitCode { throw e
    } catch {
        FileHandle.standardError.write(Data("error: \(error)\n".utf8)); throw ExitCode(1)
    }
}

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run a recipe: quantize every variant, evaluate, print the comparison, write the output folder.")
    @Argument(help: "The recipe (YAML).") var recipe: String
    @Option(help: "The output folder (default: the recipe's `output:`, else runs/<recipe name>).") var output: String?
    @Option(help: "Also write results.json's document to this file.") var json: String?
    @Flag(help: "Print the per-site error tables too (on by default for the synthetic model).") var perSite = false
    @Flag(help: "Recompute every variant instead of reusing results stored in the output folder's cache.") var fresh = false
    @Option(help: "Also write every scored token's NLL (FP and each variant) to this tab-separated file (tokens.tsv in the output folder has the same).") var tokenNll: String?

    func run() throws {
        let display = ProgressDisplay()
        let recipeObj = try failing { try Recipe.load(path: recipe, registry: WorkbenchMain.registry) }
        let folder = RunOutput.folder(argument: output, recipeOutput: recipeObj.output, recipeFile: recipe)
        var runner = RecipeRunner(recipe: recipeObj, progress: display.handler, cache: ResultCache(folder: folder + "/cache"))
        runner.reuseCached = !fresh
        if let name = recipeObj.exportFormat, let format = ExportFormat(rawValue: name) {
            // A variant is exported when it is quantized; a cached result is reused only when its file exists.
            runner.needsModel = { v in !FileManager.default.fileExists(atPath: RunExport.path(folder: folder, variant: v.name, format: format)) }
            runner.onQuantized = { v, model, fp, loaded in
                display.handle(.note("exporting \(v.name) as \(format.rawValue)"))
                let summary = try RunExport.export(model, float: fp, loaded: loaded, variant: v.name, format: format, folder: folder)
                display.handle(.note(summary.text))
            }
        }
        let report = try failing { try runner.run() }
        let synthetic: Bool = { if case .synthetic = recipeObj.model { return true }; return false }()
        print(report.render(perSite: perSite || synthetic), terminator: "")
        try failing {
            try RunOutput.write(report, to: folder)
            if let json { try writeAtomically(try RunOutput.resultsJSON(report), to: json) }
            if let tokenNll { try writeAtomically(report.tokenNLLTable(), to: tokenNll) }
        }
        display.handle(.note("wrote \(RunOutput.files.joined(separator: ", ")) to \(folder)/"))
    }
}

struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Quantize one variant of a recipe and write it for a runtime (GGUF), without evaluating.")
    @Argument(help: "The recipe (YAML).") var recipe: String
    @Option(help: "The variant to export.") var variant: String
    @Option(help: "gguf (a .gguf file) or compressed-tensors (a Hugging Face folder).") var format: String = "gguf"
    @Option(help: "The folder to write into (default: the recipe's output folder).") var output: String?

    func run() throws {
        let display = ProgressDisplay()
        try failing {
            guard let f = ExportFormat(rawValue: format), Recipe.exportFormats.contains(format) else {
                throw WorkbenchFailure.badInput("--format \(format): expected \(Recipe.exportFormats.joined(separator: " or "))")
            }
            let r = try Recipe.load(path: recipe, registry: WorkbenchMain.registry)
            let folder = RunOutput.folder(argument: output, recipeOutput: r.output, recipeFile: recipe)
            let q = try RecipeRunner(recipe: r, progress: display.handler).quantizeOnly(variant: variant)
            let summary = try RunExport.export(q.model, float: q.loaded.model, loaded: q.loaded, variant: q.variant.name, format: f, folder: folder)
            print(summary.text)
        }
    }
}

struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Validate a recipe and print the resolved plan without computing anything.")
    @Argument(help: "The recipe (YAML).") var recipe: String

    func run() throws {
        try failing {
            if try checkTrainingRecipe(recipe) { return }
            let r = try Recipe.load(path: recipe, registry: WorkbenchMain.registry)
            print(try Planner(recipe: r).render())
        }
    }
}

struct Methods: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List every registered method and training quantizer with its options.")
    func run() throws {
        print("Quantization methods (pipeline steps of run recipes)\n")
        for m in WorkbenchMain.registry.methods { describe(m.name, m.summary, m.options, none: "(no options; bits, granularity, symmetry and clip come from the scheme)") }
        print("Training quantizers (`quantizer:` of training recipes)\n")
        for q in WorkbenchMain.trainingRegistry.quantizers { describe(q.name, q.summary, q.options, none: "(no options)") }
    }

    func describe(_ name: String, _ summary: String, _ options: [OptionSpec], none: String) {
        print("\(name) — \(summary)")
        if options.isEmpty { print("    \(none)") }
        for o in options {
            print("    \(o.key.padding(toLength: 22, withPad: " ", startingAt: 0)) \(o.typeDescription.padding(toLength: 30, withPad: " ", startingAt: 0)) default \(o.defaultValue)  — \(o.help)")
        }
        print("")
    }
}

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Benchmarks.", subcommands: [BenchKernels.self, BenchModel.self, BenchTrain.self])
}
