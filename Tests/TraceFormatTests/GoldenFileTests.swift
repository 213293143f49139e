import Foundation
import Testing
@testable import TraceFormat

/// Committed traces in `traces/golden/`, written once by `GoldenTrace.steps`. The reader must
/// decode them to the expected events, and the writer must still produce them byte for byte:
/// any change to the byte format fails here first.
///
/// After an intended format change (with docs/format.md and the version updated), rewrite them:
/// `REPLAYCTL_UPDATE_GOLDEN=1 swift test --filter GoldenFileTests`.
@Suite struct GoldenFileTests {
    static let goldenDirectory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("traces/golden")
    static var smallPath: String { goldenDirectory.appendingPathComponent("small.rpl").path }
    static var truncatedPath: String { goldenDirectory.appendingPathComponent("small-truncated.rpl").path }
    /// The same trace as written by format version 1.0 (JSON task rows, byte-aligned events),
    /// kept so that version 1 files stay readable.
    static var version1Path: String { goldenDirectory.appendingPathComponent("small-v1.rpl").path }
    static var updating: Bool { ProcessInfo.processInfo.environment["REPLAYCTL_UPDATE_GOLDEN"] == "1" }

    /// Writes the golden trace into `path`.
    static func writeGolden(to path: String) throws -> WrittenTrace {
        try writeTrace(GoldenTrace.steps, to: path, metadata: GoldenTrace.startMetadata, finalMetadata: GoldenTrace.finalMetadata,
                       chunkEventLimit: 6)
    }

    /// The golden file cut in the middle of its third chunk.
    static func truncatedBytes(of trace: WrittenTrace) -> [UInt8] {
        let third = trace.chunks[2]
        return Array(trace.bytes.prefix(Int(third.offset) + RPLFormat.blockHeaderSize + 10))
    }

    @Test("the writer reproduces the golden files byte for byte")
    func writerReproducesGoldenBytes() throws {
        let dir = try TemporaryDirectory()
        let trace = try Self.writeGolden(to: dir.path("small.rpl"))
        if Self.updating {
            try FileManager.default.createDirectory(at: Self.goldenDirectory, withIntermediateDirectories: true)
            try writeBytes(trace.bytes, to: Self.smallPath)
            try writeBytes(Self.truncatedBytes(of: trace), to: Self.truncatedPath)
        }
        let golden = [UInt8](try Data(contentsOf: URL(fileURLWithPath: Self.smallPath)))
        #expect(trace.bytes.count == golden.count)
        let firstDifference = zip(trace.bytes, golden).enumerated().first { $0.element.0 != $0.element.1 }?.offset
        #expect(trace.bytes == golden, "first differing byte: \(firstDifference.map(String.init) ?? "none (length differs)")")
        let truncated = [UInt8](try Data(contentsOf: URL(fileURLWithPath: Self.truncatedPath)))
        #expect(truncated == Self.truncatedBytes(of: trace))
    }

    @Test("the golden file decodes to the expected events, task table and metadata")
    func goldenFileDecodesToExpectedEvents() throws {
        let reader = try TraceReader(path: Self.smallPath)
        #expect(!reader.isRecovered)
        #expect(reader.damage.isEmpty)
        #expect(reader.validate().isEmpty)
        #expect(reader.version.major == 2 && reader.version.minor == 1)
        #expect(reader.metadata == GoldenTrace.finalMetadata)
        #expect(reader.tasks == GoldenTrace.finalTasks)
        #expect(try reader.allEvents() == GoldenTrace.events)
        #expect(reader.chunks.count == (GoldenTrace.events.count + 5) / 6)
        #expect(reader.chunks.map(\.eventCount).reduce(0, +) == UInt32(GoldenTrace.events.count))
    }

    @Test("the version 1.0 golden file still decodes to the same events, task table and metadata")
    func version1GoldenFileDecodes() throws {
        let reader = try TraceReader(path: Self.version1Path)
        #expect(reader.version.major == 1 && reader.version.minor == 0)
        #expect(!reader.isRecovered)
        #expect(reader.damage.isEmpty)
        #expect(reader.validate().isEmpty)
        #expect(reader.metadata == GoldenTrace.finalMetadata)
        #expect(reader.tasks == GoldenTrace.finalTasks)
        #expect(try reader.allEvents() == GoldenTrace.events)
        #expect(reader.chunks.count == (GoldenTrace.events.count + 5) / 6)
    }

    @Test("the truncated golden file yields its first two chunks and reports the rest")
    func truncatedGoldenYieldsCompleteChunks() throws {
        let reader = try TraceReader(path: Self.truncatedPath)
        #expect(reader.isRecovered)
        #expect(reader.chunks.count == 2)
        #expect(try reader.allEvents() == Array(GoldenTrace.events.prefix(12)))
        #expect(reader.metadata.kernelRelease == GoldenTrace.startMetadata.kernelRelease)
        #expect(reader.damage.count == 1)
        #expect(reader.damage[0].offset + reader.damage[0].length == reader.fileSize)
        #expect(reader.damage[0].length == UInt64(RPLFormat.blockHeaderSize + 10))
    }
}

