import Foundation
import Stats
import TraceFormat

/// A whole `replayctl replay`: the plan built from a trace file, the runs, the results file.
public final class ReplaySession {
    public let tracePath: String
    public let reader: TraceReader
    public let selection: Set<TaskIndex>
    public let plan: ReplayPlan
    public let engine: ReplayEngine
    public private(set) var results: ReplayResults
    /// CPU time the trace's tasks that are not replayed used (kernel threads included), the
    /// recording's CPU capacity (duration × CPUs), and how many such tasks ran: load the
    /// recorded tasks competed with and the replayed ones do not.
    public let unreplayedLoad: UnreplayedLoad
    /// Replay tids of the last run, by original tid.
    public private(set) var lastMap = ReplayMap(threads: [:], startMonotonicNanoseconds: nil, endMonotonicNanoseconds: nil)

    /// Reads the trace and builds the programs.
    /// - Throws: `TraceError` for a bad trace, `ReplayError` when nothing is selected or
    ///   the plan needs too many threads.
    public init(tracePath: String, selection: TaskSelection, options: ReplayOptions, tool: String) throws {
        self.tracePath = tracePath
        reader = try TraceReader(path: tracePath)
        self.selection = selection.resolve(reader.tasks)
        guard !self.selection.isEmpty else {
            throw ReplayError.nothingToReplay("no task of \(tracePath) matches the selection (see `replayctl info \(tracePath) --limit 0`)")
        }
        var summary = TraceSummary.Builder(taskCount: reader.tasks.count)
        plan = try PlanBuilder.build(reader: reader, selection: self.selection, inferLocks: options.inferLocks) { summary.feed($0) }
        // Damaged timestamps make a plan that would sleep or burn for ages: refuse it.
        let longest: UInt64 = 30 * 86_400 * 1_000_000_000
        if plan.recordedMakespan > longest || plan.programs.contains(where: { $0.recordedCPUNanoseconds > longest }) {
            throw ReplayError.nothingToReplay("\(tracePath): the selected tasks span \(plan.recordedMakespan / 86_400_000_000_000) days of trace time, more than the 30 a replay allows — its timestamps look damaged (`replayctl info \(tracePath)` checks the trace); select fewer tasks (--pid, --comm, --tree) to leave the damaged ones out")
        }
        engine = try ReplayEngine(plan: plan, options: options)
        unreplayedLoad = UnreplayedLoad(summary: summary.finish(), selection: self.selection, cpus: reader.metadata.cpuCount)
        let m = reader.metadata
        let identity = TraceIdentity(
            path: tracePath, sha256: try SHA256.hexDigest(ofFile: tracePath), recordedKernel: m.kernelRelease,
            recordedHost: m.hostname, durationNanoseconds: m.durationNanoseconds, replayedTasks: plan.programs.count,
            events: reader.eventCount)
        var optionList: [String: String] = [
            "cpuScale": String(options.cpuScale), "affinity": String(options.applyAffinity), "policy": String(options.applyPolicy),
            "timerSlackNanoseconds": String(options.timerSlackNanoseconds), "lockInference": String(options.inferLocks),
        ]
        if !selection.isDefault {
            optionList["selection"] = "pids=\(selection.pids) comms=\(selection.comms) trees=\(selection.trees) all=\(selection.all)"
        }
        // "on"/"off" (--no-pm-qos) when the replayed tasks held CPU latency limits; "none" when
        // they held none; "not recorded" for a trace without CPU latency requests.
        optionList["cpuLatencyQoS"] = m.cpuLatencyRequests == nil ? "not recorded"
            : plan.cpuLatency.isEmpty ? "none" : options.applyCPULatency ? "on" : "off"
        results = ReplayResults(tool: tool, trace: identity, machine: .current(), options: optionList)
        results.threadExitCostNanoseconds = engine.threadExitCost
        if let line = cpuLatencyDescription { results.addNote(line) }
        for line in plan.lockGroupNotes { results.addNote(line) }
        if let line = unreplayedLoad.description(all: selection.all) { results.addNote(line) }
    }

