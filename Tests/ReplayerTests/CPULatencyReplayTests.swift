import Foundation
import Synchronization
import TestSupport
import Testing
import TraceFormat
@testable import Replayer

/// Root can hold a CPU latency QoS request here.
let cpuLatencyDeviceWritable = access(CPULatencyRequestFile.devicePath, W_OK) == 0

/// The CPU latency limits of a trace, in the plan and held by real replays.
@Suite(.serialized) struct CPULatencyReplayTests {
    static let base: UInt64 = 1_000_000_000  // TraceScript's first timestamp

    /// "holder" runs 100 µs, sleeps on a timer until 400 ms, runs 100 µs and exits; "other"
    /// does the same. holder asks for 3 µs from 50 to 300 ms; other asks for 1 µs from 10 to
    /// 20 ms (left out when only holder is selected).
    static func script() -> (TraceScript, [CPULatencyRequest], holder: TaskIndex, other: TaskIndex) {
        var s = TraceScript()
        let holder = s.task("holder"), other = s.task("other")
        for (task, cpu) in [(holder, 0), (other, 1)] {
            s.at(0, cpu: cpu, .switchTask(prev: .idle, prevState: .running, next: task))
            s.at(100, cpu: cpu, .switchTask(prev: task, prevState: .sleeping, next: .idle))
            s.at(400_000, cpu: cpu, .waking(waker: .idle, target: task, targetCPU: CPU(cpu), context: .hardIRQ))
            s.at(400_001, cpu: cpu, .switchTask(prev: .idle, prevState: .running, next: task))
            s.at(400_101, cpu: cpu, .exit(task: task))
        }
        s.events.sort { $0.timestamp < $1.timestamp }
        func r(_ ms: UInt64, _ action: CPULatencyRequest.Action, _ request: Int, _ task: TaskIndex, _ value: Int32 = -1) -> CPULatencyRequest {
            CPULatencyRequest(timestamp: base + ms * 1_000_000, action: action, request: request, task: task,
                              tid: s.tasks[task.intValue].tid, valueMicroseconds: value)
        }
        let requests = [
            r(10, .add, 1, other), r(10, .update, 1, other, 1), r(20, .remove, 1, other),
            r(50, .add, 2, holder), r(50, .update, 2, holder, 3), r(300, .remove, 2, holder),
        ]
        return (s, requests, holder, other)
    }

