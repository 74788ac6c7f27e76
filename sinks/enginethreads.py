"""The embedded engine's threads yield the CPU to the flow's own.

The embedded store runs its inserts, merges and housekeeping on threads of the
flow's process. A decision waits for the flow's thread; a row waits in the store
writer's queue, which holds the flow only when it is full. So the engine's threads
run at a lower CPU priority (a higher nice value) than the flow's: on a machine
whose cores are all busy (a small host, or one shared with the broker) they take
what the flow leaves, instead of taking turns with it while decisions wait, and the
writer's backpressure still bounds how far they may fall behind. On an idle core
they run as fast as before: a nice value only orders threads that want the same
core.

The engine's threads are known by the names the engine gives them; Python's
threads (the writer among them: it holds the interpreter's lock while it builds a
table, and a lowered thread that holds it would hold up the flow too) and
librdkafka's (``rdk:``) keep their priority. Linux only (``/proc``); elsewhere,
and with ``nice`` 0, nothing changes.
"""

from __future__ import annotations

import logging
import os
import threading
import time

from operators.errors import ConfigError

__all__ = ["ENGINE_THREAD_NAMES", "EngineThreads", "checked_nice"]

log = logging.getLogger("lucidstream.store")

# the thread names of the embedded ClickHouse (a pool thread is renamed for each job:
# a query's pipeline, a merge), as prefixes
ENGINE_THREAD_NAMES = (
    "ThreadPool", "Query", "MergeMutate", "BgSch", "BgStrm", "BgDist", "BgMB", "BgBuf",
    "PoolDelay", "MemoryWorker", "Move", "Fetch", "Common", "jemalloc", "SystemLog",
    "AsyncMetrics", "Formatter", "Collector",
)
# a thread is made with its creator's name and named after: a new engine thread may
# still be called this when it is first seen, so it is looked at again
_UNNAMED = "python"


def checked_nice(nice: int) -> int:
    """``nice`` if it is a nice value to add (0 to 19), else a :class:`ConfigError`."""
    if not 0 <= nice <= 19:
        raise ConfigError(f"engine nice {nice}: use 0 (the flow's priority) to 19 (the "
                          "lowest)")
    return nice


class EngineThreads:
    """Lowers the priority of the engine's threads of this process as they appear.

    ``lower`` looks for new threads at most once per ``every_s`` (they appear as the
    engine's pools grow) and returns how many it lowered.

    >>> threads = EngineThreads(nice=10)
    >>> threads.lower() >= 0  # the engine's threads now run at nice 10, if any
    True
    >>> EngineThreads(nice=0).lower()  # 0: the engine keeps the flow's priority
    0
    """

    def __init__(self, nice: int = 10, every_s: float = 1.0,
                 tasks: str = "/proc/self/task") -> None:
        self.nice = checked_nice(nice)
        self.every_s = every_s
        self.tasks = tasks
        self._settled: set[str] = set()  # thread IDs lowered, or never the engine's
        self._next = 0.0

    def lower(self) -> int:
        """Lower the engine's threads not lowered yet; how many were."""
        now = time.monotonic()
        if self.nice == 0 or now < self._next:
            return 0
        self._next = now + self.every_s
        try:
            found = os.listdir(self.tasks)
        except OSError:  # not Linux: threads keep their priority
            self.nice = 0
            return 0
        python = {str(t.native_id) for t in threading.enumerate()}
        lowered = 0
        for tid in found:
            if tid in self._settled or tid in python:
                continue
            try:
                with open(f"{self.tasks}/{tid}/comm") as comm:
                    name = comm.read().strip()
                if name.startswith(ENGINE_THREAD_NAMES):
                    os.setpriority(os.PRIO_PROCESS, int(tid),
                                   min(19, os.getpriority(os.PRIO_PROCESS, int(tid)) +
                                       self.nice))
                    lowered += 1
                elif name == _UNNAMED:
                    continue  # perhaps an engine thread not named yet: look again
            except (OSError, ValueError):
                pass  # the thread ended, or its priority may not change: leave it
            self._settled.add(tid)
        self._settled &= set(found)  # thread IDs are reused once a thread ends
        if lowered:
            log.debug("event=engine_threads lowered=%d nice=+%d", lowered, self.nice)
        return lowered
