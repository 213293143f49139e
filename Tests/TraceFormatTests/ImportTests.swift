import Foundation
import Testing
@testable import TraceFormat

/// Importers of perf script and trace-cmd report text, on lines copied from real output of
/// this machine's perf 6.1 and trace-cmd 3.1.6 (see docs/interop.md).
struct ImportTests {
    static let traceCmdLines = """
        cpus=2
        sched-pi-27345   0-0x0  2988.350312988: sched_process_exec:    filename=/usr/bin/perf pid=27345 old_pid=27345
        sched-pi-27345   0-0x0  2988.364649000: sched_process_fork:    parent_comm=sched-pipe parent_pid=27345 child_comm=sched-pipe child_pid=27346
        sched-pi-27345   0-0x1  2988.364655000: sched_wakeup_new:      comm=sched-pipe pid=27346 prio=120 target_cpu=001
        sched-pi-27346   1-0x1  2988.366269000: sched_switch:          prev_comm=swapper/1 prev_pid=0 prev_prio=120 prev_state=0 next_comm=sched-pipe next_pid=27346 next_prio=120
        sched-pi-27346   1-0x1  2988.366300000: sched_waking:          comm=sched-pipe pid=27345 prio=120 target_cpu=000
        sched-pi-27346   1-0x9  2988.366310000: sched_waking:          comm=rcu_preempt pid=15 prio=120 target_cpu=000
        sched-pi-27346   1-0x11  2988.366320000: sched_waking:         comm=kworker/1:1H pid=44 prio=100 target_cpu=001
        sched-pi-27346   1-0x1  2988.366330000: sched_stat_runtime:    comm=sched-pipe pid=27346 runtime=61000
        sched-pi-27346   1-0x1  2988.366331000: sched_switch:          prev_comm=sched-pipe prev_pid=27346 prev_prio=120 prev_state=256 next_comm=kworker/1:1H next_pid=44 next_prio=100
        kworker/-44      1-0x1  2988.366340000: sched_switch:          prev_comm=kworker/1:1H prev_pid=44 prev_prio=100 prev_state=128 next_comm=sched-pipe next_pid=27346 next_prio=120
        sched-pi-27346   1-0x1  2988.366350000: sched_switch:          prev_comm=sched-pipe prev_pid=27346 prev_prio=120 prev_state=1 next_comm=swapper/1 next_pid=0 next_prio=120
        CPU:1 [12 EVENTS DROPPED]
        sched-pi-27346   1d..2.  2988.366360: sched_process_exit:   comm=sched-pipe pid=27346 prio=120
        """

    @Test func traceCmdReportGivesContextsStatesAndTasks() throws {
        var importer = TraceCmdImporter()
        for line in Self.traceCmdLines.split(separator: "\n") { importer.parse(line: line) }
        #expect(importer.assembler.problems.isEmpty, "\(importer.assembler.problems)")
        #expect(importer.cpuCount == 2)
        #expect(!importer.contextsInferred)
        let wakings = importer.events.compactMap { e -> WakeContext? in
            if case let .waking(_, _, _, context) = e.kind { context } else { nil }
        }
        #expect(wakings == [.task, .hardIRQ, .softIRQ])
        let states = importer.events.compactMap { e -> TaskState? in
            if case let .switchTask(_, state, _) = e.kind { state } else { nil }
        }
        #expect(states == [.running, .running, .other, .sleeping])
        // The head's cached comm ("sched-pi") is replaced by the fields' comm.
        let child = importer.tasks.first { $0.tid == 27346 }
        #expect(child?.comm == "sched-pipe")
        #expect(child?.parent.map { importer.tasks[$0.intValue].tid } == 27345)
        #expect(importer.tasks.first { $0.tid == 44 }?.nice == -20)
        #expect(importer.recordedRoots() == [27345])
        #expect(importer.assembler.lostEvents == [0, 12])
        #expect(importer.assembler.tracepointCounts["sched_switch"] == 4)
        // Full-precision timestamps.
        #expect(importer.events.first?.timestamp == 2_988_350_312_988)
        // Every tracepoint the model uses was seen.
        #expect(importer.assembler.missingTracepoints == ["sched_migrate_task"])
    }

    @Test func latencyLettersGiveContexts() {
        func parsed(_ token: Substring) -> String {
            guard let (cpu, context) = TraceCmdImporter.cpuAndContext(token) else { return "nil" }
            return "\(cpu) \(context?.name ?? "none")"
        }
        #expect(parsed("0d.h2.") == "0 hardirq")
        #expect(parsed("1dNs3.") == "1 softirq")
        #expect(parsed("1d.H3.") == "1 hardirq")
        #expect(parsed("3d.z1.") == "3 nmi")
        #expect(parsed("12...2.") == "12 task")
        #expect(parsed("12..2.") == "nil")
        #expect(parsed("[003]") == "3 none")
        #expect(parsed("0-0x40") == "0 nmi")
        #expect(parsed("x") == "nil")
    }

