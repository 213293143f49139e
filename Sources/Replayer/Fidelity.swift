import Foundation
import Stats
import TraceFormat

/// How faithfully a replay reproduced the original, both seen through recordings: the
/// original trace and a recording of the replay (`replay --record-self`), matched task by
/// task with the map the replay wrote.
public struct FidelityReport: Codable, Sendable {
    public struct Task: Codable, Sendable {
        public var originalTid: Int32
        public var replayTid: Int32
        public var comm: String
        public var originalCPUNanoseconds: UInt64
        public var replayCPUNanoseconds: UInt64
        /// (replay − original) / original.
        public var cpuError: Double
        public var originalSleeps: Int
        public var replaySleeps: Int
        public var sleepError: Double
        public var originalWakeups: Int
        public var replayWakeups: Int
        /// Mean time from its wakeup to running (kernel-side wakeup latency), in each
        /// recording; nil without samples or in older reports.
        public var originalWakeupLatencyMean: UInt64? = nil
        public var replayWakeupLatencyMean: UInt64? = nil
        /// Of its task-to-task wakeups by matched tasks, the share after which it ran on its
        /// waker's CPU, in each recording (the report's `…SameCPUWakeupShare`, per wakee): a
        /// task the kernel placed otherwise in the replay waits otherwise for a CPU. nil
        /// without such wakeups or in older reports.
        public var originalSameCPUWakeupShare: Double? = nil
        public var replaySameCPUWakeupShare: Double? = nil
    }

    /// One waker → wakee pair: its task-context wakeups in each recording (replay tids
    /// translated back to the original ones).
    public struct Edge: Codable, Sendable {
        public var wakerTid: Int32
        public var wakeeTid: Int32
        public var wakerComm: String
        public var wakeeComm: String
        public var originalWakeups: Int
        public var replayWakeups: Int
    }

    public var original: String
    public var replay: String
    /// Σ |CPU replay − CPU original| / Σ CPU original over matched tasks. A task's CPU time is
    /// what the kernel charged it (`sched_stat_runtime`) when both recordings have those
    /// reports for it, else the sum of its run intervals (`cpuBasis`).
    public var cpuWeightedAbsoluteError: Double
    /// `charged` (every matched task compared on kernel-charged CPU time), `intervals` (none
    /// had runtime reports on both sides) or `mixed`.
    public var cpuBasis: String?
    /// The same error over run intervals only (switch-in to switch-out, switch-ins the
    /// kernel did not log inferred): what the trace shows of when each task was on a CPU.
    public var cpuIntervalWeightedAbsoluteError: Double?
    /// Σ |sleeps replay − sleeps original| / Σ sleeps original.
    public var sleepCountError: Double
    /// Weighted Jaccard similarity of the waker → wakee count vectors (1 = identical).
    public var edgeSimilarity: Double
    /// Task-context wakeups among the matched tasks in each recording: what `edgeSimilarity`
    /// is computed over (a handful make it a coin toss: cyclictest's threads have one).
    public var originalEdgeWakeups: Int?
    public var replayEdgeWakeups: Int?
    /// Of the task-to-task wakeups among the matched tasks whose wakee was then seen running,
    /// the share where it ran on the CPU its waker woke it from (wake-affine placement, a
    /// same-CPU hand-off), in each recording. A placement the replay's kernel chose
    /// differently changes what every wakeup costs (a cross-CPU wakeup needs an IPI, and a
    /// waker yielding for its hand-off then spins on its own CPU). Absent in older reports.
    public var originalSameCPUWakeupShare: Double?
    public var replaySameCPUWakeupShare: Double?
    /// Replay makespan / original makespan (first to last event of the matched tasks).
    public var makespanRatio: Double
    public var originalMakespanNanoseconds: UInt64
    public var replayMakespanNanoseconds: UInt64
    /// Kolmogorov–Smirnov distance between the wakeup latency distributions (0 = identical).
    public var wakeupLatencyKS: Double
    public var originalWakeupLatencyP50: UInt64
    public var originalWakeupLatencyP99: UInt64
    public var replayWakeupLatencyP50: UInt64
    public var replayWakeupLatencyP99: UInt64
    public var matchedTasks: Int
    /// Original tids in the map that the replay recording does not contain.
    public var missingTasks: [Int32]
    public var tasks: [Task]
    /// Every edge of either recording, the largest differences first (what lowers
    /// `edgeSimilarity`).
    public var edges: [Edge]?
    /// Task-context wakeups of matched tasks in the replay recording whose waker is not a
    /// replay thread (the replayer's coordinating thread delivering handed-off wakes, or
    /// another process): they count in no edge.
    public var replayWakeupsFromOutside: Int?
    /// `fidelity --check`: each metric against its target.
    public var checks: [FidelityTargets.Check]?
}

