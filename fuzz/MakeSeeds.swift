// Writes the fuzz seed corpus: valid traces made by TraceWriter (complete, unfinished and
// truncated) and, for the chunk-payload mode of FuzzDecoder.swift, raw chunk payloads.
// Built and run by fuzz/run.sh: `make-seeds DIR`.
import Foundation

@main
struct MakeSeeds {
    static func main() throws {
        let dir = CommandLine.arguments.count > 1 ? CommandLine.arguments[1] : "fuzz/corpus"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var rng = SystemRandomNumberGenerator()
        var number = 0
        for variant in 0..<12 {
            let path = "\(dir)/seed-\(variant).rpl"
            var metadata = TraceMetadata()
            metadata.kernelRelease = "6.18.0"
            metadata.cpuCount = 2
            let writer = try TraceWriter(path: path, metadata: metadata, chunkEventLimit: [1, 3, 8, 40][variant % 4], chunkByteLimit: 64)
            let taskCount = 2 + variant
            for t in 1..<taskCount { _ = writer.addTask(TaskInfo(tid: Int32(100 + t), tgid: 100, comm: "task\(t)")) }
            var t: UInt64 = 1_000_000
            var current: [TaskIndex] = [.idle, .idle]
            for i in 0..<(20 + variant * 10) {
                t += UInt64.random(in: 0...5000, using: &rng)
                let cpu = i % 2
                let task = TaskIndex(Int.random(in: 1..<taskCount, using: &rng))
                let kind: Event.Kind
                switch (i + variant) % 9 {
                case 0, 4: kind = .switchTask(prev: current[cpu], prevState: TaskState.allCases.randomElement(using: &rng)!, next: i % 3 == 0 ? .idle : task)
                case 1, 5: kind = .waking(waker: i % 4 == 0 ? nil : current[cpu], target: task, targetCPU: CPU(1 - cpu), context: WakeContext.allCases.randomElement(using: &rng)!)
                case 2: kind = .runtime(task: current[cpu], nanoseconds: UInt64.random(in: 0...100_000, using: &rng))
                case 3: kind = .migrate(task: task, from: CPU(cpu), to: CPU(1 - cpu))
                case 6: kind = .wakeupNew(target: task, targetCPU: CPU(cpu))
                case 7: kind = variant % 2 == 0 ? .fork(parent: current[cpu], child: task) : .exit(task: task)
                default: kind = .exec(task: current[cpu], comm: "exec\(i)")
                }
                if case let .switchTask(_, _, next) = kind { current[cpu] = next }
                try writer.append(Event(timestamp: t, cpu: CPU(cpu), kind: kind))
            }
            if variant % 3 == 2 { try writer.flush() } else { try writer.finish(metadata: metadata) }
            // A truncated copy, and each chunk's payload as an input for the chunk mode.
            let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
            try Data(bytes.prefix(bytes.count * 2 / 3)).write(to: URL(fileURLWithPath: "\(dir)/seed-\(variant)-cut.rpl"))
            var offset = RPLFormat.fileHeaderSize
            while offset + RPLFormat.blockHeaderSize <= bytes.count {
                let length = bytes.withUnsafeBytes { Int(readLE($0, offset + 4, as: UInt32.self)) }
                guard offset + RPLFormat.blockHeaderSize + length <= bytes.count else { break }
                if bytes[offset] == BlockType.events.rawValue && number < 200 {
                    let payload = bytes[(offset + RPLFormat.blockHeaderSize)..<(offset + RPLFormat.blockHeaderSize + length)]
                    let modeByte = UInt8(((taskCount - 1) & 63) << 1) | 1
                    try Data([modeByte] + payload).write(to: URL(fileURLWithPath: "\(dir)/chunk-\(number).bin"))
                    number += 1
                }
                offset += RPLFormat.blockHeaderSize + length
            }
        }
        print("wrote \(12 * 2) traces and \(number) chunk payloads to \(dir)")
    }
}
