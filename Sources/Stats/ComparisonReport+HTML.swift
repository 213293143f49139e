import Foundation

extension ComparisonReport {
    static let palette = ["#1f5fa8", "#d1495b", "#2e933c", "#edae49", "#7b4b94", "#00798c", "#8c564b"]

    /// `compare --html`: one self-contained page (inline CSS and SVG, no scripts, no network
    /// fetches) with the verdicts, the table, latency CDFs and tails from the merged
    /// histograms of the measured runs, and per-task wakeup-latency bars.
    public func html() -> String {
        let inputs = [base] + others
        var body = ""
        body += "<h1>replayctl compare</h1>\n"
        let t = base.results.trace
        body += "<p class=meta>trace <code>\(escape(t.path))</code> (sha256 <code>\(escape(String(t.sha256.prefix(16))))…</code>), recorded on \(escape(t.recordedKernel)) / \(escape(t.recordedHost)), \(t.replayedTasks) tasks replayed</p>\n<ul class=sets>"
        for (k, i) in inputs.enumerated() {
            body += "<li><span class=swatch style=\"background:\(Self.palette[k % Self.palette.count])\"></span>\(k == 0 ? "base" : "[\(k)]") \(escape(describe(i)))</li>"
        }
        body += "</ul>\n"
        for (line, c) in zip(verdictLines(), comparisons) {
            body += "<div class=\"verdict \(c.verdict.rawValue)\">\(escape(line))</div>\n"
        }
        body += tableHTML()
        body += "<h2>Latency distributions (all measured runs merged)</h2>\n<div class=plots>\n"
        let kinds: [(String, KeyPath<ReplayRun, LatencyHistogram>)] = [
            ("wakeup latency", \.wakeupLatency), ("same-CPU wakeup latency", \.wakeupLatencySameCPU),
            ("cross-CPU wakeup latency", \.wakeupLatencyCrossCPU), ("timer overshoot", \.timerOvershoot),
        ]
        for (title, path) in kinds {
            let hs = inputs.map { $0.results.merged(path) }
            guard hs.contains(where: { !$0.isEmpty }) else { continue }
            body += cdfSVG(title: "\(title): CDF", histograms: hs, tail: false)
            body += cdfSVG(title: "\(title): tail (share of samples above x, log scale)", histograms: hs, tail: true)
        }
        body += "</div>\n"
        body += taskBarsSVG()
        body += "<p class=foot>\(escape(String(format: "Values are means over runs of each run's figure; lower is better. A metric is called worse or better when the Mann–Whitney U test on per-run figures gives p < %g after Holm correction, the %g%% bootstrap interval (runs resampled) of the change excludes 0, and the change is at least %g%%. Overall: worse if any primary metric is worse; better if some primary metric is better and none worse.", options.alpha, (1 - options.alpha) * 100, options.minimumEffect * 100)))</p>\n"
        return """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8"><title>replayctl compare — \(escape(t.path))</title>
            <style>
            body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px auto;max-width:1180px;color:#222;padding:0 12px}
            h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:26px 0 8px}
            .meta,.foot{color:#555}.foot{font-size:12px;margin-top:24px}
            ul.sets{list-style:none;padding:0;margin:6px 0 12px}ul.sets li{margin:2px 0}
            .swatch{display:inline-block;width:12px;height:12px;margin-right:6px;vertical-align:-1px;border-radius:2px}
            .verdict{padding:8px 12px;margin:6px 0;border-radius:4px;font-weight:600}
            .verdict.worse{background:#fbe3e4;border-left:5px solid #c0392b}.verdict.better{background:#e3f5e5;border-left:5px solid #2e933c}
            .verdict.no-difference{background:#eef1f5;border-left:5px solid #7a8699}
            table{border-collapse:collapse;margin-top:12px;font-variant-numeric:tabular-nums}
            th,td{padding:3px 9px;border-bottom:1px solid #e3e3e3;text-align:right;white-space:nowrap}th{background:#f4f5f7}
            td:first-child,th:first-child{text-align:left}td.worse{color:#b02a1f;font-weight:600}td.better{color:#1d7a2a;font-weight:600}
            .plots{display:flex;flex-wrap:wrap;gap:10px}svg{background:#fff;border:1px solid #e3e3e3}
            svg text{font:11px system-ui,sans-serif;fill:#333}
            </style></head><body>
            \(body)</body></html>
            """
    }

