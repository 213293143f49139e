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
    static func task(_ tid: Int32) -> ProcTaskInfo? {
        guard tid > 0, let stat = readSmallFile("/proc/\(tid)/stat") else { return nil }
        guard let open = stat.firstIndex(of: "("), let close = stat.lastIndex(of: ")") else { return nil }
        let comm = String(stat[stat.index(after: open)..<close])
        // Fields after the comm, starting with field 3 (state) at index 0.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 38 else { return nil }
        let ppid = Int32(fields[1]) ?? 0
        let flags = UInt64(fields[6]) ?? 0
        let nice = Int32(fields[16])
        let rtPriority = Int32(fields[37])
        let policy = Int32(fields[38]).flatMap(SchedulingPolicy.init(number:))
        var tgid = tid
        var affinity: [Int]?
        if let status = readSmallFile("/proc/\(tid)/status") {
            for line in status.split(separator: "\n") {
                if line.hasPrefix("Tgid:") {
                    tgid = Int32(line.dropFirst(5).trimmingCharacters(in: .whitespaces)) ?? tid
                } else if line.hasPrefix("Cpus_allowed_list:") {
                    affinity = parseCPUList(String(line.dropFirst(18)))
                }
            }
        }
        let isRealtime = policy == .fifo || policy == .roundRobin
        return ProcTaskInfo(tgid: tgid, ppid: ppid, comm: comm, isKernelThread: flags & kernelThreadFlag != 0,
                            policy: policy, nice: isRealtime ? nil : nice, realtimePriority: isRealtime ? rtPriority : nil,
                            affinity: affinity)
    }

    /// Thread-group id of `tid` from /proc/TID/status, or nil when the task is gone.
    static func tgid(of tid: Int32) -> Int32? {
        guard tid > 0, let status = readSmallFile("/proc/\(tid)/status") else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix("Tgid:") {
            return Int32(line.dropFirst(5).trimmingCharacters(in: .whitespaces))
        }
        return nil
    }

    /// Parses a kernel CPU list such as `0-3,6,8-9`.
    static func parseCPUList(_ text: String) -> [Int]? {
        var cpus: [Int] = []
        for part in text.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: ",") {
            let bounds = part.split(separator: "-")
            guard let low = Int(bounds[0]) else { return nil }
            let high = bounds.count > 1 ? Int(bounds[1]) ?? low : low
            guard high >= low else { return nil }
            cpus.append(contentsOf: low...high)
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
