#!/usr/bin/env bash
# Where each task-to-task wakeup of a trace put its wakee, and what ended its wait for a CPU:
# a wakee placed on its waker's CPU that waits there until the waker blocks is queued behind
# it (python-queue's threads behind the one holding the GIL); placed on the other CPU, it
# runs alongside. Compare a recording with its replay (docs/replay.md, "Limits").
#   bench/wakeup-placement.sh TRACE.rpl [COMM-PREFIX…]    (release build of replayctl)
# Only wakeups whose waker's command starts with one of the prefixes count (default: all).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: $0 TRACE.rpl [COMM-PREFIX…]" >&2; exit 2; }
trace=$1; shift
bin=.build/release/replayctl
[ -x "$bin" ] || swift build -c release >/dev/null
dir=$(mktemp -d); trap 'rm -rf "$dir"' EXIT
"$bin" export --format perfetto "$trace" -o "$dir/t.json" >/dev/null 2>"$dir/err" || { cat "$dir/err" >&2; exit 1; }
python3 - "$dir/t.json" "$@" <<'PY'
import bisect, json, sys
from collections import Counter, defaultdict
path, prefixes = sys.argv[1], tuple(sys.argv[2:])
events = json.load(open(path))
events = events["traceEvents"] if isinstance(events, dict) else events
slices = defaultdict(list)   # CPU track -> [(start, end, tid, end_state)], µs
flows, comm = {}, {}
for e in events:
    if e.get("ph") == "X" and e.get("cat") == "sched" and e.get("pid") == 1000000000 and "tid" in e.get("args", {}):
        a = e["args"]
        slices[e["tid"]].append((e["ts"], e["ts"] + e["dur"], a["tid"], a.get("end_state")))
        comm[a["tid"]] = e["name"]
    elif e.get("cat") == "wakeup" and e.get("ph") in ("s", "f"):
        flows.setdefault(e["id"], {})[e["ph"]] = (e["tid"], e["ts"])
for s in slices.values():
    s.sort()

def running(cpu, ts):
    s = slices[cpu]
    i = bisect.bisect_right(s, (ts, float("inf"), 0, "")) - 1
    return s[i] if i >= 0 and s[i][0] <= ts < s[i][1] else None

count, wait = Counter(), Counter()
for f in flows.values():
    if "s" not in f or "f" not in f:
        continue
    (wcpu, wts), (pcpu, pts) = f["s"], f["f"]
    w = running(wcpu, wts)
    if w is None or (prefixes and not comm.get(w[2], "").startswith(prefixes)):
        continue
    s = slices[pcpu]
    j = bisect.bisect_left(s, (pts - 0.0005, 0, 0, ""))
    if j >= len(s) or abs(s[j][0] - pts) > 0.002:
        continue
    if pcpu != wcpu:
        k = "ran on another CPU"
    elif pts - wts < 20:
        k = "waker's CPU, ran within 20 us"
    else:
        prev = s[j - 1] if j > 0 else None
        who = "the waker" if prev and prev[2] == w[2] else "another task"
        how = "blocked" if prev and prev[3] in ("S", "D") else "was preempted"
        k = f"waker's CPU, waited until {who} {how}" if prev and abs(prev[1] - pts) < 2 else "waker's CPU, other"
    count[k] += 1
    wait[k] += pts - wts
total = sum(count.values())
print(f"{total} task-to-task wakeups ({', '.join(prefixes) or 'all wakers'})")
for k in sorted(count):
    print(f"  {k:48} {count[k]:6}  {100 * count[k] / total:5.1f} %   waited {wait[k] / 1000:8.1f} ms in all")
PY
