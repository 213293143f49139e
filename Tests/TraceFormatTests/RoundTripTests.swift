import Foundation
import Testing
@testable import TraceFormat

/// Random event streams written and read back must come out identical: events, metadata and
/// task table, whatever the chunk limits.
@Suite struct RoundTripTests {
    static let seeds: [UInt64] = Array(1...12)

    @Test("random streams decode identically", arguments: seeds)
    func randomStreamsDecodeIdentically(seed: UInt64) throws {
        var rng = SplitMix64(seed: seed)
        let dir = try TemporaryDirectory()
        let steps = randomSteps(&rng, count: Int.random(in: 0...3000, using: &rng))
        let limits = [(1, 64), (2, 64), (3, 100), (7, 1 << 10), (100, 256), (16384, 128 << 10)]
        for (eventLimit, byteLimit) in limits {
            let start = randomMetadata(&rng)
            let final = randomMetadata(&rng)
            let path = dir.path("s\(seed)-\(eventLimit).rpl")
            let written = try writeTrace(steps, to: path, metadata: start, finalMetadata: final,
                                         chunkEventLimit: eventLimit, chunkByteLimit: byteLimit)
            let reader = try TraceReader(path: path)
            #expect(!reader.isRecovered, "seed \(seed) limit \(eventLimit)")
            #expect(reader.damage.isEmpty)
            #expect(reader.validate().isEmpty)
            #expect(reader.metadata == final)
            #expect(reader.tasks == written.tasks)
            #expect(reader.chunks.count == written.chunks.count)
            #expect(reader.eventCount == UInt64(written.events.count))
            let events = try reader.allEvents()
            #expect(events == written.events, "seed \(seed), chunk limit \(eventLimit)/\(byteLimit)")
            if eventLimit == 1 { #expect(reader.chunks.count == written.events.count) }
        }
    }

    @Test("every chunk decodes on its own")
    func everyChunkDecodesAlone() throws {
        var rng = SplitMix64(seed: 99)
        let dir = try TemporaryDirectory()
        let written = try writeTrace(randomSteps(&rng, count: 2000), to: dir.path("t.rpl"), metadata: TraceMetadata(), chunkEventLimit: 37)
        let reader = try TraceReader(path: written.path)
        #expect(reader.chunks.count == written.chunks.count)
        // Decode in reverse order: no state may leak from one chunk into the next.
        for number in reader.chunks.indices.reversed() {
            var events: [Event] = []
            try reader.decodeChunk(number) { events.append($0) }
            #expect(events == Array(written.events[written.chunks[number].events]))
            #expect(reader.chunks[number].offset == written.chunks[number].offset)
        }
    }

    @Test("an unfinished file still reads by scanning, and the task definitions stand in for the table")
    func unfinishedFileReadsByScanning() throws {
        var rng = SplitMix64(seed: 7)
        let dir = try TemporaryDirectory()
        let metadata = randomMetadata(&rng)
        let steps = randomSteps(&rng, count: 1500)
        let written = try writeTrace(steps, to: dir.path("u.rpl"), metadata: metadata, chunkEventLimit: 100, finish: false)
        let reader = try TraceReader(path: written.path)
        #expect(reader.isRecovered)
        #expect(try reader.allEvents() == written.events)
        // Without the footer only the tasks as first added are known (no later updates).
        #expect(reader.tasks.count == written.tasks.count)
        #expect(reader.metadata.kernelRelease == metadata.kernelRelease)
        #expect(reader.damage.count == 1, "the missing footer is reported: \(reader.damage)")
    }

    @Test("empty trace round-trips")
    func emptyTraceRoundTrips() throws {
        let dir = try TemporaryDirectory()
        var m = TraceMetadata()
        m.kernelRelease = "6.18.0"
        let written = try writeTrace([], to: dir.path("e.rpl"), metadata: m)
        let reader = try TraceReader(path: written.path)
        #expect(reader.chunks.isEmpty)
        #expect(reader.tasks == [TaskInfo.idle])
        #expect(reader.metadata == m)
        #expect(try reader.allEvents().isEmpty)
    }

    @Test("extreme field values round-trip")
    func extremeValuesRoundTrip() throws {
        let dir = try TemporaryDirectory()
        var steps: [TraceStep] = (0..<3).map { _ in .addTask(TaskInfo(tid: Int32.max, tgid: Int32.min, comm: "x")) }
        let t1 = TaskIndex(1), t3 = TaskIndex(3)
        let times: [UInt64] = [UInt64.max, 0, UInt64.max, 1 << 63, (1 << 63) - 1, 0, 0, UInt64.max - 1]
        for (i, t) in times.enumerated() {
            let cpu = CPU(rawValue: i % 2 == 0 ? UInt32.max : 0)
            steps.append(.event(Event(timestamp: t, cpu: cpu, kind: .runtime(task: t1, nanoseconds: UInt64.max))))
            steps.append(.event(Event(timestamp: t, cpu: cpu, kind: .migrate(task: t3, from: CPU(rawValue: UInt32.max), to: cpu))))
            steps.append(.event(Event(timestamp: t, cpu: cpu, kind: .waking(waker: nil, target: t3, targetCPU: CPU(rawValue: UInt32.max), context: .nmi))))
            steps.append(.event(Event(timestamp: t, cpu: cpu, kind: .switchTask(prev: t1, prevState: .other, next: t3))))
            steps.append(.event(Event(timestamp: t, cpu: cpu, kind: .waking(waker: t3, target: t1, targetCPU: cpu, context: .softIRQ))))
        }
        let written = try writeTrace(steps, to: dir.path("x.rpl"), metadata: TraceMetadata(), chunkEventLimit: 3)
        #expect(try TraceReader(path: written.path).allEvents() == written.events)
    }

    @Test("a long exec name is cut at 255 bytes on a character boundary")
    func longExecNameIsCutOnCharacterBoundary() throws {
        let dir = try TemporaryDirectory()
        let name = "ab" + String(repeating: "é", count: 200)  // 402 bytes; byte 255 falls inside an "é"
        let steps: [TraceStep] = [.addTask(TaskInfo(tid: 5, tgid: 5, comm: "a")),
                                  .event(Event(timestamp: 1, cpu: CPU(0), kind: .exec(task: TaskIndex(1), comm: name)))]
        let written = try writeTrace(steps, to: dir.path("n.rpl"), metadata: TraceMetadata())
        let events = try TraceReader(path: written.path).allEvents()
        guard case let .exec(_, comm)? = events.first?.kind else { Issue.record("no exec event"); return }
        #expect(comm.utf8.count == 254)
        #expect(name.hasPrefix(comm))
    }
}

/// The version 2 encoding predicts fields from what the chunk's earlier events said; these
/// streams take every prediction path, hit and miss, at chunk starts and at the edges of values.
@Suite struct PredictionRoundTripTests {
    /// Writes `steps` with several chunk sizes (so each event is, somewhere, a chunk's first) and
    /// expects the same events back, decoding every chunk alone.
    func expectRoundTrip(_ steps: [TraceStep], _ label: String) throws {
        let dir = try TemporaryDirectory()
        for limit in [1, 2, 3, 5, 16384] {
            let written = try writeTrace(steps, to: dir.path("p\(limit).rpl"), metadata: TraceMetadata(), chunkEventLimit: limit)
            let reader = try TraceReader(path: written.path)
            #expect(reader.version.major == RPLFormat.majorVersion)
            #expect(reader.validate().isEmpty, "\(label), chunks of \(limit)")
            #expect(try reader.allEvents() == written.events, "\(label), chunks of \(limit)")
            for number in reader.chunks.indices.reversed() {
                var events: [Event] = []
                try reader.decodeChunk(number) { events.append($0) }
                #expect(events == Array(written.events[written.chunks[number].events]), "\(label), chunk \(number) of \(limit)")
            }
        }
    }

