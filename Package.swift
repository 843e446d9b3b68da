// swift-tools-version:6.0
// quantwb — a plugin-based post-training quantization workbench.
//
// Numeric targets are compiled with -O in every configuration (a debug `swift test` would
// otherwise be ~50× slower). That is an `unsafeFlags` setting, so depend on this package by
// path or branch, not by version. Numeric targets use the Swift 5 language mode: their
// parallel loops hand raw pointers to worker threads through `Parallel.forEach`.
import PackageDescription

let optimized: [SwiftSetting] = [
    .unsafeFlags(["-O"], .when(configuration: .debug)),
    .swiftLanguageMode(.v5),
]

/// One entry per method module under Plugins/. Adding a method: add its folder, one line here,
/// one line in Sources/workbench/main.swift, and its tests.
let methods = ["RTN", "SmoothQuant", "Hadamard", "DuQuant", "GPTQ"]

/// One entry per training-quantizer module under Plugins/ (selected by name in training recipes).
/// Adding one: its folder, one line here, one line in Sources/workbench/main.swift, its tests.
let trainingQuantizers = ["HadamardQuantizer", "BitSplitLSS", "TrainingRTN"]

/// ISA-specific kernel targets (x86_64 only; `-target-cpu` is an error elsewhere). QuantKernels
/// picks one at run time (KernelDispatch). cascadelake, not skylake-avx512: VNNI is needed.
#if arch(x86_64)
let isaKernelTargets = ["QuantKernelsAVX2", "QuantKernelsAVX512"]
#else
let isaKernelTargets: [String] = []
#endif

