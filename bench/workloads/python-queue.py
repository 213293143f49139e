#!/usr/bin/env python3
"""Python threads with queues: one producer, four workers, one collector; task-to-task wakeups
through futexes under the GIL, with small bursts of CPU."""
import os, queue, threading

ITEMS = int(os.environ.get("ITEMS", "60000"))
work, done = queue.Queue(maxsize=64), queue.Queue()

def worker():
    while True:
        item = work.get()
        if item is None:
            done.put(None)
            return
        done.put(sum(i * i for i in range(item % 200)))

def collector(n):
    finished = 0
    while finished < n:
        if done.get() is None:
            finished += 1

threads = [threading.Thread(target=worker, name=f"worker{i}") for i in range(4)]
c = threading.Thread(target=collector, args=(4,), name="collector")
for t in threads + [c]:
    t.start()
for i in range(ITEMS):
    work.put(i)
for _ in threads:
    work.put(None)
for t in threads + [c]:
    t.join()
