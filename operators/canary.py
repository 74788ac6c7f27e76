"""Canary decisions: synthetic inputs with known answers, through the whole pipeline.

A :class:`Canary` is a sensor reading whose right decision is known. On a
schedule of pipeline clock (``every_ms``), :class:`CanarySchedule` turns each
canary into an ordinary contract record (``kind = "canary"``, ``source_id =
"canary:<name>"``, ``seq`` = the schedule slot), so it is decoded, sharded,
stamped and scored like any event; the shard that owns it decides it on
``path = "canary"``, never executes it, and records a row in
``canary_results``. Two kinds of check:

* ``checks="rules"``: the decision's action must be ``expect`` (rules, the
  freshness SLA and the stale policy all take part);
* ``checks="model"``: each model variant in service must score the reading
  higher than the harmless reading ``versus`` (by more than ``min_gap``). A
  ranking, not a threshold: an online model is judged on whether it points the
  right way, which an inverted, constant or corrupted model does not. A model
  that has learned from fewer than ``warmup_samples`` rows is not judged yet
  (status ``warmup``), nor one whose stream has never carried the values that tell
  the two readings apart (status ``unseen``).

A failing rules canary drives the mode to CONSERVATIVE (the pipeline itself
decides wrongly); a failing model canary drives it to REACTIVE_ONLY (rules can
still be trusted), and a failing rollout candidate is rolled back.

Every worker injects the same slots (slot = clock // every_ms); the owning
shard keeps the first copy of each slot, so ``-w N`` and ``--processes N``
still decide each canary once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from operators.ids import row_id

__all__ = ["CANARY_COLUMNS", "CANARY_PREFIX", "Canary", "CanarySchedule", "canary_row"]

CANARY_PREFIX = "canary:"
CANARY_COLUMNS = ("canary_id", "at", "canary", "checks", "slot", "variant", "model_version",
                  "expected_action", "actual_action", "status", "score", "mode",
                  "decision_id", "age_ms", "reason", "flow")
CHECKS = ("rules", "model")


@dataclass(frozen=True)
class Canary:
    """A reading whose right decision is known.

    >>> Canary("dead-battery", {"battery": 2.0}, expect="return_to_base").source_id
    'canary:dead-battery'
    >>> Canary("model-ranks", {"battery": 2.0}, checks="model", versus={"battery": 90.0}).expect
    'ranks_higher'
    """

    name: str
    values: Mapping[str, float]
    expect: str = ""
    checks: str = "rules"
    versus: Mapping[str, float] | None = None
    min_gap: float = 0.0
    warmup_samples: int = 1_000

    def __post_init__(self) -> None:
        if self.checks not in CHECKS:
            raise ValueError(f"canary {self.name!r}: checks={self.checks!r}, use one of "
                             f"{CHECKS}")
        if not self.values:
            raise ValueError(f"canary {self.name!r} needs at least one value")
        if self.checks == "model":
            if not self.versus:
                raise ValueError(f"model canary {self.name!r} needs versus= (a harmless "
                                 "reading it must score lower)")
            object.__setattr__(self, "expect", self.expect or "ranks_higher")
        elif not self.expect:
            raise ValueError(f"rules canary {self.name!r} needs expect= (the right action)")

    @property
    def source_id(self) -> str:
        return CANARY_PREFIX + self.name

    def distinguishing(self) -> list[str]:
        """The names whose values differ between the reading and ``versus`` (a model
        canary's question), sorted.

        >>> Canary("m", {"battery": 2.0, "speed": 1.0}, checks="model",
        ...        versus={"battery": 90.0, "speed": 1.0}).distinguishing()
        ['battery']
        """
        versus = self.versus or {}
        return sorted({n for n, v in self.values.items() if versus.get(n) != v} |
                      {n for n in versus if n not in self.values})


@dataclass
class CanarySchedule:
    """Which canary records are due as the pipeline clock passes; one per worker.

    >>> s = CanarySchedule([Canary("c", {"x": 1.0}, "go")], every_ms=10_000)
    >>> [r[1]["seq"] for r in s.due(25_000)], s.due(29_000), len(s.due(30_000))
    ([2], [], 1)
    """

    canaries: Sequence[Canary]
    every_ms: int = 10_000
    _last_slot: int = field(default=-1, repr=False)

    def __post_init__(self) -> None:
        if self.every_ms <= 0:
            raise ValueError(f"canary every_ms={self.every_ms}: must be positive")

    def due(self, now_ms: int, replay: bool = True) -> list[tuple[str, dict]]:
        """Records for the slot ``now_ms`` falls in, once per slot (none before the
        first slot is reached again after a restart)."""
        slot = now_ms // self.every_ms
        if not self.canaries or slot <= self._last_slot:
            return []
        self._last_slot = slot
        records = []
        for canary in self.canaries:
            record = {"source_id": canary.source_id, "event_time": now_ms,
                      "values": dict(canary.values), "seq": slot, "kind": "canary"}
            if replay:
                record["arrival_time"] = now_ms
            records.append((f"canary:{canary.name}:{slot}", record))
        return records


def canary_row(flow: str, canary: Canary, slot: int, at: int, variant: str, version: str,
               actual: str, status: str, score: float | None, mode: str, decision_id: str,
               age_ms: int, reason: str) -> tuple:
    """One ``canary_results`` row; the ID is stable for a (canary, slot, variant)."""
    return (row_id(flow, canary.name, slot, variant), at, canary.name, canary.checks, slot,
            variant, version, canary.expect, actual, status, score, mode, decision_id, age_ms,
            reason, flow)
