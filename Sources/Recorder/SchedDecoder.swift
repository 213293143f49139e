import Foundation

/// The trace events the recorder enables: the scheduler's (`events/sched/`) and, where the
/// kernel has them, the CPU latency QoS requests (`events/power/`).
enum RawKind: UInt8, CaseIterable, Sendable {
    case switchTask = 1, waking, wakeupNew, fork, exec, exit, migrate, runtime
    case latencyAdd, latencyUpdate, latencyRemove

    /// The CPU latency QoS events (`cpu_latency_qos_add/update/remove_request`).
    static let cpuLatencyKinds: [RawKind] = [.latencyAdd, .latencyUpdate, .latencyRemove]

    var eventName: String {
        switch self {
        case .switchTask: "sched_switch"
        case .waking: "sched_waking"
        case .wakeupNew: "sched_wakeup_new"
        case .fork: "sched_process_fork"
        case .exec: "sched_process_exec"
        case .exit: "sched_process_exit"
        case .migrate: "sched_migrate_task"
        case .runtime: "sched_stat_runtime"
        case .latencyAdd: "pm_qos_add_request"
        case .latencyUpdate: "pm_qos_update_request"
        case .latencyRemove: "pm_qos_remove_request"
        }
    }

    /// The event's directory under `events/`.
    var system: String {
        switch self {
        case .latencyAdd, .latencyUpdate, .latencyRemove: "power"
        default: "sched"
        }
    }

    /// `system/event`, as tracefs names it.
    var qualifiedName: String { "\(system)/\(eventName)" }
}

/// A task name of up to 15 bytes, kept inline so decoding allocates nothing.
struct Comm: Equatable, Sendable {
    var low: UInt64 = 0
    var high: UInt64 = 0

    init() {}

    init(_ text: String) {
        var bytes = Array(text.utf8.prefix(15))
        bytes.append(contentsOf: repeatElement(0, count: 16 - bytes.count))
        withUnsafeMutableBytes(of: &self) { $0.copyBytes(from: bytes) }
    }

    var string: String {
        withUnsafeBytes(of: self) { raw in
            let n = raw.firstIndex(of: 0) ?? 16
            return String(decoding: raw.prefix(n), as: UTF8.self)
        }
    }
}

/// One decoded scheduler event, still naming tasks by tid. Field meaning per kind:
///
/// | kind | pid1 | pid2 | value | comm1 | comm2 |
/// |---|---|---|---|---|---|
/// | switchTask | prev_pid | next_pid | prev_state | prev_comm | next_comm |
/// | waking | pid | – | target_cpu | comm | – |
/// | wakeupNew | pid | – | target_cpu | comm | – |
/// | fork | parent_pid | child_pid | – | parent_comm | child_comm |
/// | exec | pid | old_pid | – | basename of filename | – |
/// | exit | pid | – | – | comm | – |
/// | migrate | pid | – | orig_cpu << 32 \| dest_cpu | comm | – |
/// | runtime | pid | – | runtime (ns) | comm | – |
/// | latencyAdd/Update/Remove | – | – | value (µs, s32) | – | – |
struct RawRecord: Sendable {
    var timestamp: UInt64
    var kind: RawKind
    /// `common_flags` of the trace entry (hard-irq, soft-irq, NMI bits).
    var flags: UInt8
    var cpu: UInt16
    /// `common_pid`: the task current on the CPU when the event fired.
    var commonPid: Int32
    var pid1: Int32
    var pid2: Int32 = 0
    var value: Int64 = 0
    var comm1 = Comm()
    var comm2 = Comm()
}

/// Where a task-name field is in a record.
enum CommField: Sendable {
    case fixed(offset: Int)
    case dynamic(offset: Int, relative: Bool)
}

/// Decodes raw ring-buffer records of the recorded events with field offsets looked up once from
/// the kernel's format files (they differ between kernels: never hard-coded).
struct SchedDecoder: Sendable {
    /// `kindByID[id]` is the kind's raw value, 0 for events not decoded.
    private var kindByID: [UInt8] = Array(repeating: 0, count: 65536)
    private var minimumSize: [Int] = Array(repeating: 0, count: RawKind.allCases.count + 1)
    private var typeOffset = 0, flagsOffset = 2, pidOffset = 4
    // sched_switch
    private var swPrevComm = 0, swPrevPid = 0, swPrevState = 0, swPrevStateSize = 8, swNextComm = 0, swNextPid = 0
    // sched_waking / sched_wakeup_new
    private var wkComm = CommField.fixed(offset: 0), wkPid = 0, wkTargetCPU = 0
    private var wnComm = CommField.fixed(offset: 0), wnPid = 0, wnTargetCPU = 0
    // sched_process_fork
    private var fkParentComm = CommField.fixed(offset: 0), fkParentPid = 0, fkChildComm = CommField.fixed(offset: 0), fkChildPid = 0
    // sched_process_exec
    private var exFilename = CommField.fixed(offset: 0), exPid = 0, exOldPid = 0
    // sched_process_exit
    private var xtComm = CommField.fixed(offset: 0), xtPid = 0
    // sched_migrate_task
    private var mgComm = CommField.fixed(offset: 0), mgPid = 0, mgOrig = 0, mgDest = 0
    // sched_stat_runtime
    private var rtComm = CommField.fixed(offset: 0), rtPid = 0, rtRuntime = 0
    // pm_qos_*_request (one layout each; the same on every kernel seen, but looked up anyway)
    private var latencyValue: [RawKind: Int] = [:]
    /// The event ids this decoder knows, by kind.
    private(set) var ids: [RawKind: UInt16] = [:]