    func tableHTML() -> String {
        var out = "<table><tr><th>metric</th><th>base</th>"
        for k in others.indices { out += "<th>[\(k + 1)]</th><th>delta</th><th>95% CI of delta</th><th>p (Holm)</th><th>verdict</th>" }
        out += "</tr>\n"
        for (row, metric) in options.metrics.enumerated() {
            let first = comparisons.first?.metrics[row]
            out += "<tr><td>\(escape(metric.label))\(metric.isPrimary ? " <b>*</b>" : "")</td><td>\(escape(Self.formatNanoseconds(first?.baseValue)))</td>"
            for c in comparisons {
                let m = c.metrics[row]
                let p = m.adjustedPValue.map { String(format: "%.3g", $0) } ?? "-"
                out += "<td>\(escape(Self.formatNanoseconds(m.otherValue)))</td><td>\(escape(Self.formatPercent(m.delta)))</td>"
                out += "<td>\(escape(Self.formatInterval(m.deltaInterval)))</td><td>\(p)</td>"
                out += "<td class=\"\(m.verdict.rawValue)\" title=\"\(escape(m.note ?? ""))\">\(m.verdict == .noDifference ? (m.significant ? "~" : "") : m.verdict.rawValue)</td>"
            }
            out += "</tr>\n"
        }
        return out + "</table>\n<p class=foot>* primary metric (decides the overall verdict). ~ significant but the change is too small or its interval includes 0.</p>\n"
    }

    /// A CDF (or, with `tail`, the complementary CDF on a log axis) of each histogram, x on a
    /// log axis.
    func cdfSVG(title: String, histograms: [LatencyHistogram], tail: Bool) -> String {
        let width = 570.0, height = 300.0, left = 44.0, right = 30.0, top = 26.0, bottom = 40.0
        let plotW = width - left - right, plotH = height - top - bottom
        let nonEmpty = histograms.filter { !$0.isEmpty }
        let lo = max(1, Double(nonEmpty.map { $0.minimum }.min() ?? 1))
        let hi = max(lo * 10, Double(nonEmpty.map { $0.maximum }.max() ?? 10))
        let x0 = log10(lo).rounded(.down), x1 = log10(hi).rounded(.up)
        func x(_ v: Double) -> Double { left + (log10(max(v, pow(10, x0))) - x0) / (x1 - x0) * plotW }
        let yFloor = -4.0   // tail plot down to 10⁻⁴
        func y(_ fraction: Double) -> Double {
            if tail {
                let l = fraction > 0 ? max(log10(fraction), yFloor) : yFloor
                return top + (0 - l) / (0 - yFloor) * plotH
            }
            return top + (1 - fraction) * plotH
        }
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" viewBox=\"0 0 \(Int(width)) \(Int(height))\">"
        s += "<text x=\"\(left)\" y=\"16\" font-weight=\"600\">\(escape(title))</text>"
        // Grid and axes.
        var decade = x0
        while decade <= x1 {
            let gx = x(pow(10, decade))
            s += "<line x1=\"\(f(gx))\" y1=\"\(f(top))\" x2=\"\(f(gx))\" y2=\"\(f(top + plotH))\" stroke=\"#e6e6e6\"/>"
            s += "<text x=\"\(f(gx))\" y=\"\(f(top + plotH + 14))\" text-anchor=\"middle\">\(tickLabel(pow(10, decade)))</text>"
            decade += 1
        }
        let yTicks: [(Double, String)] = tail ? [(1, "1"), (0.1, "10⁻¹"), (0.01, "10⁻²"), (0.001, "10⁻³"), (0.0001, "10⁻⁴")]
            : [(0, "0"), (0.25, "0.25"), (0.5, "0.5"), (0.75, "0.75"), (0.9, "0.9"), (1, "1")]
        for (v, label) in yTicks {
            let gy = y(v)
            s += "<line x1=\"\(f(left))\" y1=\"\(f(gy))\" x2=\"\(f(left + plotW))\" y2=\"\(f(gy))\" stroke=\"#eeeeee\"/>"
            s += "<text x=\"\(f(left - 4))\" y=\"\(f(gy + 4))\" text-anchor=\"end\">\(label)</text>"
        }
        s += "<rect x=\"\(f(left))\" y=\"\(f(top))\" width=\"\(f(plotW))\" height=\"\(f(plotH))\" fill=\"none\" stroke=\"#999\"/>"
        s += "<text x=\"\(f(left + plotW / 2))\" y=\"\(f(height - 6))\" text-anchor=\"middle\">latency (log scale)</text>"
        for (k, h) in histograms.enumerated() where !h.isEmpty {
            var points: [String] = []
            var previous = 0.0
            points.append("\(f(x(Double(h.minimum)))),\(f(y(tail ? 1 : 0)))")
            for p in h.cumulativeDistribution {
                let value = tail ? 1 - p.fraction : p.fraction
                let px = x(Double(p.value))
                points.append("\(f(px)),\(f(y(tail ? 1 - previous : previous)))")
                points.append("\(f(px)),\(f(y(value)))")
                previous = p.fraction
            }
            s += "<polyline fill=\"none\" stroke=\"\(Self.palette[k % Self.palette.count])\" stroke-width=\"1.6\" points=\"\(points.joined(separator: " "))\"/>"
        }
        return s + "</svg>\n"
    }

