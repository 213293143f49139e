import ArgumentParser
import Foundation
import Replayer
import TraceFormat

struct Fidelity: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check how faithfully a replay reproduced the original trace.",
        discussion: """
            Compares the original trace with a recording of its replay \
            (`replayctl replay ORIGINAL.rpl --record-self REPLAY.rpl --map map.json`), task by \
            task through the map: CPU-time error, sleep-count error, waker → wakee edge \
            similarity, makespan ratio, and the Kolmogorov–Smirnov distance between the \
            wakeup-latency distributions.
            """)

    @Argument(help: "The original trace.") var original: String
    @Argument(help: "A recording of the replay.") var replay: String
    @Option(help: "The map written by `replay --map`.") var map: String
    @Flag(help: "Print JSON.") var json = false
    @Option(help: "Show at most this many tasks (0: all).") var limit = 20
    @Flag(help: ArgumentHelp("Judge the replay against fidelity targets and exit with status 1 if it misses one.",
                             discussion: "Defaults: CPU error ≤ 3 %, sleep count error ≤ 2 %, edge similarity ≥ 0.98 (when the original has ≥ 20 task-to-task wakeups), makespan within ±5 %."))
    var check = false
    @Option(help: "With --check: the largest CPU-time error allowed, in percent.") var maxCpuError: Double = 3
    @Option(help: "With --check: the largest sleep-count error allowed, in percent.") var maxSleepError: Double = 2
    @Option(help: "With --check: the smallest edge similarity allowed (0–1).") var minEdges: Double = 0.98
    @Option(help: "With --check: the largest makespan deviation allowed, in percent.") var maxMakespanError: Double = 5

    func validate() throws {
        for (name, value) in [("--max-cpu-error", maxCpuError), ("--max-sleep-error", maxSleepError), ("--max-makespan-error", maxMakespanError)]
            where !(value >= 0 && value.isFinite) {
            throw ValidationError("\(name) must be a percentage ≥ 0 (got \(value))")
        }
        guard minEdges >= 0 && minEdges <= 1 else { throw ValidationError("--min-edges must be between 0 and 1 (got \(minEdges))") }
    }

    var targets: FidelityTargets {
        var t = FidelityTargets()
        t.maxCPUError = maxCpuError / 100
        t.maxSleepError = maxSleepError / 100
        t.minEdgeSimilarity = minEdges
        t.maxMakespanError = maxMakespanError / 100
        return t
    }

    func run() throws {
        try reportingErrors {
            let mapData: Data
            do { mapData = try Data(contentsOf: URL(fileURLWithPath: map)) } catch {
                throw CommandError(message: "\(map): cannot read the map: \(error.localizedDescription)", code: ExitStatus.noInput)
            }
            let replayMap: ReplayMap
            do { replayMap = try JSONDecoder().decode(ReplayMap.self, from: mapData) } catch {
                throw CommandError.data("\(map): not a replay map ({\"threads\": {\"<original tid>\": <replay tid>}}): \(error)")
            }
            var report = try FidelityReport.compute(originalPath: original, replayPath: replay, map: replayMap)
            let checks = check ? targets.check(report) : []
            let missed = checks.filter { $0.passed == false }
            if json {
                if check { report.checks = checks }
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                print(String(decoding: try encoder.encode(report), as: UTF8.self))
                if !missed.isEmpty { throw ExitCode(1) }
                return
            }
            print("fidelity of \(replay) against \(original): \(report.matchedTasks) tasks matched"
                  + (report.missingTasks.isEmpty ? "" : ", \(report.missingTasks.count) missing from the replay recording"))
            let basis = switch report.cpuBasis {
            case "charged": "charged by the kernel (sched_stat_runtime)"
            case "mixed": "charged by the kernel where both traces report it, else run intervals"
            default: "run intervals"
            }
            print("  CPU time, weighted absolute error:  \(percent(report.cpuWeightedAbsoluteError))  (\(basis))")
            if report.cpuBasis != "intervals", let e = report.cpuIntervalWeightedAbsoluteError {
                print("    over run intervals only:          \(percent(e))")
            }
            print("  sleep count error:                  \(percent(report.sleepCountError))")
            print("  waker → wakee edge similarity:      \(String(format: "%.4f", report.edgeSimilarity))"
                  + "  (over \(report.originalEdgeWakeups ?? 0) task-to-task wakeups, \(report.replayEdgeWakeups ?? 0) in the replay)")
            if let outside = report.replayWakeupsFromOutside, outside > 0 {
                print("    replay wakeups from outside the replay threads: \(outside) (wakes handed to the coordinating thread; in no edge)")
            }
            if let a = report.originalSameCPUWakeupShare, let b = report.replaySameCPUWakeupShare {
                print("    wakee ran on its waker's CPU:     original \(String(format: "%.1f", a * 100)) %, replay \(String(format: "%.1f", b * 100)) %")
            }
            print("  makespan ratio (replay/original):   \(String(format: "%.3f", report.makespanRatio))  "
                  + "(\(formatSeconds(report.replayMakespanNanoseconds)) / \(formatSeconds(report.originalMakespanNanoseconds)))")
            print("  wakeup latency p50 / p99:           original \(micro(report.originalWakeupLatencyP50)) / \(micro(report.originalWakeupLatencyP99)), "
                  + "replay \(micro(report.replayWakeupLatencyP50)) / \(micro(report.replayWakeupLatencyP99)); KS distance \(String(format: "%.3f", report.wakeupLatencyKS))")
            print("")
            // Per task also its mean wait from wakeup to running and how often it ran on its
            // waker's CPU: where the kernel placed a task otherwise, it waited otherwise.
            print(pad("TID", 8) + pad("REPLAY", 8) + "  " + pad("COMM", 16, left: true) + pad("CPU(ms)", 10) + pad("REPLAY", 10)
                  + pad("ERR", 8) + pad("SLEEPS", 8) + pad("REPLAY", 8) + pad("LAT(µs)", 9) + pad("REPLAY", 9)
                  + pad("SAMECPU", 9) + pad("REPLAY", 8))
            func mean(_ v: UInt64?) -> String { v.map { String(format: "%.1f", Double($0) / 1e3) } ?? "-" }
            func share(_ v: Double?) -> String { v.map { String(format: "%.0f%%", $0 * 100) } ?? "-" }
            for t in limit > 0 ? Array(report.tasks.prefix(limit)) : report.tasks {
                print(pad("\(t.originalTid)", 8) + pad("\(t.replayTid)", 8) + "  " + pad(t.comm, 16, left: true)
                      + pad(String(format: "%.3f", Double(t.originalCPUNanoseconds) / 1e6), 10)
                      + pad(String(format: "%.3f", Double(t.replayCPUNanoseconds) / 1e6), 10)
                      + pad(String(format: "%+.1f%%", t.cpuError * 100), 8) + pad("\(t.originalSleeps)", 8) + pad("\(t.replaySleeps)", 8)
                      + pad(mean(t.originalWakeupLatencyMean), 9) + pad(mean(t.replayWakeupLatencyMean), 9)
                      + pad(share(t.originalSameCPUWakeupShare), 9) + pad(share(t.replaySameCPUWakeupShare), 8))
            }
            let differing = (report.edges ?? []).filter { $0.originalWakeups != $0.replayWakeups }
            if !differing.isEmpty {
                print("")
                print("edges that differ (\(differing.count) of \(report.edges?.count ?? 0), largest first):")
                print(pad("WAKER", 8) + "  " + pad("COMM", 16, left: true) + pad("WAKEE", 8) + "  " + pad("COMM", 16, left: true)
                      + pad("WAKEUPS", 8) + pad("REPLAY", 8))
                for e in limit > 0 ? Array(differing.prefix(limit)) : differing {
                    print(pad("\(e.wakerTid)", 8) + "  " + pad(e.wakerComm, 16, left: true) + pad("\(e.wakeeTid)", 8) + "  "
                          + pad(e.wakeeComm, 16, left: true) + pad("\(e.originalWakeups)", 8) + pad("\(e.replayWakeups)", 8))
                }
            }
            if check {
                print("")
                print("targets:")
                for c in checks {
                    let value = c.metric == "edgeSimilarity" ? String(format: "%.4f", c.value)
                        : c.metric == "makespanRatio" ? String(format: "%.3f", c.value) : percent(c.value)
                    let verdict = c.passed.map { $0 ? "met" : "MISSED" } ?? "n/a"
                    print("  " + pad(c.metric, 26, left: true) + pad(value, 10) + "   " + pad(c.target, 32, left: true) + verdict)
                }
                print(missed.isEmpty ? "all targets met" : "\(missed.count) target\(missed.count == 1 ? "" : "s") missed")
            }
            if !missed.isEmpty { throw ExitCode(1) }
        }
    }

    func percent(_ x: Double) -> String { String(format: "%.2f %%", x * 100) }
}