/// The content of `traces/golden/small.rpl`: two tasks ping-ponging through a pipe on two CPUs,
/// plus one of every other event kind and every optional-field variant of the encoding.
enum GoldenTrace {
    static let pingTask = TaskInfo(tid: 4242, tgid: 4242, comm: "ping", policy: .other, nice: 0, affinity: [0, 1], isRecorded: true)
    static let pongTask = TaskInfo(tid: 4243, tgid: 4242, comm: "pong", parent: TaskIndex(1), policy: .fifo, realtimePriority: 10, isRecorded: true)
    static let kworker = TaskInfo(tid: 31, tgid: 31, comm: "kworker/1:0", isKernelThread: true)
    static let child = TaskInfo(tid: 4300, tgid: 4300, comm: "ping", parent: TaskIndex(1), isRecorded: true)

    static var startMetadata: TraceMetadata {
        var m = TraceMetadata()
        m.kernelRelease = "6.18.0-golden"
        m.architecture = "x86_64"
        m.hostname = "golden"
        m.cpuModel = "Golden CPU @ 1.00GHz"
        m.cpuCount = 2
        m.clock = "mono"
        m.startWallTimeNanoseconds = 1_767_225_600_000_000_000
        m.recorderVersion = "replayctl 0.1.0"
        m.command = ["perf", "bench", "sched", "pipe", "-l", "3"]
        m.extra = ["buffer-size-kib": "4096"]
        return m
    }

    static var finalMetadata: TraceMetadata {
        var m = startMetadata
        m.firstTimestamp = 1_000_000
        m.lastTimestamp = events.map(\.timestamp).max()!
        m.durationNanoseconds = m.lastTimestamp - m.firstTimestamp
        m.lostEvents = [0, 3]
        m.inferredSwitchIns = 1
        m.exitStatus = 0
        return m
    }

    static var finalTasks: [TaskInfo] {
        var child = Self.child
        child.comm = "true"  // renamed by its exec
        return [TaskInfo.idle, pingTask, pongTask, kworker, child]
    }

    static var steps: [TraceStep] {
        var steps: [TraceStep] = [.addTask(pingTask), .addTask(pongTask), .addTask(kworker)]
        for (i, event) in events.enumerated() {
            if i == 20 { steps.append(.addTask(child)) }  // defined between chunks
            steps.append(.event(event))
        }
        steps.append(.updateComm(TaskIndex(4), "true"))
        return steps
    }

    static var events: [Event] {
        let ping = TaskIndex(1), pong = TaskIndex(2), kworker = TaskIndex(3), child = TaskIndex(4)
        let cpu0 = CPU(0), cpu1 = CPU(1)
        var t: UInt64 = 1_000_000
        var events: [Event] = []
        func add(_ delta: UInt64, _ cpu: CPU, _ kind: Event.Kind) {
            t += delta
            events.append(Event(timestamp: t, cpu: cpu, kind: kind))
        }
        add(0, cpu0, .switchTask(prev: .idle, prevState: .running, next: ping))
        for _ in 0..<3 {
            add(1_200, cpu0, .runtime(task: ping, nanoseconds: 1_200))
            add(150, cpu0, .waking(waker: ping, target: pong, targetCPU: cpu1, context: .task))
            add(400, cpu0, .switchTask(prev: ping, prevState: .sleeping, next: .idle))
            add(2_100, cpu1, .switchTask(prev: .idle, prevState: .running, next: pong))
            add(900, cpu1, .runtime(task: pong, nanoseconds: 900))
            add(120, cpu1, .waking(waker: pong, target: ping, targetCPU: cpu0, context: .task))
            add(300, cpu1, .switchTask(prev: pong, prevState: .sleeping, next: .idle))
            add(2_000, cpu0, .switchTask(prev: .idle, prevState: .running, next: ping))
        }
        // Implicit and explicit variants and every other kind (from event 25 on, chunk 5+).
        add(10, cpu1, .waking(waker: nil, target: kworker, targetCPU: cpu1, context: .hardIRQ))
        add(10, cpu1, .switchTask(prev: .idle, prevState: .running, next: kworker))
        add(10, cpu1, .switchTask(prev: kworker, prevState: .uninterruptible, next: pong))
        add(10, cpu1, .switchTask(prev: pong, prevState: .stopped, next: kworker))
        add(10, cpu1, .switchTask(prev: ping, prevState: .dead, next: .idle))  // prev not the CPU's current task
        add(10, cpu0, .fork(parent: ping, child: child))
        add(10, cpu0, .wakeupNew(target: child, targetCPU: cpu1))
        add(10, cpu0, .wakeupNew(target: child, targetCPU: cpu0))
        add(10, cpu1, .migrate(task: child, from: cpu0, to: cpu1))
        add(10, cpu1, .switchTask(prev: .idle, prevState: .other, next: child))
        add(10, cpu1, .exec(task: child, comm: "true"))
        add(10, cpu1, .exec(task: ping, comm: "ping-✓"))
        add(10, cpu0, .waking(waker: kworker, target: ping, targetCPU: CPU(7), context: .softIRQ))
        add(10, cpu0, .waking(waker: ping, target: kworker, targetCPU: cpu0, context: .nmi))
        add(10, cpu1, .runtime(task: ping, nanoseconds: 70_000_000_000))
        add(10, cpu0, .fork(parent: kworker, child: child))
        add(10, cpu1, .exit(task: child))
        add(10, cpu1, .exit(task: pong))
        t -= 500  // one event out of order
        add(0, cpu1, .switchTask(prev: child, prevState: .dead, next: .idle))
        add(600, CPU(300), .switchTask(prev: .idle, prevState: .running, next: kworker))
        return events
    }
}
