import Foundation
import TraceFormat

/// Turns a replay plan into an rt-app workload (JSON for rt-app / LISA): one rt-app thread
/// per program, approximating it with rt-app's events. Pure: plan in, JSON text out.
///
/// Mapping (docs/interop.md lists what is lost):
/// - `run(d)` → `"run": µs` (sub-µs remainders are carried, so the CPU total is kept),
/// - `wait` (a wake from another replayed task) → `"suspend": <own name>`; the waker's `wake`
///   → `"resume": <wakee's name>`; a spawned child starts on its timer at the recorded fork
///   time instead of waiting for its parent (rt-app starts all threads together),
/// - `sleepUntil(t)` (timer, interrupt or unreplayed waker) → `"timer"` on one absolute-mode
///   timer per thread, whose periods add up to the recorded deadlines (rt-app starts the
///   timer at its first use, so deadlines are kept relative to that point),
/// - `exec` has no rt-app equivalent and is dropped (counted).
/// The event list is cut after each blocking event (suspend, timer) into segments, and runs
/// of similar segments (same events and wake targets, run and timer values within
/// `Options.tolerance`) become one phase with a `loop` count, values averaged (totals kept).
/// Each thread has `"loop": 1`; programs longer than `Options.maxPhasesPerTask` phases are cut.
public enum RtAppExporter {
    /// Export settings.
    public struct Options: Sendable {
        /// Most phases per thread; the rest of a longer program is dropped (a note says so).
        public var maxPhasesPerTask = 2000
        /// Two values match when within this fraction of the larger…
        public var tolerance = 0.25
        /// …or within this many µs.
        public var absoluteToleranceMicroseconds = 20
        /// rt-app's global duration cap in seconds; nil: 2 × the recorded makespan + 1 s.
        public var durationSeconds: Int?
        /// rt-app's `calibration`: a CPU to calibrate on (`"CPU0"`, ~10 s here) or a fixed
        /// ns-per-loop number (skips calibration; rt-app prints its `pLoad` when it calibrates).
        public var calibration = "CPU0"
        public init() {}
    }

    /// What `export` produced.
    public struct Result: Sendable {
        /// The rt-app JSON text.
        public var json: String
        /// Threads written.
        public var taskCount: Int
        /// Phases written, over all threads.
        public var phaseCount: Int
        /// Plan atoms that went in.
        public var atomCount: Int
        /// The `global.duration` written.
        public var durationSeconds: Int
        /// What was approximated or dropped, one line each.
        public var notes: [String]
    }

    /// One rt-app event.
    enum Item: Equatable {
        case run(Int)
        case resume(String)
        case suspend(String)
        case timer(Int)

        var isBlocking: Bool {
            switch self {
            case .suspend, .timer: true
            default: false
            }
        }
    }

    /// A phase: a segment of items repeated `loop` times; `sums` holds the summed values of
    /// its run/timer items over the repetitions.
    struct Phase {
        var items: [Item]
        var sums: [Int]
        var loop: Int
    }

