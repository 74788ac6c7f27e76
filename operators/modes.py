"""The degraded-mode state machine, driven by how far behind the pipeline is.

``NORMAL`` decides with rules and the model. ``REACTIVE_ONLY`` (lag over
``reactive_after_ms``, default 5 s) runs rules only. ``CONSERVATIVE`` (lag over
``conservative_after_ms``, default 30 s) executes nothing on its own: every
decision is escalated to a human. Degrading is immediate; recovering needs the
healthier level to hold for ``recover_hold_ms`` (hysteresis). Each transition
is recorded with its reason and the values that triggered it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["CONSERVATIVE", "MODES", "NORMAL", "REACTIVE_ONLY", "ModeChange", "ModeConfig",
           "ModeMachine"]

NORMAL = "NORMAL"
REACTIVE_ONLY = "REACTIVE_ONLY"
CONSERVATIVE = "CONSERVATIVE"
MODES = (NORMAL, REACTIVE_ONLY, CONSERVATIVE)
_RANK = {m: i for i, m in enumerate(MODES)}


@dataclass(frozen=True)
class ModeConfig:
    reactive_after_ms: int = 5_000
    conservative_after_ms: int = 30_000
    recover_hold_ms: int = 10_000


@dataclass(frozen=True)
class ModeChange:
    at: int
    from_mode: str
    to_mode: str
    reason: str
    trigger: str = "auto"
    values: dict[str, Any] = field(default_factory=dict)


class ModeMachine:
    """Lag in, mode out, with hysteresis on the way back up.

    >>> m = ModeMachine(ModeConfig(recover_hold_ms=1_000))
    >>> m.update(now=0, lag_ms=6_000).to_mode
    'REACTIVE_ONLY'
    >>> m.update(now=500, lag_ms=100) is None      # healthy, but not for long enough
    True
    >>> m.update(now=1_600, lag_ms=100).to_mode
    'NORMAL'
    """

    def __init__(self, config: ModeConfig | None = None) -> None:
        self.config = config or ModeConfig()
        self._reset()

    def _reset(self) -> None:
        self._mode = NORMAL
        self._healthy_since: int | None = None

    @property
    def mode(self) -> str:
        return self._mode

    def target(self, lag_ms: int) -> str:
        """The mode the lag alone asks for."""
        if lag_ms > self.config.conservative_after_ms:
            return CONSERVATIVE
        if lag_ms > self.config.reactive_after_ms:
            return REACTIVE_ONLY
        return NORMAL

    def update(self, now: int, lag_ms: int) -> ModeChange | None:
        """Feed the current lag; returns the transition when the mode changes."""
        wanted = self.target(lag_ms)
        current = self._mode
        if _RANK[wanted] > _RANK[current]:
            self._healthy_since = None
            return self._move(now, wanted, f"watermark lag {lag_ms} ms over the "
                              f"{self._threshold(wanted)} ms limit of {wanted}", lag_ms)
        if _RANK[wanted] == _RANK[current]:
            self._healthy_since = None
            return None
        if self._healthy_since is None:
            self._healthy_since = now
        if now - self._healthy_since < self.config.recover_hold_ms:
            return None
        self._healthy_since = None
        return self._move(now, wanted, f"watermark lag {lag_ms} ms healthy for "
                          f"{self.config.recover_hold_ms} ms", lag_ms)

    def _threshold(self, mode: str) -> int:
        if mode == CONSERVATIVE:
            return self.config.conservative_after_ms
        return self.config.reactive_after_ms

    def _move(self, now: int, to_mode: str, reason: str, lag_ms: int) -> ModeChange:
        change = ModeChange(now, self._mode, to_mode, reason, "auto", {"lag_ms": lag_ms})
        self._mode = to_mode
        return change