var targets: [Target] = [
    .systemLibrary(
        name: "CYAML", path: "Sources/CYAML", pkgConfig: "yaml-0.1",
        providers: [.apt(["libyaml-dev"]), .brew(["libyaml"])]),
    .target(name: "CQuantCPU", path: "Sources/CQuantCPU"),
    .target(name: "QuantKernelsVector", path: "Sources/QuantKernelsVector", swiftSettings: optimized),
    .target(name: "QuantKernels", dependencies: ["CQuantCPU", "QuantKernelsVector"] + isaKernelTargets.map { .target(name: $0) },
            path: "Sources/QuantKernels", swiftSettings: optimized),
    .target(name: "QuantCore", dependencies: ["QuantKernels"], path: "Sources/QuantCore",
            swiftSettings: optimized),
    .target(name: "TrainingQuantization", dependencies: ["QuantCore", "QuantKernels"],
            path: "Sources/TrainingQuantization", swiftSettings: optimized),
    .target(name: "Training", dependencies: ["QuantCore", "QuantKernels", "TrainingQuantization", "LlamaModel", "ModelFormats", "Recipes"],
            path: "Sources/Training", swiftSettings: optimized),
    .target(name: "Recipes", dependencies: ["CYAML", "QuantCore", "TrainingQuantization"], path: "Sources/Recipes",
            swiftSettings: optimized),
    .target(name: "ModelFormats", path: "Sources/ModelFormats", swiftSettings: optimized),
    .target(name: "LlamaModel", dependencies: ["QuantCore", "QuantKernels", "ModelFormats"],
            path: "Sources/LlamaModel", swiftSettings: optimized),
    .target(name: "Evaluation", dependencies: ["QuantCore", "QuantKernels", "LlamaModel"],
            path: "Sources/Evaluation", swiftSettings: optimized),
    .target(name: "Reporting", path: "Sources/Reporting"),
    .target(name: "Export", dependencies: ["QuantCore", "ModelFormats"], path: "Sources/Export", swiftSettings: optimized),
    .target(name: "Runs", dependencies: ["QuantCore", "QuantKernels", "Recipes", "ModelFormats", "LlamaModel", "Evaluation", "Reporting", "Export"],
            path: "Sources/Runs", swiftSettings: optimized),
    .target(name: "Benchmarks", dependencies: ["QuantCore", "QuantKernels", "LlamaModel", "Evaluation", "Recipes", "Reporting", "Runs"],
            path: "Sources/Benchmarks", swiftSettings: optimized),
    .target(name: "WorkbenchCLI",
            dependencies: ["QuantCore", "QuantKernels", "Recipes", "ModelFormats", "LlamaModel", "Evaluation", "Reporting", "Runs", "Export",
                           "Benchmarks",
                           "Training", "TrainingQuantization",
                           .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Sources/WorkbenchCLI", swiftSettings: optimized),
    .executableTarget(name: "workbench",
                      dependencies: ["WorkbenchCLI"] + (methods + trainingQuantizers).map { .target(name: $0) },
                      path: "Sources/workbench", swiftSettings: optimized),
    .target(name: "TestSupport", dependencies: ["QuantCore", "LlamaModel", "ModelFormats"],
            path: "Tests/TestSupport", swiftSettings: optimized),
]
#if arch(x86_64)
targets.append(.target(name: "QuantKernelsAVX2", dependencies: ["QuantKernelsVector"], path: "Sources/QuantKernelsAVX2",
                       swiftSettings: optimized + [.unsafeFlags(["-target-cpu", "haswell"])]))
targets.append(.target(name: "QuantKernelsAVX512", dependencies: ["QuantKernelsAVX2", "QuantKernelsVector"], path: "Sources/QuantKernelsAVX512",
                       swiftSettings: optimized + [.unsafeFlags(["-target-cpu", "cascadelake"])]))
#endif
for method in methods {
    targets.append(.target(name: method, dependencies: ["QuantCore", "QuantKernels"],
                           path: "Plugins/\(method)", exclude: ["Tests"], swiftSettings: optimized))
    targets.append(.testTarget(name: "\(method)Tests",
                               dependencies: [.target(name: method), "QuantCore", "LlamaModel", "TestSupport"]
                                   + (method == "RTN" ? [] : ["RTN"]),
                               path: "Plugins/\(method)/Tests", swiftSettings: optimized))
}
for quantizer in trainingQuantizers {
    targets.append(.target(name: quantizer, dependencies: ["TrainingQuantization", "QuantCore", "QuantKernels"],
                           path: "Plugins/\(quantizer)", exclude: ["Tests"], swiftSettings: optimized))
    targets.append(.testTarget(name: "\(quantizer)Tests",
                               dependencies: [.target(name: quantizer), "TrainingQuantization", "QuantCore", "QuantKernels"],
                               path: "Plugins/\(quantizer)/Tests", swiftSettings: optimized))
}
for (module, deps) in [
    ("QuantKernels", ["QuantKernels"]),
    ("QuantCore", ["QuantCore", "QuantKernels", "TestSupport"]),
    ("Recipes", ["Recipes", "QuantCore", "TrainingQuantization"]),
    ("TrainingQuantization", ["TrainingQuantization", "QuantCore", "QuantKernels"]),
    ("Training", ["Training", "TrainingQuantization", "QuantCore", "QuantKernels", "LlamaModel", "ModelFormats", "TestSupport"]),
    ("ModelFormats", ["ModelFormats", "TestSupport"]),
    // FuzzCorpusTests parses the recipe seeds with the built-in methods and training quantizers.
    ("LlamaModel", ["LlamaModel", "QuantCore", "ModelFormats", "TestSupport", "Recipes", "TrainingQuantization"]
                   + methods + trainingQuantizers),
    ("Evaluation", ["Evaluation", "LlamaModel", "QuantCore", "TestSupport"]),
    ("Reporting", ["Reporting"]),
    ("Export", ["Export", "QuantCore", "ModelFormats", "LlamaModel", "TestSupport", "RTN"]),
    ("Runs", ["Runs", "Recipes", "QuantCore", "Reporting", "LlamaModel", "TestSupport"] + methods),
    ("Benchmarks", ["Benchmarks", "Runs", "Recipes", "Reporting", "QuantCore", "QuantKernels", "LlamaModel", "TestSupport"] + methods),
    ("WorkbenchCLI", ["WorkbenchCLI", "Runs", "Recipes", "QuantCore", "TestSupport", "Training", "TrainingQuantization"] + methods),
] {
    targets.append(.testTarget(name: "\(module)Tests",
                               dependencies: deps.map { .target(name: $0) },
                               path: "Tests/\(module)Tests",
                               exclude: module == "ModelFormats" ? ["Fixtures"] : [],
                               swiftSettings: optimized))
}

let package = Package(
    name: "quantwb",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "workbench", targets: ["workbench"]),
        .library(name: "QuantCore", targets: ["QuantCore"]),
        .library(name: "QuantKernels", targets: ["QuantKernels"]),
        .library(name: "Runs", targets: ["Runs"]),
        .library(name: "WorkbenchCLI", targets: ["WorkbenchCLI"]),
    ] + (methods + trainingQuantizers).map { .library(name: $0, targets: [$0]) },
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: targets
)