    func tasks(_ n: Int) -> [TraceStep] { (0..<n).map { .addTask(TaskInfo(tid: Int32(100 + $0), tgid: 100, comm: "t\($0)")) } }

    @Test("runtime values far from their prediction round-trip: 0, huge, below the elapsed time, first in a chunk")
    func runtimeValuesRoundTrip() throws {
        let a = TaskIndex(1), b = TaskIndex(2)
        var steps = tasks(2)
        var t: UInt64 = 1_000_000
        func add(_ dt: UInt64, _ cpu: Int, _ kind: Event.Kind) {
            t &+= dt
            steps.append(.event(Event(timestamp: t, cpu: CPU(cpu), kind: kind)))
        }
        add(0, 0, .runtime(task: a, nanoseconds: 5000))  // no reference yet, task explicit
        add(10, 0, .switchTask(prev: .idle, prevState: .running, next: a))
        for value: UInt64 in [0, 1, 2990, 3000, 3010, UInt64.max, UInt64.max - 1, 1 << 63, 0, 40, 17] {
            add(3000, 0, .runtime(task: a, nanoseconds: value))  // after a report: elapsed 3000
        }
        add(500, 0, .switchTask(prev: a, prevState: .running, next: b))
        add(2000, 0, .runtime(task: b, nanoseconds: 0))  // after a switch-in, far below the elapsed time
        add(2000, 0, .switchTask(prev: b, prevState: .running, next: a))
        add(2000, 0, .runtime(task: a, nanoseconds: UInt64.max))
        add(0, 0, .runtime(task: a, nanoseconds: 0))  // no time elapsed
        add(UInt64.max, 0, .runtime(task: a, nanoseconds: 77))  // time goes backwards by one
        try expectRoundTrip(steps, "runtime values")
    }

