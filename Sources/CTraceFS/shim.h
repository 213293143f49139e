#ifndef REPLAYCTL_CTRACEFS_SHIM_H
#define REPLAYCTL_CTRACEFS_SHIM_H
#include <tracefs.h>
#include <event-parse.h>
#include <kbuffer.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <unistd.h>

/* gettid(2) is declared only under _GNU_SOURCE; syscall(2) is variadic. */
static inline int replayctl_recorder_gettid(void) { return (int)syscall(SYS_gettid); }

/* glibc >= 2.34; declared only under _GNU_SOURCE. */
extern int posix_spawn_file_actions_addclosefrom_np(posix_spawn_file_actions_t *actions, int from);
static inline int replayctl_recorder_spawn_closefrom(posix_spawn_file_actions_t *actions, int from) {
    return posix_spawn_file_actions_addclosefrom_np(actions, from);
}
#endif
