"""One mode for every shard: shards post their health, one machine decides.

A flow's shards each see part of the sources, so each sees part of the truth:
one shard's sources may be silent while another's are fine. The board takes
every shard's latest :class:`~operators.modes.Health`, combines them (the
fleet's lag over every shard's sources, the sum of silent and drifting
sources, the longest model or sink failure) together with what the input
(Kafka consumer lag) and the store sink report, and feeds the combination to
one :class:`~operators.modes.ModeMachine`.
Every shard reads its mode from the board before deciding, so all shards of a
process apply the same mode. The board keeps the timeline of transitions on
the pipeline clock and a shard asks for the mode *at its own clock*
(:meth:`ModeBoard.mode_at`): shards run through a batch one after another, so
in a fast replay one shard may be seconds of pipeline time ahead of another,
and the one behind must apply the mode that was in force at its time, not the
newest. A change is therefore seen by every shard from its pipeline time on,
as soon as the shard that caused it has posted: within one input batch of
pipeline clock (the batch is broadcast to all shards with its clock tick).

Processes of a cluster each hold a board; a ``peers`` exchange (see
:class:`sinks.control.HealthExchange`) shares each board's combined health with
the others, so their machines see the same inputs. Each process records the
transitions its own machine makes (``scope`` says which).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from operators.flags import Flags
from operators.lags import merge, sketch_lag
from operators.modes import Health, ModeChange, ModeConfig, ModeMachine, Override
from operators.rollout import Rollout, RolloutChange, RolloutConfig

__all__ = ["ModeBoard", "StoreOutage", "combine"]


@dataclass(frozen=True)
class StoreOutage:
    """A span of wall time (epoch ms) in which every store write failed (``failing``)
    or one write took that long to answer (``slow``)."""

    started_ms: int
    ended_ms: int
    kind: str = "failing"

Peers = Callable[[Health], Sequence[Health]]


def combine(parts: Sequence[Health], lag_share: float = 0.1) -> Health:
    """Many views of health as one: the worst of each signal, counts summed.

    The lag is the fleet's quantile over the sources of every part that sent a
    sketch of them (the worst part's lag where none did).

    >>> combine([Health(lag_ms=100, silent_sources=1, active_sources=10),
    ...          Health(lag_ms=7_000, silent_sources=0, active_sources=10)]).lag_ms
    7000
    >>> from operators.lags import sketch
    >>> one_dark = Health(lag_ms=60_000, active_sources=12, lags=sketch([60_000] + [40] * 11))
    >>> combine([one_dark, Health(lag_ms=40, active_sources=12, lags=sketch([40] * 12))]).lag_ms
    41
    """
    if not parts:
        return Health()
    sketches = [h.lags for h in parts if h.lags]
    merged = merge(sketches) if sketches else ()
    return Health(
        lag_ms=sketch_lag(merged, lag_share) if sketches
        else max(h.lag_ms for h in parts),
        kafka_lag=sum(h.kafka_lag for h in parts),
        silent_sources=sum(h.silent_sources for h in parts),
        active_sources=sum(h.active_sources for h in parts),
        drifting_sources=sum(h.drifting_sources for h in parts),
        fleet_drift=max(h.fleet_drift for h in parts),
        failing_model_canaries=sum(h.failing_model_canaries for h in parts),
        failing_rules_canaries=sum(h.failing_rules_canaries for h in parts),
        model_failing_ms=max(h.model_failing_ms for h in parts),
        sink_failing_ms=max(h.sink_failing_ms for h in parts),
        lags=merged,
    )


class ModeBoard:
    """The mode all shards of a process apply.

    >>> board = ModeBoard(ModeConfig())
    >>> board.post("shard-0", now=1_000, health=Health(lag_ms=100))
    []
    >>> [c.to_mode for c in board.post("shard-1", now=1_000, health=Health(lag_ms=6_000))]
    ['REACTIVE_ONLY']
    >>> board.mode          # shard-0 applies it too, though its own sources are fine
    'REACTIVE_ONLY'
    """

    def __init__(self, config: ModeConfig | None = None, peers: Peers | None = None,
                 rollout: RolloutConfig | None = None) -> None:
        self.machine = ModeMachine(config)
        self.flags = Flags()
        self.rollout = Rollout(rollout) if rollout is not None else None
        self._peers = peers
        self._lock = threading.Lock()
        self._shards: dict[str, Health] = {}
        self._kafka_lag = 0
        self._sink_failing_since: float | None = None
        self._outages: list[StoreOutage] = []
        self._now = 0
        self._timeline: list[ModeChange] = []  # transitions in force, the newest last

    @property
    def mode(self) -> str:
        return self.machine.mode

    @property
    def now(self) -> int:
        """The latest pipeline time a shard posted (0: none yet)."""
        return self._now

    def mode_at(self, now: int) -> str:
        """The mode in force at pipeline time ``now`` (the newest when ``now`` is newer).

        >>> board = ModeBoard()
        >>> _ = board.post("a", now=10_000, health=Health(lag_ms=9_000))
        >>> board.mode_at(9_999), board.mode_at(10_000)
        ('NORMAL', 'REACTIVE_ONLY')
        """
        timeline = self._timeline
        if not timeline or now >= timeline[-1].at:
            return self.machine.mode
        for change in reversed(timeline):  # short, and the match is nearly always last
            if change.at <= now:
                return change.to_mode
        return timeline[0].from_mode

    def _record(self, changes: list[ModeChange]) -> None:
        self._timeline += changes
        if len(self._timeline) > 256:
            del self._timeline[:128]

    @property
    def config(self) -> ModeConfig:
        return self.machine.config

    def post(self, shard: str, now: int, health: Health
             ) -> list[ModeChange | RolloutChange]:
        """A shard's health at pipeline time ``now``; returns any transition it caused
        (of the mode, or of the rollout's step)."""
        with self._lock:
            self._shards[shard] = health
            self._now = max(self._now, now)
            changes: list[ModeChange | RolloutChange] = []
            change = self.machine.update(self._now, self._combined())
            if change is not None:
                changes.append(change)
                self._record([change])
            if self.rollout is not None:
                step = self.rollout.step(self._now)
                if step is not None:
                    changes.append(step)
            return changes

    def grade(self, variant: str, correct: int, total: int) -> None:
        """Outcomes graded for ``variant`` (the rollout compares variants by them)."""
        if self.rollout is not None:
            with self._lock:
                self.rollout.grade(variant, correct, total)

    def rollback(self, now: int, reason: str) -> RolloutChange | None:
        if self.rollout is None:
            return None
        with self._lock:
            return self.rollout.rollback(max(now, self._now), reason)

    def set_flags(self, flags: Flags) -> bool:
        """Put ``flags`` in force; whether they changed."""
        changed, self.flags = flags != self.flags, flags
        return changed

    def kafka_lag(self, lag: int) -> None:
        """The input's consumer lag, summed over this process's partitions."""
        self._kafka_lag = max(lag, 0)

    def sink_result(self, ok: bool, slow_s: float | None = None) -> None:
        """A store write failed, or succeeded (``ok``), after failures or after
        ``slow_s`` seconds; failing time is wall time. An outage that ended, and a write
        slow enough to be reported, are kept for :meth:`take_outages`."""
        with self._lock:
            since = self._sink_failing_since
            ended = time.time()
            if ok and since is not None:
                self._outages.append(StoreOutage(
                    started_ms=int((ended - (time.monotonic() - since)) * 1000),
                    ended_ms=int(ended * 1000)))
                self._sink_failing_since = None
            elif ok and slow_s is not None:
                self._outages.append(StoreOutage(int((ended - slow_s) * 1000),
                                                 int(ended * 1000), kind="slow"))
            elif not ok and since is None:
                self._sink_failing_since = time.monotonic()

    def take_outages(self) -> list[StoreOutage]:
        """The store outages that ended since the last call (each is taken once)."""
        with self._lock:
            outages, self._outages = self._outages, []
        return outages

    def control(self, changed: bool, override: Override | None, who: str = "",
                wall_ms: int | None = None) -> list[ModeChange]:
        """Apply a manual override read from the control channel, and expire an old one."""
        wall = time.time_ns() // 1_000_000 if wall_ms is None else wall_ms
        with self._lock:
            machine, now = self.machine, self._now
            changes = []
            if changed:
                if override is None:
                    change = machine.clear_override(now, who=who or "control file")
                elif override != machine.override:
                    change = machine.set_override(override, now)
                else:
                    change = None
                if change is not None:
                    changes.append(change)
            expired = machine.expire(now, wall)
            if expired is not None:
                changes.append(expired)
            self._record(changes)
            return changes

    def _combined(self) -> Health:
        share = self.machine.config.lag_share
        own = combine(list(self._shards.values()), share)
        failing = 0
        if self._sink_failing_since is not None:
            failing = int((time.monotonic() - self._sink_failing_since) * 1000)
        if self._kafka_lag or failing:
            own = combine([own, Health(kafka_lag=self._kafka_lag, sink_failing_ms=failing)],
                          share)
        if self._peers is None:
            return own
        return combine([own, *self._peers(own)], share)
