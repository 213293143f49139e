import Foundation
import Testing
@testable import TraceFormat

/// CPU latency QoS requests: the effective-limit timeline, and the metadata field that holds
/// them (optional, and never fatal when malformed).
@Suite struct CPULatencyTests {
    static let origin: UInt64 = 5_000_000_000

    static func request(_ ms: UInt64, _ action: CPULatencyRequest.Action, _ request: Int, task: Int, value: Int32 = -1) -> CPULatencyRequest {
        CPULatencyRequest(timestamp: origin + ms * 1_000_000, action: action, request: request, task: TaskIndex(task),
                          tid: Int32(100 + task), valueMicroseconds: value)
    }

    /// Task 1 holds 50 µs from 10 ms, lowers it to 20 µs at 30 ms and removes it at 90 ms;
    /// task 2 holds 0 µs from 40 to 60 ms and adds 70 µs at 80 ms (never removed); task 3
    /// (not selected) holds 0 µs from 5 to 100 ms.
    static let requests: [CPULatencyRequest] = [
        request(5, .add, 1, task: 3), request(5, .update, 1, task: 3, value: 0),
        request(10, .add, 2, task: 1), request(10, .update, 2, task: 1, value: 50),
        request(30, .update, 2, task: 1, value: 20),
        request(40, .add, 3, task: 2), request(40, .update, 3, task: 2, value: 0),
        request(60, .remove, 3, task: 2),
        request(80, .add, 4, task: 2, value: 70),
        request(90, .remove, 2, task: 1),
        request(100, .remove, 1, task: 3),
    ]

    static func ms(_ n: UInt64) -> UInt64 { n * 1_000_000 }

