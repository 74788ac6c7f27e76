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
           "ModeMachine", "Override"]

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


@dataclass(frozen=True)
class Override:
    """A human's mode, with who set it, why, and until when (epoch ms; None = until cleared)."""

    mode: str
    reason: str
    who: str = ""
    until_ms: int | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode {self.mode!r}: use one of {', '.join(MODES)}")


class ModeMachine:
    """Lag in, mode out, with hysteresis on the way back up; a manual override beats it.

    >>> m = ModeMachine(ModeConfig(recover_hold_ms=1_000))
    >>> m.update(now=0, lag_ms=6_000).to_mode
    'REACTIVE_ONLY'
    >>> m.update(now=500, lag_ms=100) is None      # healthy, but not for long enough
    True
    >>> m.update(now=1_600, lag_ms=100).to_mode
    'NORMAL'
    >>> m.set_override(Override(CONSERVATIVE, "storm", "ops"), now=2_000).trigger
    'override'
    >>> m.update(now=9_000, lag_ms=100) is None, m.mode   # the override beats the lag
    (True, 'CONSERVATIVE')
    >>> m.clear_override(now=9_500, who="ops").to_mode
    'NORMAL'
    """

    def __init__(self, config: ModeConfig | None = None) -> None:
        self.config = config or ModeConfig()
        self._reset()

    def _reset(self) -> None:
        self._auto = NORMAL
        self._healthy_since: int | None = None
        self._override: Override | None = None

    @property
    def mode(self) -> str:
        return self._override.mode if self._override else self._auto

    @property
    def override(self) -> Override | None:
        return self._override

    @property
    def auto_mode(self) -> str:
        return self._auto

    def target(self, lag_ms: int) -> str:
        """The mode the lag alone asks for."""
        if lag_ms > self.config.conservative_after_ms:
            return CONSERVATIVE
        if lag_ms > self.config.reactive_after_ms:
            return REACTIVE_ONLY
        return NORMAL

    def update(self, now: int, lag_ms: int) -> ModeChange | None:
        """Feed the current lag; returns the transition when the mode in force changes.

        Under an override the automatic mode keeps moving (with its hysteresis), so
        clearing the override lands on what the data says now.
        """
        wanted = self.target(lag_ms)
        current = self._auto
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

    def set_override(self, override: Override, now: int) -> ModeChange:
        """Put ``override`` in force; recorded even when the mode stays the same."""
        before = self.mode
        self._override = override
        until = "until cleared" if override.until_ms is None else f"until {override.until_ms}"
        return ModeChange(now, before, override.mode,
                          f"override by {override.who or 'unknown'}: {override.reason} "
                          f"({until})", "override",
                          {"who": override.who, "until_ms": override.until_ms,
                           "auto_mode": self._auto})

    def clear_override(self, now: int, who: str = "", why: str = "cleared") -> ModeChange | None:
        """Return to the automatic mode; ``None`` when no override was in force."""
        if self._override is None:
            return None
        before = self.mode
        self._override = None
        return ModeChange(now, before, self._auto, f"override {why} by {who or 'unknown'}; "
                          f"automatic mode {self._auto}", "override", {"who": who})

    def expire(self, now: int, wall_ms: int) -> ModeChange | None:
        """Clear an override whose time (wall clock, as a human set it) has passed."""
        if self._override and self._override.until_ms is not None \
                and wall_ms >= self._override.until_ms:
            return self.clear_override(now, self._override.who, "expired")
        return None

    def _threshold(self, mode: str) -> int:
        if mode == CONSERVATIVE:
            return self.config.conservative_after_ms
        return self.config.reactive_after_ms

    def _move(self, now: int, to_mode: str, reason: str, lag_ms: int) -> ModeChange | None:
        before = self.mode
        self._auto = to_mode
        if self._override is not None:
            return None  # the automatic mode moved, but the mode in force did not
        return ModeChange(now, before, to_mode, reason, "auto", {"lag_ms": lag_ms})
