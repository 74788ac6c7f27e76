"""The reference flow: a robot fleet deciding motion from telemetry.

Rules (first match wins): an obstacle closer than 0.5 m stops the robot, a
battery under 15 % sends it to base, a motor over 85 C slows it down. The
online model flags unusual readings for inspection. A motion decision must be
made on data younger than 2 s; older (or clock-skewed) input holds the robot
in place instead. Run it with ``lucidstream run`` or as Bytewax workers::

    python -m bytewax.run "flows.fleet:get_flow()" -w 2
"""

from __future__ import annotations

from bytewax.dataflow import Dataflow

from flows.config import RunConfig
from flows.pipeline import FlowSpec, flow_from_config
from flows.simulator import FleetSimulator
from flows.telemetry import Telemetry
from operators.canary import Canary
from operators.decider import DecisionPolicy
from operators.drift import DriftConfig
from operators.rules import Rule, RuleSet

__all__ = ["CANARIES", "POLICY", "get_flow", "make_generator", "make_spec"]

POLICY = DecisionPolicy(
    decision_type="motion",
    rules=RuleSet([
        Rule("obstacle_close", "obstacle_m", "<", 0.5, "stop", priority=0),
        Rule("low_battery", "battery", "<", 15.0, "return_to_base", priority=10),
        Rule("motor_hot", "motor_temp_c", ">", 85.0, "slow_down", priority=20),
    ]),
    sla_ms=2_000,
    default_action="continue",
    model_action="inspect",
    model_threshold=0.9,
    fallback_action="hold",
    on_stale="fallback",
)


_CALM = {"x": 0.0, "y": 0.0, "speed": 1.0, "battery": 80.0, "motor_temp_c": 40.0,
         "obstacle_m": 5.0}
# Every 10 s of pipeline clock: two readings whose right decision the rules know, and
# one the model must rank above a calm reading. The model learns the rules from the
# fleet; a flat battery is what it sees most (a linear model does not learn every rule
# of an OR equally well, so the canary asks what a sound one must know).
CANARIES = (
    Canary("obstacle-stops", _CALM | {"obstacle_m": 0.1}, expect="stop"),
    Canary("flat-battery-returns", _CALM | {"battery": 5.0}, expect="return_to_base"),
    Canary("model-ranks-flat-battery", _CALM | {"battery": 5.0}, checks="model",
           versus=_CALM),
)

# Positions wander and batteries drain by design: their drift is not news.
DRIFT = DriftConfig(ignore=("x", "y", "battery"))


def make_spec(config: RunConfig) -> FlowSpec:
    assert config.store is not None and config.replay is not None
    return FlowSpec("fleet", POLICY, replay=config.replay, store=config.store,
                    shards=config.shards, drift=DRIFT, canaries=CANARIES)


def make_generator(config: RunConfig) -> FleetSimulator:
    """The fleet simulator for ``config`` (robots, rate and seed)."""
    hz = config.rate / config.sources if config.rate > 0 else 10.0
    return FleetSimulator(config.sources, hz=hz, seed=config.seed,
                          stamp_arrival=not config.live)


def get_flow(config: RunConfig | None = None, telemetry: Telemetry | None = None) -> Dataflow:
    """The fleet dataflow; without ``config``, settings come from ``LUCIDSTREAM_*``."""
    config = config or RunConfig.from_env()
    return flow_from_config(config, make_spec(config), make_generator, telemetry)
