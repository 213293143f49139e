import Foundation
import TraceFormat

/// One step of a replayed task's program.
public enum Atom: Equatable, Sendable {
    /// Burn this much CPU time (recorded nanoseconds, before `--cpu-scale`).
    case run(nanoseconds: UInt64)
    /// Block until wake edge `edge` has been signalled `count` times in total.
    /// `recordedWake` is when the wake came in the trace (offset from the trace start).
    case wait(edge: Int, count: UInt32, recordedWake: UInt64)
    /// Like `wait`, but in the trace the task was not asleep: it had been preempted by the
    /// wakee it had just woken, and resumed when that one blocked (a hand-off). Yield the
    /// CPU until the wake comes instead of sleeping (a sleep the trace does not have), and
    /// block only if it is long in coming. `recordedWait` is how long it waited in the trace
    /// (preemption → the other task's block).
    case handOff(edge: Int, count: UInt32, recordedWake: UInt64, recordedWait: UInt64)
    /// Sleep until `offset` nanoseconds after the replay start (the recorded wake time of a
    /// timer, interrupt or unreplayed waker). Absolute, so errors do not add up.
    case sleepUntil(offset: UInt64, unmatched: Bool)
    /// Signal wake edge `edge` (its wakee is `target`, a program index). When `rendezvous` is
    /// not 0 the wakee was asleep at this wake in the trace, in its `rendezvous`-th wait on
    /// this edge: the wake is deferred or held until the wakee has reached that wait
    /// (`ReplayOptions.wakeOrder`).
    case wake(edge: Int, target: Int, rendezvous: UInt32)
    /// Start program `program` (its first atom waits on `edge`).
    case spawn(program: Int, edge: Int)
    /// Take a new name (exec).
    case exec(comm: String)
}

/// A directed waker → wakee pair; every wake between them goes through it, in order.
public struct WakeEdge: Equatable, Sendable {
    /// Program indices.
    public var waker: Int
    public var wakee: Int
    /// True for the edge a parent uses to start a child (wakeup-new, not a wakeup).
    public var isSpawn: Bool
    /// Wakes the trace says go through this edge.
    public var count: UInt32
    /// Wait atoms on this edge (waits of the wakee that these wakes end).
    public var waits: UInt32 = 0
    /// For the k-th wake on this edge (index k − 1): how many wakes the wakee had received
    /// from all its replayed wakers once this one came (pooled waits; not for spawn edges).
    public var poolOrdinals: [UInt32] = []
    /// For the n-th wait on this edge (index n − 1): its pooled ordinal.
    public var waitPoolOrdinals: [UInt32] = []
}

/// The program of one replayed task.
public struct TaskProgram: Equatable, Sendable {
    public var task: TaskIndex
    public var tid: Int32
    public var tgid: Int32
    public var comm: String
    public var policy: SchedulingPolicy?
    public var nice: Int32?
    public var realtimePriority: Int32?
    public var affinity: [Int]?
    public var atoms: [Atom] = []
    /// Started by a parent's `spawn` rather than at the replay start.
    public var spawnedBy: Int?
    /// CPU time the trace gives the task (sum of `run` atoms).
    public var recordedCPUNanoseconds: UInt64 = 0
    /// Blocking sleeps in the trace that the program reproduces (waits and timed sleeps, the
    /// initial one excluded).
    public var sleeps: Int = 0

    public init(task: TaskIndex, info: TaskInfo) {
        self.task = task
        tid = info.tid
        tgid = info.tgid
        comm = info.comm
        policy = info.policy
        nice = info.nice
        realtimePriority = info.realtimePriority
        affinity = info.affinity
    }

    /// Number of atoms of each kind, for reports and tests.
    /// Waits and hand-offs.
    public var waitCount: Int {
        atoms.reduce(0) {
            switch $1 {
            case .wait, .handOff: $0 + 1
            default: $0
            }
        }
    }
    public var timedSleepCount: Int { atoms.reduce(0) { if case .sleepUntil = $1 { $0 + 1 } else { $0 } } }
    public var wakeCount: Int { atoms.reduce(0) { if case .wake = $1 { $0 + 1 } else { $0 } } }
}

/// A process whose threads ran one at a time in the trace (two at once for less than
/// `PlanBuilder.lockOverlapLimit` of the time its threads other than the busiest ran): taken to
/// share a lock, such as CPython's GIL, which the trace cannot show, or to take turns.
public struct LockGroup: Equatable, Sendable {
    public var tgid: Int32
    public var comm: String
    /// Its selected threads.
    public var threads: Int
    /// How long its threads other than the busiest one ran in all, and how long two or more
    /// of its threads ran at once.
    public var othersRunningNanoseconds: UInt64
    public var overlapNanoseconds: UInt64
    /// Wakes issued at their waker's block instead of where the trace had them
    /// (`PlanBuilder`, "issueAtBlock").
    public var wakesAtBlock: Int = 0

