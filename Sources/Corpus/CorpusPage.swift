import Foundation
import Stats

/// The HTML page at `GET /`: every trace with its key figures, and links to its metadata and file.
enum CorpusPage {
    static func escape(_ text: String) -> String { HTMLText.escaped(text) }

    static func bytes(_ n: UInt64) -> String {
        if n < 1024 { return "\(n) B" }
        if n < 1 << 20 { return String(format: "%.1f KiB", Double(n) / 1024) }
        return String(format: "%.1f MiB", Double(n) / 1_048_576)
    }

    static func html(entries: [CorpusEntry], uploadsEnabled: Bool) -> String {
        let totalBytes = entries.reduce(UInt64(0)) { $0 + $1.bytes }
        let totalEvents = entries.reduce(UInt64(0)) { $0 + $1.eventCount }
        let kernels = Set(entries.map(\.kernelRelease)).count
        var rows = ""
        for e in entries {
            let tags = e.tags.map { "<span class=tag>\(escape($0))</span>" }.joined(separator: " ")
            let lostClass = e.lostEvents > 0 ? " class=bad" : ""
            rows += """
                <tr><td class=id><a href="/traces/\(e.id)" title="\(e.id)">\(e.id.prefix(12))</a></td>
                <td>\(escape(e.description.isEmpty ? "—" : e.description))\(tags.isEmpty ? "" : "<br>" + tags)\(e.anonymized ? " <span class=anon>anonymised</span>" : "")</td>
                <td class=k>\(escape(e.kernelRelease))<br><small>\(escape(e.architecture))</small></td>
                <td>\(e.cpuCount) × <small>\(escape(e.cpuModel))</small></td>
                <td class=n>\(String(format: "%.3f s", Double(e.durationNanoseconds) / 1e9))</td>
                <td class=n>\(e.taskCount)</td><td class=n>\(e.eventCount)</td><td class=n\(lostClass)>\(e.lostEvents)</td>
                <td class=n>\(bytes(e.bytes))</td><td class=k>\(escape(e.contributor))<br><small>\(escape(String(e.addedAt.replacingOccurrences(of: "T", with: " ").prefix(16))))</small></td>
                <td><a href="/traces/\(e.id)/file" download="\(e.id).rpl">.rpl</a></td></tr>

                """
        }
        if entries.isEmpty {
            rows = "<tr><td colspan=11 class=empty>No traces yet: <code>replayctl corpus push FILE.rpl --server URL --token-file F</code></td></tr>"
        }
        return """
            <!doctype html>
            <html lang=en><head><meta charset=utf-8><title>replayctl trace corpus</title>
            <style>
            body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#1d232a}
            h1{font-size:22px;margin:0 0 4px} p.sub{color:#5a6470;margin:0 0 16px}
            table{border-collapse:collapse;width:100%} th,td{padding:6px 8px;border-bottom:1px solid #e3e7eb;vertical-align:top;text-align:left}
            th{background:#f3f5f7;font-weight:600;font-size:12px;text-transform:uppercase;color:#4a5562}
            td.n,td.k{white-space:nowrap} td.n{text-align:right;font-variant-numeric:tabular-nums} td.id{font-family:ui-monospace,monospace}
            td.bad{color:#b3261e;font-weight:600} small{color:#6b7682}
            .tag{display:inline-block;background:#e8f0fe;color:#1a4fa0;border-radius:3px;padding:0 5px;margin:2px 2px 0 0;font-size:12px}
            .anon{background:#fdf3e1;color:#8a5a00;border-radius:3px;padding:0 5px;font-size:12px} .empty{color:#6b7682;padding:24px}
            a{color:#1a4fa0}
            </style></head><body>
            <h1>replayctl trace corpus</h1>
            <p class=sub>\(entries.count) trace\(entries.count == 1 ? "" : "s") · \(totalEvents) events · \(bytes(totalBytes)) · \(kernels) kernel\(kernels == 1 ? "" : "s") · uploads \(uploadsEnabled ? "enabled (bearer token)" : "disabled") · JSON at <a href="/traces">/traces</a></p>
            <table><thead><tr><th>ID</th><th>Description / tags</th><th>Kernel</th><th>CPUs</th><th>Duration</th><th>Tasks</th><th>Events</th><th>Lost</th><th>Size</th><th>Contributor / added</th><th>File</th></tr></thead>
            <tbody>
            \(rows)</tbody></table>
            </body></html>

            """
    }
}
