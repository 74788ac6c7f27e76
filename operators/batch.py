"""What the decider's parts share: one batch of a shard, its results, and the protocol.

A :class:`DecideBatch` holds the events a shard decides in one batch as parallel
lists, one entry per event: each part reads the columns it needs and fills in the
ones it owns, in the order the decider composes them (freshness stamps ``now`` and
``mode``; the model path ``variant`` and ``score``; the fast path ``action``,
``decision_id`` and the rest). What a batch
produces for the store goes into one :class:`BatchResult`.

A part is any object with ``observe_batch(batch, out)`` and ``forget(source_id)``::

    class Silence:
        def observe_batch(self, batch: DecideBatch, out: BatchResult) -> None: ...
        def forget(self, source_id: str) -> None: ...
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from operators.modes import NORMAL

if TYPE_CHECKING:
    from operators.alarms import Alarm
    from operators.decision import Decision
    from operators.events import SensorEvent
    from operators.modeboard import ModeBoard
    from operators.modes import ModeChange
    from operators.rollout import RolloutChange

__all__ = ["BatchResult", "DecideBatch", "Part"]


@dataclass(slots=True)
class DecideBatch:
    """The events a shard decides in one batch, and what each part found for each.

    ``board`` is the process's mode board: parts read flags and the rollout from it,
    never keep it (a restored shard is given the board of its new process).
    """

    events: list[SensorEvent]
    now: list[int]                    # the pipeline clock when each was stamped
    mode: list[str]                   # the mode then
    board: ModeBoard
    ingest_ns: int | None = None      # monotonic ns when the input batch was read
    variant: list[str] = field(default_factory=list)
    score: list[float | None] = field(default_factory=list)
    model_down: bool = False          # the model path failed for some variant
    # a variant that scored it is still young (its scores move as it learns): drift
    # does not watch its scores yet
    model_young: bool = False
    # variants that scored the batch but have not been shown a positive by the stream's
    # own rows: their scores do not decide (ModelPath.taught)
    untaught: set[str] = field(default_factory=set)
    # per variant that scored the batch, how far learning has moved its mean score
    # (ModelPath.learned)
    learned: dict[str, float] = field(default_factory=dict)
    content: list[str] = field(default_factory=list)   # rules/model/default, fresh or not
    rule_fired: list[bool] = field(default_factory=list)
    action: list[str] = field(default_factory=list)    # what was decided
    fresh: list[bool] = field(default_factory=list)
    escalated: list[bool] = field(default_factory=list)
    reason: list[str] = field(default_factory=list)
    decision_id: list[str] = field(default_factory=list)
    version: list[str] = field(default_factory=list)   # the model version, or "rules"

    def __len__(self) -> int:
        return len(self.events)


@dataclass
class BatchResult:
    """What one batch produced, plus counters for progress and metrics."""

    decisions: list[Decision] = field(default_factory=list)
    alarms: list[Alarm] = field(default_factory=list)
    mode_changes: list[ModeChange] = field(default_factory=list)
    quality: list[tuple] = field(default_factory=list)
    regrets: list[tuple] = field(default_factory=list)
    escalations: list[tuple] = field(default_factory=list)
    canaries: list[tuple] = field(default_factory=list)
    violations: list[tuple] = field(default_factory=list)
    rollout: list[RolloutChange] = field(default_factory=list)
    # for traces: monotonic ns of each stage, and the producer's span of traced inputs
    stages: dict[str, tuple[int, int]] = field(default_factory=dict)
    parents: dict[str, str] = field(default_factory=dict)
    events: int = 0
    stale: int = 0
    escalated: int = 0
    now_ms: int = 0
    lag_ms: int = 0
    mode: str = NORMAL


class Part(Protocol):
    """One stage of the decider."""

    def observe_batch(self, batch: DecideBatch, out: BatchResult) -> None:
        """Read the batch's columns, fill in this part's own, add rows to ``out``."""

    def forget(self, source_id: str) -> None:
        """Drop what is kept for a retired source."""
