import ArgumentParser
import Foundation
import Recorder
import Replayer
import Stats
import TraceFormat

struct Replay: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Re-enact a trace with one thread per task and measure the latencies this kernel gives them.",
        discussion: """
            Each recorded task becomes a thread that burns the recorded CPU time (on the thread \
            CPU clock, so preemption does not shorten the work), blocks until the task that woke \
            it in the trace wakes it (futex), sleeps to absolute deadlines where a timer or \
            interrupt woke it, and forks, execs and exits where it did; where its wake came \
            before it got to a recorded sleep, it still blocks there, briefly. The threads of tasks \
            that existed at the start are created first and released together; a forked task's \
            thread is created by its parent at the fork. Measured: wakeup latency (wake issued → wakee \
            running), timer overshoot (deadline → running), CPU-time accuracy and makespan. \
            Where the replayed tasks held a CPU latency QoS limit (/dev/cpu_dma_latency), the \
            replay holds the same limit over the same stretch of each run (--no-pm-qos: not).

            By default the recorded command's process tree is replayed (for a system-wide trace, \
            every user task; kernel threads never by default). When the tasks left out used 5 % \
            or more of the recording machine's CPU, the replay says so: the replayed ones competed \
            with that load in the recording, not here (--all replays every user task).
            """)

    @Argument(help: "The .rpl trace to replay.") var trace: String
    @Option(name: .shortAndLong, help: "Measured runs (fresh threads each); `compare` needs ≥ 5, detects a 10 % p99 change with ≥ 0.9 power at 10.") var runs = 10
    @Option(help: "Warm-up runs, not counted.") var warmup = 1
    @Option(name: .shortAndLong, help: "Write results here (JSON, schema replayctl-results/1).") var output: String?
    @Option(help: "Write {\"threads\": {\"<original tid>\": <replay tid>}} of the last run here.") var map: String?
    @Option(help: "Scale recorded CPU times (0.5 for a machine twice as fast).") var cpuScale = 1.0
    @Flag(help: "Do not apply the recorded CPU affinity.") var noAffinity = false
    @Flag(help: "Do not apply the recorded policy, nice value and priority.") var noPolicy = false
    @Option(help: "A wake reached before its wakee has reached the sleep it ended in the trace: defer (deliver it when the wakee blocks; the waker runs on), hold (the waker blocks until then), free (at once).") var wakeOrder: WakeOrder = .deferred
    @Option(help: "With --wake-order defer: microseconds a waker spins (yielding) for a late wakee before deferring its wake.") var holdSpin = 20.0
    @Option(help: "With --wake-order defer: microseconds a task about to block for a wake from a task it still owes a deferred wake spins (yielding) for that task to reach its wait, so that it wakes it itself; 0: the coordinating thread delivers it.") var wakeeSpin = 1000.0
    @Option(help: "Microseconds a hand-off (a task preempted by the wakee it had just woken) yields the CPU for that wakee's wake before blocking.") var handOffSpin = 50.0
    @Option(help: "Microseconds a wakee that has just committed to block is given to fall asleep before its waker's futex_wake (the waker keeps the wake meanwhile and runs on); 0: wake at once, the wakee may then not sleep.") var wakeSettle = 2.0
    @Flag(help: "End each wait at the k-th wake from the task that woke it in the trace, instead of at the n-th wake from any waker.") var perWakerWaits = false
    @Flag(help: "With pooled waits: give a late wakee's deferred wake only to the wait it ended in the trace, not to whichever wait it is blocked in that still needs a wake.") var deferredWakesToRecordedWaits = false
    @Flag(help: "Replay the wakes of a process whose threads ran one at a time (a lock they share, like CPython's GIL) where the trace has them, instead of at the waker's block where the woken thread waited for that block.") var noLockInference = false
    @Flag(help: "Do not hold the CPU latency QoS limits the replayed tasks held in the trace (/dev/cpu_dma_latency; cyclictest holds 0 µs, which keeps the CPUs out of deep idle states).") var noPmQos = false
    @Option(help: "Replay tasks with this tid or pid (repeatable).") var pid: [Int32] = []
    @Option(help: "Replay tasks with this command name (repeatable).") var comm: [String] = []
    @Option(help: "Replay this process, its threads and descendants (repeatable).") var tree: [Int32] = []
    @Flag(help: "Replay every user task of the trace.") var all = false
    @Option(help: "Refuse to replay more threads than this.") var maxThreads = 4096
    @Flag(name: .shortAndLong, help: "Print only the summary.") var quiet = false
    @Option(help: "Print the first N atoms of every thread's program and exit (a dry run).") var showPlan: Int?
    @Option(help: "Record the last run with the recorder into this .rpl (for `replayctl fidelity`; needs root).") var recordSelf: String?

    func validate() throws {
        guard runs >= 1 else { throw ValidationError("--runs must be at least 1") }
        guard warmup >= 0 else { throw ValidationError("--warmup cannot be negative") }
        guard cpuScale > 0, cpuScale.isFinite else { throw ValidationError("--cpu-scale must be a positive number") }
        // Each spin or settle is a bounded wait within one step of a thread: a second is far
        // beyond any useful value, and an endless one would stall the replay.
        for (name, value) in [("--hold-spin", holdSpin), ("--hand-off-spin", handOffSpin), ("--wake-settle", wakeSettle), ("--wakee-spin", wakeeSpin)] {
            guard value.isFinite, value >= 0, value <= 1_000_000 else {
                throw ValidationError("\(name) is in microseconds, from 0 to 1000000 (got \(value))")
            }
        }
    }

    func run() throws {
        try reportingErrors {
            var options = ReplayOptions()
            options.cpuScale = cpuScale
            options.applyAffinity = !noAffinity
            options.applyPolicy = !noPolicy
            options.wakeOrder = wakeOrder
            options.pooledWaits = !perWakerWaits
            options.deliverToAnyPooledWait = !deferredWakesToRecordedWaits
            options.holdSpinNanoseconds = UInt64(saturatingNanoseconds: max(0, holdSpin) * 1000)
            options.handOffSpinNanoseconds = UInt64(saturatingNanoseconds: max(0, handOffSpin) * 1000)
            options.wakeeSpinNanoseconds = UInt64(saturatingNanoseconds: max(0, wakeeSpin) * 1000)
            options.wakeSettleNanoseconds = UInt64(saturatingNanoseconds: max(0, wakeSettle) * 1000)
            options.maxThreads = maxThreads
            options.applyCPULatency = !noPmQos
            options.inferLocks = !noLockInference
            let selection = TaskSelection(pids: pid, comms: comm, trees: tree, all: all)
            let session = try ReplaySession(tracePath: trace, selection: selection, options: options, tool: "replayctl \(replayctlVersion)")
            ReplayInterrupt.installSignalHandlers()
            printPlan(session)
            if let showPlan {
                printPrograms(session.plan, atoms: showPlan)
                return
            }
            let tty = isatty(1) != 0
            var warned = Set<String>()
            for i in 0..<(warmup + runs) {
                let isWarmup = i < warmup
                let isLast = i == warmup + runs - 1
                var recording: RecordingSession?
                if isLast, let recordSelf {
                    var recordingOptions = RecordingOptions(target: .pids([getpid()]), outputPath: recordSelf)
                    recordingOptions.recorderVersion = "replayctl \(replayctlVersion)"
                    recordingOptions.recorderCommandLine = CommandLine.arguments
                    let r = try RecordingSession(options: recordingOptions)
                    try r.start()
                    recording = r
                }
                let outcome: RunOutcome
                do {
                    outcome = try session.run(index: i, warmup: isWarmup)
                } catch {
                    _ = try? recording?.stop()
                    throw error
                }
                if let recording {
                    let summary = try recording.stop()
                    printError("replayctl: recorded the last run into \(summary.path): \(summary.events) events, "
                               + "\(summary.totalLostEvents) lost")
                }
                for w in outcome.warnings where !warned.contains(w) {
                    warned.insert(w)
                    printError("replayctl: warning: \(w)")
                }
                if !quiet || tty {
                    let label = isWarmup ? "warmup \(i + 1)/\(warmup)" : "run \(i - warmup + 1)/\(runs)"
                    print(runLine(label: label, outcome.run))
                }
            }
            if let output {
                try write(session.resultsJSON(), to: output)
            }
            if let map {
                try write(session.mapJSON(), to: map)
            }
            print("")
            print(ReplaySummary(results: session.results).text())
            if let output { print("results: \(output)") }
        }
    }

    func printPlan(_ session: ReplaySession) {
        let plan = session.plan
        let m = session.reader.metadata
        let wakes = plan.taskWakes
        let timed = plan.programs.reduce(0) { $0 + $1.timedSleepCount }
        print("replaying \(trace): \(plan.programs.count) threads, \(wakes) wakes, \(timed) timed sleeps, "
              + "\(formatSeconds(plan.totalRecordedCPU)) CPU; recorded on \(m.kernelRelease.isEmpty ? "?" : m.kernelRelease) "
              + "(\(m.cpuCount) CPUs), makespan \(formatSeconds(plan.recordedMakespan))")
        if plan.unmatchedWaits > 0 {
            print("  \(plan.unmatchedWaits) waits whose waker is not replayed become timed sleeps")
        }
        if plan.handoffs > 0 {
            print("  \(plan.handoffs) wakeup preemptions replayed as hand-offs (the waker resumes when its wakee blocks)")
            if let hint = plan.handOffPlacementHint { print("  hint: \(hint)") }
        }
        for line in plan.lockGroupNotes { print("  \(line)") }
        if plan.inFlightWakes > 0 {
            print("  \(plan.inFlightWakes) sleeps ended by a wake logged just before the sleeper switched out (replayed as waits on it)")
        }
        if plan.resumedWithoutSwitchIn > 0 {
            print("  \(plan.resumedWithoutSwitchIn) sleeps ended with neither a wake nor a switch-in logged (ended where the inferred run starts)")
        }
        if plan.inferredSwitchIns > 0 {
            print("  \(plan.inferredSwitchIns) switch-ins the recording kernel did not log were inferred")
        }
        if let line = session.cpuLatencyDescription { print("  \(line)") }
        if let line = session.unreplayedLoad.description(all: all) { print("  \(line)") }
        for note in session.engine.notes { print("  note: \(note)") }
    }

    func printPrograms(_ plan: ReplayPlan, atoms: Int) {
        for (i, p) in plan.programs.enumerated() {
            print("thread \(i): \(p.comm) (tid \(p.tid)), \(p.atoms.count) atoms, \(formatSeconds(p.recordedCPUNanoseconds)) CPU, "
                  + "\(p.sleeps) sleeps, \(p.waitCount) waits, \(p.timedSleepCount) timed, \(p.wakeCount) wakes"
                  + (p.spawnedBy.map { ", spawned by thread \($0)" } ?? "")
                  + "; \(p.policy?.rawValue ?? "policy ?")" + (p.nice.map { " nice \($0)" } ?? "")
                  + (p.realtimePriority.map { " prio \($0)" } ?? "") + (p.affinity.map { " cpus \($0)" } ?? ""))
            for atom in p.atoms.prefix(atoms) {
                switch atom {
                case let .run(ns): print("    run \(micro(ns))")
                case let .wait(edge, count, wake):
                    let e = plan.edges[edge]
                    print("    wait for wake #\(count) from thread \(e.waker) (recorded at +\(micro(wake)))")
                case let .handOff(edge, count, wake, waited):
                    let e = plan.edges[edge]
                    print("    yield until wake #\(count) from thread \(e.waker) (hand-off, recorded at +\(micro(wake)) after \(micro(waited)))")
                case let .sleepUntil(offset, unmatched): print("    sleep until +\(micro(offset))" + (unmatched ? " (waker not replayed)" : ""))
                case let .wake(_, target, rendezvous):
                    print("    wake thread \(target)" + (rendezvous > 0 ? " (once it waits: its wait #\(rendezvous) on this edge)" : ""))
                case let .spawn(program, _): print("    spawn thread \(program)")
                case let .exec(comm): print("    exec \(comm)")
                }
            }
        }
    }

    func runLine(label: String, _ run: ReplayRun) -> String {
        let ratio = run.recordedMakespanNanoseconds > 0 ? Double(run.makespanNanoseconds) / Double(run.recordedMakespanNanoseconds) : 0
        var line = "\(pad(label, 12, left: true)) makespan \(formatSeconds(run.makespanNanoseconds)) (×\(String(format: "%.3f", ratio)))"
        if !run.wakeupLatency.isEmpty {
            line += "  wakeup p50 \(micro(run.wakeupLatency.percentile(50))) p99 \(micro(run.wakeupLatency.percentile(99)))"
        }
        if !run.timerOvershoot.isEmpty {
            line += "  timer p50 \(micro(run.timerOvershoot.percentile(50))) p99 \(micro(run.timerOvershoot.percentile(99)))"
        }
        if run.counts.timedOutWaits > 0 { line += "  \(run.counts.timedOutWaits) WAITS TIMED OUT" }
        if let missed = run.counts.wakesMissed, missed > 0 { line += "  \(missed) WAKES MISSED" }
        return line
    }

    func write(_ data: Data, to path: String) throws {
        do {
            try data.write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw CommandError(message: "\(path): cannot write: \(error.localizedDescription)", code: ExitStatus.ioError)
        }
    }
}