    /// Loads the layouts from `<tracingDir>/events/<system>/<event>/format`.
    /// - Parameter kinds: the events to decode (sched_stat_runtime and the pm_qos events may
    ///   be left out).
    /// - Throws: `RecorderError.badEventFormat` when a file is missing or unexpected.
    init(tracingDirectory: String, kinds: [RawKind]) throws {
        var layouts: [RawKind: (EventLayout, String)] = [:]
        for kind in kinds {
            let path = "\(tracingDirectory)/events/\(kind.qualifiedName)/format"
            guard let text = readSmallFile(path) else {
                throw RecorderError.badEventFormat(path: path, reason: "cannot read it (\(errnoText())); is the event compiled into this kernel?")
            }
            layouts[kind] = (try EventLayout.parse(text, path: path), path)
        }
        try self.init(layouts: layouts)
    }

    /// Builds a decoder from parsed layouts (path per layout for errors).
    init(layouts: [RawKind: (EventLayout, String)]) throws {
        guard let anyLayout = layouts.values.first else {
            throw RecorderError.invalidOption("no events to record")
        }
        let (common, commonPath) = anyLayout
        typeOffset = try common.field("common_type", size: [2], path: commonPath).offset
        flagsOffset = try common.field("common_flags", size: [1], path: commonPath).offset
        pidOffset = try common.field("common_pid", size: [4], path: commonPath).offset
        func comm(_ l: EventLayout, _ name: String, _ path: String) throws -> CommField {
            let f = try l.field(name, size: [16], dynamic: true, path: path)
            return f.isDynamic ? .dynamic(offset: f.offset, relative: f.isRelative) : .fixed(offset: f.offset)
        }
        func end(_ f: FieldLayout) -> Int { f.offset + (f.isDynamic ? 4 : f.size) }
        for (kind, (l, path)) in layouts {
            var fieldEnds: [Int] = [pidOffset + 4]
            func int(_ name: String, _ sizes: [Int] = [4]) throws -> Int {
                let f = try l.field(name, size: sizes, path: path)
                fieldEnds.append(end(f))
                return f.offset
            }
            func str(_ name: String) throws -> CommField {
                let c = try comm(l, name, path)
                if let f = l.fields[name] { fieldEnds.append(end(f)) }
                return c
            }
            switch kind {
            case .switchTask:
                swPrevComm = try l.field("prev_comm", size: [16], path: path).offset
                swNextComm = try l.field("next_comm", size: [16], path: path).offset
                fieldEnds.append(swPrevComm + 16)
                fieldEnds.append(swNextComm + 16)
                swPrevPid = try int("prev_pid")
                swNextPid = try int("next_pid")
                swPrevState = try int("prev_state", [4, 8])
                swPrevStateSize = l.fields["prev_state"]!.size
            case .waking:
                wkComm = try str("comm"); wkPid = try int("pid"); wkTargetCPU = try int("target_cpu")
            case .wakeupNew:
                wnComm = try str("comm"); wnPid = try int("pid"); wnTargetCPU = try int("target_cpu")
            case .fork:
                fkParentComm = try str("parent_comm"); fkParentPid = try int("parent_pid")
                fkChildComm = try str("child_comm"); fkChildPid = try int("child_pid")
            case .exec:
                let f = try l.field("filename", size: [], dynamic: true, path: path)
                guard f.isDynamic else { throw RecorderError.badEventFormat(path: path, reason: "filename is not a __data_loc string") }
                exFilename = .dynamic(offset: f.offset, relative: f.isRelative)
                fieldEnds.append(end(f))
                exPid = try int("pid"); exOldPid = try int("old_pid")
            case .exit:
                xtComm = try str("comm"); xtPid = try int("pid")
            case .migrate:
                mgComm = try str("comm"); mgPid = try int("pid"); mgOrig = try int("orig_cpu"); mgDest = try int("dest_cpu")
            case .runtime:
                rtComm = try str("comm"); rtPid = try int("pid"); rtRuntime = try int("runtime", [8])
            case .latencyAdd, .latencyUpdate, .latencyRemove:
                latencyValue[kind] = try int("value")
            }
            kindByID[Int(l.id)] = kind.rawValue
            minimumSize[Int(kind.rawValue)] = fieldEnds.max() ?? 0
            ids[kind] = l.id
        }
    }

