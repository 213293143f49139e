#!/usr/bin/env bash
# A real A/A and a real A/B with replayctl compare on this machine.
#
#   bench/compare-demo.sh aa  [RUNS] [TRACE]   same kernel, same settings on both sides
#   bench/compare-demo.sh hog [RUNS] [TRACE]   B replays with a CPU hog (stress-ng --cpu 1) beside it
#
# Runs are interleaved (A, B, A, B, …: one `replay --runs 1 --warmup 1` each) so that drift of a
# shared machine falls on both sides alike, then merged into A.json and B.json and compared.
# Output in bench/out/compare-MODE/.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-aa}; runs=${2:-10}; trace=${3:-traces/messaging.rpl}
bin=.build/release/replayctl
[ -x "$bin" ] || swift build -c release >/dev/null
out=bench/out/compare-$mode
rm -rf "$out"; mkdir -p "$out"
for i in $(seq 1 "$runs"); do
  "$bin" replay "$trace" --runs 1 --warmup 1 --quiet --output "$out/a-$i.json" >/dev/null
  if [ "$mode" = hog ]; then
    stress-ng --cpu 1 --timeout 60s --quiet & hog=$!
    sleep 0.3
    "$bin" replay "$trace" --runs 1 --warmup 1 --quiet --output "$out/b-$i.json" >/dev/null
    kill "$hog"; wait "$hog" 2>/dev/null || true
  else
    "$bin" replay "$trace" --runs 1 --warmup 1 --quiet --output "$out/b-$i.json" >/dev/null
  fi
done
python3 - "$out" "$runs" <<'PY'
import json, sys
out, n = sys.argv[1], int(sys.argv[2])
for side in "ab":
    merged = None
    for i in range(1, n + 1):
        r = json.load(open(f"{out}/{side}-{i}.json"))
        measured = [run for run in r["runs"] if not run["warmup"]]
        if merged is None:
            merged = dict(r, runs=[])
        merged["runs"] += measured
    for k, run in enumerate(merged["runs"]):
        run["index"] = k
    json.dump(merged, open(f"{out}/{side.upper()}.json", "w"))
PY
"$bin" compare "$out/A.json" "$out/B.json"
