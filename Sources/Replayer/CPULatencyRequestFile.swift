import Foundation
import TraceFormat

/// This process's own CPU latency QoS request: `/dev/cpu_dma_latency` held open. Opening it
/// adds a request that limits nothing; writing a binary s32 sets it, in microseconds; closing
/// it, or the end of the process, removes it (so an interrupted or crashed replay leaves no
/// limit behind). The kernel keeps every CPU out of idle states whose exit latency is above
/// the lowest request of all processes.
final class CPULatencyRequestFile {
    static let devicePath = "/dev/cpu_dma_latency"
    let path: String
    private var fd: Int32

    /// Opens the device (`open(O_RDWR | O_CLOEXEC)`).
    /// - Throws: `ReplayError.cpuLatency` naming the file, the errno text and what to do.
    init(path: String = CPULatencyRequestFile.devicePath) throws {
        self.path = path
        fd = open(path, O_RDWR | O_CLOEXEC)
        if fd < 0 {
            let code = errno
            let fix = switch code {
            case EACCES, EPERM: "run as root to hold the recorded CPU latency limit, or --no-pm-qos"
            case ENOENT, ENODEV: "this kernel has no CPU latency QoS device (CONFIG_CPU_IDLE?); --no-pm-qos silences this"
            default: "--no-pm-qos replays without the recorded CPU latency limit"
            }
            throw ReplayError.cpuLatency("cannot open \(path): \(String(cString: strerror(code))) — \(fix); replaying without it")
        }
    }

    deinit { close() }

    /// Sets the request to `microseconds`, or to no limit (nil: `PM_QOS_DEFAULT_VALUE`, -1),
    /// with `write(2)` of 4 bytes. Returns an error message, nil when it worked.
    func set(_ microseconds: Int32?) -> String? {
        guard fd >= 0 else { return "\(path) is closed" }
        var value = microseconds ?? CPULatencyRequest.noConstraint
        let n = withUnsafeBytes(of: &value) { write(fd, $0.baseAddress, 4) }
        if n == 4 { return nil }
        return "cannot write \(value) to \(path): \(n < 0 ? String(cString: strerror(errno)) : "short write of \(n) bytes")"
    }

    /// Removes the request (`close(2)`). Idempotent.
    func close() {
        if fd >= 0 { _ = Glibc.close(fd) }
        fd = -1
    }

    /// The limit in force now, from all processes' requests (reading the device returns it as
    /// an s32, µs; 2 000 000 000 when nothing limits it), or nil when it cannot be read.
    static func currentLimit(path: String = devicePath) -> Int32? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { _ = Glibc.close(fd) }
        var value: Int32 = 0
        let n = withUnsafeMutableBytes(of: &value) { read(fd, $0.baseAddress, 4) }
        return n == 4 ? value : nil
    }
}
