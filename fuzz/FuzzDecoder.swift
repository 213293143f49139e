// libFuzzer target for the .rpl reader and the events decoder. Built by fuzz/run.sh together
// with Sources/TraceFormat/*.swift into one module (so internal helpers are reachable); never
// part of `swift build` or `swift test`.
//
// Each input is used in one of two ways, chosen by its first byte:
// - even: the input is a whole file, opened with TraceReader from memory (header, footer,
//   scan, resynchronisation, JSON blocks, then every chunk);
// - odd: the rest is the payload of one events chunk (20-byte chunk header, then events),
//   decoded directly by EventDecoder as the reader would after the checksum passed, so the
//   fuzzer reaches the event decoder instead of stopping at the CRC. Bits 1-6 of the first
//   byte give the task count; bit 7 picks the version 1 decoder instead of the current one.
// Whatever decodes is then turned into replay programs by PlanBuilder (and its RunTracker)
// with every task selected: `replay` must not crash on a trace either, however odd its
// event order (out-of-order timestamps, switches of tasks that never started, wakes of the
// dead…), and the plan exported as an rt-app workload; the trace summary (`info`,
// `fidelity`) and the latency analysis (`latency`) are computed from them too. PlanBuilder's and RtAppExport's
// sources are compiled in with their `import TraceFormat` removed.
// Any crash, trap or sanitizer report is a bug.
import Foundation

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = UnsafeRawBufferPointer(start: data, count: size)
    if let first = input.first, first & 1 == 1 {
        let payload = UnsafeRawBufferPointer(rebasing: input.dropFirst())
        guard payload.count >= 20 else { return 0 }
        let firstTimestamp = readLE(payload, 0, as: UInt64.self)
        let count = Int(readLE(payload, 16, as: UInt32.self))
        var events: [Event] = []
        let taskCount = Int(first >> 1) & 63 + 1
        let bytes = UnsafeRawBufferPointer(rebasing: payload[20...])
        if first & 0x80 != 0 {
            try? EventDecoderV1.decode(bytes, firstTimestamp: firstTimestamp, count: count, taskCount: taskCount) { events.append($0) }
        } else {
            try? EventDecoder.decode(bytes, firstTimestamp: firstTimestamp, count: count, taskCount: taskCount) { events.append($0) }
        }
        // Tasks 1… are user tasks, each the child of the one before.
        var tasks = [TaskInfo.idle]
        for i in 1..<max(1, taskCount) {
            var t = TaskInfo(tid: Int32(100 + i), tgid: Int32(100 + i), comm: "t\(i)", isKernelThread: false, isRecorded: true)
            if i > 1 { t.parent = TaskIndex(i - 1) }
            tasks.append(t)
        }
        if let plan = buildPlan(events: events, tasks: tasks) {
            _ = RtAppExporter.export(plan: plan, metadata: TraceMetadata()).json.utf8.count
        }
        return 0
    }
    guard let reader = try? TraceReader(path: "fuzz-input", contents: Array(input)) else { return 0 }
    var events: [Event] = []
    try? reader.forEachEvent(skipDamaged: true, skipped: { _ in }) { events.append($0) }
    if let plan = buildPlan(events: events, tasks: reader.tasks, cpuLatencyRequests: reader.metadata.cpuLatencyRequests ?? []) {
        _ = RtAppExporter.export(plan: plan, metadata: reader.metadata).json.utf8.count
    }
    _ = reader.validate()
    if let first = reader.chunks.first {
        // Time-range access through the index, around the first chunk.
        try? reader.forEachEvent(in: first.firstTimestamp...max(first.firstTimestamp, first.lastTimestamp), skipDamaged: true) { _ in }
    }
    _ = reader.damage.map(\.description)
    return 0
}

/// Builds the replay plan of every non-kernel task and reads it back the way `replay` does.
func buildPlan(events: [Event], tasks: [TaskInfo], cpuLatencyRequests: [CPULatencyRequest] = []) -> ReplayPlan? {
    guard !events.isEmpty, events.count <= 1 << 16 else { return nil }
    // What `info`, `latency` and `fidelity` compute from the same events.
    var summary = TraceSummary.Builder(taskCount: tasks.count)
    for e in events { summary.feed(e) }
    _ = summary.finish().tasks.count
    _ = LatencyAnalysis(events: events, taskCount: tasks.count).tasks.count
    let selection = Set(tasks.indices.dropFirst().filter { !tasks[$0].isKernelThread }.map { TaskIndex($0) })
    let plan = PlanBuilder.build(events: events, tasks: tasks, selection: selection, cpuLatencyRequests: cpuLatencyRequests)
    var atoms = 0
    for p in plan.programs { atoms += p.atoms.count + p.waitCount + p.timedSleepCount + p.wakeCount }
    _ = (atoms, plan.totalRecordedCPU)
    return plan
}
