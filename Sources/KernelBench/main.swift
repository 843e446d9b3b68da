// Stand-alone kernel benchmark: swift run -c release kernel-bench [--quick] [--threads 1,2] [--json FILE] [--only f32,int,hadamard,openblas]
import Foundation
import QuantKernels

var args = Array(CommandLine.arguments.dropFirst())
var threads = [1, 2], quick = false, json: String?, only: Set<String>?
while !args.isEmpty {
    let a = args.removeFirst()
    switch a {
    case "--quick": quick = true
    case "--threads": threads = args.removeFirst().split(separator: ",").compactMap { Int($0) }
    case "--json": json = args.removeFirst()
    case "--only": only = Set(args.removeFirst().split(separator: ",").map(String.init))
    default: FileHandle.standardError.write("unknown argument \(a)\n".data(using: .utf8)!); exit(2)
    }
}
print(KernelDispatch.summary)
let report = KernelBenchmark.run(threads: threads, quick: quick, only: only)
print(report.text)
if let json { try report.json().write(to: URL(fileURLWithPath: json)) }
