"""The degraded-mode state machine: health signals in, one mode out.

``NORMAL`` decides with rules and the model. ``REACTIVE_ONLY`` runs rules only
(slow path off): the model's inputs cannot be trusted. ``PAUSED`` also runs
rules only, because the model path itself has stopped answering (its heartbeat
is lost). ``CONSERVATIVE`` executes nothing on its own: every decision is
escalated to a person. Each signal of :class:`Health` asks for a mode; the most
degraded wins:

============================  =====================  ===============
signal                        REACTIVE_ONLY above     CONSERVATIVE above
============================  =====================  ===============
watermark lag                 5 s                     30 s
Kafka consumer lag            100,000 messages        1,000,000 messages
silent share of sources       50 %                    -
sources drifting (last min)   50 % (at least 3)        -
a fleet-wide drift (last min) any ``fleet:`` alarm     -
failing canaries              a model canary          a rules canary
sink failing for              -                       5 s
============================  =====================  ===============

and ``PAUSED`` when the model path has failed for ``model_heartbeat_ms``
(2 s). Degrading is immediate; recovering needs the healthier level to hold
for ``recover_hold_ms`` (hysteresis). Each transition is recorded with its
reason and the values that triggered it.
"""


from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["CONSERVATIVE", "MODES", "NORMAL", "PAUSED", "REACTIVE_ONLY", "RULES_ONLY",
           "Health", "ModeChange", "ModeConfig", "ModeMachine", "Override", "worst"]

NORMAL = "NORMAL"
REACTIVE_ONLY = "REACTIVE_ONLY"
PAUSED = "PAUSED"
CONSERVATIVE = "CONSERVATIVE"
MODES = (NORMAL, REACTIVE_ONLY, PAUSED, CONSERVATIVE)  # least to most degraded
RULES_ONLY = frozenset({REACTIVE_ONLY, PAUSED})  # the model and the slow path are off
_RANK = {m: i for i, m in enumerate(MODES)}


def worst(modes: list[str] | tuple[str, ...]) -> str:
    """The most degraded of ``modes`` (NORMAL when empty).

    >>> worst(["NORMAL", "PAUSED", "REACTIVE_ONLY"])
    'PAUSED'
    """
    return max(modes, key=_RANK.__getitem__, default=NORMAL)


@dataclass(frozen=True)
class ModeConfig:
    """Thresholds of the automatic mode; ``None`` switches a signal off."""

    reactive_after_ms: int = 5_000
    conservative_after_ms: int = 30_000
    kafka_reactive_lag: int | None = 100_000
    kafka_conservative_lag: int | None = 1_000_000
    silent_reactive_share: float | None = 0.5
    drift_reactive_share: float | None = 0.5  # of active sources, with a drift alarm
    drift_min_sources: int = 3                # ... within drift_window_ms
    fleet_drift_reactive: bool = True         # the fleet's values moved together
    drift_window_ms: int = 60_000
    model_heartbeat_ms: int | None = 2_000
    sink_conservative_ms: int | None = 5_000
    recover_hold_ms: int = 10_000
    # The fleet's lag is the one this share of active sources exceed: one dark
    # source of 24 does not move it, three do (operators.lags).
    lag_share: float = 0.1

    def __post_init__(self) -> None:
        if not 0 < self.lag_share <= 1:
            raise ValueError(f"lag_share={self.lag_share}: use a share of the sources in "
                             "(0, 1]; 1 makes the worst source the fleet's lag")


