import Foundation
import Testing
@testable import TraceFormat

/// The writer's hand-made task JSON must be byte for byte what `JSONEncoder` (sorted keys)
/// writes, or the files would change.
@Suite struct TaskJSONTests {
    @Test func usableWithTheCurrentTaskInfo() {
        #expect(TaskJSON.isUsable, "TaskInfo changed: update TaskJSON.append (and its field count) in TraceWriter.swift")
    }

    @Test func randomTasksEncodeLikeJSONEncoder() throws {
        let seed = UInt64.random(in: 0...UInt64.max)
        var rng = SplitMix64(seed: seed)
        // Every ASCII byte, non-ASCII scalars of 2, 3 and 4 UTF-8 bytes, U+2028.
        let alphabet: [Unicode.Scalar] = (0..<0x80).map { Unicode.Scalar(UInt8($0)) }
            + ["é", "ß", "✓", "€", "😀", "\u{2028}", "\u{FFFD}"]
        for round in 0..<200 {
            var tasks = (0..<Int.random(in: 0...20, using: &rng)).map { randomTask(&rng, number: $0) }
            for i in tasks.indices where Bool.random(using: &rng) {
                var comm = String.UnicodeScalarView()
                for _ in 0..<Int.random(in: 0...24, using: &rng) { comm.append(alphabet.randomElement(using: &rng)!) }
                tasks[i].comm = String(comm)
                if Bool.random(using: &rng) { tasks[i].tid = Int32.random(in: Int32.min...Int32.max, using: &rng) }
            }
            // Compared byte for byte; a failure shows both as text.
            let expected = Array(try jsonEncoder.encode(tasks)), got = TaskJSON.encode(tasks: tasks)
            let same = got == expected
            #expect(same, "seed \(seed), round \(round):\n\(String(decoding: got, as: UTF8.self))\nexpected\n\(String(decoding: expected, as: UTF8.self))")
            let definitions = tasks.map { TaskDefinition(index: UInt32.random(in: 0...UInt32.max, using: &rng), task: $0) }
            let expectedDefinitions = Array(try jsonEncoder.encode(definitions)), gotDefinitions = TaskJSON.encode(definitions: definitions)
            let sameDefinitions = gotDefinitions == expectedDefinitions
            #expect(sameDefinitions, "seed \(seed), round \(round):\n\(String(decoding: gotDefinitions, as: UTF8.self))\nexpected\n\(String(decoding: expectedDefinitions, as: UTF8.self))")
            if !same || !sameDefinitions { break }  // one report is enough
        }
    }
}
