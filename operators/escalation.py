"""The human escalation queue: escalated decisions wait for a person, with a clock.

Every escalated decision (CONSERVATIVE mode, or a stale decision under the
``escalate`` policy) opens an escalation with a response SLA per decision
type. The queue watches the pipeline clock and records a breach once when an
escalation is still open at its due time. Rows are versioned (open 0, breached
or unwatched 1, answered 2) in a ReplacingMergeTree, so the latest state of each
wins and a replay writes the same rows.

A shard watches at most ``max_open`` escalations. Past that (a backlog decided
in CONSERVATIVE opens one per event), the oldest is recorded as ``unwatched``:
its SLA is no longer watched by the flow, and the table says so instead of
leaving it pending for ever.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING

from mypy_extensions import mypyc_attr

from operators.ids import row_id

if TYPE_CHECKING:
    from operators.batch import BatchResult, DecideBatch

__all__ = ["ANSWERS", "ESCALATION_COLUMNS", "STATUSES", "EscalationQueue", "answered"]

ESCALATION_COLUMNS = ("escalation_id", "decision_id", "source_id", "decision_type", "action",
                      "reason", "mode", "created_at", "due_at", "status", "responder",
                      "responded_at", "version", "flow")
OPEN, BREACHED, ANSWERED = 0, 1, 2
ANSWERS = ("approved", "rejected")
STATUSES = ("pending", "breached", "unwatched", *ANSWERS)


def answered(row: tuple, status: str, responder: str, at: int) -> tuple:
    """``row`` (an escalation, in :data:`ESCALATION_COLUMNS` order, times in epoch ms)
    answered by ``responder`` at ``at``: its final version.

    >>> row = ("e1", "d1", "r1", "motion", "stop", "why", "CONSERVATIVE", 0, 5, "pending",
    ...        "", None, OPEN, "f")
    >>> answered(row, "rejected", "bob", 9)[9:]
    ('rejected', 'bob', 9, 2, 'f')
    """
    if status not in ANSWERS:
        raise ValueError(f"answer {status!r}: use one of {ANSWERS}")
    return (*row[:9], status, responder, at, ANSWERED, row[13])


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)
class EscalationQueue:
    """Open escalations of one shard, oldest first, bounded.

    >>> q = EscalationQueue(flow="f")
    >>> row = q.open("d1", "r1", "motion", "stop", "mode CONSERVATIVE", "CONSERVATIVE",
    ...              now=1_000, sla_ms=5_000)
    >>> row[9], row[8]                       # status, due_at
    ('pending', 6000)
    >>> q.breaches(now=5_999), [r[9] for r in q.breaches(now=6_000)]
    ([], ['breached'])
    >>> q.answer("d1", "approved", "alice", at=7_000)[9:13]   # answered late, still recorded
    ('approved', 'alice', 7000, 2)
    >>> q.answer("d1", "approved", "alice", at=7_500) is None  # once
    True
    """

    def __init__(self, flow: str, max_open: int = 20_000, max_known: int = 20_000,
                 decision_type: str = "", sla_ms: int = 60_000) -> None:
        self.flow = flow
        self.decision_type = decision_type  # of the escalations observe_batch opens
        self.sla_ms = sla_ms
        self.max_open = max_open
        self._unwatched: list[tuple] = []
        self.max_known = max_known  # escalations a running flow can still take answers for
        self._open: OrderedDict[str, tuple] = OrderedDict()
        # the latest row of every escalation this shard opened (bounded), by both IDs
        self._known: OrderedDict[str, tuple] = OrderedDict()

    @property
    def open_count(self) -> int:
        return len(self._open)

    def observe_batch(self, batch: DecideBatch, out: BatchResult) -> None:
        """Open an escalation for each escalated decision of the batch."""
        opened = out.escalations
        for i, escalated in enumerate(batch.escalated):
            if escalated:  # a person decides; the action waits in the queue
                opened.append(self.open(
                    batch.decision_id[i], batch.events[i].source_id, self.decision_type,
                    batch.action[i], batch.reason[i], batch.mode[i], batch.now[i],
                    self.sla_ms))
                out.escalated += 1

    def forget(self, source_id: str) -> None:
        """Nothing per source: an open escalation waits for its answer or its SLA."""

    def open(self, decision_id: str, source_id: str, decision_type: str, action: str,
             reason: str, mode: str, now: int, sla_ms: int) -> tuple:
        row = (row_id("escalation", decision_id), decision_id, source_id, decision_type,
               action, reason, mode, now, now + sla_ms, "pending", "", None, OPEN, self.flow)
        self._open[decision_id] = row
        if len(self._open) > self.max_open:
            _, oldest = self._open.popitem(last=False)
            self._unwatched.append(self._closed(oldest, "unwatched"))
        self._known[row[0]] = row
        if len(self._known) > self.max_known:
            self._known.popitem(last=False)
        return row

    def knows(self, escalation_or_decision_id: str) -> bool:
        key = escalation_or_decision_id
        return key in self._known or row_id("escalation", key) in self._known

    def answer(self, escalation_or_decision_id: str, status: str, responder: str, at: int
               ) -> tuple | None:
        """A person's answer to an escalation this shard opened: the answered row, or
        ``None`` when it is unknown here or already answered (answers are final)."""
        if status not in ANSWERS:  # checked before the lookup: a typo is never "unknown"
            raise ValueError(f"answer {status!r}: use one of {ANSWERS}")
        key = escalation_or_decision_id
        if key not in self._known:
            key = row_id("escalation", key)
        row = self._known.get(key)
        if row is None or row[9] in ANSWERS:
            return None
        self._open.pop(row[1], None)
        final = answered(row, status, responder, at)
        self._known[key] = final
        return final

    def breaches(self, now: int) -> list[tuple]:
        """Escalations still open at their due time, and those no longer watched
        (over ``max_open``): each is reported once."""
        rows, self._unwatched = self._unwatched, []
        while self._open:
            decision_id, row = next(iter(self._open.items()))
            if row[8] > now:
                break
            del self._open[decision_id]
            rows.append(self._closed(row, "breached"))
        return rows

    def _closed(self, row: tuple, status: str) -> tuple:
        """``row`` no longer watched, as ``status`` (version 1: an answer replaces it)."""
        closed = (*row[:9], status, "", None, BREACHED, self.flow)
        if row[0] in self._known:
            self._known[row[0]] = closed
        return closed