    @Test func overlappingRequestsOfTwoTasksGiveTheirMinimumOverTime() {
        let holds = CPULatencyTimeline.holds(of: Self.requests, tasks: [TaskIndex(1), TaskIndex(2)], origin: Self.origin)
        #expect(holds == [
            CPULatencyHold(valueMicroseconds: 50, startOffsetNanoseconds: Self.ms(10), endOffsetNanoseconds: Self.ms(30), holders: [TaskIndex(1)]),
            CPULatencyHold(valueMicroseconds: 20, startOffsetNanoseconds: Self.ms(30), endOffsetNanoseconds: Self.ms(40), holders: [TaskIndex(1)]),
            CPULatencyHold(valueMicroseconds: 0, startOffsetNanoseconds: Self.ms(40), endOffsetNanoseconds: Self.ms(60), holders: [TaskIndex(2)]),
            CPULatencyHold(valueMicroseconds: 20, startOffsetNanoseconds: Self.ms(60), endOffsetNanoseconds: Self.ms(90), holders: [TaskIndex(1)]),
            // Task 2's 70 µs request outlives task 1's and is never removed.
            CPULatencyHold(valueMicroseconds: 70, startOffsetNanoseconds: Self.ms(90), endOffsetNanoseconds: nil, holders: [TaskIndex(2)]),
        ])
        let changes = CPULatencyTimeline.changes(holds)
        #expect(changes.map(\.offsetNanoseconds) == [10, 30, 40, 60, 90].map(Self.ms))
        #expect(changes.map(\.valueMicroseconds) == [50, 20, 0, 20, 70])
    }

    @Test func unselectedTasksAreIgnoredAndEveryTaskCountsWithoutASelection() {
        let onlyOne = CPULatencyTimeline.holds(of: Self.requests, tasks: [TaskIndex(1)], origin: Self.origin)
        #expect(onlyOne.map(\.valueMicroseconds) == [50, 20])
        #expect(onlyOne.last?.endOffsetNanoseconds == Self.ms(90))
        #expect(CPULatencyTimeline.changes(onlyOne) == [
            CPULatencyChange(offsetNanoseconds: Self.ms(10), valueMicroseconds: 50),
            CPULatencyChange(offsetNanoseconds: Self.ms(30), valueMicroseconds: 20),
            CPULatencyChange(offsetNanoseconds: Self.ms(90), valueMicroseconds: nil),
        ])
        #expect(CPULatencyTimeline.holds(of: Self.requests, tasks: [TaskIndex(7)], origin: Self.origin).isEmpty)
        // Everyone: task 3's 0 µs covers 5–100 ms (held by 3, and by 2 from 40 to 60 ms); then 70 µs.
        let all = CPULatencyTimeline.holds(of: Self.requests, origin: Self.origin)
        #expect(all == [
            CPULatencyHold(valueMicroseconds: 0, startOffsetNanoseconds: Self.ms(5), endOffsetNanoseconds: Self.ms(100), holders: [TaskIndex(2), TaskIndex(3)]),
            CPULatencyHold(valueMicroseconds: 70, startOffsetNanoseconds: Self.ms(100), endOffsetNanoseconds: nil, holders: [TaskIndex(2)]),
        ])
    }

    @Test func gapsDefaultsUnknownRequestsAndEarlyCallsAreHandled() {
        let requests = [
            // Before the origin: placed at 0; the add and update at one instant are one change.
            CPULatencyRequest(timestamp: Self.origin - 1_000, action: .add, request: 1, task: TaskIndex(1), tid: 101, valueMicroseconds: -1),
            CPULatencyRequest(timestamp: Self.origin - 500, action: .update, request: 1, task: TaskIndex(1), tid: 101, valueMicroseconds: 10),
            Self.request(10, .update, 1, task: 1, value: -1),            // back to no limit: a gap
            Self.request(20, .update, 1, task: 1, value: 2_000_000_000), // the default limits nothing
            Self.request(30, .update, 9, task: 1, value: 5),             // added before the recording
            Self.request(40, .remove, 42, task: 1),                      // unknown: ignored
            Self.request(50, .remove, 9, task: 1),
        ]
        let holds = CPULatencyTimeline.holds(of: requests, origin: Self.origin)
        #expect(holds == [
            CPULatencyHold(valueMicroseconds: 10, startOffsetNanoseconds: 0, endOffsetNanoseconds: Self.ms(10), holders: [TaskIndex(1)]),
            CPULatencyHold(valueMicroseconds: 5, startOffsetNanoseconds: Self.ms(30), endOffsetNanoseconds: Self.ms(50), holders: [TaskIndex(1)]),
        ])
        #expect(CPULatencyTimeline.changes(holds).map(\.valueMicroseconds) == [10, nil, 5, nil])
        // Out of order in the list (a crafted file): taken in time order.
        #expect(CPULatencyTimeline.holds(of: requests.reversed(), origin: Self.origin) == holds)
    }

    // MARK: Metadata

    static func metadataJSON(requests: String?) -> Data {
        var m = TraceMetadata()
        m.kernelRelease = "6.18.0"
        var json = String(decoding: try! JSONEncoder().encode(m), as: UTF8.self)
        if let requests { json = String(json.dropLast()) + ",\"cpuLatencyRequests\":\(requests)}" }
        return Data(json.utf8)
    }

    @Test func requestsRoundTripThroughATraceFile() throws {
        let dir = try TemporaryDirectory()
        var m = TraceMetadata()
        m.kernelRelease = "6.18.0"
        m.cpuLatencyRequests = Self.requests
        let written = try writeTrace([.addTask(TaskInfo(tid: 101, tgid: 101, comm: "a"))], to: dir.path("q.rpl"), metadata: TraceMetadata(), finalMetadata: m)
        let reader = try TraceReader(path: written.path)
        #expect(reader.metadata.cpuLatencyRequests == Self.requests)
        #expect(reader.metadata.decodingWarnings.isEmpty)
        #expect(reader.version.minor == RPLFormat.minorVersion)
        // Absent (an older file): nil, not an error; present and empty: traced, none made.
        #expect(try JSONDecoder().decode(TraceMetadata.self, from: Self.metadataJSON(requests: nil)).cpuLatencyRequests == nil)
        #expect(try JSONDecoder().decode(TraceMetadata.self, from: Self.metadataJSON(requests: "[]")).cpuLatencyRequests == [])
    }

    @Test(arguments: [
        "\"garbage\"", "[1, 2]", "[{\"timestamp\": 1}]", "{\"a\": 1}",
        "[{\"timestamp\": 1, \"action\": \"open\", \"request\": 1, \"task\": 1, \"tid\": 5, \"valueMicroseconds\": 0}]",
        "[{\"timestamp\": -1, \"action\": \"add\", \"request\": 1, \"task\": 1, \"tid\": 5, \"valueMicroseconds\": 0}]",
        "[{\"timestamp\": 1, \"action\": \"add\", \"request\": 1, \"task\": 1, \"tid\": 5, \"valueMicroseconds\": 99999999999}]",
    ])
    func malformedRequestsAreIgnoredWithAWarning(value: String) throws {
        let m = try JSONDecoder().decode(TraceMetadata.self, from: Self.metadataJSON(requests: value))
        #expect(m.cpuLatencyRequests == nil)
        #expect(m.kernelRelease == "6.18.0")
        #expect(m.decodingWarnings.count == 1)
        #expect(m.decodingWarnings.first?.contains("cpuLatencyRequests is malformed") == true)
    }

    @Test func aTraceWithMalformedRequestsStillOpensThroughItsFooter() throws {
        let dir = try TemporaryDirectory()
        var m = TraceMetadata()
        m.cpuLatencyRequests = [Self.request(1, .add, 1, task: 1)]
        var rng = SplitMix64(seed: 7)
        let written = try writeTrace(randomSteps(&rng, count: 300), to: dir.path("ok.rpl"), metadata: TraceMetadata(),
                                     finalMetadata: m, chunkEventLimit: 50)
        // Break the action of the final metadata's request, as a writer with a bug would.
        let bytes = try patchingFinalMetadata(written.bytes, replacing: "\"add\"", with: "\"adz\"")
        let path = dir.path("bad.rpl")
        try writeBytes(bytes, to: path)
        let reader = try TraceReader(path: path)
        #expect(!reader.isRecovered)
        #expect(reader.damage.isEmpty)
        #expect(reader.metadata.cpuLatencyRequests == nil)
        #expect(reader.metadata.decodingWarnings.count == 1)
        #expect(try reader.allEvents() == written.events)
    }
}
