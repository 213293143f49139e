import Foundation
@testable import TraceFormat

/// A small, seedable generator (SplitMix64) so that every random test is reproducible:
/// a failure message prints the seed, and `SplitMix64(seed:)` replays it.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// A fresh temporary directory, removed by `cleanup()`.
final class TemporaryDirectory {
    let url: URL
    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("rpl-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }
    func path(_ name: String) -> String { url.appendingPathComponent(name).path }
    deinit { try? FileManager.default.removeItem(at: url) }
}

/// What a test wrote: the events in append order, the final task table and metadata, and
/// where each events chunk starts (so corruption tests know what each chunk holds).
struct WrittenTrace {
    var path: String
    var events: [Event]
    var tasks: [TaskInfo]
    var metadata: TraceMetadata
    var bytes: [UInt8]
    /// For each chunk in file order: its block offset and the range of `events` it holds.
    var chunks: [(offset: UInt64, events: Range<Int>)]
}

/// One step of a generated stream: add a task, append an event, or change a task's table entry.
enum TraceStep {
    case addTask(TaskInfo)
    case event(Event)
    case updateComm(TaskIndex, String)
}

/// Writes `steps` with `TraceWriter` and reads back the chunk layout from the writer's own index.
func writeTrace(
    _ steps: [TraceStep], to path: String, metadata: TraceMetadata, finalMetadata: TraceMetadata? = nil,
    chunkEventLimit: Int = 16384, chunkByteLimit: Int = 128 << 10, finish: Bool = true
) throws -> WrittenTrace {
    let writer = try TraceWriter(path: path, metadata: metadata, chunkEventLimit: chunkEventLimit, chunkByteLimit: chunkByteLimit)
    var events: [Event] = []
    for step in steps {
        switch step {
        case let .addTask(t): _ = writer.addTask(t)
        case let .event(e): try writer.append(e); events.append(e)
        case let .updateComm(i, comm): writer.updateTask(i) { $0.comm = comm }
        }
    }
    var tasks: [TaskInfo] = []
    for i in 0..<writer.taskCount { tasks.append(writer.task(TaskIndex(i))) }
    let final = finalMetadata ?? metadata
    if finish { try writer.finish(metadata: final) } else { try writer.flush() }
    let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
    // Chunk layout, from walking the blocks (independent of the reader under test).
    var chunks: [(offset: UInt64, events: Range<Int>)] = []
    var offset = RPLFormat.fileHeaderSize
    var eventIndex = 0
    while offset + RPLFormat.blockHeaderSize <= bytes.count {
        let type = bytes[offset]
        let length = bytes.withUnsafeBytes { Int(readLE($0, offset + 4, as: UInt32.self)) }
        if type == BlockType.events.rawValue {
            let count = bytes.withUnsafeBytes { Int(readLE($0, offset + RPLFormat.blockHeaderSize + 16, as: UInt32.self)) }
            chunks.append((UInt64(offset), eventIndex..<eventIndex + count))
            eventIndex += count
        }
        if type == BlockType.index.rawValue { break }
        offset += RPLFormat.blockHeaderSize + length
    }
    return WrittenTrace(path: path, events: events, tasks: tasks, metadata: finish ? final : metadata, bytes: bytes, chunks: chunks)
}

/// Block boundaries of a file: the offset of every block and of the trailer.
func blockOffsets(_ bytes: [UInt8]) -> [(offset: Int, type: UInt8, length: Int)] {
    var result: [(offset: Int, type: UInt8, length: Int)] = []
    var offset = RPLFormat.fileHeaderSize
    while offset + RPLFormat.blockHeaderSize <= bytes.count - (bytes.suffix(8) == RPLFormat.endMagic[...] ? RPLFormat.trailerSize : 0) {
        let length = bytes.withUnsafeBytes { Int(readLE($0, offset + 4, as: UInt32.self)) }
        result.append((offset, bytes[offset], length))
        offset += RPLFormat.blockHeaderSize + length
    }
    return result
}

/// Random task table entries with every optional field exercised.
func randomTask<R: RandomNumberGenerator>(_ rng: inout R, number: Int) -> TaskInfo {
    let comms = ["bash", "kworker/0:1", "pipe-\(number)", "ünïcødé", "", "a-very-long-comm-name-beyond-15", "sched-messaging"]
    return TaskInfo(
        tid: Int32.random(in: 1...Int32.max, using: &rng), tgid: Int32.random(in: -1...4_194_304, using: &rng),
        comm: comms.randomElement(using: &rng)!,
        parent: Bool.random(using: &rng) ? TaskIndex(Int.random(in: 0...max(0, number - 1), using: &rng)) : nil,
        policy: Bool.random(using: &rng) ? SchedulingPolicy.allCases.randomElement(using: &rng) : nil,
        nice: Bool.random(using: &rng) ? Int32.random(in: -20...19, using: &rng) : nil,
        realtimePriority: Bool.random(using: &rng) ? Int32.random(in: 1...99, using: &rng) : nil,
        affinity: Bool.random(using: &rng) ? (0..<Int.random(in: 0...8, using: &rng)).map { $0 * 3 } : nil,
        isKernelThread: Bool.random(using: &rng), isRecorded: Bool.random(using: &rng))
}

/// Random metadata with every field set, including values at the edges of their types.
func randomMetadata<R: RandomNumberGenerator>(_ rng: inout R) -> TraceMetadata {
    var m = TraceMetadata()
    m.kernelRelease = "6.18.\(Int.random(in: 0...99, using: &rng))-test"
    m.architecture = "x86_64"
    m.hostname = "host-\(rng.next() % 1000)"
    m.cpuModel = "Model \"quoted\" \\ name ✓"
    m.cpuCount = Int.random(in: 1...1024, using: &rng)
    m.clock = ["mono", "local", "global"].randomElement(using: &rng)!
    m.startWallTimeNanoseconds = rng.next()
    m.firstTimestamp = rng.next()
    m.lastTimestamp = UInt64.max
    m.durationNanoseconds = rng.next() >> 1
    m.recorderVersion = "replayctl 0.1.0"
    m.command = ["perf", "bench", "sched", "pipe", "--", "arg with spaces", ""]
    m.lostEvents = (0..<Int.random(in: 0...8, using: &rng)).map { _ in rng.next() >> UInt64.random(in: 0...63, using: &rng) }
    m.inferredSwitchIns = rng.next() >> 10
    m.exitStatus = Bool.random(using: &rng) ? Int32.random(in: Int32.min...Int32.max, using: &rng) : nil
    m.extra = ["buffer-size": "4096", "note": "line1\nline2", "": "empty key"]
    return m
}

/// A random event stream. Tasks are added along the way (an event only names tasks already
/// added); timestamps mostly increase by small steps but also jump backwards and to huge
/// values; CPUs range from 0 to very large numbers; wakers are often the CPU's current task
/// so that the implicit-field paths are taken.
func randomSteps<R: RandomNumberGenerator>(_ rng: inout R, count: Int, initialTasks: Int = 8, maxCPU: UInt32 = 7) -> [TraceStep] {
    var steps: [TraceStep] = []
    var taskCount = 1
    for _ in 0..<initialTasks {
        steps.append(.addTask(randomTask(&rng, number: taskCount)))
        taskCount += 1
    }
    var timestamp: UInt64 = rng.next() >> UInt64.random(in: 0...40, using: &rng)
    var current: [UInt32: TaskIndex] = [:]
    func anyTask() -> TaskIndex { TaskIndex(Int.random(in: 0..<taskCount, using: &rng)) }
    for _ in 0..<count {
        switch Int.random(in: 0..<100, using: &rng) {
        case 0..<2:
            steps.append(.addTask(randomTask(&rng, number: taskCount)))
            taskCount += 1
            continue
        case 2:
            steps.append(.updateComm(anyTask(), "renamed-\(rng.next() % 100)"))
            continue
        default: break
        }
        switch Int.random(in: 0..<100, using: &rng) {
        case 0..<80: timestamp &+= UInt64.random(in: 0...5000, using: &rng)
        case 80..<90: timestamp &-= UInt64.random(in: 0...100_000, using: &rng)  // out of order
        case 90..<95: timestamp = rng.next()  // anywhere, including near UInt64.max
        case 95..<97: timestamp = UInt64.max &- UInt64.random(in: 0...10, using: &rng)
        default: timestamp = UInt64.random(in: 0...10, using: &rng)
        }
        let cpuValue: UInt32 = Int.random(in: 0..<50, using: &rng) == 0
            ? [UInt32.max, 65535, 65536, 1 << 20].randomElement(using: &rng)!
            : UInt32.random(in: 0...maxCPU, using: &rng)
        let cpu = CPU(rawValue: cpuValue)
        // Often use the CPU's current task so that implicit encodings are exercised.
        let currentTask = current[cpuValue]
        func taskOrCurrent() -> TaskIndex {
            if let currentTask, Int.random(in: 0..<3, using: &rng) > 0 { return currentTask }
            return anyTask()
        }
        let kind: Event.Kind
        switch Int.random(in: 0..<8, using: &rng) {
        case 0:
            let next = Int.random(in: 0..<4, using: &rng) == 0 ? TaskIndex.idle : anyTask()
            kind = .switchTask(prev: taskOrCurrent(), prevState: TaskState.allCases.randomElement(using: &rng)!, next: next)
            current[cpuValue] = next
        case 1:
            let waker: TaskIndex? = Int.random(in: 0..<5, using: &rng) == 0 ? nil : taskOrCurrent()
            let targetCPU = Bool.random(using: &rng) ? cpu : CPU(rawValue: UInt32.random(in: 0...UInt32.max, using: &rng) >> UInt32.random(in: 0...31, using: &rng))
            kind = .waking(waker: waker, target: anyTask(), targetCPU: targetCPU, context: WakeContext.allCases.randomElement(using: &rng)!)
        case 2:
            let ns = Bool.random(using: &rng) ? UInt64.random(in: 0...100_000, using: &rng) : rng.next()
            kind = .runtime(task: taskOrCurrent(), nanoseconds: ns)
        case 3:
            kind = .migrate(task: anyTask(), from: CPU(rawValue: UInt32.random(in: 0...UInt32.max, using: &rng)), to: cpu)
        case 4:
            kind = .wakeupNew(target: anyTask(), targetCPU: Bool.random(using: &rng) ? cpu : CPU(rawValue: UInt32.random(in: 0...64, using: &rng)))
        case 5:
            kind = .fork(parent: taskOrCurrent(), child: anyTask())
        case 6:
            kind = .exit(task: taskOrCurrent())
        default:
            let names = ["", "sh", "ünïcødé-comm", String(repeating: "x", count: 255), "tab\tand\0nul"]
            kind = .exec(task: taskOrCurrent(), comm: names.randomElement(using: &rng)!)
        }
        steps.append(.event(Event(timestamp: timestamp, cpu: cpu, kind: kind)))
    }
    return steps
}

/// Reads every event of `reader`, chunk by chunk, returning them and the chunk errors.
func readAll(_ reader: TraceReader) -> (events: [Event], errors: [TraceError]) {
    var events: [Event] = []
    var errors: [TraceError] = []
    try? reader.forEachEvent(skipDamaged: true, skipped: { errors.append($0) }) { events.append($0) }
    return (events, errors)
}

/// Writes `bytes` to `path`.
func writeBytes(_ bytes: some Sequence<UInt8>, to path: String) throws {
    try Data(bytes).write(to: URL(fileURLWithPath: path))
}

/// `bytes` (a complete trace) with the first `old` of its final metadata JSON replaced by
/// `new` (same length) and both CRCs of that block fixed: a well-formed file whose metadata
/// says something else.
func patchingFinalMetadata(_ bytes: [UInt8], replacing old: String, with new: String) throws -> [UInt8] {
    struct NotFound: Error {}
    var bytes = bytes
    let needle = Array(old.utf8), replacement = Array(new.utf8)
    guard needle.count == replacement.count,
          let block = blockOffsets(bytes).first(where: { $0.type == BlockType.finalMetadata.rawValue }) else { throw NotFound() }
    let start = block.offset + RPLFormat.blockHeaderSize
    var payload = Array(bytes[start..<start + block.length])
    guard let at = (0...max(0, payload.count - needle.count)).first(where: { Array(payload[$0..<$0 + needle.count]) == needle }) else {
        throw NotFound()
    }
    payload.replaceSubrange(at..<at + needle.count, with: replacement)
    bytes.replaceSubrange(start..<start + block.length, with: payload)
    func put(_ v: UInt32, at o: Int) { for k in 0..<4 { bytes[o + k] = UInt8(truncatingIfNeeded: v >> (8 * UInt32(k))) } }
    put(CRC32C.checksum(payload), at: block.offset + 8)
    put(CRC32C.checksum(Array(bytes[block.offset..<block.offset + 12])), at: block.offset + 12)
    return bytes
}