    /// Exports `plan`.
    public static func export(plan: ReplayPlan, metadata: TraceMetadata, options: Options = Options()) -> Result {
        let names = threadNames(plan.programs)
        var notes: [String] = []
        var json = "{\n  \"tasks\": {\n"
        var phaseTotal = 0
        var atomTotal = 0
        var written = 0
        var execs = 0
        for (p, program) in plan.programs.enumerated() {
            atomTotal += program.atoms.count
            let (items, dropped) = self.items(program, index: p, names: names, edges: plan.edges)
            execs += dropped
            var phases = compress(segments(items), options: options)
            if phases.isEmpty { phases = [Phase(items: [.run(0)], sums: [0], loop: 1)] }
            if phases.count > options.maxPhasesPerTask {
                notes.append("\(names[p]): program cut at \(options.maxPhasesPerTask) of \(phases.count) phases (--max-phases)")
                phases = Array(phases.prefix(options.maxPhasesPerTask))
            }
            phaseTotal += phases.count
            if written > 0 { json += ",\n" }
            json += "    \(quoted(names[p])): {\n"
            json += policy(program, notes: &notes, name: names[p])
            json += "      \"loop\": 1,\n      \"phases\": {\n"
            let width = String(phases.count - 1).count
            for (k, phase) in phases.enumerated() {
                let number = String(k)
                let key = "p" + String(repeating: "0", count: width - number.count) + number
                json += "        \(quoted(key)): { \"loop\": \(phase.loop)"
                let lengthBefore = json.utf8.count
                var valueIndex = 0
                for (e, item) in phase.items.enumerated() {
                    switch item {
                    case .run:
                        let value = mean(phase, valueIndex)
                        if value > 0 { json += ", \"run\(e)\": \(value)" }
                        valueIndex += 1
                    case .timer:
                        json += ", \"timer\(e)\": { \"ref\": \(quoted(names[p] + "-timer")), \"period\": \(max(1, mean(phase, valueIndex))), \"mode\": \"absolute\" }"
                        valueIndex += 1
                    case let .resume(target):
                        json += ", \"resume\(e)\": \(quoted(target))"
                    case let .suspend(own):
                        json += ", \"suspend\(e)\": \(quoted(own))"
                    }
                }
                // rt-app needs an event in every phase: a program with no CPU time and no sleeps gets `sleep 0`.
                if json.utf8.count == lengthBefore { json += ", \"sleep0\": 0" }
                json += " }" + (k + 1 < phases.count ? ",\n" : "\n")
            }
            json += "      }\n    }"
            written += 1
        }
        let makespanSeconds = Double(plan.recordedMakespan) / 1e9
        let duration = options.durationSeconds ?? Int((2 * makespanSeconds).rounded(.up)) + 1
        json += "\n  },\n  \"global\": {\n"
        let calibration = Int(options.calibration).map(String.init) ?? quoted(options.calibration)
        json += "    \"duration\": \(duration),\n    \"calibration\": \(calibration),\n    \"default_policy\": \"SCHED_OTHER\",\n"
        json += "    \"lock_pages\": false,\n    \"logdir\": \"./\",\n    \"log_basename\": \"replayctl\"\n  }\n}\n"
        if execs > 0 { notes.append("\(execs) exec(s) dropped: rt-app threads cannot change their name") }
        return Result(json: json, taskCount: written, phaseCount: phaseTotal, atomCount: atomTotal, durationSeconds: duration, notes: notes)
    }

    /// Unique rt-app thread names: `comm-tid` cut to 15 characters (rt-app names the thread
    /// with it; Linux keeps 15), characters outside [A-Za-z0-9._-] as `_`.
    static func threadNames(_ programs: [TaskProgram]) -> [String] {
        var used = Set<String>()
        return programs.enumerated().map { index, program in
            let comm = String(program.comm.unicodeScalars.map { scalar -> Character in
                let c = Character(scalar)
                return c.isASCII && (c.isLetter || c.isNumber || c == "." || c == "_" || c == "-") ? c : "_"
            })
            let suffix = "-\(program.tid)"
            var name = String(comm.prefix(max(1, 15 - suffix.count))) + suffix
            if !used.insert(name).inserted {
                name = "t\(index)" + suffix
                used.insert(name)
            }
            return name
        }
    }

