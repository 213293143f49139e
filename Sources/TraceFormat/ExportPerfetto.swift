import Foundation

/// Turns a trace into Chrome/Perfetto JSON trace events (the "Trace Event Format" that
/// ui.perfetto.dev and chrome://tracing open). Pure: events in, JSON text out.
///
/// What it emits (docs/interop.md has the full list):
/// - one track per CPU: `"pid"` = `cpuProcessID` (a synthetic process named "CPUs", no Linux
///   pid is that large), `"tid"` = the CPU number, with a complete slice (`"ph":"X"`) per run
///   interval named by the task's comm (args: tid, pid, end_state, inferred_start),
/// - one track per task (`"pid"` = tgid, `"tid"` = tid) with a `"Running"` slice per run
///   (args: cpu), named by metadata events (`"ph":"M"`, `thread_name`, `process_name`),
/// - a wakeup flow (`"ph":"s"` on the waker's CPU slice at the waking, `"ph":"f"`,
///   `"bp":"e"` on the wakee's next CPU slice) for every task-context wakeup whose wakee then
///   ran; interrupt wakeups have no waker slice and get none (they are counted in `otherData`).
///
/// Run intervals come from `RunTracker`, so runs whose switch-in the kernel did not log
/// still appear (flagged `inferred_start`). Times are µs (3 decimals, so ns are kept) from
/// the first event of the trace.
public struct PerfettoExporter {
    /// The synthetic process that holds the per-CPU tracks (above any Linux pid_max).
    public static let cpuProcessID = 1_000_000_000

    private let tasks: [TaskInfo]
    private let metadata: TraceMetadata
    private var comms: [String]
    private var tracker: RunTracker
    private var origin: UInt64?
    private var output = ""
    private var needsComma = false
    private var ran: [Bool]
    private var cpusSeen = Set<Int>()
    /// Per task: the pending wakeup (flow id, time, waker's CPU) waiting for the task's next run.
    private var pendingWake: [(id: Int, time: UInt64, cpu: CPU)?]
    private var nextFlowID = 1
    /// Complete slices emitted on CPU tracks.
    public private(set) var cpuSliceCount = 0
    /// Wakeup flows emitted (each is one "s" and one "f").
    public private(set) var flowCount = 0
    /// Wakeups from interrupt context or the idle task: no flow.
    public private(set) var interruptWakeups = 0
    /// Task-context wakeups that found their wakee already running: no flow.
    public private(set) var wakeupsOfRunningTasks = 0

    /// - Parameters:
    ///   - tasks: the trace's task table.
    ///   - metadata: copied into `otherData`.
    public init(tasks: [TaskInfo], metadata: TraceMetadata) {
        self.tasks = tasks
        self.metadata = metadata
        comms = tasks.map(\.comm)
        tracker = RunTracker(taskCount: tasks.count)
        ran = Array(repeating: false, count: tasks.count)
        pendingWake = Array(repeating: nil, count: tasks.count)
        output = #"{"displayTimeUnit":"ns","traceEvents":["# + "\n"
    }

    /// Feeds the next event (in time order).
    public mutating func feed(_ event: Event) {
        if origin == nil { origin = event.timestamp }
        switch event.kind {
        case let .waking(waker, target, _, context):
            if context == .task, let waker, !waker.isIdle, waker != target, target.intValue < pendingWake.count {
                pendingWake[target.intValue] = (nextFlowID, event.timestamp, event.cpu)
                nextFlowID += 1
            } else {
                interruptWakeups += 1
            }
        case let .exec(task, comm):
            // The run going on takes the new name (its slice is emitted when it ends).
            if task.intValue < comms.count { comms[task.intValue] = comm }
        default:
            break
        }
        if let run = tracker.feed(event) { emit(run) }
    }

