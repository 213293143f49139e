import Foundation

/// The replayctl executable `swift test` builds next to the test bundle (looked up from the
/// running test binary, a few directories up), or nil when it is not built.
public func replayctlExecutable() -> String? {
    var dir = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
    for _ in 0..<3 {
        let candidate = dir.appendingPathComponent("replayctl").path
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        dir = dir.deletingLastPathComponent()
    }
    return nil
}

/// Thrown when the tests cannot find the replayctl executable.
public struct ReplayctlNotBuilt: Error, CustomStringConvertible {
    public var description: String { "replayctl is not built next to the tests (run `swift build` first)" }
}

/// Runs replayctl with `arguments` to completion and returns its exit status and output.
/// - Throws: `ReplayctlNotBuilt`, or the error of `Process.run()`.
public func runReplayctl(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
    guard let executable = replayctlExecutable() else { throw ReplayctlNotBuilt() }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    let stdout = out.fileHandleForReading.readDataToEndOfFile()
    let stderr = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: stdout, as: UTF8.self), String(decoding: stderr, as: UTF8.self))
}

/// Held by every test that holds a CPU latency QoS request (`/dev/cpu_dma_latency`) or reads
/// the limit in force: the device reads the lowest request machine-wide, so such tests
/// running in parallel (one test process runs every suite) would see each other's requests.
public let cpuLatencyDeviceLock = NSLock()
