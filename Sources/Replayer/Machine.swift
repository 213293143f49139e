import Foundation
import Stats

extension MachineDescription {
    /// The machine this process runs on: `uname`, /proc/cpuinfo's model name, CPUs online.
    public static func current() -> MachineDescription {
        var u = utsname()
        uname(&u)
        func field<T>(_ value: T) -> String {
            withUnsafeBytes(of: value) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
        }
        var model = ""
        if let cpuinfo = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) {
            for line in cpuinfo.split(separator: "\n") where line.hasPrefix("model name") {
                if let colon = line.firstIndex(of: ":") {
                    model = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
                }
                break
            }
        }
        return MachineDescription(
            hostname: field(u.nodename), kernelRelease: field(u.release), architecture: field(u.machine),
            cpuModel: model, cpuCount: max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))))
    }
}