/// The replay-side map: original tid → replay tid, and the replay window on CLOCK_MONOTONIC.
public struct ReplayMap: Codable, Sendable {
    public var threads: [String: Int32]
    /// Release of the threads and end of the last one, CLOCK_MONOTONIC nanoseconds (the
    /// `mono` trace clock): only this window of a self-recording is the replay itself.
    public var startMonotonicNanoseconds: UInt64?
    public var endMonotonicNanoseconds: UInt64?
    /// Original tid → when its replay thread was spawned by its parent (CLOCK_MONOTONIC).
    /// Anything of its thread before that (a replay that pre-created its threads blocked
    /// them until their spawn) is not part of the task's life in the trace.
    public var spawnedMonotonicNanoseconds: [String: UInt64]?

    public init(threads: [String: Int32], startMonotonicNanoseconds: UInt64?, endMonotonicNanoseconds: UInt64?,
                spawnedMonotonicNanoseconds: [String: UInt64]? = nil) {
        self.threads = threads
        self.startMonotonicNanoseconds = startMonotonicNanoseconds
        self.endMonotonicNanoseconds = endMonotonicNanoseconds
        self.spawnedMonotonicNanoseconds = spawnedMonotonicNanoseconds
    }
}

/// Per-task figures of one trace restricted to a time window, for fidelity.
struct TraceFigures {
    var summary: TraceSummary
    var tidOf: [Int32]
    var comm: [String]
    /// (waker tid, wakee tid) → task-context wakeups.
    var edges: [Int64: Int]
    /// Task-context wakeups of a selected task by a task outside the selection.
    var wakeupsFromOutside = 0
    /// Wakeup latency samples (waking → running) per wakee tid.
    var latencies: [Int32: [UInt64]]
    /// Task-to-task wakeups among the selected tasks whose wakee was seen running next, and
    /// those where it ran on its waker's CPU.
    var placedWakeups: Int { placementByTid.values.reduce(0) { $0 + $1.placed } }
    var sameCPUWakeups: Int { placementByTid.values.reduce(0) { $0 + $1.sameCPU } }
    /// The same per wakee tid: (placed, on its waker's CPU).
    var placementByTid: [Int32: (placed: Int, sameCPU: Int)] = [:]
    var firstActivity: [Int32: UInt64]
    var lastActivity: [Int32: UInt64]

