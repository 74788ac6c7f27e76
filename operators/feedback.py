"""The feedback loop: outcomes join their decisions by ``decision_id``.

Decisions the model scored wait in a bounded, time-limited table (``ttl_ms``
of pipeline clock, ``max_pending`` entries; the oldest go first). An outcome
that finds its decision is *matched*: the model is graded (progressive
validation: it predicted before it learned) and then learns from the label.
An outcome for a decision that already expired is *late*; one for a decision
this shard never saw is not its own (every outcome reaches every shard; the
store's ``outcomes`` table keeps them all, so orphans are a query away).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Any, NamedTuple

from mypy_extensions import mypyc_attr

if TYPE_CHECKING:
    from operators.batch import BatchResult, DecideBatch

__all__ = ["FeedbackLoop", "Pending"]


class Pending(NamedTuple):
    """A scored decision waiting for its outcome."""

    variant: str
    version: str
    values: dict[str, Any]
    score: float
    decided_at: int


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)
class FeedbackLoop:
    """Pending decisions by ID, with a TTL and a memory of recently expired IDs.

    >>> loop = FeedbackLoop(ttl_ms=1_000)
    >>> loop.remember("d1", Pending("control", "lr-1", {"v": 1.0}, 0.8, decided_at=0))
    >>> loop.resolve("d1").score, loop.resolve("d1")
    (0.8, None)
    >>> loop.remember("d2", Pending("control", "lr-1", {}, 0.1, decided_at=0))
    >>> loop.expire(now=5_000); loop.resolve("d2"), loop.is_late("d2")
    (None, True)
    """

    def __init__(self, ttl_ms: int = 600_000, max_pending: int = 100_000,
                 remember_expired: int = 200_000) -> None:
        self.ttl_ms = ttl_ms
        self.max_pending = max_pending
        self.remember_expired = remember_expired
        self._pending: OrderedDict[str, Pending] = OrderedDict()
        self._expired: OrderedDict[str, None] = OrderedDict()

    @property
    def pending(self) -> int:
        return len(self._pending)

    def observe_batch(self, batch: DecideBatch, out: BatchResult) -> None:
        """Remember every decision the model scored, for its outcome."""
        new, pending = tuple.__new__, self._pending  # Pending without its Python __new__
        for did, score, variant, version, ev, now in zip(  # noqa: B905 - only a keyword-free zip compiles to a C loop
                batch.decision_id, batch.score, batch.variant, batch.version, batch.events,
                batch.now):
            if score is not None:
                pending[did] = new(Pending, (variant, version, ev.values, score, now))
        self._bound()

    def forget(self, source_id: str) -> None:
        """Nothing per source: pending decisions expire by age and count."""

    def remember(self, decision_id: str, pending: Pending) -> None:
        self._pending[decision_id] = pending
        self._bound()

    def _bound(self) -> None:
        """Past ``max_pending``, the oldest pending decisions expire."""
        pending = self._pending
        while len(pending) > self.max_pending:
            old, _ = pending.popitem(last=False)
            self._mark_expired(old)

    def resolve(self, decision_id: str) -> Pending | None:
        return self._pending.pop(decision_id, None)

    def is_late(self, decision_id: str) -> bool:
        return decision_id in self._expired

    def expire(self, now: int) -> None:
        cutoff = now - self.ttl_ms
        pending = self._pending
        while pending:
            decision_id, first = next(iter(pending.items()))
            if first.decided_at > cutoff:
                break
            pending.popitem(last=False)
            self._mark_expired(decision_id)

    def _mark_expired(self, decision_id: str) -> None:
        self._expired[decision_id] = None
        if len(self._expired) > self.remember_expired:
            self._expired.popitem(last=False)
