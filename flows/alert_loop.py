"""Evaluate the alert rules beside a running flow and send what changes to webhooks.

A background thread polls the store once a second for the newest pipeline time it
holds and evaluates every rule at each ``step_ms`` of pipeline clock up to it, in
order, so a replay gets the notifications a live run would have (stamped with the
pipeline time they belong to). It uses at most about a fifth of its wall time on
queries while the flow runs (the store is shared with the flow's writer); when the
flow ends, :meth:`AlertLoop.finish` evaluates up to the end at once and waits, for
a bounded time, for the webhooks to take every notification. A store that does not
answer is retried at the next poll; a rule whose query fails is logged and skipped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

from flows.alerts import AlertEngine, Notification, Rule, evaluate, firing_ids, store_clock
from flows.notify import Webhooks
from operators.errors import StoreError, StoreUnavailable

__all__ = ["AlertLoop"]

log = logging.getLogger("lucidstream.alerts")


class AlertLoop(threading.Thread):
    """Rules in, notifications out, on the pipeline clock.

    Built before the flow starts, so only what the flow stores is judged::

        loop = AlertLoop(store, load_rules(), Webhooks(["http://127.0.0.1:9000/"]))
        loop.start(); ...; loop.finish()
    """

    def __init__(self, store: Any, rules: Sequence[Rule], webhooks: Webhooks,
                 step_ms: int = 5_000, poll_s: float = 1.0, busy_share: float = 0.2,
                 labels: dict[str, str] | None = None) -> None:
        super().__init__(name="lucidstream-alerts", daemon=True)
        self.store, self.rules, self.webhooks = store, list(rules), webhooks
        self.step_ms, self.poll_s, self.busy_share = step_ms, poll_s, busy_share
        self.labels = labels or {}
        self.engine = AlertEngine()
        self.sent: list[Notification] = []
        self._broken: set[str] = set()
        self._stopping = threading.Event()
        self._lock = threading.Lock()  # one catch-up at a time
        self._next_ms: int | None = None
        self._last_ms = 0
        try:
            self._baseline = store_clock(store)[1]  # what was there before: not judged
        except StoreError:
            self._baseline = None

    def run(self) -> None:
        while not self._stopping.wait(self.poll_s):
            self.catch_up(pace=True)

    def finish(self, timeout_s: float = 30.0) -> bool:
        """Stop polling, evaluate up to the end, and wait for delivery."""
        self._stopping.set()
        if self.is_alive():
            self.join()
        self.catch_up(pace=False, to_the_end=True)
        return self.webhooks.close(timeout_s)

    def catch_up(self, pace: bool, to_the_end: bool = False) -> None:
        with self._lock:
            try:
                low, high = store_clock(self.store)
            except StoreUnavailable as exc:
                log.warning("event=alerts_store_unavailable error=%s", exc)
                return
            if high is None or (self._baseline is not None and high <= self._baseline):
                return
            if self._next_ms is None:
                self._next_ms = self._baseline + self.step_ms if self._baseline else low
            while True:
                if self._next_ms <= high:
                    at = self._next_ms
                elif to_the_end and self._last_ms < high:
                    at = high  # the state the run ended in
                else:
                    return
                if self._stopping.is_set() and not to_the_end:
                    return
                started = time.monotonic()
                if not self._evaluate_all(at):
                    return
                self._last_ms, self._next_ms = at, at + self.step_ms
                if pace and self._stopping.wait((time.monotonic() - started)
                                            * (1 - self.busy_share) / self.busy_share):
                    return

    def _evaluate_all(self, at: int) -> bool:
        for rule in self.rules:
            if rule.name in self._broken:
                continue
            try:
                changes = self.engine.step(rule, at, evaluate(self.store, rule, at))
                for note in changes:
                    if note.status == "firing" and not note.ids and rule.ids_sql:
                        note = _with_ids(note, firing_ids(self.store, rule, at))
                    self._send(note)
            except StoreUnavailable as exc:
                log.warning("event=alerts_store_unavailable error=%s", exc)
                return False
            except StoreError as exc:
                self._broken.add(rule.name)
                log.error("event=alert_rule_failed rule=%s error=%s; the rule is skipped "
                          "until the flow restarts: fix its SQL (lucidstream alerts list)",
                          rule.name, exc)
        return True

    def _send(self, note: Notification) -> None:
        self.sent.append(note)
        log.info("event=alert status=%s rule=%s key=%s value=%s", note.status, note.rule,
                 note.key, note.value)
        self.webhooks.send({**note.payload(), **self.labels})


def _with_ids(note: Notification, ids: tuple[str, ...]) -> Notification:
    from dataclasses import replace

    return replace(note, ids=ids)
