"""One background thread that runs a sink's writes in order.

The embedded ClickHouse (chdb) releases the GIL while it parses, sorts and
writes an insert, which is about half of an insert's cost. A writer thread
lets that half run on another core while the dataflow's thread decides the
next batch. The queue is short, so a store slower than the flow slows the
flow (backpressure) instead of filling memory.

Delivery stays what a synchronous sink gives: ``flush`` waits for every
submitted write and re-raises the first error, and the sink flushes before
each Bytewax snapshot, so a snapshot never covers rows that are not stored.
"""

from __future__ import annotations

import atexit
import math
import queue
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["BackgroundWriter"]

T = TypeVar("T")
_STOP = object()
_FLUSH = object()  # ends a linger: a flush waits for what is queued, not for the linger


class BackgroundWriter(Generic[T]):
    """Calls ``write(item)`` for each submitted item on one thread, in order.

    >>> written = []
    >>> writer = BackgroundWriter(written.append, depth=2)
    >>> for i in range(5):
    ...     writer.submit(i)
    >>> writer.flush()
    >>> written
    [0, 1, 2, 3, 4]
    >>> writer.close()

    An error in ``write`` is raised by the next ``submit``, ``flush`` or ``close``;
    nothing submitted after a failed item is written, and every later ``submit`` or
    ``flush`` raises again. ``close`` raises only an error not raised yet: a sink
    closed while its dataflow unwinds from that error must not raise it twice
    (Bytewax aborts the process on an error in a destructor). With ``merge``, the items
    queued while a write ran are merged into one write with what arrives within
    ``linger`` seconds of the first, or until the items taken weigh
    ``linger_weight`` (by ``weigh``), whichever comes first, as a Kafka producer's
    ``linger.ms`` and ``batch.size`` do: fewer, larger inserts, and what waits
    bounded in time and in size.

    ``submit`` blocks while ``depth`` items wait (besides the write that runs) and
    they weigh ``waiting_weight`` or more, or the oldest has waited ``waiting_s``: a
    backlog's large items are held at ``depth``, while a live stream's many small ones
    may gather up to that weight (one insert's worth, say) while a write runs, instead
    of holding the caller after two, but not for longer than ``waiting_s`` (a slow
    stream is held as soon as a failed store keeps it waiting).
    """

    def __init__(self, write: Callable[[T], None], depth: int = 2,
                 name: str = "lucidstream-writer",
                 merge: Callable[[list[T]], T] | None = None, linger: float = 0.0,
                 weigh: Callable[[T], int] = lambda item: 1,
                 linger_weight: int = 1 << 62, waiting_weight: int = 0,
                 waiting_s: float = math.inf) -> None:
        if depth < 1:
            raise ValueError(f"depth={depth}: the writer needs room for one write")
        self._write = write
        self._merge = merge
        self._linger = linger
        self._weigh = weigh
        self._linger_weight = linger_weight
        self._queue: queue.Queue[object] = queue.Queue()
        # what waits in the queue (flush and stop markers aside), and what may
        self._depth, self._waiting_weight, self._waiting_s = depth, waiting_weight, waiting_s
        self._room = threading.Condition()
        # when each waiting item was submitted, and its weight (weighed once); their sum
        self._since: deque[tuple[float, int]] = deque()
        self._weight = 0
        self._error: BaseException | None = None  # the failed write's, kept for good
        self._reported = False  # whether a caller has been given it
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()
        # A dataflow that stops without closing its sink still stores what it handed over.
        atexit.register(_close_at_exit, weakref.ref(self))

    def submit(self, item: T) -> None:
        """Queue ``item``; blocks while the queue is full (see the class)."""
        self._raise(again=True)
        if self._closed:
            raise RuntimeError("the writer is closed; create a new one to write again")
        weight = self._weigh(item)
        with self._room:
            # once true, each stays true until the writer takes an item (a notify)
            while len(self._since) >= self._depth and (
                    self._weight >= self._waiting_weight or
                    time.monotonic() - self._since[0][0] >= self._waiting_s):
                self._room.wait()
            self._weight += weight
            self._since.append((time.monotonic(), weight))
        self._queue.put(item)

    def _take(self, item: object) -> int:
        """``item`` was just taken from the queue: room for the next one; its weight
        (0: a flush or stop marker)."""
        if item is _STOP or item is _FLUSH:
            return 0
        with self._room:
            _, weight = self._since.popleft()
            self._weight -= weight
            self._room.notify()
        return weight

    def flush(self) -> None:
        """Wait until every submitted item is written; raise the first write error."""
        self.wait()
        self._raise(again=True)

    def wait(self) -> None:
        """Wait until every submitted item is written or failed; an error stays for the
        next ``submit``, ``flush`` or ``close`` to raise. A lingering writer writes at
        once."""
        if self._closed:  # the thread wrote everything before it stopped
            return
        self._queue.put(_FLUSH)
        self._queue.join()

    def close(self, raise_error: bool = True) -> None:
        """Flush and stop the thread (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        self._thread.join()
        if raise_error:
            self._raise(again=False)

    def _raise(self, again: bool) -> None:
        error = self._error
        if error is None:
            return
        if not self._reported:
            self._reported = True
            raise error
        if again:
            raise RuntimeError(f"an earlier write failed ({error}); nothing after it is "
                               "written: create a new writer") from error

    def _run(self) -> None:
        while True:
            items = [self._queue.get()]
            weight = self._take(items[0])
            if self._merge is not None:
                # It takes what is queued, and what comes within `linger` of taking the
                # first item, until the items weigh `linger_weight`: a live stream's
                # small batches become one insert, a backlog's large ones each fill it
                # at once. It keeps taking items while it waits, so the flow is held
                # only while a write runs and a full queue waits, as without a linger.
                until = time.monotonic() + self._linger
                while items[-1] is not _STOP and items[-1] is not _FLUSH and \
                        weight < self._linger_weight:
                    left = until - time.monotonic()
                    try:
                        items.append(self._queue.get(timeout=left) if left > 0
                                     else self._queue.get_nowait())
                    except queue.Empty:
                        break
                    weight += self._take(items[-1])
            stop = items[-1] is _STOP
            batch = [item for item in items if item is not _STOP and item is not _FLUSH]
            try:
                if batch and self._error is None:  # after a failure nothing is written
                    self._write(batch[0] if len(batch) == 1 or self._merge is None
                                else self._merge(batch))  # type: ignore[arg-type]
            except BaseException as exc:  # handed to the dataflow's thread
                self._error = exc
            finally:
                for _ in items:
                    self._queue.task_done()
            if stop:
                return


def _close_at_exit(ref: weakref.ref[BackgroundWriter]) -> None:
    writer = ref()
    if writer is not None:
        writer.close(raise_error=False)
