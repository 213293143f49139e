import ArgumentParser
import Foundation
import Replayer
import TraceFormat

struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Convert a .rpl trace to a Perfetto/Chrome JSON trace or an rt-app workload.",
        discussion: """
            --format perfetto: per-CPU tracks with a slice per run (named by comm), per-task \
            tracks, and wakeup flows from the waker's run to the wakee's next run; open it in \
            ui.perfetto.dev or chrome://tracing.
            --format rt-app: one rt-app thread per replayed task (same selection as `replay`) \
            approximating its program: run, timer (absolute) for timed sleeps, resume/suspend for \
            task-to-task wakes. Run it with `rt-app FILE.json`. See docs/interop.md for what is \
            lossy.
            """)

    enum Format: String, ExpressibleByArgument, CaseIterable {
        case perfetto
        case rtApp = "rt-app"
    }

    @Argument(help: "A .rpl trace.") var trace: String
    @Option(help: "perfetto or rt-app.") var format: Format
    @Option(name: .shortAndLong, help: "The JSON file to write.") var output: String
    @Option(name: .long, parsing: .singleValue, help: "rt-app: replay only these tids or tgids (repeatable).") var pid: [Int32] = []
    @Option(name: .long, parsing: .singleValue, help: "rt-app: replay only tasks with this comm (repeatable).") var comm: [String] = []
    @Option(name: .long, parsing: .singleValue, help: "rt-app: replay this process tree (repeatable).") var tree: [Int32] = []
    @Flag(name: .long, help: "rt-app: every user task, not just the recorded command.") var all = false
    @Option(help: "rt-app: most phases per task; longer programs are cut (and say so).") var maxPhases = 2000
    @Option(help: "rt-app: global duration cap in seconds (default: 2 × the recorded makespan + 1 s).") var duration: Int?
    @Option(help: "rt-app: calibration, a CPU (CPU0) or a fixed ns per loop (skips rt-app's ~10 s calibration).") var calibration = "CPU0"
    @Flag(help: "rt-app: as `replay --no-lock-inference`, keep the wakes of a process whose threads ran one at a time where the trace has them.") var noLockInference = false

    func run() throws {
        try reportingErrors {
            let reader = try TraceReader(path: trace)
            guard FileManager.default.createFile(atPath: output, contents: nil), let handle = FileHandle(forWritingAtPath: output) else {
                throw TraceError.io(path: output, reason: "cannot create the output file")
            }
            defer { try? handle.close() }
            switch format {
            case .perfetto:
                var exporter = PerfettoExporter(tasks: reader.tasks, metadata: reader.metadata)
                var count = 0
                try reader.forEachEvent { event in
                    exporter.feed(event)
                    count += 1
                    if count % 65536 == 0 { handle.write(Data(exporter.takeOutput().utf8)) }
                }
                handle.write(Data(exporter.takeOutput().utf8))
                handle.write(Data(exporter.finish().utf8))
                printError("wrote \(output): \(exporter.cpuSliceCount) run slices, \(exporter.flowCount) wakeup flows "
                           + "(\(exporter.interruptWakeups) interrupt/idle wakeups without a flow)")
            case .rtApp:
                let selection = TaskSelection(pids: pid, comms: comm, trees: tree, all: all).resolve(reader.tasks)
                guard !selection.isEmpty else { throw CommandError.usage("\(trace): no task matches the selection") }
                let plan = try PlanBuilder.build(reader: reader, selection: selection, inferLocks: !noLockInference)
                var options = RtAppExporter.Options()
                options.maxPhasesPerTask = max(1, maxPhases)
                options.durationSeconds = duration
                options.calibration = calibration
                let result = RtAppExporter.export(plan: plan, metadata: reader.metadata, options: options)
                handle.write(Data(result.json.utf8))
                printError("wrote \(output): \(result.taskCount) rt-app threads, \(result.phaseCount) phases "
                           + "(\(result.atomCount) atoms compressed), duration cap \(result.durationSeconds) s")
                for line in plan.lockGroupNotes { printError("  \(line)") }
                for note in result.notes { printError("  \(note)") }
            }
        }
    }
}
