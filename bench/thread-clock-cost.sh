#!/usr/bin/env bash
# What reading the thread CPU clock right after a futex wakeup costs, against getrusage.
#
#   bench/thread-clock-cost.sh [ROUNDS] [ROUND_TRIPS]      (defaults 8 and 10000; no root needed)
#
# Two threads pass a token through a futex word (a bare ping-pong, like the replay's waits).
# After each wake the woken thread makes one call before passing the token on:
#   none      nothing (the floor)
#   cputime   clock_gettime(CLOCK_THREAD_CPUTIME_ID), what the replay's burns read: the
#             kernel takes the task's runqueue lock (task_rq_lock, with its pi_lock), which
#             the waker may still hold in try_to_wake_up
#   rusage    getrusage(RUSAGE_THREAD): the CPU time charged at the last switch-out, no lock
#             of the task's
# The variants alternate, ROUNDS times; printed are the medians of how long the call took
# (wall) and of the CPU time charged to each thread per round trip. In a loop, without
# wakeups, both calls take well under a microsecond.
set -euo pipefail
rounds=${1:-8}
trips=${2:-10000}
dir=$(mktemp -d); trap 'rm -rf "$dir"' EXIT
cat >"$dir/pp.c" <<'C'
#define _GNU_SOURCE
#include <linux/futex.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
static _Atomic uint32_t word;
static int trips, variant;
static double cpu[2], call[2];
static uint64_t ns(clockid_t c) { struct timespec t; clock_gettime(c, &t); return t.tv_sec * 1000000000ull + t.tv_nsec; }
static void *side(void *p) {
    int me = (int)(intptr_t)p;
    uint64_t c0 = ns(CLOCK_THREAD_CPUTIME_ID), spent = 0;
    for (uint32_t i = 0; i < (uint32_t)trips; i++) {
        uint32_t mine = 2 * i + me, v;
        while ((v = word) != mine) syscall(SYS_futex, &word, FUTEX_WAIT_PRIVATE, v, 0, 0, 0);
        uint64_t a = ns(CLOCK_MONOTONIC);
        if (variant == 1) ns(CLOCK_THREAD_CPUTIME_ID);
        if (variant == 2) { struct rusage u; getrusage(RUSAGE_THREAD, &u); }
        spent += ns(CLOCK_MONOTONIC) - a;
        word = mine + 1;
        syscall(SYS_futex, &word, FUTEX_WAKE_PRIVATE, 1, 0, 0, 0);
    }
    cpu[me] = (ns(CLOCK_THREAD_CPUTIME_ID) - c0) / 1e3 / trips;
    call[me] = spent / 1e3 / trips;
    return 0;
}
int main(int argc, char **argv) {
    trips = atoi(argv[1]);
    variant = strcmp(argv[2], "cputime") == 0 ? 1 : strcmp(argv[2], "rusage") == 0 ? 2 : 0;
    pthread_t t[2];
    for (int i = 0; i < 2; i++) pthread_create(&t[i], 0, side, (void *)(intptr_t)i);
    for (int i = 0; i < 2; i++) pthread_join(t[i], 0);
    printf("%s %.3f %.3f\n", argv[2], (call[0] + call[1]) / 2, (cpu[0] + cpu[1]) / 2);
}
C
cc -O2 -pthread -o "$dir/pp" "$dir/pp.c"
for _ in $(seq 1 "$rounds"); do
  for v in none cputime rusage; do "$dir/pp" "$trips" "$v"; done
done | python3 -c '
import statistics, sys
rows = {}
for line in sys.stdin:
    v, c, u = line.split(); rows.setdefault(v, []).append((float(c), float(u)))
print("call after each wake   call took (us)   CPU per thread per round trip (us)   rounds")
for v in ("none", "cputime", "rusage"):
    r = rows[v]
    print("%-21s %15.2f %36.2f %8d" % (v, statistics.median(x[0] for x in r), statistics.median(x[1] for x in r), len(r)))'