    @Test func perfScriptLinesAndMissingWaking() throws {
        let text = """
                    perf 27337/27337 [000]  2987.129236017:       sched:sched_switch: prev_comm=perf prev_pid=27337 prev_prio=120 prev_state=D ==> next_comm=migration/0 next_pid=18 next_prio=0
             migration/0    18/18    [000]  2987.129253400:       sched:sched_switch: prev_comm=migration/0 prev_pid=18 prev_prio=0 prev_state=S ==> next_comm=perf next_pid=27337 next_prio=120
                    perf 27337/27337 [000]  2987.129260000:       sched:sched_wakeup: comm=migration/0 pid=18 prio=0 target_cpu=000
                 swapper     0/0     [001]  2987.129270000:       sched:sched_wakeup: comm=perf pid=27338 prio=120 target_cpu=001
            garbage line
            """
        var importer = PerfScriptImporter()
        for line in text.split(separator: "\n") { importer.parse(line: line) }
        #expect(importer.skippedLines == 1)
        #expect(importer.problems.first?.line == 5)
        // No sched_waking: the sched_wakeup records stand in, context inferred from the current task.
        let sorted = importer.sortedEvents()
        let wakings = sorted.compactMap { e -> WakeContext? in
            if case let .waking(_, _, _, context) = e.kind { context } else { nil }
        }
        #expect(wakings == [.task, .hardIRQ])
        let notes = importer.assembler.missingEventNotes
        #expect(notes.contains { $0.hasPrefix("no sched_waking: sched_wakeup used instead") })
        #expect(notes.contains { $0.hasPrefix("no sched_stat_runtime") })
        #expect(importer.tasks.first { $0.tid == 18 }?.realtimePriority == 99)

        let dir = try TemporaryDirectory()
        var metadata = TraceMetadata()
        metadata.extra["source"] = "test"
        try importer.write(to: dir.path("p.rpl"), metadata: metadata, recordedTgids: [27337])
        let reader = try TraceReader(path: dir.path("p.rpl"))
        #expect(reader.eventCount == 4)
        #expect(reader.metadata.extra["import.missing"]?.contains("sched_waking") == true)
        #expect(reader.metadata.extra["import.notes"]?.contains("sched_wakeup used instead") == true)
        #expect(reader.metadata.extra["import.tracepoints"] == "sched_switch=2 sched_wakeup=2")
        #expect(reader.tasks.first { $0.tid == 27337 }?.isRecorded == true)
        #expect(reader.tasks.first { $0.tid == 18 }?.isKernelThread == true)
    }

    @Test func numericPrevStates() {
        #expect(SchedEventAssembler.state("0") == .running)
        #expect(SchedEventAssembler.state("256") == .running)
        #expect(SchedEventAssembler.state("1") == .sleeping)
        #expect(SchedEventAssembler.state("2") == .uninterruptible)
        #expect(SchedEventAssembler.state("1026") == .uninterruptible)
        #expect(SchedEventAssembler.state("16") == .dead)
        #expect(SchedEventAssembler.state("128") == .other)
        #expect(SchedEventAssembler.state("R+") == .running)
        #expect(SchedEventAssembler.state("D|K") == .uninterruptible)
    }

    @Test func reusedPidAfterForkIsANewTask() {
        var a = SchedEventAssembler()
        let first = a.task(100, comm: "a")
        a.add(name: "sched_process_exit", fields: ["comm": "a", "pid": "100"], timestamp: 1, cpu: 0, current: first, context: nil, line: 1)
        // Still seen after its exit (its last switch-out): the same task.
        #expect(a.task(100, comm: "a") == first)
        a.add(name: "sched_process_fork", fields: ["parent_pid": "1", "child_pid": "100", "child_comm": "b"], timestamp: 2, cpu: 0,
              current: .idle, context: nil, line: 2)
        #expect(a.task(100, comm: "b") != first)
    }

    @Test func magicDetection() throws {
        #expect(ImportSource.detect(magic: Array("PERFILE2".utf8) + [0, 1]) == .perf)
        #expect(ImportSource.detect(magic: [0x17, 0x08, 0x44] + Array("tracing6".utf8)) == .traceCmd)
        #expect(ImportSource.detect(magic: Array("RPL".utf8)) == nil)
        let dir = try TemporaryDirectory()
        FileManager.default.createFile(atPath: dir.path("junk"), contents: Data("hello".utf8))
        #expect(throws: ImportError.self) { try ImportSource.detect(dir.path("junk")) }
        do {
            _ = try ImportSource.detect(dir.path("junk"))
        } catch let error as ImportError {
            #expect(error.description.contains("junk"))
            #expect(error.description.contains("perf.data"))
            #expect(error.description.contains("trace.dat"))
        }
        #expect(throws: TraceError.io(path: dir.path("none"), reason: "no such file")) { try ImportSource.detect(dir.path("none")) }
    }

    @Test func traceCmdStatGivesLostEvents() {
        let stat = """
            CPU: 0
            entries: 0
            overrun: 3
            dropped events: 2
            CPU: 1
            overrun: 0
            dropped events: 0
            """
        #expect(TraceCmdImporter.lostEvents(fromStat: stat) == [5, 0])
    }
}
