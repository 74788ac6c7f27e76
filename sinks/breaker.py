"""Retries for a store that fails: exponential backoff with jitter, behind a circuit breaker.

A write that fails with :class:`~operators.errors.StoreUnavailable` (the store
is down, slow or overloaded) is tried again after ``base_s``, then twice that,
up to ``cap_s``, each wait drawn between half and all of its bound (jitter: many
writers that failed together do not retry together). After ``threshold``
consecutive failures the circuit *opens*: the store is reported down (the mode
board, the progress line) and only one write at a time probes it (*half-open*)
until one succeeds and the circuit *closes*. Any other error (the store refused
the rows themselves) is not retried: it is raised at once.

The caller blocks while it retries. That is the point: a writer that cannot
store holds the flow back (backpressure) rather than dropping decisions or
buffering without bound. With ``give_up_after_s`` the outage ends the run after
that long; by default the breaker waits for the store as long as it takes, or
until ``stop`` is set (Ctrl-C).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from operators.errors import ConfigError, StoreUnavailable

__all__ = ["CLOSED", "HALF_OPEN", "OPEN", "CircuitBreaker", "StoreStatus"]

log = logging.getLogger("lucidstream.sink")

T = TypeVar("T")
CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"


@dataclass(frozen=True)
class StoreStatus:
    """What a breaker reports before and after every attempt: the store's health as
    writes see it."""

    ok: bool
    state: str = CLOSED
    failing_since: float | None = None  # time.monotonic() of the outage's first failure
    attempts: int = 0                   # failed attempts in this outage
    next_try_at: float | None = None    # time.monotonic() of the next probe, while waiting
    error: str = ""
    # a report that a write started (time.monotonic()), not of how one ended; and how
    # long the last write took when it was slower than ``slow_s``
    writing_since: float | None = None
    slow_s: float | None = None


class CircuitBreaker:
    """Calls ``fn`` until it succeeds, waiting longer after each failure.

    >>> calls = []
    >>> def flaky():
    ...     calls.append(1)
    ...     if len(calls) < 4:
    ...         raise StoreUnavailable("connection refused")
    ...     return "stored"
    >>> breaker = CircuitBreaker(base_s=0.001, cap_s=0.004, threshold=2)
    >>> breaker.call(flaky), len(calls), breaker.state
    ('stored', 4, 'closed')
    >>> [round(bound, 3) for bound in breaker.bounds(5)]  # the wait after failure 1, 2, ...
    [0.001, 0.002, 0.004, 0.004, 0.004]
    """

    def __init__(self, base_s: float = 0.5, cap_s: float = 15.0, threshold: int = 3,
                 give_up_after_s: float | None = None,
                 on_status: Callable[[StoreStatus], None] | None = None,
                 stop: threading.Event | None = None, what: str = "write",
                 clock: Callable[[], float] = time.monotonic,
                 rng: random.Random | None = None, slow_s: float = 5.0) -> None:
        if not 0 < base_s <= cap_s or threshold < 1:
            raise ConfigError(f"store retry base {base_s} s, cap {cap_s} s, threshold "
                              f"{threshold}: use 0 < base <= cap and a threshold of 1 or more")
        if give_up_after_s is not None and give_up_after_s <= 0:
            raise ConfigError(f"store give-up after {give_up_after_s} s: use a positive "
                              "number of seconds, or leave it unset to wait for the store")
        self.base_s, self.cap_s, self.threshold = base_s, cap_s, threshold
        self.give_up_after_s = give_up_after_s
        self.slow_s = slow_s  # a write slower than this is reported (it held the input)
        self.state = CLOSED
        self._on_status = on_status
        self._stop = stop or threading.Event()
        self._what = what
        self._clock = clock
        self._rng = rng or random.Random()
        self._failing_since: float | None = None
        self._failures = 0

    def bounds(self, failures: int) -> list[float]:
        """The upper bound of the wait after each of ``failures`` failures."""
        return [self._bound(n) for n in range(1, failures + 1)]

    def _bound(self, failures: int) -> float:
        """The upper bound of the wait after the ``failures``-th failure in a row."""
        return min(self.cap_s, self.base_s * 2 ** (failures - 1))

    def call(self, fn: Callable[[], T]) -> T:
        """``fn()``, retried while it raises :class:`StoreUnavailable`."""
        while True:
            started = self._clock()
            self._emit(StoreStatus(True, self.state, self._failing_since, self._failures,
                                   writing_since=started))
            try:
                result = fn()
            except StoreUnavailable as exc:
                self._failed(exc)
                continue
            took = self._clock() - started
            if self._failing_since is not None:
                self._recovered()
            elif took >= self.slow_s:  # it answered, late: the input was held meanwhile
                log.warning("step=sink event=slow_write %s_s=%.1f", self._what, took)
                self._emit(StoreStatus(True, slow_s=took))
            else:
                self._emit(StoreStatus(True))
            return result

    def _failed(self, exc: StoreUnavailable) -> None:
        now = self._clock()
        if self._failing_since is None:
            self._failing_since = now
        self._failures += 1
        down_s = now - self._failing_since
        if self.give_up_after_s is not None and down_s >= self.give_up_after_s:
            self._report(False, None, str(exc))
            raise StoreUnavailable(
                f"the store has failed every {self._what} for {down_s:.0f} s "
                f"({self._failures} attempts; last: {exc}); giving up as configured "
                "(--store-give-up). Nothing decided since the last stored batch is "
                "acknowledged: with --recovery-dir a restart decides it again") from exc
        wait = self._bound(self._failures) * (0.5 + 0.5 * self._rng.random())
        if self.state == CLOSED and self._failures >= self.threshold:
            log.error("step=sink event=circuit_open %s=failing attempts=%d error=%s "
                      "retry_in_s=%.1f (input held until the store answers)", self._what,
                      self._failures, exc, wait)
        else:
            log.warning("step=sink event=%s %s=failed attempt=%d error=%s retry_in_s=%.1f",
                        "retry" if self.state == CLOSED else "probe_failed", self._what,
                        self._failures, exc, wait)
        if self._failures >= self.threshold:
            self.state = OPEN
        self._report(False, now + wait, str(exc))
        if self._stop.wait(wait):
            raise StoreUnavailable(
                f"stopped while the store was down ({down_s:.0f} s, {self._failures} "
                f"attempts; last: {exc}): what was not stored is not acknowledged, and "
                "with --recovery-dir a restart decides it again") from exc
        if self.state == OPEN:
            self.state = HALF_OPEN

    def _recovered(self) -> None:
        down_s = self._clock() - (self._failing_since or 0.0)
        log.warning("step=sink event=circuit_closed %s=stored down_s=%.1f attempts=%d",
                    self._what, down_s, self._failures)
        self._failing_since, self._failures, self.state = None, 0, CLOSED
        self._report(True, None, "")

    def _report(self, ok: bool, next_try_at: float | None, error: str) -> None:
        self._emit(StoreStatus(ok, self.state, self._failing_since, self._failures,
                               next_try_at, error))

    def _emit(self, status: StoreStatus) -> None:
        if self._on_status is not None:
            self._on_status(status)