    @Test("predicted tasks and CPUs round-trip, hit and miss")
    func predictedFieldsRoundTrip() throws {
        var rng = SplitMix64(seed: 2024)
        var steps = tasks(12)
        var t: UInt64 = 5_000
        var current: [Int: TaskIndex] = [:]
        // CPUs near the edge of the per-CPU memory, and ordinary ones alternating.
        let cpus = [0, 1, 0, 1, 2, 65535, 65536, 3, 1]
        for i in 0..<3000 {
            t &+= UInt64.random(in: 0...3000, using: &rng)
            let cpu = cpus[Int.random(in: 0..<cpus.count, using: &rng)]
            let me = current[cpu] ?? .idle
            let other = TaskIndex(Int.random(in: 1...12, using: &rng))
            let kind: Event.Kind
            switch i % 6 {
            case 0:
                // Back to the task that last left (ping-pong), to the last woken, or anywhere.
                let next = [TaskIndex.idle, other, TaskIndex(1), TaskIndex(2)].randomElement(using: &rng)!
                kind = .switchTask(prev: Bool.random(using: &rng) ? me : other, prevState: TaskState.allCases.randomElement(using: &rng)!, next: next)
                current[cpu] = next
            case 1:
                let targetCPU = [cpu, cpu, 1, 0, 65536].randomElement(using: &rng)!
                kind = .waking(waker: [me, me, nil, other].randomElement(using: &rng)!, target: other, targetCPU: CPU(targetCPU),
                               context: WakeContext.allCases.randomElement(using: &rng)!)
            case 2, 3:
                // The CPU's task, the task of the CPU last woken towards, or another.
                let there = current.values.randomElement(using: &rng) ?? other
                kind = .runtime(task: [me, there, other].randomElement(using: &rng)!, nanoseconds: UInt64.random(in: 0...10_000, using: &rng))
            case 4:
                kind = Bool.random(using: &rng) ? .wakeupNew(target: other, targetCPU: CPU([cpu, 1].randomElement(using: &rng)!))
                    : .migrate(task: other, from: CPU(cpu), to: CPU(Int.random(in: 0...3, using: &rng)))
            default:
                switch Int.random(in: 0..<3, using: &rng) {
                case 0: kind = .fork(parent: Bool.random(using: &rng) ? me : other, child: other)
                case 1: kind = .exit(task: Bool.random(using: &rng) ? me : other)
                default: kind = .exec(task: Bool.random(using: &rng) ? me : other, comm: "c\(i)")
                }
            }
            steps.append(.event(Event(timestamp: t, cpu: CPU(cpu), kind: kind)))
        }
        try expectRoundTrip(steps, "predicted fields")
    }

    @Test("tasks beyond the per-task memory round-trip with explicit fields")
    func tasksBeyondMemoryRoundTrip() throws {
        let count = ChunkModel.memoryLimit + 3
        var steps = tasks(count)
        let high = TaskIndex(count), low = TaskIndex(1)
        var t: UInt64 = 0
        for (i, kind) in [Event.Kind.switchTask(prev: .idle, prevState: .running, next: high),
                          .runtime(task: high, nanoseconds: 100), .waking(waker: high, target: low, targetCPU: CPU(1), context: .task),
                          .runtime(task: high, nanoseconds: 200), .switchTask(prev: high, prevState: .sleeping, next: low),
                          .waking(waker: low, target: high, targetCPU: CPU(0), context: .task),
                          .switchTask(prev: low, prevState: .running, next: high), .exit(task: high)].enumerated() {
            t += 1000
            steps.append(.event(Event(timestamp: t, cpu: CPU(i % 3 == 2 ? 1 : 0), kind: kind)))
        }
        try expectRoundTrip(steps, "tasks beyond memory")
    }
}
