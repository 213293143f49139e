// Size and speed of the .rpl format: bytes per event, encode and decode events per second,
// single-threaded, medians of several rounds. See bench/format-speed.sh.
//
//   FormatBenchmark [--rounds N] [--events N] [FILE.rpl ...]
//
// Without files it measures two synthetic streams (a pipe ping-pong and a 40-task
// messaging pattern); with files it reports the same figures for each real trace
// (encode = re-writing its events and tasks to a temporary file).
import Foundation
import TraceFormat

struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

struct Workload {
    var name: String
    var tasks: [TaskInfo]  // without the idle task
    var events: [Event]
    var metadata = TraceMetadata()
}

/// Two tasks ping-ponging through a pipe on two CPUs, as `perf bench sched pipe` does:
/// each side runs a few µs, wakes the other on the other CPU and sleeps; with
/// `sched_stat_runtime` at every switch-out. Delays drawn with ns resolution.
func pipePingPong(events count: Int) -> Workload {
    var rng = SplitMix64(state: 1)
    let a = TaskIndex(1), b = TaskIndex(2)
    var t: UInt64 = 5_000_000_000
    var events: [Event] = []
    events.reserveCapacity(count + 8)
    func add(_ delta: ClosedRange<UInt64>, _ cpu: Int, _ kind: Event.Kind) {
        t += UInt64.random(in: delta, using: &rng)
        events.append(Event(timestamp: t, cpu: CPU(cpu), kind: kind))
    }
    events.append(Event(timestamp: t, cpu: CPU(0), kind: .switchTask(prev: .idle, prevState: .running, next: a)))
    while events.count < count {
        for (me, other, cpu) in [(a, b, 0), (b, a, 1)] {
            let run = UInt64.random(in: 1_500...4_000, using: &rng)
            add(run...run, cpu, .waking(waker: me, target: other, targetCPU: CPU(1 - cpu), context: .task))
            add(300...900, cpu, .runtime(task: me, nanoseconds: run + UInt64.random(in: 300...900, using: &rng)))
            add(100...400, cpu, .switchTask(prev: me, prevState: .sleeping, next: .idle))
            add(1_000...3_000, 1 - cpu, .switchTask(prev: .idle, prevState: .running, next: other))
        }
    }
    var w = Workload(name: "pipe-pingpong", tasks: [
        TaskInfo(tid: 2001, tgid: 2001, comm: "perf", isRecorded: true),
        TaskInfo(tid: 2002, tgid: 2001, comm: "perf", parent: a, isRecorded: true),
    ], events: Array(events.prefix(count)))
    w.metadata.cpuCount = 2
    return w
}

/// A `perf bench sched messaging`-like mix: 20 senders and 20 receivers on two CPUs. Senders
/// wake receivers (often on the other CPU), tasks block and get preempted, switches go
/// task to task, runtime is reported at every switch-out, and tasks migrate now and then.
func messaging(events count: Int, taskCount: Int = 40) -> Workload {
    var rng = SplitMix64(state: 2)
    var t: UInt64 = 9_000_000_000
    var current: [TaskIndex] = [.idle, .idle]
    var runSince: [UInt64] = [t, t]
    var queues: [[TaskIndex]] = [[], []]
    var sleeping = Set((1...taskCount).map { TaskIndex($0) })
    var events: [Event] = []
    events.reserveCapacity(count + 8)
    while events.count < count {
        let cpu = Int.random(in: 0...1, using: &rng)
        t += UInt64.random(in: 200...8_000, using: &rng)
        let me = current[cpu]
        let action = Int.random(in: 0..<100, using: &rng)
        if !me.isIdle && action < 45, let target = sleeping.randomElement(using: &rng) {
            sleeping.remove(target)
            let targetCPU = Int.random(in: 0..<3, using: &rng) == 0 ? cpu : 1 - cpu
            queues[targetCPU].append(target)
            events.append(Event(timestamp: t, cpu: CPU(cpu), kind: .waking(waker: me, target: target, targetCPU: CPU(targetCPU), context: .task)))
        } else if action < 48, let moved = queues[1 - cpu].popLast() {
            queues[cpu].append(moved)
            events.append(Event(timestamp: t, cpu: CPU(cpu), kind: .migrate(task: moved, from: CPU(1 - cpu), to: CPU(cpu))))
        } else if me.isIdle && queues[cpu].isEmpty, let target = sleeping.randomElement(using: &rng) {
            // An idle CPU: a timer interrupt wakes a task there.
            sleeping.remove(target)
            queues[cpu].append(target)
            events.append(Event(timestamp: t, cpu: CPU(cpu), kind: .waking(waker: nil, target: target, targetCPU: CPU(cpu), context: .hardIRQ)))
        } else if !me.isIdle || !queues[cpu].isEmpty {
            var state = TaskState.running
            if !me.isIdle {
                events.append(Event(timestamp: t, cpu: CPU(cpu), kind: .runtime(task: me, nanoseconds: t - runSince[cpu])))
                t += UInt64.random(in: 50...300, using: &rng)
                if Int.random(in: 0..<10, using: &rng) < 7 {
                    state = .sleeping
                    sleeping.insert(me)
                } else {
                    queues[cpu].append(me)
                }
            }
            let next = queues[cpu].isEmpty ? TaskIndex.idle : queues[cpu].removeFirst()
            events.append(Event(timestamp: t, cpu: CPU(cpu), kind: .switchTask(prev: me, prevState: state, next: next)))
            current[cpu] = next
            runSince[cpu] = t
        }
    }
    var tasks: [TaskInfo] = []
    for i in 1...taskCount {
        let group: Int = (i - 1) / 20
        tasks.append(TaskInfo(tid: Int32(3000 + i), tgid: Int32(3000 + group), comm: "sched-messaging", isRecorded: true))
    }
    var w = Workload(name: "messaging-40", tasks: tasks, events: Array(events.prefix(count)))
    w.metadata.cpuCount = 2
    return w
}

