#define _GNU_SOURCE
#include "creplay.h"
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static struct timespec timespec_of(uint64_t ns) {
    struct timespec ts;
    ts.tv_sec = (time_t)(ns / 1000000000ull);
    ts.tv_nsec = (long)(ns % 1000000000ull);
    return ts;
}

static uint64_t clock_ns(clockid_t clock) {
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int creplay_futex_wait(uint32_t *word, uint32_t expected, uint64_t timeout_ns) {
    struct timespec ts = timespec_of(timeout_ns);
    struct timespec *tp = timeout_ns ? &ts : NULL;
    long r = syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, expected, tp, NULL, 0);
    return r == 0 ? 0 : -errno;
}

int creplay_futex_wait_until(uint32_t *word, uint32_t expected, uint64_t deadline_ns) {
    struct timespec ts = timespec_of(deadline_ns);
    long r = syscall(SYS_futex, word, FUTEX_WAIT_BITSET_PRIVATE, expected, &ts, NULL, FUTEX_BITSET_MATCH_ANY);
    return r == 0 ? 0 : -errno;
}

int creplay_futex_wake(uint32_t *word, int count) {
    long r = syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, count, NULL, NULL, 0);
    return r >= 0 ? (int)r : -errno;
}

uint32_t creplay_load32(const uint32_t *word) { return __atomic_load_n(word, __ATOMIC_SEQ_CST); }
uint32_t creplay_add32(uint32_t *word, uint32_t value) { return __atomic_fetch_add(word, value, __ATOMIC_SEQ_CST); }
void creplay_store32(uint32_t *word, uint32_t value) { __atomic_store_n(word, value, __ATOMIC_SEQ_CST); }

int creplay_cas32(uint32_t *word, uint32_t expected, uint32_t desired) {
    return __atomic_compare_exchange_n(word, &expected, desired, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
}
uint64_t creplay_load64(const uint64_t *word) { return __atomic_load_n(word, __ATOMIC_SEQ_CST); }
void creplay_store64(uint64_t *word, uint64_t value) { __atomic_store_n(word, value, __ATOMIC_SEQ_CST); }

uint64_t creplay_monotonic_ns(void) { return clock_ns(CLOCK_MONOTONIC); }

uint64_t creplay_thread_cpu_ns(void) { return clock_ns(CLOCK_THREAD_CPUTIME_ID); }

static void *exit_probe(void *end) {
    *(uint64_t *)end = creplay_thread_cpu_ns();
    return NULL;
}

/* The process CPU clock less the caller's own is every other thread's CPU: the probe
 * thread's whole life, plus whatever else of this process ran meanwhile (nothing, when
 * replayctl sets up a replay; a test runner's parallel tests), which only adds: hence the
 * least of the samples, and a cap. */
uint64_t creplay_thread_exit_cost_ns(size_t stack_size, int samples) {
    uint64_t best = UINT64_MAX;
    for (int i = 0; i < samples; i++) {
        uint64_t end = 0;
        uint64_t p0 = clock_ns(CLOCK_PROCESS_CPUTIME_ID), o0 = creplay_thread_cpu_ns();
        unsigned long t;
        if (creplay_thread_create(exit_probe, &end, stack_size, &t) != 0) break;
        creplay_thread_join(t);
        /* The join can return while the thread is still on its way out on another CPU. */
        creplay_sleep_until(creplay_monotonic_ns() + 200000);
        uint64_t o1 = creplay_thread_cpu_ns(), p1 = clock_ns(CLOCK_PROCESS_CPUTIME_ID);
        int64_t others = (int64_t)(p1 - p0) - (int64_t)(o1 - o0) - (int64_t)end;
        uint64_t cost = others > 0 ? (uint64_t)others : 0;
        if (cost < best) best = cost;
    }
    if (best == UINT64_MAX) return 0;
    return best < 20000 ? best : 20000;
}

int creplay_sleep_until(uint64_t deadline_ns) {
    struct timespec ts = timespec_of(deadline_ns);
    int r;
    do {
        r = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
    } while (r == EINTR);
    return -r;
}

void creplay_spin(uint64_t iterations) {
    for (uint64_t i = 0; i < iterations; i++) {
        __asm__ volatile("" ::: "memory");
    }
}

int creplay_set_timer_slack(unsigned long ns) {
    return prctl(PR_SET_TIMERSLACK, ns, 0, 0, 0) == 0 ? 0 : -errno;
}

int creplay_set_name(const char *name) {
    char buffer[16];
    strncpy(buffer, name, 15);
    buffer[15] = 0;
    return prctl(PR_SET_NAME, (unsigned long)buffer, 0, 0, 0) == 0 ? 0 : -errno;
}

long creplay_voluntary_switches(void) {
    struct rusage usage;
    return getrusage(RUSAGE_THREAD, &usage) == 0 ? usage.ru_nvcsw : -1;
}

int creplay_gettid(void) { return (int)syscall(SYS_gettid); }
int creplay_getcpu(void) { return sched_getcpu(); }

struct creplay_sched_attr {
    uint32_t size;
    uint32_t sched_policy;
    uint64_t sched_flags;
    int32_t sched_nice;
    uint32_t sched_priority;
    uint64_t sched_runtime;
    uint64_t sched_deadline;
    uint64_t sched_period;
};

int creplay_set_policy(int tid, int policy, int nice, int rt_priority) {
    struct creplay_sched_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.size = sizeof attr;
    attr.sched_policy = (uint32_t)policy;
    attr.sched_nice = nice;
    attr.sched_priority = (uint32_t)rt_priority;
    long r = syscall(SYS_sched_setattr, tid, &attr, 0);
    return r == 0 ? 0 : -errno;
}

int creplay_set_affinity(int tid, const int *cpus, int count) {
    cpu_set_t set;
    CPU_ZERO(&set);
    for (int i = 0; i < count; i++) {
        if (cpus[i] >= 0 && cpus[i] < CPU_SETSIZE) CPU_SET(cpus[i], &set);
    }
    return sched_setaffinity(tid, sizeof set, &set) == 0 ? 0 : -errno;
}

int creplay_thread_create(void *(*body)(void *), void *context, size_t stack_size, unsigned long *thread) {
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, stack_size);
    pthread_t t;
    int r = pthread_create(&t, &attr, body, context);
    pthread_attr_destroy(&attr);
    if (r == 0) *thread = (unsigned long)t;
    return r;
}

int creplay_thread_join(unsigned long thread) { return pthread_join((pthread_t)thread, NULL); }
