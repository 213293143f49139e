import Foundation
import Testing
@testable import Recorder
import TraceFormat
import TestSupport

@Suite(.serialized, .enabled(if: liveTracingAvailable, "needs root and tracefs"))
struct SignalTests {
    /// Runs `replayctl record -a`, sends `signal` after `after` seconds, returns (pid, status, path).
    func recordAndKill(_ signal: Int32, after: Double) throws -> (Int32, Int32, String) {
        let binary = try #require(replayctlExecutable(), "build the replayctl binary first (swift build)")
        let path = temporaryTrace("signal\(signal)")
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments = ["record", "-q", "-o", path, "-a", "--duration", "30s"]
        try p.run()
        usleep(UInt32(after * 1e6))
        kill(p.processIdentifier, signal)
        p.waitUntilExit()
        return (p.processIdentifier, p.terminationStatus, path)
    }

    func instances(of pid: Int32) throws -> [String] {
        let dir = try TraceInstance.tracingDirectory() + "/instances"
        return try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasPrefix("replayctl-\(pid)-") }
    }

    @Test(arguments: [SIGINT, SIGTERM])
    func interruptEndsTheRecordingCleanly(signal: Int32) throws {
        let started = Date()
        let (pid, status, path) = try recordAndKill(signal, after: 0.7)
        defer { unlink(path) }
        #expect(Date().timeIntervalSince(started) < 10, "the signal did not end the 30 s recording")
        #expect(status == 0)
        let reader = try TraceReader(path: path)
        #expect(!reader.isRecovered)
        #expect(reader.eventCount > 0)
        #expect(try instances(of: pid).isEmpty)
    }

    @Test func killLeavesReadableChunksAndTheNextStartReapsTheInstance() throws {
        // Longer than the 1 s flush interval, so complete chunks are on disk.
        let (pid, _, path) = try recordAndKill(SIGKILL, after: 1.6)
        defer { unlink(path) }
        let reader = try TraceReader(path: path)
        #expect(reader.isRecovered)
        #expect(reader.eventCount > 0)
        #expect(try instances(of: pid).count == 1, "a SIGKILLed recorder cannot clean up")
        let session = try RecordingSession(options: RecordingOptions(target: .system, outputPath: temporaryTrace("reap")))
        #expect(session.reapedInstances.contains { $0.hasPrefix("replayctl-\(pid)-") })
        #expect(try instances(of: pid).isEmpty)
    }
}
