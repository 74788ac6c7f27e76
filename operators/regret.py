"""Late-data regret: would the decision have changed had late data been on time?

For each source the tracker keeps its last few decisions. When an event
arrives whose event time lies after a decision's input but at or before the
moment that decision was made, the event existed when the decision was made
and would have informed it. Only late data counts: an event whose own age at
arrival is within ``grace_ms`` (ordinary transport delay) is not regretted.
The decision is then re-scored with that fuller
picture (the event's content, as if it had arrived in time) and the tracker
records whether the action would have changed: the cost of staleness,
measured. Each decision is re-scored at most once.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mypy_extensions import mypyc_attr

from operators.ids import row_id

if TYPE_CHECKING:
    from operators.batch import BatchResult, DecideBatch
    from operators.quality import QualityTracker

__all__ = ["REGRET_COLUMNS", "Regret", "RegretTracker"]

REGRET_COLUMNS = ("regret_id", "decision_id", "source_id", "decided_at", "original_action",
                  "revised_action", "changed", "late_event_time", "late_arrived_at",
                  "informed_by", "model_version", "variant", "flow")


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)
class _Recent:
    """A source's recent decision (an explicit ``__init__``: compiled, it is C, where a
    dataclass's generated one is Python)."""

    def __init__(self, decision_id: str, event_ms: int, decided_at: int, action: str,
                 version: str, variant: str) -> None:
        self.decision_id = decision_id
        self.event_ms = event_ms
        self.decided_at = decided_at
        self.action = action
        self.version = version
        self.variant = variant
        self.done = False


@mypyc_attr(native_class=False)
@dataclass(frozen=True, slots=True)
class Regret:
    decision_id: str
    source_id: str
    decided_at: int
    original_action: str
    revised_action: str
    late_event_ms: int
    late_arrived_at: int
    informed_by: str
    version: str
    variant: str

    @property
    def changed(self) -> bool:
        return self.original_action != self.revised_action

    def row(self, flow: str) -> tuple:
        return (row_id("regret", self.decision_id), self.decision_id, self.source_id,
                self.decided_at, self.original_action, self.revised_action, self.changed,
                self.late_event_ms, self.late_arrived_at, self.informed_by, self.version,
                self.variant, flow)


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)
class RegretTracker:
    """Remembers recent decisions per source and re-scores them on late data.

    >>> t = RegretTracker()
    >>> t.record("r1", "d1", event_ms=1_000, decided_at=9_000, action="hold", version="v",
    ...          variant="control")
    >>> [r.changed for r in t.check("r1", event_ms=8_500, now=9_500, revised_action="stop",
    ...                               origin="file:x:2")]
    [True]
    >>> t.check("r1", event_ms=8_600, now=9_600, revised_action="go", origin="x")  # once only
    []
    """

    def __init__(self, keep: int = 4, grace_ms: int = 500, flow: str = "",
                 quality: QualityTracker | None = None) -> None:
        self.keep = keep
        self.grace_ms = grace_ms
        self.flow = flow
        self.quality = quality  # told of each regret, when given
        self._recent: dict[str, deque[_Recent]] = {}

    def observe_batch(self, batch: DecideBatch, out: BatchResult) -> None:
        """Check each event against its source's recent decisions, then record its own."""
        quality, flow = self.quality, self.flow
        # the columns as locals: an attribute of the (interpreted) batch is a dict lookup
        nows, contents, ids, actions = batch.now, batch.content, batch.decision_id, \
            batch.action
        versions, variants = batch.version, batch.variant
        for i, ev in enumerate(batch.events):
            now = nows[i]
            for regret in self.check(ev.source_id, ev.event_ms, now, contents[i], ev.origin):
                out.regrets.append(regret.row(flow))
                if quality is not None:
                    quality.add_regret(regret.version, regret.variant, regret.changed, now)
            self.record(ev.source_id, ids[i], ev.event_ms, now, actions[i], versions[i],
                        variants[i])

    def check(self, source_id: str, event_ms: int, now: int, revised_action: str,
              origin: str) -> list[Regret]:
        recent = self._recent.get(source_id)
        if not recent or now - event_ms <= self.grace_ms:
            return []
        found = []
        for d in recent:
            if not d.done and d.event_ms < event_ms <= d.decided_at:
                d.done = True
                found.append(Regret(d.decision_id, source_id, d.decided_at, d.action,
                                    revised_action, event_ms, now, origin, d.version,
                                    d.variant))
        return found

    def record(self, source_id: str, decision_id: str, event_ms: int, decided_at: int,
               action: str, version: str, variant: str) -> None:
        recent = self._recent.get(source_id)
        if recent is None:
            recent = self._recent[source_id] = deque(maxlen=self.keep)
        recent.append(_Recent(decision_id, event_ms, decided_at, action, version, variant))

    def forget(self, source_id: str) -> None:
        self._recent.pop(source_id, None)