    /// `bornAt`: tid → time before which the task did not exist yet in the replay's sense
    /// (its pre-spawn block is a preemption, the wake that spawns it is dropped).
    init(reader: TraceReader, window: ClosedRange<UInt64>?, tids: Set<Int32>, bornAt: [Int32: UInt64] = [:]) throws {
        var builder = TraceSummary.Builder(taskCount: reader.tasks.count)
        tidOf = reader.tasks.map(\.tid)
        comm = reader.tasks.map(\.comm)
        var edges: [Int64: Int] = [:]
        var latencies: [Int32: [UInt64]] = [:]
        var pendingWake: [Int: UInt64] = [:]
        // Task-to-task wakes not followed by a run of their wakee yet: the waker's CPU.
        var pendingWakerCPU: [Int: CPU] = [:]
        var placementByTid: [Int32: (placed: Int, sameCPU: Int)] = [:]
        let tidOf = self.tidOf
        func placedOn(_ task: Int, _ cpu: CPU) {
            guard let w = pendingWakerCPU.removeValue(forKey: task) else { return }
            placementByTid[tidOf[task], default: (0, 0)].placed += 1
            if w == cpu { placementByTid[tidOf[task], default: (0, 0)].sameCPU += 1 }
        }
        var outside = 0
        var first: [Int32: UInt64] = [:], last: [Int32: UInt64] = [:]
        var tracker = RunTracker(taskCount: reader.tasks.count)
        func touch(_ t: TaskIndex, _ time: UInt64) {
            let tid = tidOf[t.intValue]
            guard tids.contains(tid) else { return }
            if first[tid] == nil { first[tid] = time }
            last[tid] = time
        }
        try reader.forEachEvent(in: window) { original in
            var event = original
            if !bornAt.isEmpty {
                switch event.kind {
                case let .switchTask(prev, prevState, next) where prevState.isBlocked:
                    if let born = bornAt[tidOf[prev.intValue]], event.timestamp < born {
                        event.kind = .switchTask(prev: prev, prevState: .running, next: next)
                    }
                case let .waking(_, target, _, _):
                    if let born = bornAt[tidOf[target.intValue]], event.timestamp < born { return }
                default:
                    break
                }
            }
            builder.feed(event)
            switch event.kind {
            case let .waking(waker, target, _, context):
                touch(target, event.timestamp)
                if tids.contains(tidOf[target.intValue]) { pendingWake[target.intValue] = event.timestamp }
                if context == .task, let waker, !waker.isIdle, tids.contains(tidOf[target.intValue]) {
                    if tids.contains(tidOf[waker.intValue]) {
                        edges[edgeKey(tidOf[waker.intValue], tidOf[target.intValue]), default: 0] += 1
                        pendingWakerCPU[target.intValue] = event.cpu
                    } else {
                        outside += 1
                    }
                }
            case let .switchTask(prev, _, next):
                if !prev.isIdle { touch(prev, event.timestamp) }
                if !next.isIdle {
                    touch(next, event.timestamp)
                    placedOn(next.intValue, event.cpu)
                    if let w = pendingWake.removeValue(forKey: next.intValue) {
                        latencies[tidOf[next.intValue], default: []].append(event.timestamp - w)
                    }
                }
            case let .exit(task):
                touch(task, event.timestamp)
            default:
                break
            }
            // Runs whose switch-in was not logged: the inferred start ends the wakeup latency.
            if let run = tracker.feed(event), run.startInferred {
                placedOn(run.task.intValue, run.cpu)
                if let w = pendingWake[run.task.intValue], run.start >= w {
                    pendingWake[run.task.intValue] = nil
                    latencies[tidOf[run.task.intValue], default: []].append(run.start - w)
                }
            }
        }
        summary = builder.finish()
        self.edges = edges
        self.placementByTid = placementByTid
        wakeupsFromOutside = outside
        self.latencies = latencies
        firstActivity = first
        lastActivity = last
    }

    func makespan(_ tids: Set<Int32>) -> UInt64 {
        let firsts = tids.compactMap { firstActivity[$0] }, lasts = tids.compactMap { lastActivity[$0] }
        guard let f = firsts.min(), let l = lasts.max(), l > f else { return 0 }
        return l - f
    }
}

