"""Staged rollout of a model variant, with automatic rollback.

A candidate variant takes a growing share of the sources (10 %, 50 %, 100 %
by default). Sources are routed by a stable hash, so the sources on the
candidate at 10 % stay on it at 50 %. Each step holds for at least
``hold_ms`` of pipeline clock and until both variants have been graded on
``min_outcomes`` outcomes within the step; then the candidate's accuracy is
compared with the control's. Trailing by more than ``margin`` rolls it back
to 0 % at once (so does a failing model canary); otherwise it takes the next
step. Every step and rollback is a :class:`RolloutChange` for the store.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Rollout", "RolloutChange", "RolloutConfig"]


@dataclass(frozen=True)
class RolloutConfig:
    candidate: str
    control: str = "control"
    steps: tuple[float, ...] = (0.1, 0.5, 1.0)
    hold_ms: int = 60_000
    min_outcomes: int = 200
    margin: float = 0.05

    def __post_init__(self) -> None:
        if not self.steps or any(not 0 < s <= 1 for s in self.steps) \
                or list(self.steps) != sorted(self.steps):
            raise ValueError(f"rollout steps {self.steps}: use rising shares in (0, 1]")
        if self.candidate == self.control:
            raise ValueError("the rollout candidate must differ from the control variant")


@dataclass(frozen=True)
class RolloutChange:
    at: int
    candidate: str
    from_share: float
    to_share: float
    state: str  # rolling | complete | rolled_back
    reason: str
    values: dict = field(default_factory=dict)


@dataclass
class _Grades:
    correct: int = 0
    total: int = 0

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0


class Rollout:
    """The candidate's share, stepped up by its grades or rolled back.

    >>> r = Rollout(RolloutConfig("cand", hold_ms=1_000, min_outcomes=10), started_at=0)
    >>> r.share
    0.1
    >>> r.grade("control", correct=9, total=10); r.grade("cand", correct=9, total=10)
    >>> r.step(now=1_000).to_share
    0.5
    >>> r.grade("control", correct=9, total=10); r.grade("cand", correct=3, total=10)
    >>> change = r.step(now=2_000)
    >>> change.state, change.to_share
    ('rolled_back', 0.0)
    """

    def __init__(self, config: RolloutConfig, started_at: int | None = None) -> None:
        self.config = config
        self.index = 0
        self.state = "rolling"
        self.started_at = started_at  # None: the first step starts with the first post
        self._grades: dict[str, _Grades] = {}
        self._baseline: float | None = None  # the control's accuracy at the last step

    @property
    def share(self) -> float:
        return 0.0 if self.state == "rolled_back" else self.config.steps[self.index]

    def grade(self, variant: str, correct: int, total: int) -> None:
        g = self._grades.setdefault(variant, _Grades())
        g.correct += correct
        g.total += total

    def rollback(self, now: int, reason: str) -> RolloutChange | None:
        if self.state != "rolling":
            return None
        before = self.share
        self.state = "rolled_back"
        return RolloutChange(now, self.config.candidate, before, 0.0, self.state, reason)

    def step(self, now: int) -> RolloutChange | None:
        """Judge the current step; returns the change when the share moves."""
        c = self.config
        if self.started_at is None:
            self.started_at = now
        if self.state != "rolling" or now - self.started_at < c.hold_ms:
            return None
        cand, ctrl = self._grades.get(c.candidate), self._grades.get(c.control)
        if cand is None or cand.total < c.min_outcomes:
            return None
        if ctrl is not None and ctrl.total >= c.min_outcomes and self.share < 1.0:
            baseline = ctrl.accuracy
        elif self._baseline is not None and self.share >= 1.0:
            baseline = self._baseline  # no control traffic left: the last one measured
        else:
            return None
        values = {"candidate_accuracy": round(cand.accuracy, 4),
                  "candidate_outcomes": cand.total, "control_accuracy": round(baseline, 4)}
        if cand.accuracy < baseline - c.margin:
            change = self.rollback(now, f"candidate accuracy {cand.accuracy:.3f} trails "
                                        f"control {baseline:.3f} by more than {c.margin}")
            return change and RolloutChange(change.at, change.candidate, change.from_share,
                                            0.0, change.state, change.reason, values)
        self._baseline = baseline
        self._grades.clear()
        self.started_at = now
        before = self.share
        if self.index + 1 >= len(c.steps):
            self.state = "complete"
            return RolloutChange(now, c.candidate, before, before, self.state,
                                 "candidate held its quality at the last step", values)
        self.index += 1
        return RolloutChange(now, c.candidate, before, self.share, self.state,
                             f"candidate within {c.margin} of control for {c.hold_ms} ms",
                             values)
