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

from collections import deque
from typing import TYPE_CHECKING, Any

from mypy_extensions import mypyc_attr

if TYPE_CHECKING:
    from operators.batch import BatchResult, DecideBatch
    from operators.sensorevent import SensorEvent

__all__ = ["FeedbackLoop", "Pending"]


# serializable alone compiles a class whose __init__ sets nothing (mypy 2.4): with
# interpreted subclasses allowed, as the other snapshot classes are, it is whole
@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)
class Pending:
    """A scored decision waiting for its outcome.

    >>> Pending("control", "lr-1", {"v": 1.0}, 0.8, decided_at=5).decided_at
    5
    """

    # compiled, one is made in C for each scored decision (a NamedTuple's is Python)
    def __init__(self, variant: str, version: str, values: dict[str, Any], score: float,
                 decided_at: int) -> None:
        self.variant = variant
        self.version = version
        self.values = values
        self.score = score
        self.decided_at = decided_at

    def __repr__(self) -> str:
        return (f"Pending({self.variant!r}, {self.version!r}, {self.values!r}, {self.score!r}, "
                f"decided_at={self.decided_at!r})")


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
        # Pending decisions by ID, and their IDs oldest first. Expiring the oldest is a
        # popleft and a dict pop (an OrderedDict's popitem and its linked list cost
        # several times that, once per decision past max_pending). An ID resolved since
        # stays in the order until it reaches the front; the order is compacted when
        # such IDs make half of it.
        self._pending: dict[str, Pending] = {}
        self._order: deque[str] = deque()
        # recently expired IDs (a set to ask, a deque to forget the oldest)
        self._expired: set[str] = set()
        self._expired_order: deque[str] = deque()

    @property
    def pending(self) -> int:
        return len(self._pending)

    def observe_batch(self, batch: DecideBatch, out: BatchResult) -> None:
        """Remember every decision the model scored, for its outcome."""
        did: str  # typed: a zip of six is typed Any (see the fast path)
        score: float | None
        variant: str
        version: str
        ev: SensorEvent
        now: int
        for did, score, variant, version, ev, now in zip(  # noqa: B905 - only a keyword-free zip compiles to a C loop
                batch.decision_id, batch.score, batch.variant, batch.version, batch.events,
                batch.now):
            if score is not None:
                self._add(did, Pending(variant, version, ev.values, score, now))
        self._bound()

    def forget(self, source_id: str) -> None:
        """Nothing per source: pending decisions expire by age and count."""

    def remember(self, decision_id: str, pending: Pending) -> None:
        self._add(decision_id, pending)
        self._bound()

    def _add(self, decision_id: str, pending: Pending) -> None:
        """Hold ``pending`` under its ID; a new ID joins the order (oldest first)."""
        if decision_id not in self._pending:
            self._order.append(decision_id)
        self._pending[decision_id] = pending

    def _bound(self) -> None:
        """Past ``max_pending``, the oldest pending decisions expire."""
        pending, order = self._pending, self._order
        while len(pending) > self.max_pending:
            old = order.popleft()
            if pending.pop(old, None) is not None:
                self._mark_expired(old)
        if len(order) > 2 * len(pending) + 1_024:  # mostly IDs resolved since
            self._order = deque(did for did in order if did in pending)

    def resolve(self, decision_id: str) -> Pending | None:
        return self._pending.pop(decision_id, None)

    def is_late(self, decision_id: str) -> bool:
        return decision_id in self._expired

    def expire(self, now: int) -> None:
        cutoff = now - self.ttl_ms
        pending, order = self._pending, self._order
        while order:
            decision_id = order[0]
            first = pending.get(decision_id)
            if first is not None:
                if first.decided_at > cutoff:
                    break
                del pending[decision_id]
                self._mark_expired(decision_id)
            order.popleft()

    def _mark_expired(self, decision_id: str) -> None:
        expired = self._expired
        if decision_id in expired:
            return
        expired.add(decision_id)
        self._expired_order.append(decision_id)
        if len(self._expired_order) > self.remember_expired:
            expired.discard(self._expired_order.popleft())