func micro(_ ns: UInt64) -> String { String(format: "%.1f µs", Double(ns) / 1000) }

/// The console summary of a replay, in the spirit of schbench: percentiles over all measured runs.
struct ReplaySummary {
    var results: ReplayResults

    func text() -> String {
        let runs = results.measuredRuns
        var wake = LatencyHistogram(), same = LatencyHistogram(), timer = LatencyHistogram()
        var counts = ReplayCounts()
        for r in runs {
            wake.merge(r.wakeupLatency)
            same.merge(r.wakeupLatencySameCPU)
            timer.merge(r.timerOvershoot)
            counts.waitsAlreadySatisfied += r.counts.waitsAlreadySatisfied
            counts.lateTimedSleeps += r.counts.lateTimedSleeps
            counts.timedOutWaits += r.counts.timedOutWaits
            counts.heldWakes = (counts.heldWakes ?? 0) + (r.counts.heldWakes ?? 0)
            counts.handOffsYielded = (counts.handOffsYielded ?? 0) + (r.counts.handOffsYielded ?? 0)
            counts.handOffsBlocked = (counts.handOffsBlocked ?? 0) + (r.counts.handOffsBlocked ?? 0)
            counts.wakesKeptUntilAsleep = (counts.wakesKeptUntilAsleep ?? 0) + (r.counts.wakesKeptUntilAsleep ?? 0)
            counts.wakesNotKeptUntilAsleep = (counts.wakesNotKeptUntilAsleep ?? 0) + (r.counts.wakesNotKeptUntilAsleep ?? 0)
            counts.wakesMissed = (counts.wakesMissed ?? 0) + (r.counts.wakesMissed ?? 0)
            counts.wakesFromCoordinator = (counts.wakesFromCoordinator ?? 0) + (r.counts.wakesFromCoordinator ?? 0)
        }
        var lines: [String] = []
        func table(_ title: String, _ h: LatencyHistogram) {
            lines.append(title)
            for (name, p) in [("50.0th", 50.0), ("90.0th", 90.0), ("99.0th", 99.0), ("99.9th", 99.9)] {
                lines.append("\t\(name): \(pad(String(format: "%.1f", Double(h.percentile(p)) / 1000), 10))")
            }
            lines.append("\t   max: \(pad(String(format: "%.1f", Double(h.maximum) / 1000), 10))")
        }
        if wake.count > 0 {
            let share = Double(same.count) / Double(wake.count) * 100
            table("Wakeup latency (µs, wake issued → wakee running; \(wake.count) samples over \(runs.count) runs, "
                  + "\(String(format: "%.0f", share)) % with waker and wakee on one CPU)", wake)
        } else {
            lines.append("Wakeup latency: no blocking wakeups in this trace")
        }
        if timer.count > 0 {
            table("Timer overshoot (µs, deadline → running; \(timer.count) samples)", timer)
        }
        let makespans = runs.map(\.makespanNanoseconds).sorted()
        if let recorded = runs.first?.recordedMakespanNanoseconds, !makespans.isEmpty {
            let median = makespans[makespans.count / 2]
            lines.append("Makespan: median \(formatSeconds(median)) (min \(formatSeconds(makespans.first!)), max \(formatSeconds(makespans.last!))), "
                         + "recorded \(formatSeconds(recorded)): ×\(String(format: "%.3f", Double(median) / Double(max(1, recorded))))")
        }
        // CPU-time fidelity: per task, weighted by recorded CPU time, median over runs.
        var errors: [Double] = []
        for r in runs {
            let recorded = r.tasks.reduce(0.0) { $0 + Double($1.recordedCpuNanoseconds) }
            guard recorded > 0 else { continue }
            let weighted = r.tasks.reduce(0.0) { $0 + abs(Double($1.cpuWithExitNanoseconds) - Double($1.recordedCpuNanoseconds)) }
            errors.append(weighted / recorded * 100)
        }
        if !errors.isEmpty {
            errors.sort()
            lines.append("CPU time: weighted absolute error \(String(format: "%.2f", errors[errors.count / 2])) % of the recorded CPU time (median of runs)")
        }
        // Sleep-count fidelity without a recording: real blocks of the replay threads.
        let blocks = runs.compactMap { r -> UInt64? in
            r.tasks.contains { $0.voluntarySwitches == nil } ? nil : r.tasks.reduce(0) { $0 + ($1.voluntarySwitches ?? 0) }
        }.sorted()
        if let sleeps = runs.first.map({ $0.tasks.reduce(0) { $0 + $1.sleeps } }), !blocks.isEmpty, sleeps > 0 {
            let median = blocks[blocks.count / 2]
            lines.append("Blocking: the programs wait or sleep \(sleeps) times, the replay threads blocked \(median) times "
                         + "(median of runs, \(String(format: "%+.1f", (Double(median) - Double(sleeps)) / Double(sleeps) * 100)) %)")
        }
        if counts.waitsAlreadySatisfied > 0 {
            lines.append("Waits whose wake came first (each still blocked as briefly as possible; no latency sample): \(counts.waitsAlreadySatisfied)")
        }
        if let held = counts.heldWakes, held > 0 {
            lines.append("Wakes that reached their wakee before its sleep (held or deferred until it got there): \(held)")
        }
        if let coordinated = counts.wakesFromCoordinator, coordinated > 0 {
            lines.append("Of those, delivered by the coordinating thread as their wakee reached its wait (their waker had to block, "
                         + "sleep or end first; a wakeup, if any, from outside the replayed tasks): \(coordinated)")
        }
        if let kept = counts.wakesKeptUntilAsleep, kept > 0 {
            lines.append("Wakes kept until their wakee, committed to block, was asleep: \(kept) (\(counts.wakesNotKeptUntilAsleep ?? 0) given up)")
        }
        if let missed = counts.wakesMissed, missed > 0 {
            lines.append("Wakes missed (a wait found its wake only when its futex_wait timed out, up to 1 s late; a lost wakeup in replayctl, please report it with the trace): \(missed)")
        }
        let yielded = counts.handOffsYielded ?? 0, blocked = counts.handOffsBlocked ?? 0
        if yielded + blocked > 0 {
            lines.append("Hand-offs: \(yielded) resumed while yielding the CPU, \(blocked) had to block")
        }
        if counts.lateTimedSleeps > 0 {
            lines.append("Timed sleeps reached after their deadline (the replay ran late; each slept as briefly as possible): \(counts.lateTimedSleeps)")
        }
        if counts.timedOutWaits > 0 {
            lines.append("WARNING: \(counts.timedOutWaits) waits timed out without their wake — the replay did not match the trace")
        }
        return lines.joined(separator: "\n")
    }
}

extension WakeOrder: ExpressibleByArgument {}
