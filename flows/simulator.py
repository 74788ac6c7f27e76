"""The built-in fleet simulator: robots with plausible, correlated telemetry.

Robots drive around a 500 m square. Speed drives battery drain and motor
temperature; a few robots have a worn motor that runs hot; obstacles come and
go. Everything is drawn from one seeded generator, so a seed always gives the
same stream. Faults (later: partitions, frozen sensors, drift) plug in
through :class:`Fault`: each sees every tick's events and may drop, delay or
alter them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

__all__ = ["Fault", "FleetSimulator"]

START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z, the default replay epoch
FIELD = 500.0


class Fault(Protocol):
    """A fault injector: returns the events of tick ``tick`` as they should arrive."""

    def apply(self, tick: int, events: list[dict]) -> list[dict]: ...


class FleetSimulator:
    """``robots`` robots, each reporting ``hz`` times a second.

    >>> sim = FleetSimulator(robots=3, hz=10, seed=7)
    >>> events = sim.tick(base_ms=0)
    >>> [e["source_id"] for e in events]
    ['robot-000', 'robot-001', 'robot-002']
    >>> sorted(events[0]["values"])
    ['battery', 'motor_temp_c', 'obstacle_m', 'speed', 'x', 'y']
    >>> FleetSimulator(robots=3, seed=7).tick(0) == events
    True
    """

    def __init__(
        self, robots: int = 50, hz: float = 10.0, seed: int = 0,
        faults: Sequence[Fault] = (), stamp_arrival: bool = True,
    ) -> None:
        if robots < 1 or hz <= 0:
            raise ValueError(f"robots={robots}, hz={hz}: need at least one robot and hz > 0")
        self.robots = robots
        self.hz = hz
        self.seed = seed
        self.faults = list(faults)
        self.stamp_arrival = stamp_arrival
        self._reset()

    def _reset(self) -> None:
        n, rng = self.robots, np.random.default_rng(self.seed)
        self._rng = rng
        self._ticks = 0
        self._ids = [f"robot-{i:03d}" for i in range(n)]
        self._phase = rng.integers(0, max(1, int(1000 / self.hz)), n)
        self._x, self._y = rng.uniform(0, FIELD, n), rng.uniform(0, FIELD, n)
        self._heading = rng.uniform(0, 2 * np.pi, n)
        self._speed = rng.uniform(0.2, 1.5, n)
        self._battery = rng.uniform(10, 100, n)
        self._worn = rng.random(n) < 0.06  # worn motors run about 30 C hotter
        self._temp = 32 + 22 * self._speed + 30 * self._worn + rng.normal(0, 1, n)
        self._obstacle = rng.uniform(5, 15, n)
        self._low = self._battery < 15
        self._docked = np.zeros(n, dtype=bool)
        # The changes of regime the simulator makes by design (a robot slowing down on
        # a low battery, speeding up once recharged): ground truth for fault scenarios,
        # so an alarm on one of them is not counted as false.
        self.changes: list[dict] = []

    @property
    def period_ms(self) -> float:
        return 1000.0 / self.hz

    @property
    def ticks(self) -> int:
        return self._ticks

    def _step(self, dt: float) -> None:
        n, rng = self.robots, self._rng
        self._heading += rng.normal(0, 0.15, n)
        target = np.where(self._battery < 15, 0.4, rng.uniform(0.3, 2.0, n))
        self._speed = np.clip(0.9 * self._speed + 0.1 * target + rng.normal(0, 0.05, n), 0, 2.5)
        self._x += self._speed * np.cos(self._heading) * dt
        self._y += self._speed * np.sin(self._heading) * dt
        for pos in (self._x, self._y):
            np.clip(pos, 0, FIELD, out=pos)
        self._battery -= (0.05 + 0.12 * self._speed) * dt
        docked = self._docked = self._battery < 3
        self._battery[docked] = 100.0
        heat = 32 + 22 * self._speed + 30 * self._worn
        self._temp += (heat - self._temp) * 0.05 + rng.normal(0, 0.3, n)
        # Clearance reverts to about 10 m; now and then something comes close.
        self._obstacle += 0.05 * (10 - self._obstacle) + rng.normal(0, 0.4, n)
        close = rng.random(n) < 0.002
        self._obstacle[close] = rng.uniform(0.1, 1.0, int(close.sum()))
        np.abs(self._obstacle, out=self._obstacle)

    def _record_changes(self, base_ms: int) -> None:
        low = self._battery < 15
        for i in np.flatnonzero(low & ~self._low).tolist():
            self.changes.append({"source_id": self._ids[i], "at_ms": base_ms,
                                 "values": ["speed", "motor_temp_c"],
                                 "why": "battery under 15 %: slows down"})
        for i in np.flatnonzero(self._docked).tolist():
            self.changes.append({"source_id": self._ids[i], "at_ms": base_ms,
                                 "values": ["speed", "motor_temp_c", "battery"],
                                 "why": "recharged at the dock: speeds up"})
        self._low = low

    def tick(self, base_ms: int) -> list[dict]:
        """One report per robot for the tick starting at ``base_ms``, after faults."""
        self._step(1.0 / self.hz)
        self._record_changes(base_ms)
        tick = self._ticks
        self._ticks += 1
        times = (base_ms + self._phase).tolist()
        delays = (3 + self._rng.exponential(12, self.robots)).astype(int).tolist()
        x, y = np.round(self._x, 2).tolist(), np.round(self._y, 2).tolist()
        speed, battery = np.round(self._speed, 3).tolist(), np.round(self._battery, 2).tolist()
        temp, obstacle = np.round(self._temp, 2).tolist(), np.round(self._obstacle, 2).tolist()
        events = []
        for i, source_id in enumerate(self._ids):
            event = {
                "source_id": source_id, "event_time": times[i], "seq": tick, "kind": "telemetry",
                "values": {"x": x[i], "y": y[i], "speed": speed[i], "battery": battery[i],
                           "motor_temp_c": temp[i], "obstacle_m": obstacle[i]},
            }
            if self.stamp_arrival:
                event["arrival_time"] = times[i] + delays[i]
            events.append(event)
        for fault in self.faults:
            events = fault.apply(tick, events)
        return events
