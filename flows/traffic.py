"""A second flow from the same parts: road sensors deciding signal timing.

Loop detectors report ``occupancy`` (0-1) and ``speed_kmh``. Gridlock
extends the green phase, a slow road meters the on-ramp; signal timing may act
on data up to 10 s old, and stale data puts the junction on its fixed plan.
"""

from __future__ import annotations

import math

import numpy as np
from bytewax.dataflow import Dataflow

from flows.config import RunConfig
from flows.pipeline import FlowSpec, flow_from_config
from flows.telemetry import Telemetry
from operators.decider import DecisionPolicy
from operators.rules import Rule, RuleSet

POLICY = DecisionPolicy(
    decision_type="signal_timing",
    rules=RuleSet([
        Rule("gridlock", "occupancy", ">", 0.85, "extend_green", priority=0),
        Rule("slow_traffic", "speed_kmh", "<", 20.0, "meter_ramp", priority=10),
    ]),
    sla_ms=10_000, default_action="keep_plan", fallback_action="fixed_plan",
)


class RoadSensors:
    """``n`` detectors once per ``1/hz`` s; occupancy and speed move together.

    Each loop's load wanders about its own typical level (from free-flowing to near
    jammed) and goes back to it over about 30 s, 0.08 either way as a rule: a road's
    traffic has a level, where a random walk would pin loops empty or jammed.
    """

    def __init__(self, n: int, hz: float, seed: int) -> None:
        self.n, self.period_ms, self.rng = n, 1000.0 / hz, np.random.default_rng(seed)
        self.typical = self.rng.uniform(0.1, 0.9, n)
        self.load, self.seq = self.typical.copy(), 0
        self.keep = math.exp(-self.period_ms / 30_000)
        self.step = 0.08 * math.sqrt(1 - self.keep ** 2)

    def tick(self, base_ms: int) -> list[dict]:
        wander = self.keep * (self.load - self.typical) + self.rng.normal(0, self.step, self.n)
        self.load = np.clip(self.typical + wander, 0, 1)
        speed = np.round(110 * (1 - self.load) + self.rng.normal(0, 3, self.n), 1).tolist()
        occupancy, self.seq = np.round(self.load, 3).tolist(), self.seq + 1
        return [{"source_id": f"loop-{i:04d}", "event_time": base_ms, "seq": self.seq,
                 "arrival_time": base_ms + 20, "values": {"occupancy": occupancy[i],
                                                          "speed_kmh": speed[i]}}
                for i in range(self.n)]


def make_generator(config: RunConfig) -> RoadSensors:
    return RoadSensors(config.sources, max(config.rate, 1) / config.sources, config.seed)


def make_spec(config: RunConfig) -> FlowSpec:
    return FlowSpec("traffic", POLICY, bool(config.replay), str(config.store), config.shards)


def get_flow(config: RunConfig | None = None, telemetry: Telemetry | None = None) -> Dataflow:
    config = config or RunConfig.from_env()
    return flow_from_config(config, make_spec(config), make_generator, telemetry)
