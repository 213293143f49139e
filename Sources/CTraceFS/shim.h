#ifndef REPLAYCTL_CTRACEFS_SHIM_H
#define REPLAYCTL_CTRACEFS_SHIM_H
#include <tracefs.h>
#include <event-parse.h>
#include <kbuffer.h>
#endif