func now() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

func median(_ values: [Double]) -> Double {
    let s = values.sorted()
    return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
}

/// Writes the workload; returns the file size.
@discardableResult
func encode(_ w: Workload, to path: String) throws -> UInt64 {
    let writer = try TraceWriter(path: path, metadata: w.metadata)
    for task in w.tasks { _ = writer.addTask(task) }
    for event in w.events { try writer.append(event) }
    try writer.finish(metadata: w.metadata)
    return writer.bytesWritten
}

/// Opens the file and reads every event; returns a value depending on all of them so nothing
/// is optimised away, and when the file was open (the rest is event decoding).
func decode(_ path: String) throws -> (events: Int, check: UInt64, opened: UInt64) {
    let reader = try TraceReader(path: path)
    let opened = now()
    var n = 0
    var check: UInt64 = 0
    try reader.forEachEvent { event in
        n += 1
        check &+= event.timestamp ^ UInt64(event.cpu.rawValue)
    }
    return (n, check, opened)
}

func measure(_ w: Workload, rounds: Int, scratch: String) throws {
    let size = try encode(w, to: scratch)
    let expected = try decode(scratch)
    guard expected.events == w.events.count else {
        fatalError("\(w.name): decoded \(expected.events) of \(w.events.count) events")
    }
    var encodeRates: [Double] = []
    var decodeRates: [Double] = []
    var eventRates: [Double] = []
    for _ in 0..<rounds {
        let t0 = now()
        try encode(w, to: scratch)
        let t1 = now()
        let result = try decode(scratch)
        let t2 = now()
        precondition(result.check == expected.check)
        encodeRates.append(Double(w.events.count) / (Double(t1 - t0) / 1e9))
        decodeRates.append(Double(w.events.count) / (Double(t2 - t1) / 1e9))
        eventRates.append(Double(w.events.count) / (Double(t2 - result.opened) / 1e9))
    }
    let line = String(format: "%@: %d events,  %6.2f bytes/event  encode %6.2f M events/s  decode %6.2f M events/s (events %6.2f, the rest is opening the file)  (medians of %d rounds)",
                      w.name as NSString, w.events.count, Double(size) / Double(max(1, w.events.count)),
                      median(encodeRates) / 1e6, median(decodeRates) / 1e6, median(eventRates) / 1e6, rounds)
    print(line)
}

var rounds = 7
var eventCount = 2_000_000
var files: [String] = []
var arguments = CommandLine.arguments.dropFirst()
while let argument = arguments.popFirst() {
    switch argument {
    case "--rounds": rounds = Int(arguments.popFirst() ?? "") ?? rounds
    case "--events": eventCount = Int(arguments.popFirst() ?? "") ?? eventCount
    case "-h", "--help":
        print("usage: FormatBenchmark [--rounds N] [--events N] [FILE.rpl ...]")
        exit(0)
    default: files.append(argument)
    }
}

let scratchDirectory = FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()
let scratch = "\(scratchDirectory)/rpl-bench-\(getpid()).rpl"
defer { try? FileManager.default.removeItem(atPath: scratch) }

do {
    if files.isEmpty {
        try measure(pipePingPong(events: eventCount), rounds: rounds, scratch: scratch)
        try measure(messaging(events: eventCount), rounds: rounds, scratch: scratch)
    }
    for file in files {
        let reader = try TraceReader(path: file)
        var w = Workload(name: (file as NSString).lastPathComponent, tasks: Array(reader.tasks.dropFirst()), events: try reader.allEvents())
        w.metadata = reader.metadata
        let actual = Double(reader.fileSize) / Double(max(1, w.events.count))
        print(String(format: "%@: %d events in %d bytes as recorded: %.2f bytes/event", file, w.events.count, Int(reader.fileSize), actual))
        try measure(w, rounds: rounds, scratch: scratch)
    }
} catch {
    FileHandle.standardError.write(Data("FormatBenchmark: \(error)\n".utf8))
    exit(1)
}