    public init(tgid: Int32, comm: String, threads: Int, othersRunningNanoseconds: UInt64, overlapNanoseconds: UInt64) {
        self.tgid = tgid
        self.comm = comm
        self.threads = threads
        self.othersRunningNanoseconds = othersRunningNanoseconds
        self.overlapNanoseconds = overlapNanoseconds
    }

    /// One line for the console and the results' notes.
    public var description: String {
        let share = othersRunningNanoseconds > 0 ? Double(overlapNanoseconds) * 100 / Double(othersRunningNanoseconds) : 0
        return "\(comm) (pid \(tgid)): its \(threads) threads ran one at a time (two at once for "
            + String(format: "%.1f", share) + " % of the time the ones other than the busiest ran: they take turns, or share a lock such as CPython's GIL); "
            + "\(wakesAtBlock) wakes whose wakee waited for its waker to block are issued at that block "
            + "(--no-lock-inference keeps them where the trace has them)"
    }
}

/// Everything the engine needs to replay a trace: one program per selected task and the
/// wake edges between them.
public struct ReplayPlan: Equatable, Sendable {
    public var programs: [TaskProgram] = []
    public var edges: [WakeEdge] = []
    /// Trace time that maps to the replay start.
    public var traceStart: UInt64 = 0
    /// First event to last event of the selected tasks in the trace.
    public var recordedMakespan: UInt64 = 0
    /// Waits whose waker is not replayed (filtered out, irq, gone): turned into timed sleeps.
    public var unmatchedWaits: Int = 0
    /// Wakes from a task context whose waker is replayed but the wakee is not.
    public var wakesToUnreplayed: Int = 0
    /// Blocks ended by a wake that came just before the task switched out (`sched_waking`
    /// logged while the wakee was still on its way into `schedule()`): waits on that wake.
    public var inFlightWakes: Int = 0
    /// Blocked tasks seen running again with neither a wake nor a switch-in logged since
    /// they blocked (their block ends where their inferred run starts).
    public var resumedWithoutSwitchIn: Int = 0
    /// Wakeup preemptions turned into hand-offs (`PlanBuilder.Builder.handOff`).
    public var handoffs: Int = 0
    /// Switch-ins the trace did not log that were inferred while building.
    public var inferredSwitchIns: Int = 0
    /// The CPU latency limits the selected tasks' QoS requests held (`/dev/cpu_dma_latency`),
    /// offsets from `traceStart`: the replay holds the same limits at the same offsets.
    public var cpuLatency: [CPULatencyHold] = []
    /// Processes taken to share a lock (`LockGroup`); empty with `--no-lock-inference`.
    public var lockGroups: [LockGroup] = []

    /// One line per lock group that had wakes moved, for the console and the results' notes.
    public var lockGroupNotes: [String] { lockGroups.filter { $0.wakesAtBlock > 0 }.map(\.description) }

    public init() {}

    public var totalRecordedCPU: UInt64 { programs.reduce(0) { $0.adding(saturating: $1.recordedCPUNanoseconds) } }

    /// Task-to-task wakes of the plan (spawns excluded; hand-offs included).
    public var taskWakes: Int { edges.filter { !$0.isSpawn }.reduce(0) { $0 + Int($1.count) } }

    /// When a quarter or more of the wakes are hand-offs (the wakee preempted its waker on
    /// the waker's CPU in the recording: tasks taking turns on one CPU), a hint that the
    /// recorded placement matters: a kernel that spreads them over idle CPUs turns each into a
    /// cross-CPU round trip. `traces/pipe-pingpong.rpl` (46 %) replays in 7.9–8.3× the time
    /// spread, 0.93–1.08× under `taskset -c 0` (docs/replay.md, "Limits").
    public var handOffPlacementHint: String? {
        let wakes = taskWakes
        guard handoffs > 0, wakes > 0, handoffs * 4 >= wakes else { return nil }
        return "\(handoffs * 100 / wakes) % of the wakes preempted their waker on its CPU in the recording (tasks taking turns on one CPU): "
            + "where this kernel spreads them over idle CPUs, each becomes a cross-CPU round trip the recording did not have; "
            + "to replay on the recorded placement, run under `taskset -c CPU`"
    }
}
