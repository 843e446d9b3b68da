import Foundation

/// What long-running work reports while it runs. Producers (calibration, quantization,
/// evaluation, training, export) emit events; a front end decides how to show them.
public enum ProgressEvent: Sendable, Equatable {
    /// A one-off line: "loading model.gguf", "variant RTN: W4A4".
    case note(String)
    /// `done` of `total` units of a task, e.g. ("RTN W4A4: quantizing", 3, 30, "blocks"), with
    /// optional figures shown after the bar ("loss 2.31 · 5200 tok/s"). Emit `done = 0` when a
    /// task starts so its rate is measured from then.
    case step(task: String, done: Int, total: Int, unit: String, detail: String = "")
}

/// Receives progress events.
public typealias ProgressHandler = @Sendable (ProgressEvent) -> Void

/// Shows progress on stderr: on a terminal, one bar per task redrawn in place with elapsed time,
/// rate and ETA; otherwise (CI logs, pipes) a plain line when a task starts, every `interval`
/// seconds, and when it ends. Notes are always printed as lines.
public final class ProgressDisplay: @unchecked Sendable {
    private let isTerminal: Bool
    private let interval: Double
    private let clock: () -> Double
    private let write: (String) -> Void
    private let lock = NSLock()
    private var started: [String: Double] = [:]
    private var lastPrinted: [String: Double] = [:]
    private var barOpen = false

    /// - Parameters:
    ///   - isTerminal: draw bars in place (default: stderr is a terminal).
    ///   - interval: seconds between plain lines of one task when not a terminal.
    ///   - clock: seconds, monotonic (tests inject one).
    ///   - write: where text goes (default stderr).
    public init(isTerminal: Bool = isatty(2) != 0, interval: Double = 5,
                clock: @escaping () -> Double = { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 },
                write: @escaping (String) -> Void = { FileHandle.standardError.write(Data($0.utf8)) }) {
        self.isTerminal = isTerminal; self.interval = interval; self.clock = clock; self.write = write
    }

    /// The handler to pass to producers.
    public var handler: ProgressHandler { { [self] e in self.handle(e) } }

    public func handle(_ event: ProgressEvent) {
        lock.lock(); defer { lock.unlock() }
        switch event {
        case .note(let s):
            closeBar()
            write("· " + s + "\n")
        case .step(let task, let done, let total, let unit, let detail):
            let now = clock()
            if done == 0 || started[task] == nil { started[task] = now; if done == 0 { lastPrinted[task] = nil } }
            let line = Self.line(task: task, done: done, total: total, unit: unit, elapsed: now - started[task]!)
                + (detail.isEmpty ? "" : " · " + detail)
            let finished = done >= total
            if isTerminal {
                write("\r\u{1B}[K" + line + (finished ? "\n" : ""))
                barOpen = !finished
            } else if lastPrinted[task] == nil || finished || now - lastPrinted[task]! >= interval {
                write("· " + line + "\n")
                lastPrinted[task] = now
            }
            if finished { started[task] = nil; lastPrinted[task] = nil }
        }
    }

    private func closeBar() {
        if barOpen { write("\n"); barOpen = false }
    }

    /// `task [#####.....] 12/30 blocks · 41 s elapsed · 0.29 blocks/s · ETA 62 s`
    public static func line(task: String, done: Int, total: Int, unit: String, elapsed: Double, width: Int = 24) -> String {
        let frac = total > 0 ? min(1, max(0, Double(done) / Double(total))) : 1
        let filled = Int((frac * Double(width)).rounded(.down))
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        var s = "\(task) [\(bar)] \(done)/\(total) \(unit) · \(Format.duration(elapsed)) elapsed"
        if done > 0 && elapsed > 0 {
            let rate = Double(done) / elapsed
            s += rate >= 1 ? String(format: " · %.1f %@/s", rate, unit) : String(format: " · %.1f s per %@", 1 / rate, singular(unit))
            if done < total { s += " · ETA " + Format.duration(Double(total - done) / rate) }
        }
        return s
    }

    static func singular(_ unit: String) -> String {
        unit.hasSuffix("s") ? String(unit.dropLast()) : unit
    }
}