    /// Grouped horizontal bars: per task (matched by original tid and comm), the mean over
    /// measured runs of its wakeup-latency p50 and p99, for the 15 tasks with the highest
    /// base p99.
    func taskBarsSVG() -> String {
        struct Key: Hashable { var tid: Int32; var comm: String }
        func perTask(_ r: ReplayResults) -> [Key: (p50: Double, p99: Double)] {
            var sums: [Key: (Double, Double, Int)] = [:]
            for run in r.measuredRuns {
                for t in run.tasks where t.wakesReceived > 0 {
                    let k = Key(tid: t.originalTid, comm: t.comm)
                    let s = sums[k] ?? (0, 0, 0)
                    sums[k] = (s.0 + Double(t.wakeupLatencyP50), s.1 + Double(t.wakeupLatencyP99), s.2 + 1)
                }
            }
            return sums.mapValues { ($0.0 / Double($0.2), $0.1 / Double($0.2)) }
        }
        let inputs = [base] + others
        let tables = inputs.map { perTask($0.results) }
        let keys = tables[0].keys.sorted { (tables[0][$0]!.p99, $1.tid) > (tables[0][$1]!.p99, $0.tid) }.prefix(15)
        guard !keys.isEmpty else { return "<h2>Per task</h2><p class=meta>No per-task results in the base file.</p>\n" }
        let maxValue = max(1, tables.flatMap { t in keys.compactMap { t[$0]?.p99 } }.max() ?? 1)
        let barH = 7.0, groupGap = 10.0, left = 190.0, width = 1100.0, right = 90.0
        let groupH = Double(inputs.count) * barH * 2 + groupGap
        let height = 40 + Double(keys.count) * groupH
        var s = "<h2>Per task: wakeup latency p50 (solid) and p99 (light), mean over runs</h2>\n"
        s += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" viewBox=\"0 0 \(Int(width)) \(Int(height))\">"
        let plotW = width - left - right
        func x(_ v: Double) -> Double { left + v / maxValue * plotW }
        for (g, key) in keys.enumerated() {
            let gy = 20 + Double(g) * groupH
            s += "<text x=\"\(f(left - 8))\" y=\"\(f(gy + Double(inputs.count) * barH + 4))\" text-anchor=\"end\">\(escape(key.comm)) (\(key.tid))</text>"
            for (k, t) in tables.enumerated() {
                let color = Self.palette[k % Self.palette.count]
                let by = gy + Double(k) * barH * 2
                guard let v = t[key] else {
                    s += "<text x=\"\(f(left + 4))\" y=\"\(f(by + barH + 3))\" fill=\"#999\">not in this set</text>"
                    continue
                }
                s += "<rect x=\"\(f(left))\" y=\"\(f(by))\" width=\"\(f(x(v.p99) - left))\" height=\"\(f(barH * 1.8))\" fill=\"\(color)\" fill-opacity=\"0.3\"/>"
                s += "<rect x=\"\(f(left))\" y=\"\(f(by))\" width=\"\(f(x(v.p50) - left))\" height=\"\(f(barH * 1.8))\" fill=\"\(color)\"/>"
                s += "<text x=\"\(f(x(v.p99) + 4))\" y=\"\(f(by + barH * 1.5))\">\(escape(Self.formatNanoseconds(v.p50))) / \(escape(Self.formatNanoseconds(v.p99)))</text>"
            }
        }
        s += "<line x1=\"\(f(left))\" y1=\"14\" x2=\"\(f(left))\" y2=\"\(f(height - 10))\" stroke=\"#999\"/>"
        return s + "</svg>\n"
    }
}

/// "100 ns", "1 µs", "10 ms", "1 s" for a power of ten in nanoseconds.
private func tickLabel(_ ns: Double) -> String {
    let units: [(Double, String)] = [(1e9, "s"), (1e6, "ms"), (1e3, "µs"), (1, "ns")]
    for (scale, unit) in units where ns >= scale { return String(format: "%.0f ", ns / scale) + unit }
    return String(format: "%.0f ns", ns)
}

private func f(_ v: Double) -> String { String(format: "%.1f", v) }

/// Escapes text for HTML content and attribute values.
func escape(_ text: String) -> String { HTMLText.escaped(text) }

/// Writing HTML by hand (reports and the corpus page are single self-contained files).
public enum HTMLText {
    /// `text` safe inside HTML content and quoted attribute values (& < > " ').
    public static func escaped(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.count)
        for ch in text {
            switch ch {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(ch)
            }
        }
        return out
    }
}