    /// The CPU latency limits this replay holds (or, with `--no-pm-qos`, does not), in one
    /// line; nil when the replayed tasks held none.
    public var cpuLatencyDescription: String? {
        plan.cpuLatencyDescription(tasks: reader.tasks, applied: engine.options.applyCPULatency)
    }

    /// Runs once and appends the run to `results`.
    public func run(index: Int, warmup: Bool) throws -> RunOutcome {
        let outcome = try engine.run(index: index, warmup: warmup)
        results.runs.append(outcome.run)
        if let problem = outcome.cpuLatencyProblem { results.addNote("CPU latency QoS not held: \(problem)") }
        var map: [String: Int32] = [:]
        for (i, p) in plan.programs.enumerated() { map["\(p.tid)"] = outcome.replayTids[i] }
        lastMap = ReplayMap(threads: map, startMonotonicNanoseconds: outcome.startMonotonicNanoseconds,
                            endMonotonicNanoseconds: outcome.endMonotonicNanoseconds)
        var spawned: [String: UInt64] = [:]
        for (i, p) in plan.programs.enumerated() where i < outcome.spawnedMonotonicNanoseconds.count && outcome.spawnedMonotonicNanoseconds[i] > 0 {
            spawned["\(p.tid)"] = outcome.spawnedMonotonicNanoseconds[i]
        }
        lastMap.spawnedMonotonicNanoseconds = spawned.isEmpty ? nil : spawned
        return outcome
    }

    /// `{"threads": {"<original tid>": <replay tid>, …}, "startMonotonicNanoseconds": …,
    /// "endMonotonicNanoseconds": …, "spawnedMonotonicNanoseconds": {"<original tid>": …}}`
    /// for the last run.
    public func mapJSON() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(lastMap)
    }

    /// The results as JSON (schema `replayctl-results/1`).
    public func resultsJSON() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(results)
    }
}

/// What the tasks of a trace that a replay leaves out did on its CPUs.
public struct UnreplayedLoad: Equatable, Sendable {
    public var cpuNanoseconds: UInt64
    public var tasks: Int
    /// Trace duration × CPUs.
    public var capacityNanoseconds: UInt64

    public init(summary: TraceSummary, selection: Set<TaskIndex>, cpus: Int) {
        var cpu: UInt64 = 0
        var tasks = 0
        for t in summary.tasks where !t.task.isIdle && !selection.contains(t.task) && t.cpuNanoseconds > 0 {
            cpu = cpu.adding(saturating: t.cpuNanoseconds)
            tasks += 1
        }
        cpuNanoseconds = cpu
        self.tasks = tasks
        let duration = summary.lastTimestamp > summary.firstTimestamp ? summary.lastTimestamp - summary.firstTimestamp : 0
        let (capacity, overflow) = duration.multipliedReportingOverflow(by: UInt64(max(1, cpus)))
        capacityNanoseconds = overflow ? .max : capacity
    }

    /// Share of the recording's CPU capacity.
    public var share: Double { capacityNanoseconds > 0 ? Double(cpuNanoseconds) / Double(capacityNanoseconds) : 0 }

    /// One line for the replay's report when the left-out tasks used at least 5 % of the
    /// machine (the replayed tasks ran with less competition than they had), else nil.
    public func description(all: Bool) -> String? {
        guard share >= 0.05 else { return nil }
        let seconds = String(format: "%.3f", Double(cpuNanoseconds) / 1e9)
        return "\(tasks) \(tasks == 1 ? "task" : "tasks") not replayed used \(seconds) s of CPU during the recording (\(Int((share * 100).rounded())) % of the machine): "
            + "the replayed tasks competed with that load there, not here"
            + (all ? "" : " (--all also replays the other user tasks)")
    }
}