    /// Decodes one record of `size` bytes, or returns nil for an event this decoder does not
    /// know (or a record too short to hold its fields).
    func decode(_ p: UnsafeRawPointer, size: Int, timestamp: UInt64, cpu: UInt16) -> RawRecord? {
        guard size >= 8 else { return nil }
        let type = p.loadUnaligned(fromByteOffset: typeOffset, as: UInt16.self)
        let raw = kindByID[Int(type)]
        guard raw != 0, let kind = RawKind(rawValue: raw), size >= minimumSize[Int(raw)] else { return nil }
        var r = RawRecord(timestamp: timestamp, kind: kind,
                          flags: p.loadUnaligned(fromByteOffset: flagsOffset, as: UInt8.self), cpu: cpu,
                          commonPid: p.loadUnaligned(fromByteOffset: pidOffset, as: Int32.self), pid1: 0)
        func i32(_ o: Int) -> Int32 { p.loadUnaligned(fromByteOffset: o, as: Int32.self) }
        switch kind {
        case .switchTask:
            r.pid1 = i32(swPrevPid)
            r.pid2 = i32(swNextPid)
            r.value = swPrevStateSize == 8 ? p.loadUnaligned(fromByteOffset: swPrevState, as: Int64.self) : Int64(i32(swPrevState))
            r.comm1 = Self.fixedComm(p, swPrevComm)
            r.comm2 = Self.fixedComm(p, swNextComm)
        case .waking:
            r.pid1 = i32(wkPid); r.value = Int64(i32(wkTargetCPU)); r.comm1 = Self.comm(p, wkComm, size: size)
        case .wakeupNew:
            r.pid1 = i32(wnPid); r.value = Int64(i32(wnTargetCPU)); r.comm1 = Self.comm(p, wnComm, size: size)
        case .fork:
            r.pid1 = i32(fkParentPid); r.pid2 = i32(fkChildPid)
            r.comm1 = Self.comm(p, fkParentComm, size: size); r.comm2 = Self.comm(p, fkChildComm, size: size)
        case .exec:
            r.pid1 = i32(exPid); r.pid2 = i32(exOldPid); r.comm1 = Self.comm(p, exFilename, size: size, basename: true)
        case .exit:
            r.pid1 = i32(xtPid); r.comm1 = Self.comm(p, xtComm, size: size)
        case .migrate:
            r.pid1 = i32(mgPid)
            r.value = Int64(UInt32(bitPattern: i32(mgOrig))) << 32 | Int64(UInt32(bitPattern: i32(mgDest)))
            r.comm1 = Self.comm(p, mgComm, size: size)
        case .runtime:
            r.pid1 = i32(rtPid); r.value = p.loadUnaligned(fromByteOffset: rtRuntime, as: Int64.self)
            r.comm1 = Self.comm(p, rtComm, size: size)
        case .latencyAdd, .latencyUpdate, .latencyRemove:
            r.pid1 = r.commonPid; r.value = Int64(i32(latencyValue[kind] ?? 0))
        }
        return r
    }

    private static func fixedComm(_ p: UnsafeRawPointer, _ offset: Int) -> Comm {
        var c = Comm()
        c.low = p.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
        c.high = p.loadUnaligned(fromByteOffset: offset + 8, as: UInt64.self)
        // The kernel NUL-terminates within 16 bytes; make sure of it.
        c.high &= 0x00FF_FFFF_FFFF_FFFF
        return c
    }

    /// Reads a task name from a fixed or `__data_loc` field; with `basename`, only what follows
    /// the last `/` (how the kernel derives comm from an exec'd file name).
    private static func comm(_ p: UnsafeRawPointer, _ field: CommField, size: Int, basename: Bool = false) -> Comm {
        switch field {
        case let .fixed(offset):
            return fixedComm(p, offset)
        case let .dynamic(offset, relative):
            let loc = p.loadUnaligned(fromByteOffset: offset, as: UInt32.self)
            var start = Int(loc & 0xFFFF) + (relative ? offset + 4 : 0)
            var end = start + Int(loc >> 16)
            guard start <= size else { return Comm() }
            end = min(end, size)
            // Stop at the terminating NUL.
            var stop = start
            while stop < end && p.load(fromByteOffset: stop, as: UInt8.self) != 0 { stop += 1 }
            end = stop
            if basename {
                var i = end - 1
                while i >= start && p.load(fromByteOffset: i, as: UInt8.self) != UInt8(ascii: "/") { i -= 1 }
                start = i + 1
            }
            var c = Comm()
            let n = min(end - start, 15)
            if n > 0 {
                withUnsafeMutableBytes(of: &c) { dst in
                    dst.copyMemory(from: UnsafeRawBufferPointer(start: p + start, count: n))
                }
            }
            return c
        }
    }
}

/// Reads a small (pseudo-)file such as those under /proc or tracefs; nil when it cannot be read.
func readSmallFile(_ path: String, limit: Int = 1 << 20) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 8192)
    while bytes.count < limit {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 { if errno == EINTR { continue }; return nil }
        if n == 0 { break }
        bytes.append(contentsOf: chunk[0..<n])
    }
    return String(decoding: bytes, as: UTF8.self)
}
