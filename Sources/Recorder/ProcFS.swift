import Foundation
import TraceFormat

/// What /proc says about a live task.
struct ProcTaskInfo: Equatable, Sendable {
    var tgid: Int32
    var ppid: Int32
    var comm: String
    var isKernelThread: Bool
    var policy: SchedulingPolicy?
    var nice: Int32?
    var realtimePriority: Int32?
    var affinity: [Int]?
}

/// Reads task and machine facts from /proc and /sys.
enum ProcFS {
    /// PF_KTHREAD in the `flags` field of /proc/PID/stat.
    static let kernelThreadFlag: UInt64 = 0x0020_0000

    /// Facts about task `tid` (any thread id), or nil when it no longer exists.
    ///
    /// Called for every new task while recording (the readers call it for every fork), so it
    /// reads one file, `/proc/TID/status`, into a stack buffer and parses the bytes; policy,
    /// real-time priority and nice come from system calls (~0.7 µs together, against ~8 µs
    /// for reading `/proc/TID/stat` as well). `stat` is still read when `status` cannot give
    /// the same answers: no `Kthread:` line (kernels before 6.x) or an escaped name.
    static func task(_ tid: Int32) -> ProcTaskInfo? {
        guard tid > 0 else { return nil }
        return withUnsafeTemporaryAllocation(byteCount: 8192, alignment: 8) { buffer -> ProcTaskInfo? in
            guard let m = readProcFile(tid, "status", into: buffer) else { return nil }
            let status = parseStatus(UnsafeRawBufferPointer(rebasing: buffer[0..<m]))
            if let name = status.name, let kernelThread = status.isKernelThread, let ppid = status.ppid {
                var info = ProcTaskInfo(tgid: status.tgid ?? tid, ppid: ppid, comm: name, isKernelThread: kernelThread)
                info.affinity = status.affinity
                schedulingFacts(of: tid, into: &info)
                return info
            }
            return fromStat(tid, status: status, buffer: buffer)
        }
    }

    /// The same facts the slower way: all but tgid and affinity from `/proc/TID/stat`. The
    /// tests check that both ways agree.
    static func taskReadingStat(_ tid: Int32) -> ProcTaskInfo? {
        guard tid > 0 else { return nil }
        return withUnsafeTemporaryAllocation(byteCount: 8192, alignment: 8) { buffer -> ProcTaskInfo? in
            guard let m = readProcFile(tid, "status", into: buffer) else { return nil }
            return fromStat(tid, status: parseStatus(UnsafeRawBufferPointer(rebasing: buffer[0..<m])), buffer: buffer)
        }
    }

    private static func fromStat(_ tid: Int32, status: StatusFields, buffer: UnsafeMutableRawBufferPointer) -> ProcTaskInfo? {
        guard let n = readProcFile(tid, "stat", into: buffer),
              var info = parseStat(UnsafeRawBufferPointer(rebasing: buffer[0..<n]), tid: tid) else { return nil }
        info.tgid = status.tgid ?? tid
        info.affinity = status.affinity
        return info
    }

    /// Policy, real-time priority (FIFO/RR) and nice (other policies) of `tid` by system calls:
    /// the values `/proc/TID/stat` shows (the reset-on-fork flag is not part of the policy).
    static func schedulingFacts(of tid: Int32, into info: inout ProcTaskInfo) {
        let number = sched_getscheduler(tid)
        guard number >= 0 else { return }
        let policy = SchedulingPolicy(number: number & ~Int32(0x4000_0000))  // SCHED_RESET_ON_FORK
        info.policy = policy
        if policy == .fifo || policy == .roundRobin {
            var parameters = sched_param()
            if sched_getparam(tid, &parameters) == 0 { info.realtimePriority = parameters.sched_priority }
        } else {
            errno = 0
            let nice = getpriority(__priority_which_t(PRIO_PROCESS.rawValue), id_t(tid))
            if !(nice == -1 && errno != 0) { info.nice = nice }
        }
    }