@dataclass(frozen=True)
class Health:
    """What the pipeline knows about itself at one moment; the mode follows from it.

    ``lag_ms`` is the fleet's lag (a high quantile over active sources, see
    :mod:`operators.lags`). ``model_failing_ms`` counts from the model path's
    first failure with no success since (its lost heartbeat); ``sink_failing_ms``
    likewise for writes.
    """

    lag_ms: int = 0
    kafka_lag: int = 0
    silent_sources: int = 0
    active_sources: int = 0
    drifting_sources: int = 0
    fleet_drift: int = 0  # values with a fleet-wide drift alarm within the drift window
    failing_model_canaries: int = 0
    failing_rules_canaries: int = 0
    model_failing_ms: int = 0
    sink_failing_ms: int = 0
    lags: tuple = ()  # a sketch of every active source's lag (operators.lags)

    def values(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v and k != "lags"}


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
    """Health in, mode out, with hysteresis on the way back up; a manual override beats it.

    >>> m = ModeMachine(ModeConfig(recover_hold_ms=1_000))
    >>> m.update(now=0, health=Health(lag_ms=6_000)).to_mode
    'REACTIVE_ONLY'
    >>> m.update(now=500, health=Health(lag_ms=100)) is None  # healthy, not for long enough
    True
    >>> m.update(now=1_600, health=Health(lag_ms=100)).to_mode
    'NORMAL'
    >>> m.update(now=1_700, health=Health(model_failing_ms=2_500)).reason
    'model path failing for 2500 ms (heartbeat lost after 2000 ms)'
    >>> m.set_override(Override(CONSERVATIVE, "storm", "ops"), now=2_000).trigger
    'override'
    >>> m.update(now=9_000, health=Health()) is None, m.mode   # the override beats the data
    (True, 'CONSERVATIVE')
    >>> m.clear_override(now=9_500, who="ops").to_mode   # the data's mode, still held
    'PAUSED'
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

    def target(self, health: Health) -> tuple[str, str]:
        """The mode ``health`` alone asks for, and why (the most degraded signal)."""
        c, h = self.config, health
        asks: list[tuple[str, str]] = [(NORMAL, "healthy")]
        if h.lag_ms > c.conservative_after_ms:
            asks.append((CONSERVATIVE, f"watermark lag {h.lag_ms} ms over the "
                                       f"{c.conservative_after_ms} ms limit"))
        elif h.lag_ms > c.reactive_after_ms:
            asks.append((REACTIVE_ONLY, f"watermark lag {h.lag_ms} ms over the "
                                        f"{c.reactive_after_ms} ms limit"))
        if c.kafka_conservative_lag is not None and h.kafka_lag > c.kafka_conservative_lag:
            asks.append((CONSERVATIVE, f"Kafka consumer lag {h.kafka_lag} messages over "
                                       f"{c.kafka_conservative_lag}"))
        elif c.kafka_reactive_lag is not None and h.kafka_lag > c.kafka_reactive_lag:
            asks.append((REACTIVE_ONLY, f"Kafka consumer lag {h.kafka_lag} messages over "
                                        f"{c.kafka_reactive_lag}"))
        if c.silent_reactive_share is not None and h.active_sources \
                and h.silent_sources > c.silent_reactive_share * h.active_sources:
            asks.append((REACTIVE_ONLY, f"{h.silent_sources} of {h.active_sources} sources "
                                        "silent"))
        if c.drift_reactive_share is not None and h.drifting_sources >= max(
                c.drift_min_sources, c.drift_reactive_share * h.active_sources):
            asks.append((REACTIVE_ONLY, f"{h.drifting_sources} of {h.active_sources} sources "
                                        f"drifted within {c.drift_window_ms} ms"))
        if c.fleet_drift_reactive and h.fleet_drift:
            asks.append((REACTIVE_ONLY, f"the fleet's values moved together ({h.fleet_drift} "
                                        f"fleet alarm) within {c.drift_window_ms} ms"))
        if h.failing_rules_canaries:
            asks.append((CONSERVATIVE, f"{h.failing_rules_canaries} rules canary failing"))
        if h.failing_model_canaries:
            asks.append((REACTIVE_ONLY, f"{h.failing_model_canaries} model canary failing"))
        if c.model_heartbeat_ms is not None and h.model_failing_ms >= c.model_heartbeat_ms:
            asks.append((PAUSED, f"model path failing for {h.model_failing_ms} ms "
                                 f"(heartbeat lost after {c.model_heartbeat_ms} ms)"))
        if c.sink_conservative_ms is not None and h.sink_failing_ms >= c.sink_conservative_ms:
            asks.append((CONSERVATIVE, f"store writes failing for {h.sink_failing_ms} ms"))
        return max(asks, key=lambda ask: _RANK[ask[0]])

    def update(self, now: int, health: Health) -> ModeChange | None:
        """Feed the current health; returns the transition when the mode in force changes.

        Under an override the automatic mode keeps moving (with its hysteresis), so
        clearing the override lands on what the data says now.
        """
        wanted, why = self.target(health)
        current = self._auto
        if _RANK[wanted] > _RANK[current]:
            self._healthy_since = None
            return self._move(now, wanted, why, health)
        if _RANK[wanted] == _RANK[current]:
            self._healthy_since = None
            return None
        if self._healthy_since is None:
            self._healthy_since = now
        if now - self._healthy_since < self.config.recover_hold_ms:
            return None
        self._healthy_since = None
        return self._move(now, wanted, f"{why}; {wanted} held for "
                          f"{self.config.recover_hold_ms} ms", health)

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

    def _move(self, now: int, to_mode: str, reason: str, health: Health) -> ModeChange | None:
        before = self.mode
        self._auto = to_mode
        if self._override is not None:
            return None  # the automatic mode moved, but the mode in force did not
        return ModeChange(now, before, to_mode, reason, "auto", health.values())