    /// The program as rt-app events, and the number of execs dropped.
    static func items(_ program: TaskProgram, index: Int, names: [String], edges: [WakeEdge]) -> ([Item], Int) {
        var items: [Item] = []
        var runNanoseconds: UInt64 = 0
        var emittedRunMicroseconds: UInt64 = 0
        // Where the task would be on the recorded time line (ns from the trace start) if
        // nothing delayed it, and the timer's deadline so far (µs from its first use).
        var cursor: UInt64 = 0
        var timerOrigin: UInt64?
        var timerMicroseconds = 0
        var execs = 0
        // A run slot before every other event, even of 0 µs (not written), so that segments
        // differing only by a sub-µs run have the same shape and compress together.
        func flushRun() {
            let total = max(emittedRunMicroseconds, runNanoseconds.adding(saturating: 500) / 1000)
            items.append(.run(Int(total - emittedRunMicroseconds)))
            emittedRunMicroseconds = total
        }
        for atom in program.atoms {
            switch atom {
            case let .run(ns):
                // Saturating: the timestamps of a damaged trace can be anything.
                runNanoseconds = runNanoseconds.adding(saturating: ns)
                cursor = cursor.adding(saturating: ns)
            case let .wake(_, target, _):
                flushRun()
                items.append(.resume(names[target]))
            case .spawn:
                // rt-app starts every thread at once: the child starts on its own timer
                // instead (below); a resume could come before the child's first suspend and be lost.
                break
            case let .wait(edge, _, recordedWake) where !(edge < edges.count && edges[edge].isSpawn),
                 let .handOff(edge, _, recordedWake, _):
                flushRun()
                items.append(.suspend(names[index]))
                cursor = max(cursor, recordedWake)
            case let .wait(_, _, offset), let .sleepUntil(offset, _):
                flushRun()
                let origin = timerOrigin ?? cursor
                timerOrigin = origin
                let deadline = Int((offset &- min(offset, origin)) / 1000)
                let period = max(1, deadline &- timerMicroseconds)
                timerMicroseconds = timerMicroseconds.adding(saturating: period)
                items.append(.timer(period))
                cursor = max(cursor, offset)
            case .exec:
                execs += 1
            }
        }
        if runNanoseconds > 0 && runNanoseconds.adding(saturating: 500) / 1000 > emittedRunMicroseconds { flushRun() }
        return (items, execs)
    }

    /// Cuts after each blocking item.
    static func segments(_ items: [Item]) -> [[Item]] {
        var result: [[Item]] = []
        var current: [Item] = []
        for item in items {
            current.append(item)
            if item.isBlocking {
                result.append(current)
                current = []
            }
        }
        if !current.isEmpty { result.append(current) }
        return result
    }

    /// Merges runs of similar consecutive segments into looped phases.
    static func compress(_ segments: [[Item]], options: Options) -> [Phase] {
        var phases: [Phase] = []
        for segment in segments {
            let values = segment.compactMap { item -> Int? in
                switch item {
                case let .run(v), let .timer(v): v
                default: nil
                }
            }
            if var last = phases.last, shape(last.items) == shape(segment) {
                let similar = zip(last.sums, values).allSatisfy { sum, value in
                    let mean = Double(sum) / Double(last.loop)
                    let diff = abs(mean - Double(value))
                    return diff <= Double(options.absoluteToleranceMicroseconds) || diff <= options.tolerance * max(mean, Double(value))
                }
                if similar {
                    last.sums = zip(last.sums, values).map { $0.adding(saturating: $1) }
                    last.loop += 1
                    phases[phases.count - 1] = last
                    continue
                }
            }
            phases.append(Phase(items: segment, sums: values, loop: 1))
        }
        return phases
    }

    /// The segment with its values blanked, for comparing shapes.
    static func shape(_ items: [Item]) -> [Item] {
        items.map { item in
            switch item {
            case .run: .run(0)
            case .timer: .timer(0)
            default: item
            }
        }
    }

    /// Mean of value `index` over a phase's repetitions, rounded (µs).
    static func mean(_ phase: Phase, _ index: Int) -> Int {
        Int((Double(phase.sums[index]) / Double(phase.loop)).rounded())
    }

    /// The policy/priority lines of a thread, where known and expressible.
    static func policy(_ program: TaskProgram, notes: inout [String], name: String) -> String {
        switch program.policy {
        case .fifo?, .roundRobin?:
            let priority = min(99, max(1, program.realtimePriority ?? 10))
            return "      \"policy\": \"\(program.policy == .fifo ? "SCHED_FIFO" : "SCHED_RR")\",\n      \"priority\": \(priority),\n"
        case .other?, .batch?, .idle?:
            if program.policy != .other { notes.append("\(name): \(program.policy!.rawValue) written as SCHED_OTHER") }
            if let nice = program.nice, nice != 0 { return "      \"policy\": \"SCHED_OTHER\",\n      \"priority\": \(nice),\n" }
            return "      \"policy\": \"SCHED_OTHER\",\n"
        case .deadline?, .ext?:
            notes.append("\(name): \(program.policy!.rawValue) has no recorded parameters: written as SCHED_OTHER")
            return "      \"policy\": \"SCHED_OTHER\",\n"
        case nil:
            return ""
        }
    }

    static func quoted(_ text: String) -> String { JSONText.quoted(text) }
}
