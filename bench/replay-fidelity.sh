#!/usr/bin/env bash
# Replay fidelity, replayctl against `perf sched replay`, on the same recorded run.
#
#   bench/replay-fidelity.sh [ROUNDS] [WORKLOAD…]     (root; release build of replayctl)
#
# For each workload and round:
#   1. perf sched record -- replayctl record -o orig.rpl -- WORKLOAD
#      (one run of the workload, captured by both tools at once),
#   2. replayctl replay orig.rpl --warmup 1 --runs 1 --record-self ours.rpl --map ours.json,
#   3. replayctl record -o perf.rpl -- perf sched replay -i perf.data -r 1,
#      with a map from perf's task list (task N = the N-th thread perf creates),
#   4. replayctl fidelity orig.rpl ours.rpl / perf.rpl --json, over the workload's tasks only,
#   5. the noise floor: the workload recorded a second time the same way (rerun.rpl), its
#      tasks matched to the first run's by command name in order of creation, and
#      `fidelity orig.rpl rerun.rpl`: how far the workload is from itself on this machine.
# Prints the VM state (bare timed-sleep cycle CPU, before and after), then one table row per
# workload with the medians over the rounds. Raw JSON stays in
# bench/out/fidelity/ (OUT=dir to change). REPLAY_ARGS="--wake-order hold" passes options to
# replayctl replay; REPLAY_ONLY=1 re-replays the traces already in OUT (no new recording,
# no perf), so replay options can be compared on the same recordings. CPUS=0 runs every
# recording and replay under `taskset -c 0` (a machine with fewer CPUs; any taskset list).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
shift || true
workloads=("$@")
if [ ${#workloads[@]} -eq 0 ]; then
  workloads=(../shared/workloads/pipe-pingpong.sh ../shared/workloads/messaging.sh ../shared/workloads/periodic.sh
             bench/workloads/shell-pipeline.sh bench/workloads/python-queue.py bench/workloads/parallel-build.sh)
fi
bin=${BIN:-.build/release/replayctl}
[ -x "$bin" ] || swift build -c release >/dev/null
out=${OUT:-bench/out/fidelity}
pin=()
if [ -n "${CPUS:-}" ]; then pin=(taskset -c "$CPUS"); fi
mkdir -p "$out"
export LOOPS_PIPE=${LOOPS_PIPE:-20000}
# The VM's state moves every figure: note the CPU cost of a bare timed-sleep cycle (about 10 µs
# on a quiet day here, 20–30 µs when the host is busy) before and after.
vm_state() { bash bench/sleep-cycle-cost.sh 2>/dev/null | sed -n 's/^thread CPU clock: \(.*\) per cycle/\1/p'; }
state_before=$(vm_state || true)

for w in "${workloads[@]}"; do
  name=$(basename "$w"); name=${name%.*}
  for r in $(seq 1 "$rounds"); do
    d="$out/$name-$r"
    mkdir -p "$d"
    if [ "$name" = pipe-pingpong ]; then export LOOPS=$LOOPS_PIPE; else unset LOOPS; fi
    if [ -z "${REPLAY_ONLY:-}" ]; then
      "${pin[@]}" perf sched record -q -o "$d/perf.data" -- "$bin" record -q -o "$d/orig.rpl" -- "$w" >/dev/null 2>"$d/record.log" || true
      # The noise floor: the same workload recorded again the same way, compared with the first.
      "${pin[@]}" perf sched record -q -o "$d/perf-rerun.data" -- "$bin" record -q -o "$d/rerun.rpl" -- "$w" >/dev/null 2>>"$d/record.log" || true
      rm -f "$d/perf-rerun.data"
    fi
    # shellcheck disable=SC2086
    "${pin[@]}" "$bin" replay "$d/orig.rpl" --warmup 1 --runs 1 --record-self "$d/ours.rpl" --map "$d/ours-map.json" \
      --output "$d/ours-results.json" ${REPLAY_ARGS:-} >"$d/ours.log" 2>&1
    if [ -z "${REPLAY_ONLY:-}" ]; then
      "$bin" record -q -o "$d/perf.rpl" -- "${pin[@]}" perf sched replay -i "$d/perf.data" -r 1 >"$d/perf-replay.log" 2>&1 || true
    fi
    python3 - "$d" <<'EOF'
import json, re, subprocess, sys
d = sys.argv[1]
ours = json.load(open(f"{d}/ours-map.json"))
# perf's task list: "task   N (  comm:  pid), nr_events: E"
order = []
for line in open(f"{d}/perf-replay.log"):
    m = re.match(r"task\s+(\d+)\s+\(\s*(.*?):\s+(\d+)\),", line)
    if m: order.append(int(m.group(3)))
info = json.loads(subprocess.check_output([".build/release/replayctl", "info", f"{d}/perf.rpl", "--json", "--limit", "0"]))
# Threads of the perf process, in creation order (tids are handed out in order here).
perf_main = [t for t in info["tasks"] if t["comm"] == "perf" and t["isRecorded"] and t["tid"] == t["tgid"]]
threads = sorted(t["tid"] for t in info["tasks"] if perf_main and t["tgid"] == perf_main[0]["tid"] and t["tid"] != t["tgid"])
m = {}
for i, pid in enumerate(order):
    if str(pid) in ours["threads"] and i < len(threads):
        m[str(pid)] = threads[i]
json.dump({"threads": m}, open(f"{d}/perf-map.json", "w"))
# The rerun's tasks, matched to the replayed ones by command name in order of creation (tid).
def tasks(path):
    return sorted(json.loads(subprocess.check_output([".build/release/replayctl", "info", path, "--json", "--limit", "0"]))["tasks"],
                  key=lambda t: t["tid"])
try:
    again = [t for t in tasks(f"{d}/rerun.rpl") if t["isRecorded"] and not t["isKernelThread"]]
    m, used = {}, set()
    for t in tasks(f"{d}/orig.rpl"):
        if str(t["tid"]) not in ours["threads"]: continue
        for i, u in enumerate(again):
            if i not in used and u["comm"] == t["comm"]:
                used.add(i); m[str(t["tid"])] = u["tid"]; break
    json.dump({"threads": m}, open(f"{d}/rerun-map.json", "w"))
except Exception:
    pass
EOF
    "$bin" fidelity "$d/orig.rpl" "$d/ours.rpl" --map "$d/ours-map.json" --json >"$d/ours-fidelity.json"
    "$bin" fidelity "$d/orig.rpl" "$d/perf.rpl" --map "$d/perf-map.json" --json >"$d/perf-fidelity.json" || echo '{}' >"$d/perf-fidelity.json"
    if [ -f "$d/rerun-map.json" ]; then
      "$bin" fidelity "$d/orig.rpl" "$d/rerun.rpl" --map "$d/rerun-map.json" --json >"$d/rerun-fidelity.json" || echo '{}' >"$d/rerun-fidelity.json"
    fi
  done
done

state_after=$(vm_state || true)
echo "$(date -u +%FT%TZ): bare timed-sleep cycle (bench/sleep-cycle-cost.sh) ${state_before:-?} before, ${state_after:-?} after"
python3 - "$out" "$rounds" "${workloads[@]}" <<'EOF'
import json, os, statistics, sys
out, rounds, names = sys.argv[1], int(sys.argv[2]), [os.path.splitext(os.path.basename(w))[0] for w in sys.argv[3:]]
keys = [("cpuWeightedAbsoluteError", "CPU err", 100, "%"), ("sleepCountError", "sleep err", 100, "%"),
        ("edgeSimilarity", "edges", 1, ""), ("makespanRatio", "makespan", 1, "×"), ("wakeupLatencyKS", "lat KS", 1, "")]
print(f"replay fidelity, medians of {rounds} rounds (CPU err and sleep err: lower is better; edges: 1 is best; makespan: 1× is best)")
print("rerun: the workload itself recorded a second time, against the first (the noise floor)")
label = {"ours": "replayctl", "perf": "perf", "rerun": "rerun"}
print("targets: the issue's (CPU ≤ 3 %, sleeps ≤ 2 %, edges ≥ 0.98 over ≥ 20 wakeups, makespan ±5 %) met by the medians, of those judged")
print(f"{'workload':16} {'tool':9} {'tasks':>5} " + " ".join(f"{k[1]:>10}" for k in keys) + f" {'targets':>8}")
ours = {}
for n in names:
    for tool in ("ours", "perf", "rerun"):
        rows = []
        for r in range(1, rounds + 1):
            p = f"{out}/{n}-{r}/{tool}-fidelity.json"
            try:
                j = json.load(open(p))
                if j.get("matchedTasks"): rows.append(j)
            except Exception:
                pass
        if tool == "ours": ours[n] = rows
        if not rows:
            print(f"{n:16} {label[tool]:9} {'-':>5}  (no result)")
            continue
        cells = []
        for k, _, scale, unit in keys:
            # Edge similarity over a handful of task-to-task wakeups is a coin toss: n/a.
            if k == "edgeSimilarity" and statistics.median(x.get("originalEdgeWakeups", 1000) for x in rows) < 20:
                cells.append(f"{'n/a':>9} ")
                continue
            v = statistics.median(x[k] * scale for x in rows)
            cells.append(f"{v:>9.2f}{unit or ' '}")
        tasks = statistics.median(x["matchedTasks"] for x in rows)
        med = lambda k: statistics.median(x[k] for x in rows)
        judged = [med("cpuWeightedAbsoluteError") <= 0.03, med("sleepCountError") <= 0.02, abs(med("makespanRatio") - 1) <= 0.05]
        if statistics.median(x.get("originalEdgeWakeups", 1000) for x in rows) >= 20:
            judged.append(med("edgeSimilarity") >= 0.98)
        print(f"{n:16} {label[tool]:9} {tasks:>5.0f} " + " ".join(cells) + f" {sum(judged):>6}/{len(judged)}")
# Single rounds move a lot on a shared VM: the spread behind each replayctl median.
print(f"replayctl, lowest–highest over the {rounds} rounds")
print(f"{'workload':16} " + " ".join(f"{k[1]:>15}" for k in keys[:4]))
for n in names:
    rows = ours.get(n)
    if not rows:
        continue
    cells = []
    for k, _, scale, unit in keys[:4]:
        v = [x[k] * scale for x in rows]
        f = ".2f" if unit == "%" else ".3f"
        cells.append(f"{f'{min(v):{f}}–{max(v):{f}}{unit}':>15}")
    print(f"{n:16} " + " ".join(cells))
EOF