    /// Ends the trace (runs still open end at the last event) and returns the rest of the JSON.
    public mutating func finish() -> String {
        var open: [RunInterval] = []
        tracker.finish { open.append($0) }
        for run in open { emit(run) }
        for cpu in cpusSeen.sorted() {
            element(#"{"ph":"M","pid":\#(Self.cpuProcessID),"tid":\#(cpu),"name":"thread_name","args":{"name":"CPU \#(cpu)"}}"#)
            element(#"{"ph":"M","pid":\#(Self.cpuProcessID),"tid":\#(cpu),"name":"thread_sort_index","args":{"sort_index":\#(cpu)}}"#)
        }
        element(#"{"ph":"M","pid":\#(Self.cpuProcessID),"name":"process_name","args":{"name":"CPUs"}}"#)
        element(#"{"ph":"M","pid":\#(Self.cpuProcessID),"name":"process_sort_index","args":{"sort_index":-1}}"#)
        var processNamed = Set<Int32>()
        for (i, task) in tasks.enumerated() where i > 0 && ran[i] {
            element(#"{"ph":"M","pid":\#(task.tgid),"tid":\#(task.tid),"name":"thread_name","args":{"name":\#(Self.quoted(comms[i]))}}"#)
            if task.tgid == task.tid, processNamed.insert(task.tgid).inserted {
                element(#"{"ph":"M","pid":\#(task.tgid),"name":"process_name","args":{"name":\#(Self.quoted(task.comm))}}"#)
            }
        }
        output += "\n],\n"
        var other: [(String, String)] = [
            ("source", "replayctl export --format perfetto"),
            ("kernel", metadata.kernelRelease), ("hostname", metadata.hostname), ("clock", metadata.clock),
            ("recorder", metadata.recorderVersion), ("command", metadata.command.joined(separator: " ")),
            ("origin_ns", String(origin ?? 0)), ("cpu_slices", String(cpuSliceCount)), ("wakeup_flows", String(flowCount)),
            ("interrupt_wakeups", String(interruptWakeups)), ("inferred_switch_ins", String(tracker.inferredSwitchIns)),
            ("lost_events", String(metadata.totalLostEvents)),
        ]
        other = other.filter { !$0.1.isEmpty }
        output += #""otherData":{"# + other.map { "\(Self.quoted($0.0)):\(Self.quoted($0.1))" }.joined(separator: ",") + "}}\n"
        return takeOutput()
    }

    /// Returns the JSON written so far and forgets it (for streaming to a file).
    public mutating func takeOutput() -> String {
        defer { output = "" }
        return output
    }

    /// Exports `events` in one call.
    public static func export(events: [Event], tasks: [TaskInfo], metadata: TraceMetadata) -> String {
        var exporter = PerfettoExporter(tasks: tasks, metadata: metadata)
        var text = ""
        for e in events { exporter.feed(e) }
        text += exporter.takeOutput()
        text += exporter.finish()
        return text
    }

    private mutating func emit(_ run: RunInterval) {
        let i = run.task.intValue
        guard i > 0, i < tasks.count, run.end >= run.start else { return }
        ran[i] = true
        let cpu = run.cpu.intValue
        cpusSeen.insert(cpu)
        let task = tasks[i]
        let ts = micros(run.start), dur = Self.micros(run.end - run.start)
        var args = #""tid":\#(task.tid),"pid":\#(task.tgid)"#
        if let state = run.endState { args += #","end_state":"\#(state.letter)""# }
        if run.startInferred { args += #","inferred_start":true"# }
        element(#"{"ph":"X","cat":"sched","name":\#(Self.quoted(comms[i])),"pid":\#(Self.cpuProcessID),"tid":\#(cpu),"ts":\#(ts),"dur":\#(dur),"args":{\#(args)}}"#)
        element(#"{"ph":"X","cat":"sched","name":"Running","pid":\#(task.tgid),"tid":\#(task.tid),"ts":\#(ts),"dur":\#(dur),"args":{"cpu":\#(cpu)}}"#)
        cpuSliceCount += 1
        if let wake = pendingWake[i] {
            pendingWake[i] = nil
            if run.start < wake.time && !run.startInferred {
                // Already running when woken: the wakeup changed nothing.
                wakeupsOfRunningTasks += 1
            } else if run.end >= wake.time {
                let arrive = max(run.start, wake.time)
                element(#"{"ph":"s","cat":"wakeup","name":"wakeup","id":\#(wake.id),"pid":\#(Self.cpuProcessID),"tid":\#(wake.cpu.intValue),"ts":\#(micros(wake.time))}"#)
                element(#"{"ph":"f","bp":"e","cat":"wakeup","name":"wakeup","id":\#(wake.id),"pid":\#(Self.cpuProcessID),"tid":\#(cpu),"ts":\#(micros(arrive))}"#)
                flowCount += 1
            }
        }
    }

    private mutating func element(_ json: String) {
        if needsComma { output += ",\n" }
        output += json
        needsComma = true
    }

    private func micros(_ timestamp: UInt64) -> String {
        Self.micros(timestamp &- min(origin ?? timestamp, timestamp))
    }

    /// Nanoseconds as µs with 3 decimals, without going through floating point.
    static func micros(_ nanoseconds: UInt64) -> String {
        let fraction = nanoseconds % 1000
        let pad = fraction < 10 ? "00" : fraction < 100 ? "0" : ""
        return "\(nanoseconds / 1000).\(pad)\(fraction)"
    }

    static func quoted(_ text: String) -> String { JSONText.quoted(text) }
}