extension FidelityReport {
    /// Compares `originalPath` with `replayPath` through `map`.
    /// - Throws: `TraceError` for bad traces.
    public static func compute(originalPath: String, replayPath: String, map: ReplayMap) throws -> FidelityReport {
        let original = try TraceReader(path: originalPath)
        let replay = try TraceReader(path: replayPath)
        var pairs: [(Int32, Int32)] = map.threads.compactMap { k, v in Int32(k).map { ($0, v) } }.sorted { $0.0 < $1.0 }
        let replayTids = Set(replay.tasks.map(\.tid))
        let missing = pairs.filter { !replayTids.contains($0.1) }.map(\.0)
        pairs.removeAll { !replayTids.contains($0.1) }
        let originalTids = Set(pairs.map(\.0)), replaySet = Set(pairs.map(\.1))
        var window: ClosedRange<UInt64>?
        if let s = map.startMonotonicNanoseconds, let e = map.endMonotonicNanoseconds, e >= s { window = s...e }
        let o = try TraceFigures(reader: original, window: nil, tids: originalTids)
        var bornAt: [Int32: UInt64] = [:]
        for (k, t) in map.spawnedMonotonicNanoseconds ?? [:] {
            if let replayTid = map.threads[k] { bornAt[replayTid] = t }
        }
        let r = try TraceFigures(reader: replay, window: window, tids: replaySet, bornAt: bornAt)

        // Sum figures over every task index with that tid (a tid can appear twice after reuse).
        func byTid(_ f: TraceFigures) -> [Int32: TaskSummary] {
            var out: [Int32: TaskSummary] = [:]
            for s in f.summary.tasks where s.task.intValue > 0 && s.task.intValue < f.tidOf.count {
                let tid = f.tidOf[s.task.intValue]
                var acc = out[tid] ?? TaskSummary(task: s.task)
                acc.cpuNanoseconds += s.cpuNanoseconds
                acc.reportedRuntimeNanoseconds += s.reportedRuntimeNanoseconds
                acc.sleeps += s.sleeps
                acc.wakeups += s.wakeups
                out[tid] = acc
            }
            return out
        }
        let oTasks = byTid(o), rTasks = byTid(r)
        func meanLatency(_ f: TraceFigures, _ tid: Int32) -> UInt64? {
            guard let l = f.latencies[tid], !l.isEmpty else { return nil }
            return UInt64(l.reduce(0.0) { $0 + Double($1) } / Double(l.count))
        }
        func sameCPUShare(_ f: TraceFigures, _ tid: Int32) -> Double? {
            guard let p = f.placementByTid[tid], p.placed > 0 else { return nil }
            return Double(p.sameCPU) / Double(p.placed)
        }
        let commOf = Dictionary(o.tidOf.enumerated().map { ($0.element, o.comm[$0.offset]) }, uniquingKeysWith: { a, _ in a })
        var tasks: [Task] = []
        var cpuDiff = 0.0, cpuTotal = 0.0, sleepDiff = 0.0, sleepTotal = 0.0
        var intervalDiff = 0.0, intervalTotal = 0.0, charged = 0
        for (ot, rt) in pairs {
            let a = oTasks[ot] ?? TaskSummary(task: .idle), b = rTasks[rt] ?? TaskSummary(task: .idle)
            let useCharged = a.reportedRuntimeNanoseconds > 0 && b.reportedRuntimeNanoseconds > 0
            if useCharged { charged += 1 }
            let cpuA = useCharged ? a.reportedRuntimeNanoseconds : a.cpuNanoseconds
            let cpuB = useCharged ? b.reportedRuntimeNanoseconds : b.cpuNanoseconds
            cpuDiff += abs(Double(cpuB) - Double(cpuA))
            cpuTotal += Double(cpuA)
            intervalDiff += abs(Double(b.cpuNanoseconds) - Double(a.cpuNanoseconds))
            intervalTotal += Double(a.cpuNanoseconds)
            sleepDiff += abs(Double(b.sleeps) - Double(a.sleeps))
            sleepTotal += Double(a.sleeps)
            tasks.append(Task(
                originalTid: ot, replayTid: rt, comm: commOf[ot] ?? "?",
                originalCPUNanoseconds: cpuA, replayCPUNanoseconds: cpuB,
                cpuError: cpuA > 0 ? (Double(cpuB) - Double(cpuA)) / Double(cpuA) : 0,
                originalSleeps: a.sleeps, replaySleeps: b.sleeps,
                sleepError: a.sleeps > 0 ? (Double(b.sleeps) - Double(a.sleeps)) / Double(a.sleeps) : 0,
                originalWakeups: a.wakeups, replayWakeups: b.wakeups,
                originalWakeupLatencyMean: meanLatency(o, ot), replayWakeupLatencyMean: meanLatency(r, rt),
                originalSameCPUWakeupShare: sameCPUShare(o, ot), replaySameCPUWakeupShare: sameCPUShare(r, rt)))
        }
        // Edges in replay tids, translated back to original tids.
        let back = Dictionary(pairs.map { ($0.1, $0.0) }, uniquingKeysWith: { a, _ in a })
        var rEdges: [Int64: Int] = [:]
        for (key, n) in r.edges {
            let (w, x) = edgeTids(key)
            if let ow = back[w], let ox = back[x] { rEdges[edgeKey(ow, ox), default: 0] += n }
        }
        var minSum = 0.0, maxSum = 0.0
        var edgeList: [Edge] = []
        var originalEdgeWakeups = 0, replayEdgeWakeups = 0
        for key in Set(o.edges.keys).union(rEdges.keys) {
            let a = o.edges[key] ?? 0, b = rEdges[key] ?? 0
            originalEdgeWakeups += a
            replayEdgeWakeups += b
            minSum += Double(min(a, b))
            maxSum += Double(max(a, b))
            let (w, x) = edgeTids(key)
            edgeList.append(Edge(wakerTid: w, wakeeTid: x, wakerComm: commOf[w] ?? "?", wakeeComm: commOf[x] ?? "?",
                                 originalWakeups: a, replayWakeups: b))
        }
        edgeList.sort {
            let d0 = abs($0.replayWakeups - $0.originalWakeups), d1 = abs($1.replayWakeups - $1.originalWakeups)
            return d0 != d1 ? d0 > d1 : ($0.wakerTid, $0.wakeeTid) < ($1.wakerTid, $1.wakeeTid)
        }
        let oLat = o.latencies.filter { originalTids.contains($0.key) }.values.flatMap { $0 }.sorted()
        let rLat = r.latencies.filter { replaySet.contains($0.key) }.values.flatMap { $0 }.sorted()
        let oMake = o.makespan(originalTids), rMake = r.makespan(replaySet)
        func pct(_ s: [UInt64], _ p: Double) -> UInt64 { s.isEmpty ? 0 : s[min(s.count - 1, Int(Double(s.count) * p / 100))] }
        return FidelityReport(
            original: originalPath, replay: replayPath,
            cpuWeightedAbsoluteError: cpuTotal > 0 ? cpuDiff / cpuTotal : 0,
            cpuBasis: charged == pairs.count ? "charged" : charged == 0 ? "intervals" : "mixed",
            cpuIntervalWeightedAbsoluteError: intervalTotal > 0 ? intervalDiff / intervalTotal : 0,
            sleepCountError: sleepTotal > 0 ? sleepDiff / sleepTotal : 0,
            edgeSimilarity: maxSum > 0 ? minSum / maxSum : 1,
            originalEdgeWakeups: originalEdgeWakeups, replayEdgeWakeups: replayEdgeWakeups,
            originalSameCPUWakeupShare: o.placedWakeups > 0 ? Double(o.sameCPUWakeups) / Double(o.placedWakeups) : nil,
            replaySameCPUWakeupShare: r.placedWakeups > 0 ? Double(r.sameCPUWakeups) / Double(r.placedWakeups) : nil,
            makespanRatio: oMake > 0 ? Double(rMake) / Double(oMake) : 0,
            originalMakespanNanoseconds: oMake, replayMakespanNanoseconds: rMake,
            wakeupLatencyKS: kolmogorovSmirnov(oLat, rLat),
            originalWakeupLatencyP50: pct(oLat, 50), originalWakeupLatencyP99: pct(oLat, 99),
            replayWakeupLatencyP50: pct(rLat, 50), replayWakeupLatencyP99: pct(rLat, 99),
            matchedTasks: pairs.count, missingTasks: missing,
            tasks: tasks.sorted { $0.originalCPUNanoseconds > $1.originalCPUNanoseconds },
            edges: edgeList, replayWakeupsFromOutside: r.wakeupsFromOutside)
    }
}