    @Test func planHoldsTheLimitsOfTheSelectedTasksOnly() {
        let (s, requests, holder, other) = Self.script()
        let both = PlanBuilder.build(events: s.events, tasks: s.tasks, selection: [holder, other], cpuLatencyRequests: requests)
        #expect(both.cpuLatency.map(\.valueMicroseconds) == [1, 3])
        #expect(both.cpuLatency.map(\.startOffsetNanoseconds) == [10_000_000, 50_000_000])
        let one = PlanBuilder.build(events: s.events, tasks: s.tasks, selection: [holder], cpuLatencyRequests: requests)
        #expect(one.cpuLatency == [CPULatencyHold(valueMicroseconds: 3, startOffsetNanoseconds: 50_000_000,
                                                  endOffsetNanoseconds: 300_000_000, holders: [holder])])
        #expect(one.cpuLatencyDescription(tasks: s.tasks, applied: true)
                == "holding CPU latency QoS at 3 µs from +50.0 ms to +300.0 ms, as the recorded holder did")
        #expect(one.cpuLatencyDescription(tasks: s.tasks, applied: false)
                == "not holding CPU latency QoS (--no-pm-qos); the recorded holder held it at 3 µs from +50.0 ms to +300.0 ms")
        #expect(both.cpuLatencyDescription(tasks: s.tasks, applied: true)?.hasSuffix(", as the recorded other and holder did") == true)
        #expect(PlanBuilder.build(events: s.events, tasks: s.tasks, selection: [holder]).cpuLatency.isEmpty)
    }

    /// Samples the device's value every ~2 ms on a thread until stopped.
    final class Sampler: @unchecked Sendable {
        private let lock = NSLock()
        private var samples: [(time: UInt64, value: Int32)] = []
        private let stopFlag = Atomic<Bool>(false)
        private let done = DispatchSemaphore(value: 0)

        init() {
            Thread { [self] in
                while !stopFlag.load(ordering: .relaxed) {
                    var ts = timespec()
                    clock_gettime(CLOCK_MONOTONIC, &ts)
                    if let v = CPULatencyRequestFile.currentLimit() {
                        let t = UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
                        lock.withLock { samples.append((t, v)) }
                    }
                    usleep(2_000)
                }
                done.signal()
            }.start()
        }

        func stop() -> [(time: UInt64, value: Int32)] {
            stopFlag.store(true, ordering: .relaxed)
            done.wait()
            return lock.withLock { samples }
        }
    }

    /// Replays holder alone and returns the outcome and the device's values by offset from the
    /// run's release (ms, rounded down), with the limit in force before and after.
    func replay(applying: Bool) throws -> (RunOutcome, [(ms: Int, value: Int32)], before: Int32, after: Int32) {
        let (s, requests, holder, _) = Self.script()
        let plan = PlanBuilder.build(events: s.events, tasks: s.tasks, selection: [holder], cpuLatencyRequests: requests)
        var options = ReplayOptions()
        options.applyCPULatency = applying
        let engine = try ReplayEngine(plan: plan, options: options)
        let before = try #require(CPULatencyRequestFile.currentLimit())
        let sampler = Sampler()
        let outcome = try engine.run(index: 0, warmup: false)
        let after = try #require(CPULatencyRequestFile.currentLimit())
        let samples = sampler.stop()
        let start = outcome.startMonotonicNanoseconds
        let relative = samples.filter { $0.time >= start && $0.time <= outcome.endMonotonicNanoseconds }
            .map { (ms: Int(($0.time - start) / 1_000_000), value: $0.value) }
        return (outcome, relative, before, after)
    }

    @Test(.enabled(if: cpuLatencyDeviceWritable, "needs root for /dev/cpu_dma_latency"))
    func replayHoldsTheRecordedLimitAtItsOffsetsAndReleasesIt() throws {
        cpuLatencyDeviceLock.lock()
        defer { cpuLatencyDeviceLock.unlock() }
        let (outcome, samples, before, after) = try replay(applying: true)
        // Another process may hold a lower limit meanwhile (the machine is shared): the device
        // reads the lowest of all. With nothing else held it reads 3 µs, then the default.
        let held = min(3, before)
        #expect(outcome.cpuLatencyChangesApplied == 2)
        #expect(outcome.cpuLatencyProblem == nil)
        #expect(outcome.warnings.isEmpty)
        let inside = samples.filter { $0.ms >= 60 && $0.ms < 290 }
        let outside = samples.filter { $0.ms < 40 || $0.ms >= 310 }
        #expect(inside.count > 50 && outside.count > 20, "\(samples.count) samples")
        #expect(inside.allSatisfy { $0.value == held }, "from +60 to +290 ms: \(Set(inside.map(\.value)))")
        #expect(outside.allSatisfy { $0.value == before }, "before +40 ms and after +310 ms: \(Set(outside.map(\.value)))")
        #expect(after == before)
        if before == CPULatencyRequest.kernelDefaultMicroseconds { #expect(after == 2_000_000_000) }
    }

    @Test(.enabled(if: cpuLatencyDeviceWritable, "needs root for /dev/cpu_dma_latency"))
    func withoutPMQoSTheLimitIsLeftAlone() throws {
        cpuLatencyDeviceLock.lock()
        defer { cpuLatencyDeviceLock.unlock() }
        let (outcome, samples, before, _) = try replay(applying: false)
        #expect(outcome.cpuLatencyChangesApplied == 0)
        #expect(samples.count > 100)
        // Unless another process changed it meanwhile, the device never reads the 3 µs.
        #expect(samples.allSatisfy { $0.value == before } || before <= 3, "\(Set(samples.map(\.value)))")
    }

    @Test func anUnusableDeviceIsAWarningNotAFailure() throws {
        let (s, requests, holder, _) = Self.script()
        let plan = PlanBuilder.build(events: s.events, tasks: s.tasks, selection: [holder], cpuLatencyRequests: requests)
        var options = ReplayOptions()
        options.cpuLatencyDevicePath = "/nonexistent/cpu_dma_latency"
        let outcome = try ReplayEngine(plan: plan, options: options).run(index: 0, warmup: false)
        #expect(outcome.cpuLatencyChangesApplied == 0)
        let problem = try #require(outcome.cpuLatencyProblem)
        #expect(problem.hasPrefix("cannot open /nonexistent/cpu_dma_latency: No such file or directory — "), "\(problem)")
        #expect(outcome.warnings == [problem])
        #expect(outcome.run.tasks.first?.timedSleeps == 1)
    }

    /// Writes the script's trace, with its requests, for the command.
    static func writeTrace(to path: String) throws {
        let (s, requests, _, _) = script()
        var m = TraceMetadata()
        m.kernelRelease = "6.18.0-test"
        let writer = try TraceWriter(path: path, metadata: m)
        for t in s.tasks.dropFirst() { _ = writer.addTask(t) }
        for e in s.events { try writer.append(e) }
        m.cpuLatencyRequests = requests
        m.firstTimestamp = base
        try writer.finish(metadata: m)
    }

    @Test(.enabled(if: replayctlBinary != nil && geteuid() == 0 && access("/usr/bin/setpriv", X_OK) == 0))
    func withoutPermissionTheReplayWarnsOnceAndGoesOn() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("qos-cmd-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let trace = dir.appendingPathComponent("t.rpl").path
        try Self.writeTrace(to: trace)
        chmod(dir.path, 0o777)
        chmod(trace, 0o644)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
        process.arguments = ["--reuid=65534", "--regid=65534", "--clear-groups", replayctlBinary!,
                             "replay", trace, "--comm", "holder", "--runs", "2", "--warmup", "1", "-o", dir.appendingPathComponent("r.json").path]
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let stdout = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "\(stderr)")
        #expect(stdout.contains("holding CPU latency QoS at 3 µs from +50.0 ms to +300.0 ms, as the recorded holder did"), "\(stdout)")
        let warnings = stderr.split(separator: "\n").filter { $0.contains("cannot open /dev/cpu_dma_latency: Permission denied") }
        #expect(warnings.count == 1, "\(stderr)")
        let results = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("r.json"))) as? [String: Any]
        #expect((results?["options"] as? [String: String])?["cpuLatencyQoS"] == "on")
        let notes = (results?["notes"] as? [String]) ?? []
        #expect(notes.count == 2 && notes[1].hasPrefix("CPU latency QoS not held: cannot open /dev/cpu_dma_latency: Permission denied"), "\(notes)")
        #expect((results?["runs"] as? [Any])?.count == 3)
    }
}
