import Foundation
@testable import Stats

/// Synthetic replay results for tests: per-run latency samples drawn from log-normal
/// distributions, each run with its own random drift, so that run-to-run variance exists
/// the way it does on a real machine.
///
/// Model (documented in docs/compare.md, "power"):
/// - wakeup latency of a run: log-normal, median 5 µs × run drift, σ = 0.5 (p99 ≈ 3.2 × p50);
///   `samplesPerRun` samples, half same-CPU (median × 0.3), half cross-CPU.
/// - run drift: exp(N(0, `runSigma`)), default 0.03 — the same for every figure of the run.
/// - timer overshoot: log-normal, median 60 µs × drift, σ = 0.3, samplesPerRun / 4 samples.
/// - makespan: 1 s × drift × (1 + N(0, 0.005)).
/// `tailShift` multiplies every wakeup sample above the base distribution's p95 (5 µs ×
/// e^(1.645·0.5) ≈ 11.4 µs) by that factor, so p99 moves by exactly that factor while p50
/// does not move; `scale` multiplies every latency sample and the makespan.
struct SyntheticModel {
    var samplesPerRun = 4000
    var runSigma = 0.03
    var scale = 1.0
    var tailShift = 1.0

    static let wakeupMedian = 5000.0
    static let wakeupSigma = 0.5
    static let tailThreshold = wakeupMedian * exp(1.6449 * wakeupSigma)

    func run(index: Int, generator g: inout SeededGenerator, wakeupOnly: Bool = false) -> ReplayRun {
        let drift = exp(runSigma * g.nextGaussian())
        var all = LatencyHistogram(), same = LatencyHistogram(), cross = LatencyHistogram(), timer = LatencyHistogram()
        for k in 0..<samplesPerRun {
            var base = Self.wakeupMedian * exp(Self.wakeupSigma * g.nextGaussian())
            if base > Self.tailThreshold { base *= tailShift }
            let sameCPU = k % 2 == 0
            let v = UInt64(base * drift * scale * (sameCPU ? 0.3 : 1))
            all.record(v)
            if !wakeupOnly {
                if sameCPU { same.record(v) } else { cross.record(v) }
            }
        }
        if !wakeupOnly {
            for _ in 0..<(samplesPerRun / 4) {
                timer.record(UInt64(60_000 * exp(0.3 * g.nextGaussian()) * drift * scale))
            }
        }
        let makespan = UInt64(1e9 * drift * scale * (1 + 0.005 * g.nextGaussian()))
        return ReplayRun(index: index, warmup: false, startWallTimeNanoseconds: 1_700_000_000_000_000_000 + UInt64(index) * 2_000_000_000,
                         makespanNanoseconds: makespan, recordedMakespanNanoseconds: 1_000_000_000,
                         wakeupLatency: all, wakeupLatencySameCPU: same, wakeupLatencyCrossCPU: cross, timerOvershoot: timer,
                         counts: ReplayCounts(), tasks: [])
    }

    func results(runs: Int, generator g: inout SeededGenerator, warmups: Int = 0, sha: String = String(repeating: "ab", count: 32),
                 wakeupOnly: Bool = false, tasks: Int = 0) -> ReplayResults {
        var r = ReplayResults(
            tool: "replayctl 0.1.0",
            trace: TraceIdentity(path: "traces/synthetic.rpl", sha256: sha, recordedKernel: "6.18.0", recordedHost: "synthetic",
                                 durationNanoseconds: 1_000_000_000, replayedTasks: tasks, events: 100_000),
            machine: MachineDescription(hostname: "test", kernelRelease: "6.18.0-test", architecture: "x86_64", cpuModel: "synthetic", cpuCount: 2),
            options: ["runs": "\(runs)"])
        for i in 0..<(warmups + runs) {
            var run = self.run(index: i, generator: &g, wakeupOnly: wakeupOnly)
            run.warmup = i < warmups
            run.tasks = (0..<tasks).map { t in
                let p50 = UInt64(Double(2000 + 500 * t) * scale * exp(0.05 * g.nextGaussian()))
                return ReplayTaskResult(originalTid: Int32(1000 + t), replayTid: Int32(5000 + t), comm: "worker-\(t)",
                                        recordedCpuNanoseconds: 10_000_000, cpuNanoseconds: 10_050_000, wakesReceived: 100,
                                        sleeps: 100, timedSleeps: 10, wakeupLatencyP50: p50, wakeupLatencyP99: p50 * 3)
            }
            r.runs.append(run)
        }
        return r
    }
}