/// The key of a waker → wakee pair of tids in `TraceFigures.edges`, and back.
func edgeKey(_ waker: Int32, _ wakee: Int32) -> Int64 { Int64(waker) << 32 | Int64(UInt32(bitPattern: wakee)) }
func edgeTids(_ key: Int64) -> (waker: Int32, wakee: Int32) {
    (Int32(truncatingIfNeeded: key >> 32), Int32(truncatingIfNeeded: key & 0xFFFF_FFFF))
}

/// Largest gap between the empirical CDFs of two sorted samples (0 when either is empty).
public func kolmogorovSmirnov(_ a: [UInt64], _ b: [UInt64]) -> Double {
    guard !a.isEmpty, !b.isEmpty else { return 0 }
    var i = 0, j = 0, d = 0.0
    while i < a.count && j < b.count {
        let v = min(a[i], b[j])
        while i < a.count && a[i] == v { i += 1 }
        while j < b.count && b[j] == v { j += 1 }
        d = max(d, abs(Double(i) / Double(a.count) - Double(j) / Double(b.count)))
    }
    return d
}

/// Thresholds a replay's fidelity is held to (`fidelity --check`); the defaults are the
/// targets the replayer is built to: CPU time within 3 %, sleep count within 2 %, edge
/// similarity at least 0.98, makespan within ±5 %.
public struct FidelityTargets: Codable, Sendable, Equatable {
    public var maxCPUError = 0.03
    public var maxSleepError = 0.02
    public var minEdgeSimilarity = 0.98
    public var maxMakespanError = 0.05
    /// Below this many task-to-task wakeups in the original the edge similarity is not judged.
    public var minEdgeWakeups = 20