    /// Parses the text of `/proc/TID/stat` (tgid is set to `tid`; `status` has the real one).
    static func parseStat(_ bytes: UnsafeRawBufferPointer, tid: Int32) -> ProcTaskInfo? {
        guard let open = bytes.firstIndex(of: UInt8(ascii: "(")), let close = bytes.lastIndex(of: UInt8(ascii: ")")),
              open < close else { return nil }
        let comm = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[(open + 1)..<close]), as: UTF8.self)
        // Fields after the comm, space-separated, starting with field 3 (state) at index 0.
        // Wanted: 1 ppid, 6 flags, 16 nice, 37 rt_priority, 38 policy.
        var values = (ppid: Int64(0), flags: Int64(0), nice: Int64?.none, rt: Int64?.none, policy: Int64?.none)
        var field = -1
        var i = close + 1
        let end = bytes.count
        while i < end {
            while i < end && (bytes[i] == UInt8(ascii: " ") || bytes[i] == UInt8(ascii: "\n")) { i += 1 }
            guard i < end else { break }
            field += 1
            let start = i
            while i < end && bytes[i] != UInt8(ascii: " ") && bytes[i] != UInt8(ascii: "\n") { i += 1 }
            guard field == 1 || field == 6 || field == 16 || field == 37 || field == 38 else { continue }
            let v = parseInteger(UnsafeRawBufferPointer(rebasing: bytes[start..<i]))
            switch field {
            case 1: values.ppid = v ?? 0
            case 6: values.flags = v ?? 0
            case 16: values.nice = v
            case 37: values.rt = v
            default: values.policy = v
            }
        }
        guard field >= 38 else { return nil }
        let policy = values.policy.flatMap { Int32(exactly: $0) }.flatMap(SchedulingPolicy.init(number:))
        let isRealtime = policy == .fifo || policy == .roundRobin
        return ProcTaskInfo(tgid: tid, ppid: Int32(truncatingIfNeeded: values.ppid),
                            comm: comm, isKernelThread: UInt64(bitPattern: values.flags) & kernelThreadFlag != 0,
                            policy: policy, nice: isRealtime ? nil : values.nice.flatMap { Int32(exactly: $0) },
                            realtimePriority: isRealtime ? values.rt.flatMap { Int32(exactly: $0) } : nil, affinity: nil)
    }

    /// What `/proc/TID/status` says (nil: the line is missing or unreadable).
    struct StatusFields: Equatable {
        /// `Name:`; nil also when the kernel escaped it (a backslash in it): `stat` has it raw.
        var name: String?
        var tgid: Int32?
        var ppid: Int32?
        /// `Kthread:` (kernel 6.x and later).
        var isKernelThread: Bool?
        var affinity: [Int]?
    }

    /// Parses the text of `/proc/TID/status`.
    static func parseStatus(_ bytes: UnsafeRawBufferPointer) -> StatusFields {
        var fields = StatusFields()
        var lineStart = 0
        let end = bytes.count
        while lineStart < end {
            var lineEnd = lineStart
            while lineEnd < end && bytes[lineEnd] != UInt8(ascii: "\n") { lineEnd += 1 }
            let line = UnsafeRawBufferPointer(rebasing: bytes[lineStart..<lineEnd])
            lineStart = lineEnd + 1
            guard let first = line.first else { continue }
            // Only the lines wanted are compared in full.
            switch first {
            case UInt8(ascii: "N"):
                if let value = valueAfter("Name:", in: line) {
                    // One tab follows the colon; the name itself may start with blanks.
                    let raw = value.first == UInt8(ascii: "\t") ? UnsafeRawBufferPointer(rebasing: value[1...]) : value
                    fields.name = raw.contains(UInt8(ascii: "\\")) ? nil : String(decoding: raw, as: UTF8.self)
                }
            case UInt8(ascii: "T"):
                if let value = valueAfter("Tgid:", in: line) {
                    fields.tgid = parseInteger(trimmed(value)).flatMap { Int32(exactly: $0) }
                }
            case UInt8(ascii: "P"):
                if let value = valueAfter("PPid:", in: line) {
                    fields.ppid = parseInteger(trimmed(value)).flatMap { Int32(exactly: $0) }
                }
            case UInt8(ascii: "K"):
                if let value = valueAfter("Kthread:", in: line), let v = parseInteger(trimmed(value)) {
                    fields.isKernelThread = v != 0
                }
            case UInt8(ascii: "C"):
                if let value = valueAfter("Cpus_allowed_list:", in: line) { fields.affinity = parseCPUList(value) }
            default:
                break
            }
        }
        return fields
    }

    @inline(__always) private static func valueAfter(_ key: StaticString, in line: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer? {
        let k = UnsafeRawBufferPointer(start: key.utf8Start, count: key.utf8CodeUnitCount)
        guard line.count >= k.count, memcmp(line.baseAddress!, k.baseAddress!, k.count) == 0 else { return nil }
        return UnsafeRawBufferPointer(rebasing: line[k.count...])
    }

    private static func trimmed(_ bytes: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer {
        var a = 0, b = bytes.count
        while a < b && (bytes[a] == UInt8(ascii: " ") || bytes[a] == UInt8(ascii: "\t")) { a += 1 }
        while b > a && (bytes[b - 1] == UInt8(ascii: " ") || bytes[b - 1] == UInt8(ascii: "\t") || bytes[b - 1] == UInt8(ascii: "\r")) { b -= 1 }
        return UnsafeRawBufferPointer(rebasing: bytes[a..<b])
    }

    /// A decimal integer with an optional sign, nil when `bytes` is anything else.
    static func parseInteger(_ bytes: UnsafeRawBufferPointer) -> Int64? {
        var i = 0
        var negative = false
        if i < bytes.count && (bytes[i] == UInt8(ascii: "-") || bytes[i] == UInt8(ascii: "+")) {
            negative = bytes[i] == UInt8(ascii: "-")
            i += 1
        }
        guard i < bytes.count else { return nil }
        var v: Int64 = 0
        while i < bytes.count {
            let d = bytes[i] &- UInt8(ascii: "0")
            guard d < 10 else { return nil }
            let (m, o1) = v.multipliedReportingOverflow(by: 10)
            let (a, o2) = m.addingReportingOverflow(Int64(d))
            guard !o1 && !o2 else { return nil }
            v = a
            i += 1
        }
        return negative ? -v : v
    }

    /// Reads `/proc/TID/NAME` into `buffer` (truncated to its size); the byte count, or nil
    /// when the file cannot be opened (the task is gone).
    private static func readProcFile(_ tid: Int32, _ name: StaticString, into buffer: UnsafeMutableRawBufferPointer) -> Int? {
        // "/proc/" + decimal tid + "/" + name + NUL, built without a String.
        var path = (UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0))
        let fd: Int32 = withUnsafeMutableBytes(of: &path) { p -> Int32 in
            var n = 0
            for c in "/proc/".utf8 { p[n] = c; n += 1 }
            var digits = (UInt64(0), UInt64(0))
            var count = 0
            withUnsafeMutableBytes(of: &digits) { d in
                var v = UInt32(bitPattern: tid)
                repeat { d[count] = UInt8(ascii: "0") + UInt8(v % 10); v /= 10; count += 1 } while v > 0
                while count > 0 { count -= 1; p[n] = d[count]; n += 1 }
            }
            p[n] = UInt8(ascii: "/"); n += 1
            let nameBytes = UnsafeRawBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount)
            guard n + nameBytes.count < p.count else { return -1 }
            for c in nameBytes { p[n] = c; n += 1 }
            p[n] = 0
            return open(p.baseAddress!.assumingMemoryBound(to: CChar.self), O_RDONLY | O_CLOEXEC)
        }
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var total = 0
        while total < buffer.count {
            let n = read(fd, buffer.baseAddress! + total, buffer.count - total)
            if n < 0 { if errno == EINTR { continue }; return total > 0 ? total : nil }
            if n == 0 { break }
            total += n
        }
        return total
    }

    /// Parses a kernel CPU list such as `0-3,6,8-9`.
    static func parseCPUList(_ text: String) -> [Int]? {
        var copy = text
        return copy.withUTF8 { parseCPUList(UnsafeRawBufferPointer($0)) }
    }

    /// `parseCPUList` on bytes: blanks around the list are ignored; a range `a-b` needs
    /// `b >= a`; nil for anything else that is not a number, or an empty list.
    static func parseCPUList(_ bytes: UnsafeRawBufferPointer) -> [Int]? {
        var a = 0, b = bytes.count
        func isBlank(_ c: UInt8) -> Bool { c == 0x20 || (c >= 0x09 && c <= 0x0D) }
        while a < b && isBlank(bytes[a]) { a += 1 }
        while b > a && isBlank(bytes[b - 1]) { b -= 1 }
        var cpus: [Int] = []
        var i = a
        while i < b {
            var partEnd = i
            while partEnd < b && bytes[partEnd] != UInt8(ascii: ",") { partEnd += 1 }
            if partEnd > i {
                // Up to two numbers separated by `-` (empty pieces skipped, as the old parser did).
                var numbers: (Int64?, Int64?) = (nil, nil)
                var count = 0
                var j = i
                while j < partEnd {
                    var k = j
                    while k < partEnd && bytes[k] != UInt8(ascii: "-") { k += 1 }
                    if k > j {
                        let v = parseInteger(UnsafeRawBufferPointer(rebasing: bytes[j..<k]))
                        if count == 0 { numbers.0 = v } else if count == 1 { numbers.1 = v }
                        count += 1
                    }
                    j = k + 1
                }
                guard count > 0, let low = numbers.0, low >= 0, low < 1 << 20 else { return nil }
                let high = count > 1 ? (numbers.1 ?? low) : low
                guard high >= low, high < 1 << 20 else { return nil }
                cpus.append(contentsOf: Int(low)...Int(high))
            }
            i = partEnd + 1
        }
        return cpus.isEmpty ? nil : cpus
    }

    /// Thread ids of process `pid` (empty if it does not exist).
    static func threads(of pid: Int32) -> [Int32] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []).compactMap { Int32($0) }
    }

    /// Process ids of the live descendants of `roots` (children, grandchildren, …).
    static func descendants(of roots: Set<Int32>) -> Set<Int32> {
        var parentOf: [Int32: Int32] = [:]
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = Int32(entry), let info = task(pid) else { continue }
            parentOf[pid] = info.ppid
        }
        var result = Set<Int32>()
        var changed = true
        while changed {
            changed = false
            for (pid, ppid) in parentOf where !result.contains(pid) && (roots.contains(ppid) || result.contains(ppid)) {
                result.insert(pid)
                changed = true
            }
        }
        return result
    }

    /// Online CPU numbers from /sys (falls back to 0..<sysconf(_SC_NPROCESSORS_ONLN)).
    static func onlineCPUs() -> [Int] {
        if let text = readSmallFile("/sys/devices/system/cpu/online"), let list = parseCPUList(text) { return list }
        return Array(0..<max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN))))
    }

    /// `model name` of the first CPU in /proc/cpuinfo.
    static func cpuModel() -> String {
        guard let text = readSmallFile("/proc/cpuinfo") else { return "" }
        for line in text.split(separator: "\n") where line.hasPrefix("model name") {
            if let colon = line.firstIndex(of: ":") { return line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces) }
        }
        return ""
    }

    /// `uname` release, machine and node name.
    static func uname() -> (release: String, machine: String, node: String) {
        var u = utsname()
        _ = Glibc.uname(&u)
        func field<T>(_ value: T) -> String {
            withUnsafeBytes(of: value) { raw in
                let n = raw.firstIndex(of: 0) ?? raw.count
                return String(decoding: raw.prefix(n), as: UTF8.self)
            }
        }
        return (field(u.release), field(u.machine), field(u.nodename))
    }
}

/// CLOCK_MONOTONIC in nanoseconds (the clock the `mono` trace clock follows).
func monotonicNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// CLOCK_REALTIME in nanoseconds since the Unix epoch.
func wallClockNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}
