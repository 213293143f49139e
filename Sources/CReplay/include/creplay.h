#ifndef REPLAYCTL_CREPLAY_H
#define REPLAYCTL_CREPLAY_H
// Shims for the replay engine: the calls Swift cannot make itself (variadic syscall and
// prctl, CPU_SET macros) and a spin loop the optimizer cannot delete. Nothing else.

#include <stdint.h>
#include <stddef.h>
#include <sys/types.h>

/// futex(FUTEX_WAIT_PRIVATE) on `word` while it equals `expected`, for at most
/// `timeout_ns` (0: no limit). Returns 0 when woken, or -errno (EAGAIN, ETIMEDOUT, EINTR).
int creplay_futex_wait(uint32_t *word, uint32_t expected, uint64_t timeout_ns);
/// futex_wait on `word` while it holds `expected`, until `deadline_ns` (CLOCK_MONOTONIC,
/// absolute; FUTEX_WAIT_BITSET). Returns 0 when woken, or -errno (-ETIMEDOUT at the deadline).
int creplay_futex_wait_until(uint32_t *word, uint32_t expected, uint64_t deadline_ns);
/// futex(FUTEX_WAKE_PRIVATE): wakes up to `count` waiters. Returns the number woken or -errno.
int creplay_futex_wake(uint32_t *word, int count);

/// Atomic operations on shared words (sequentially consistent).
uint32_t creplay_load32(const uint32_t *word);
uint32_t creplay_add32(uint32_t *word, uint32_t value);
void creplay_store32(uint32_t *word, uint32_t value);
/// Compare-and-swap: sets `word` to `desired` if it equals `expected`. Returns 1 when it did.
int creplay_cas32(uint32_t *word, uint32_t expected, uint32_t desired);
uint64_t creplay_load64(const uint64_t *word);
void creplay_store64(uint64_t *word, uint64_t value);

/// CLOCK_MONOTONIC and CLOCK_THREAD_CPUTIME_ID in nanoseconds.
uint64_t creplay_monotonic_ns(void);
uint64_t creplay_thread_cpu_ns(void);
/// clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME) until `deadline_ns`, resumed after signals.
int creplay_sleep_until(uint64_t deadline_ns);

/// Busy loop of `iterations` that survives optimisation (about 0.3 ns each here).
void creplay_spin(uint64_t iterations);

/// prctl(PR_SET_TIMERSLACK, ns) for the calling thread. Returns 0 or -errno.
int creplay_set_timer_slack(unsigned long ns);
/// prctl(PR_SET_NAME) for the calling thread (15 bytes kept). Returns 0 or -errno.
int creplay_set_name(const char *name);
/// gettid().
int creplay_gettid(void);
/// Voluntary context switches of the calling thread so far (getrusage RUSAGE_THREAD), or -1.
long creplay_voluntary_switches(void);
/// sched_getcpu().
int creplay_getcpu(void);
/// sched_setattr(tid, policy, nice, rt priority). Returns 0 or -errno.
int creplay_set_policy(int tid, int policy, int nice, int rt_priority);
/// sched_setaffinity(tid) to the `count` CPUs in `cpus`. Returns 0 or -errno.
int creplay_set_affinity(int tid, const int *cpus, int count);

/// Starts a detached-stack pthread running `body(context)` with a stack of `stack_size`
/// bytes. Returns 0 or the pthread error; `thread` receives the handle.
int creplay_thread_create(void *(*body)(void *), void *context, size_t stack_size, unsigned long *thread);
/// pthread_join.
int creplay_thread_join(unsigned long thread);
/// CPU a thread with a `stack_size` stack is charged after its body returns (glibc and kernel
/// exit): the least over `samples` threads created and joined, from the process CPU clock
/// (other threads of the process running meanwhile only add to it), at most 20 µs; 0 when
/// no thread can be created.
uint64_t creplay_thread_exit_cost_ns(size_t stack_size, int samples);

#endif
