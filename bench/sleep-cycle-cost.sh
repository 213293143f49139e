#!/usr/bin/env bash
# CPU cost of one absolute clock_nanosleep cycle (1 ms period, 500 cycles, timer slack 1 ns,
# pinned to CPU 0), as the thread CPU clock sees it and as a replayctl trace sees it
# (switch-in → switch-out). Root; release build of replayctl.
#   bench/sleep-cycle-cost.sh
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$(mktemp -d); trap 'rm -rf "$dir"' EXIT
cat >"$dir/ns.c" <<'C'
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <time.h>
static unsigned long long ns(clockid_t c) { struct timespec t; clock_gettime(c, &t); return t.tv_sec * 1000000000ull + t.tv_nsec; }
int main(void) {
    prctl(PR_SET_TIMERSLACK, 1, 0, 0, 0);
    cpu_set_t s; CPU_ZERO(&s); CPU_SET(0, &s); sched_setaffinity(0, sizeof s, &s);
    unsigned long long c0 = ns(CLOCK_THREAD_CPUTIME_ID), d = ns(CLOCK_MONOTONIC);
    for (int i = 0; i < 500; i++) {
        d += 1000000;
        struct timespec t = { d / 1000000000ull, d % 1000000000ull };
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &t, NULL);
    }
    printf("thread CPU clock: %.2f us per cycle\n", (ns(CLOCK_THREAD_CPUTIME_ID) - c0) / 500.0 / 1000);
}
C
cc -O2 -o "$dir/sleep-cycle" "$dir/ns.c"
bin=.build/release/replayctl
[ -x "$bin" ] || swift build -c release >/dev/null
"$bin" record -q -o "$dir/t.rpl" -- "$dir/sleep-cycle"
"$bin" info "$dir/t.rpl" --json | python3 -c '
import json, sys
for t in json.load(sys.stdin)["tasks"]:
    if t["comm"] == "sleep-cycle":
        print("trace run intervals: %.2f us per cycle (%d sleeps)" % (t["cpuNanoseconds"] / 500 / 1000, t["sleeps"]))'
