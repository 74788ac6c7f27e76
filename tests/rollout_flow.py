"""A fleet flow with a candidate model rolling out: run by tests/test_rollout_e2e.py as
``python -m bytewax.run "tests.rollout_flow:get_flow()"`` (settings from LUCIDSTREAM_*)."""

from __future__ import annotations

from bytewax.dataflow import Dataflow

from flows import fleet
from flows.config import RunConfig
from flows.pipeline import FlowSpec, flow_from_config
from operators.models import OnlineScorer
from operators.rollout import RolloutConfig
from operators.variants import Variant


class InvertedScorer(OnlineScorer):
    """A broken candidate: it learns like the real model and answers the opposite."""

    def score(self, rows):  # type: ignore[no-untyped-def]
        return 1.0 - super().score(rows)


def get_flow() -> Dataflow:
    config = RunConfig.from_env()
    assert config.store is not None
    spec = FlowSpec("fleet", fleet.POLICY, replay=True, store=config.store, drift=fleet.DRIFT,
                    variants=(Variant("control", 1.0), Variant("candidate", 0.0,
                                                              InvertedScorer)),
                    rollout=RolloutConfig("candidate", hold_ms=5_000, min_outcomes=100))
    return flow_from_config(config, spec, fleet.make_generator)
