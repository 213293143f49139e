import Foundation
import Testing
@testable import TraceFormat

private let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// True when python3 with the jsonschema module is there to validate against the schema.
private let pythonJSONSchema: Bool = {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = ["python3", "-c", "import jsonschema"]
    p.standardError = FileHandle.nullDevice
    guard (try? p.run()) != nil else { return false }
    p.waitUntilExit()
    return p.terminationStatus == 0
}()

struct ExportPerfettoTests {
    func export(_ name: String) throws -> (text: String, reader: TraceReader) {
        let reader = try TraceReader(path: repository.appendingPathComponent("traces/\(name)").path)
        return (PerfettoExporter.export(events: try reader.allEvents(), tasks: reader.tasks, metadata: reader.metadata), reader)
    }

    @Test(arguments: ["messaging.rpl", "periodic.rpl", "pipe-pingpong.rpl"])
    func slicesMatchRunIntervalsAndFlowsPair(_ name: String) throws {
        let (text, reader) = try export(name)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        let events = try #require(json["traceEvents"] as? [[String: Any]])
        // CPU time per tid from the CPU-track slices equals the run intervals' (ns, 1 ns rounding per slice).
        var sliceMicros: [Int: Double] = [:]
        var sliceCount = 0
        for e in events where e["ph"] as? String == "X" && e["pid"] as? Int == PerfettoExporter.cpuProcessID {
            let args = try #require(e["args"] as? [String: Any])
            sliceMicros[args["tid"] as! Int, default: 0] += e["dur"] as! Double
            sliceCount += 1
        }
        var tracker = RunTracker(taskCount: reader.tasks.count)
        var expected: [Int: UInt64] = [:]
        var intervals = 0
        try reader.forEachEvent { event in
            if let run = tracker.feed(event), !run.task.isIdle {
                expected[Int(reader.tasks[run.task.intValue].tid), default: 0] += run.length
                intervals += 1
            }
        }
        tracker.finish { run in
            expected[Int(reader.tasks[run.task.intValue].tid), default: 0] += run.length
            intervals += 1
        }
        #expect(sliceCount == intervals)
        #expect(Set(sliceMicros.keys) == Set(expected.keys))
        for (tid, ns) in expected {
            let got = (sliceMicros[tid] ?? 0) * 1000
            #expect(abs(got - Double(ns)) < 1 + Double(sliceCount) * 0.001, "tid \(tid): \(got) ns vs \(ns) ns")
        }
        // Every flow has one start and one end; each start lies inside a slice on its CPU track.
        let starts = events.filter { $0["ph"] as? String == "s" }
        let ends = events.filter { $0["ph"] as? String == "f" }
        #expect(starts.count == ends.count)
        #expect(Set(starts.map { $0["id"] as! Int }) == Set(ends.map { $0["id"] as! Int }))
        var slicesByCPU: [Int: [(Double, Double)]] = [:]
        for e in events where e["ph"] as? String == "X" && e["pid"] as? Int == PerfettoExporter.cpuProcessID {
            slicesByCPU[e["tid"] as! Int, default: []].append((e["ts"] as! Double, e["ts"] as! Double + (e["dur"] as! Double)))
        }
        var bound = 0
        for s in starts.prefix(500) {
            let ts = s["ts"] as! Double
            if slicesByCPU[s["tid"] as! Int, default: []].contains(where: { $0.0 <= ts + 0.0005 && ts <= $0.1 + 0.0005 }) { bound += 1 }
        }
        // Wakers on a CPU whose switch-ins were not logged may lack a slice at that instant: allow a few.
        #expect(bound * 100 >= min(500, starts.count) * 95, "\(bound) of \(min(500, starts.count)) flow starts inside a slice")
        // Thread names for every task that ran.
        let named = Set(events.filter { $0["ph"] as? String == "M" && $0["name"] as? String == "thread_name" && $0["pid"] as? Int != PerfettoExporter.cpuProcessID }
            .map { $0["tid"] as! Int })
        #expect(named == Set(expected.keys))
    }

    @Test(.enabled(if: pythonJSONSchema), arguments: ["messaging.rpl", "periodic.rpl"])
    func validatesAgainstTheSchema(_ name: String) throws {
        let (text, _) = try export(name)
        let dir = try TemporaryDirectory()
        try Data(text.utf8).write(to: URL(fileURLWithPath: dir.path("trace.json")))
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", repository.appendingPathComponent("scripts/validate-perfetto.py").path, dir.path("trace.json")]
        let errors = Pipe()
        p.standardError = errors
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationStatus == 0, "\(message.suffix(1500))")
    }

    @Test func schemaRejectsAMalformedSlice() throws {
        // The validator is not a rubber stamp: a slice without "dur" fails.
        guard pythonJSONSchema else { return }
        let dir = try TemporaryDirectory()
        let bad = #"{"displayTimeUnit":"ns","otherData":{},"traceEvents":[{"ph":"X","cat":"sched","name":"a","pid":1,"tid":1,"ts":1.0,"args":{}}]}"#
        try Data(bad.utf8).write(to: URL(fileURLWithPath: dir.path("bad.json")))
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", repository.appendingPathComponent("scripts/validate-perfetto.py").path, dir.path("bad.json")]
        p.standardError = FileHandle.nullDevice
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        #expect(p.terminationStatus != 0)
    }

    @Test func escapesCommsAndFormatsMicroseconds() {
        #expect(PerfettoExporter.quoted("a\"b\\c\u{1}") == #""a\"b\\c\u0001""#)
        #expect(PerfettoExporter.micros(1_234_567) == "1234.567")
        #expect(PerfettoExporter.micros(5) == "0.005")
        #expect(PerfettoExporter.micros(1_000_050) == "1000.050")
    }
}
