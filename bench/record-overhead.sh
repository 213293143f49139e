#!/bin/bash
# Recording overhead on `perf bench sched messaging` (issue #3 "Performance"). Needs root.
#   bash bench/record-overhead.sh [ROUNDS]        (from the repository root, after
#                                                  `swift build -c release`)
# Modes, alternating within each round: untraced; the same sched events enabled in a tracefs
# instance with no reader (the kernel's floor); replayctl record; trace-cmd record --no-filter -d
# (it needs -d on this VM); perf sched record. Prints median wall time, ratio to untraced,
# events, lost events and bytes per event of the last round. Env: MSG="-g 10 -l 200" sizes
# the workload, REPLAYCTL=path.
set -u
ROUNDS=${1:-5}
MSG=${MSG:-"-g 10 -l 200"}
REPLAYCTL=${REPLAYCTL:-.build/release/replayctl}
OUT=${OUT:-/tmp/record-overhead.$$}
EVENTS="sched_switch sched_waking sched_wakeup_new sched_process_fork sched_process_exec sched_process_exit sched_migrate_task sched_stat_runtime"
T=/sys/kernel/tracing
mkdir -p "$OUT"
workload() { perf bench sched messaging $MSG >/dev/null 2>&1; }
now() { date +%s%N; }

run_untraced() { workload; }
run_floor() {
    local d=$T/instances/bench-floor-$$
    mkdir "$d"; echo mono > "$d/trace_clock"; echo 4096 > "$d/buffer_size_kb"
    for e in $EVENTS; do echo 1 > "$d/events/sched/$e/enable"; done
    workload
    echo 0 > "$d/tracing_on"; grep -h overrun "$d"/per_cpu/cpu*/stats > "$OUT/floor.stats"; rmdir "$d"
}
run_replayctl() { "$REPLAYCTL" record -q -o "$OUT/r.rpl" -- perf bench sched messaging $MSG >/dev/null 2>"$OUT/r.err"; }
run_tracecmd() {
    local ev=(); for e in $EVENTS; do ev+=(-e "sched:$e"); done
    trace-cmd record --no-filter -d -C mono "${ev[@]}" -o "$OUT/t.dat" perf bench sched messaging $MSG >/dev/null 2>"$OUT/t.err"
}
run_perf() { perf sched record -o "$OUT/p.data" perf bench sched messaging $MSG >/dev/null 2>"$OUT/p.err"; }

MODES="untraced floor replayctl tracecmd perf"
for m in $MODES; do : > "$OUT/$m.times"; done
for r in $(seq "$ROUNDS"); do
    for m in $MODES; do
        sync; s=$(now); "run_$m"; e=$(now)
        echo $(( (e - s) / 1000000 )) >> "$OUT/$m.times"
    done
    echo "round $r done" >&2
done
median() { sort -n "$1" | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
base=$(median "$OUT/untraced.times")

# Events, lost events, bytes per event (of the last round's files).
r_json=$("$REPLAYCTL" info --json "$OUT/r.rpl")
r_events=$(echo "$r_json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["events"]["total"])')
r_lost=$(echo "$r_json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["lostEvents"])')
t_events=$(trace-cmd report -q -i "$OUT/t.dat" 2>/dev/null | grep -c ': sched_')
t_lost=$(trace-cmd report --stat -i "$OUT/t.dat" 2>/dev/null | awk '/overrun:/ {s+=$2} END {print s+0}')
p_events=$(perf script -i "$OUT/p.data" 2>"$OUT/p.script.err" | wc -l)
p_lost=$(grep -o 'lost [0-9]* chunks' "$OUT/p.script.err" | awk '{s+=$2} END {print s+0}')
floor_lost=$(awk '{s+=$2} END {print s+0}' "$OUT/floor.stats")
size() { stat -c %s "$1"; }
bpe() { [ "$2" -gt 0 ] && awk -v a="$1" -v b="$2" 'BEGIN {printf "%.1f", a/b}' || echo "-"; }

printf "workload: perf bench sched messaging %s, %s rounds, median wall time\n\n" "$MSG" "$ROUNDS"
printf "| mode | median ms | × untraced | events | lost | bytes/event |\n|---|---|---|---|---|---|\n"
row() { printf "| %s | %s | %s | %s | %s | %s |\n" "$1" "$2" "$(awk -v a="$2" -v b="$base" 'BEGIN {printf "%.2f", a/b}')" "$3" "$4" "$5"; }
row untraced "$base" - - -
row "events on, no reader" "$(median "$OUT/floor.times")" - "$floor_lost" -
row "replayctl record" "$(median "$OUT/replayctl.times")" "$r_events" "$r_lost" "$(bpe "$(size "$OUT/r.rpl")" "$r_events")"
row "trace-cmd record -d" "$(median "$OUT/tracecmd.times")" "$t_events" "$t_lost" "$(bpe "$(size "$OUT/t.dat")" "$t_events")"
row "perf sched record" "$(median "$OUT/perf.times")" "$p_events" "$p_lost" "$(bpe "$(size "$OUT/p.data")" "$p_events")"
echo; echo "raw times (ms) and files in $OUT"
