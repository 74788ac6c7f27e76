"""A store fault injected on purpose: inserts that fail or hang for a while.

For fault scenarios and chaos experiments against a real store (the embedded
one or a server): the store itself stays up, and a wrapper makes the flow's
inserts fail (``errors``: the server refuses connections), hang (``hang``:
the server accepts and does not answer, until the client's timeout) or land
without an answer (``no_reply``: stored, but the reply is lost, so the writer
retries a block that is already there) for ``seconds`` of wall time, starting
``after_s`` after the first insert, or once the store holds ``after_decisions``
decision rows (a place in a replay rather than a moment). Off unless a run asks
for it (``LUCIDSTREAM_STORE_FAULT=errors:30@5``, ``errors:30@decisions=12000``).

>>> fault = StoreFault.parse("hang:30@5")
>>> fault.kind, fault.seconds, fault.after_s, fault.after_decisions
('hang', 30.0, 5.0, None)
>>> StoreFault.parse("errors:30@decisions=12000").after_decisions
12000
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, NoReturn

from operators.errors import ConfigError, StoreUnavailable
from operators.records import Rows
from sinks.store import Store

__all__ = ["KINDS", "FaultyStore", "StoreFault"]

KINDS = ("errors", "hang", "no_reply")


@dataclass
class StoreFault:
    """``seconds`` of failing inserts, from ``after_s`` after the first insert.

    ``timeout_s`` is how long a hung insert waits before it fails, as a client
    with that timeout would. Counts what it did, for tests and reports.
    """

    kind: str
    seconds: float
    after_s: float = 0.0
    after_decisions: int | None = None
    timeout_s: float = 30.0
    failed: int = 0                      # inserts it made fail
    decisions: int = 0                   # decision rows that reached the store
    window: tuple[float, float] | None = None  # time.monotonic() span, once started
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS or self.seconds <= 0 or self.after_s < 0:
            raise ConfigError(f"store fault {self.kind}:{self.seconds}@{self.after_s}: use "
                              f"one of {KINDS}, a positive duration and a delay >= 0, for "
                              "example errors:30@5 (fail for 30 s, from 5 s after the "
                              "first insert)")

    @classmethod
    def parse(cls, text: str) -> StoreFault:
        """``KIND:SECONDS[@AFTER_S]`` or ``KIND:SECONDS@decisions=N``."""
        try:
            kind, rest = text.split(":", 1)
            seconds, _, after = rest.partition("@")
            if after.startswith("decisions="):
                return cls(kind, float(seconds), after_decisions=int(after.split("=", 1)[1]))
            return cls(kind, float(seconds), float(after or 0))
        except ValueError:
            raise ConfigError(f"store fault {text!r}: expected KIND:SECONDS[@AFTER_S] or "
                              "KIND:SECONDS@decisions=N, for example errors:30@5 or "
                              "hang:30") from None

    def wrap(self, store: Store) -> FaultyStore:
        return FaultyStore(store, self)

    def active(self) -> bool:
        """Whether the fault is on now (the first call starts its clock)."""
        now = time.monotonic()
        with self._lock:
            if self.window is None:
                if self.after_decisions is not None and self.decisions < self.after_decisions:
                    return False
                start = now + self.after_s
                self.window = (start, start + self.seconds)
            return self.window[0] <= now < self.window[1]

    def fail(self, table: str, what: str) -> NoReturn:
        with self._lock:
            self.failed += 1
        raise StoreUnavailable(f"injected store fault: insert into {table} {what}")

    def before_insert(self, table: str) -> None:
        """Raise (at once, or after hanging) while an ``errors`` or ``hang`` fault is on."""
        if self.kind == "no_reply" or not self.active():
            return
        if self.kind == "errors":
            self.fail(table, "connection refused")
        assert self.window is not None
        time.sleep(max(0.0, min(self.window[1] - time.monotonic(), self.timeout_s)))
        if self.active():
            self.fail(table, f"timed out after {self.timeout_s:.0f} s")

    def after_insert(self, table: str) -> None:
        """Lose the reply of an insert that landed, while a ``no_reply`` fault is on."""
        if self.kind == "no_reply" and self.active():
            self.fail(table, "stored, but the reply was lost")


class FaultyStore:
    """A :class:`~sinks.store.Store` whose inserts go through a :class:`StoreFault`."""

    def __init__(self, store: Store, fault: StoreFault) -> None:
        self._store = store
        self.fault = fault

    def insert(self, rows: Rows, dedup: bool = True) -> None:
        self.fault.before_insert(rows.table)
        self._store.insert(rows, dedup)
        if rows.table == "decisions":
            self.fault.decisions += rows.count
        self.fault.after_insert(rows.table)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)