    public init() {}

    /// One metric against its threshold; `passed` is nil when it cannot be judged.
    public struct Check: Codable, Sendable, Equatable {
        public var metric: String
        public var value: Double
        public var target: String
        public var passed: Bool?
    }

    public func check(_ r: FidelityReport) -> [Check] {
        let edgeWakeups = r.originalEdgeWakeups ?? 0
        return [
            Check(metric: "cpuWeightedAbsoluteError", value: r.cpuWeightedAbsoluteError,
                  target: "≤ \(Self.percent(maxCPUError))", passed: r.matchedTasks > 0 ? r.cpuWeightedAbsoluteError <= maxCPUError : nil),
            Check(metric: "sleepCountError", value: r.sleepCountError,
                  target: "≤ \(Self.percent(maxSleepError))", passed: r.matchedTasks > 0 ? r.sleepCountError <= maxSleepError : nil),
            Check(metric: "edgeSimilarity", value: r.edgeSimilarity,
                  target: "≥ \(minEdgeSimilarity) (over ≥ \(minEdgeWakeups) wakeups)",
                  passed: edgeWakeups >= minEdgeWakeups ? r.edgeSimilarity >= minEdgeSimilarity : nil),
            Check(metric: "makespanRatio", value: r.makespanRatio,
                  target: "1 ± \(Self.percent(maxMakespanError))",
                  passed: r.originalMakespanNanoseconds > 0 ? abs(r.makespanRatio - 1) <= maxMakespanError : nil),
        ]
    }

    static func percent(_ x: Double) -> String { String(format: "%g %%", x * 100) }
}
