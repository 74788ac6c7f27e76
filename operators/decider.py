"""The decider: one shard's batches through freshness and the decision parts.

One :class:`Decider` owns a slice of the sources (a shard). For each batch it
stamps every event with the pipeline clock and updates freshness (checking the
sources' health and the mode as the clock passes), then runs the batch's decided
events through its parts, each one module with one protocol
(:class:`~operators.batch.Part`), in this order:

* model path (:mod:`~operators.modelpath`): each source's variant, the batch's scores;
* fast path (:mod:`~operators.fastpath`): rules, model, freshness SLA: the decisions;
* escalations (:mod:`~operators.escalation`): escalated decisions wait for a person;
* regrets (:mod:`~operators.regret`): late data that would have changed a decision;
* feedback (:mod:`~operators.feedback`): scored decisions wait for their outcomes;
* slow path (:mod:`~operators.slowdecisions`): executed actions become each source's
  state (:mod:`~operators.invariants`), event by event, with the windows they close
  decided in between;
* drift (:mod:`~operators.drift`): every value stream and the model's scores;
* distillation (:mod:`~operators.modelpath`): the models learn the rules.

Then outcomes are graded (:mod:`~operators.outcomes`), the quality windows counted
(:mod:`~operators.quality`) and canaries checked (:mod:`~operators.canarychecks`).
A new stage is one module with ``observe_batch(batch, out)`` and ``forget(source)``
and one line in :attr:`Decider.parts`.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence
from typing import Any

from operators.alarms import Alarm
from operators.batch import BatchResult, DecideBatch, Part
from operators.canary import Canary
from operators.canarychecks import CanaryChecks
from operators.clock import ReplayClock, WallClock, make_clock
from operators.drift import DriftConfig, DriftMonitor
from operators.escalation import EscalationQueue
from operators.events import OutcomeEvent, SensorEvent
from operators.fastpath import FastPath
from operators.feedback import FeedbackLoop
from operators.freshness import FreshnessConfig, FreshnessTracker
from operators.invariants import StateStore
from operators.modeboard import ModeBoard, StoreOutage
from operators.modelpath import Distillation, ModelPath
from operators.modes import Health, ModeChange, ModeConfig
from operators.outcomes import OutcomeGrader
from operators.policy import STALE_POLICIES, DecisionPolicy
from operators.quality import QualityTracker
from operators.regret import RegretTracker
from operators.rollout import RolloutConfig
from operators.slowdecisions import SlowDecisions
from operators.slowpath import SlowPath, SlowPathConfig
from operators.stamping import stamp
from operators.variants import Variant

__all__ = ["STALE_POLICIES", "BatchResult", "Decider", "DecisionPolicy", "outage_alarms"]


def outage_alarms(outages: Sequence[StoreOutage], now: int) -> list[Alarm]:
    """One alarm per store outage that ended, or per write so slow that it held the
    input (``store_stall``), detected at pipeline time ``now``; its ID is keyed on the
    outage's wall-clock start."""
    return [Alarm(detected_at=now, event_ms=now, source_id="",
                  signal="store_outage" if o.kind == "failing" else "store_stall",
                  detector="sink", value=(o.ended_ms - o.started_ms) / 1000, threshold=0,
                  details={"started_ms": o.started_ms, "ended_ms": o.ended_ms},
                  key=str(o.started_ms))
            for o in outages]


class Decider:
    """Decides a stream of sensor events for one shard of sources.

    >>> from operators.rules import Rule, RuleSet
    >>> policy = DecisionPolicy("motion", RuleSet([Rule("low", "battery", "<", 15, "dock")]),
    ...                         sla_ms=1_000, default_action="go")
    >>> decider = Decider(policy, replay=True, flow="demo")
    >>> events = [SensorEvent("r1", 1_000, {"battery": 9.0}, seq=1, arrival_ms=1_020),
    ...           SensorEvent("r1", 1_100, {"battery": 50.0}, seq=2, arrival_ms=3_000)]
    >>> [(d.path, d.action, d.fresh) for d in decider.process(events).decisions]
    [('fast', 'dock', True), ('fallback', 'hold', False)]

    The mode comes from a :class:`~operators.modeboard.ModeBoard` shared by every
    shard of the process (a private one when none is given).
    """

    def __init__(
        self,
        policy: DecisionPolicy,
        replay: bool = False,
        flow: str = "flow",
        freshness: FreshnessConfig | None = None,
        modes: ModeConfig | None = None,
        variants: Sequence[Variant] = (Variant("control", 1.0),),
        drift: DriftConfig | None = None,
        slow: SlowPathConfig | None = None,
        shard: str = "",
        quality_window_ms: int = 10_000,
        outcome_ttl_ms: int = 600_000,
        max_pending_outcomes: int = 20_000,
        learn_per_batch: int = 32,
        learn_every: int = 32,
        canaries: Sequence[Canary] = (),
        rollout: RolloutConfig | None = None,
        board: ModeBoard | None = None,
    ) -> None:
        self.policy = policy
        self.replay = replay
        self.flow = flow
        self.clock: WallClock | ReplayClock = make_clock(replay)
        self.board = board or ModeBoard(modes, rollout=rollout)
        self.freshness = FreshnessTracker(freshness, self.board.config.lag_share)
        skew = self.freshness.config.skew_tolerance_ms
        self.quality = QualityTracker(flow, shard, quality_window_ms)
        self.model = ModelPath(variants, shard)
        self.escalations = EscalationQueue(flow, decision_type=policy.decision_type,
                                           sla_ms=policy.response_sla_ms)
        self.state = StateStore()
        self.regrets = RegretTracker(flow=flow, quality=self.quality)
        self.feedback = FeedbackLoop(ttl_ms=outcome_ttl_ms, max_pending=max_pending_outcomes)
        self.slow = SlowDecisions(SlowPath(slow), policy, flow, self.state, self.escalations,
                                  self.quality)
        self.drift = DriftMonitor(drift)
        self.parts: list[Part] = [  # in order: each reads what the ones before it wrote
            self.model,
            FastPath(policy, flow, skew, self.model),
            self.escalations,
            self.regrets,
            self.feedback,
            self.slow,
            self.drift,
            Distillation(self.model, policy, outcome_ttl_ms, learn_per_batch, learn_every),
        ]
        self.outcomes = OutcomeGrader(self.feedback, self.model, self.quality, self.drift)
        self.canaries = CanaryChecks(canaries, policy, flow, skew, self.model)
        # (at, source, signal) of value drift: a source's own, or the fleet's ("fleet:...")
        self._drift_alarms: deque[tuple[int, str, str]] = deque()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["board"] = None  # process-wide; whoever restores the shard attaches its own
        state["_board_config"] = self.board.config
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        config = state.pop("_board_config", None)
        self.__dict__.update(state)
        self.board = ModeBoard(config)

    @property
    def mode(self) -> str:
        return self.board.mode

    @property
    def shard(self) -> str:
        return self.quality.shard

    @shard.setter
    def shard(self, name: str) -> None:
        self.quality.shard = self.model.shard = name

    def process(
        self, events: list[SensorEvent], tick_ms: int | None = None,
        ingest_ns: int | None = None, outcomes: Sequence[OutcomeEvent] = (),
    ) -> BatchResult:
        """Decide ``events`` in order; ``tick_ms`` advances the replay clock
        for a shard that saw no events of its own in this batch."""
        started = time.monotonic_ns()
        clock, tracker, board = self.clock, self.freshness, self.board
        mode_at = board.mode_at
        now = clock.now_ms()
        out = BatchResult(events=len(events), mode=mode_at(now))

        def checked(at: int) -> str:
            # health and the mode as the clock passes; slow windows wait for the batch's
            # fast decisions (below), which came first on this clock
            self._check(at, out, close_slow=False)
            return mode_at(at)

        stamped = stamp(events, clock, tracker, now, out.mode, checked)
        decided, canaries = stamped.decided, stamped.canaries
        fresh_ns = time.monotonic_ns()
        out.stages["freshness"] = (started, fresh_ns)
        if decided:
            self._decide(DecideBatch(decided, stamped.now, stamped.mode, board, ingest_ns), out)
        if outcomes:  # after the batch's decisions: an outcome never precedes its decision
            self.outcomes.grade(outcomes, clock.now_ms(), board)
        if self.replay and tick_ms is not None:
            clock.observe(tick_ms)
        now = clock.now_ms()
        self._check(now, out)
        out.alarms = tracker.drain_alarms() + self._store_outages(now)
        for alarm in out.alarms:
            if alarm.signal == "retired":
                for part in self.parts:
                    part.forget(alarm.source_id)
        drift_alarms = self.drift.drain_alarms(now)
        if drift_alarms:
            self._drift_alarms.extend(  # the model's own signals (no source) excepted
                (a.detected_at, a.source_id, a.signal) for a in drift_alarms
                if a.source_id or a.signal.startswith("fleet:"))
            out.alarms += drift_alarms
        out.events = len(events) - len(canaries)  # canaries are probes, not input
        self.quality.add_decisions(out.decisions, out.events, now)
        self.quality.add_alarms(len(out.alarms), now)
        out.quality = self.quality.close(now)
        if canaries:
            self.canaries.check(canaries, board, out)
        out.now_ms, out.mode = now, mode_at(now)
        return out

    def _decide(self, batch: DecideBatch, out: BatchResult) -> None:
        """The decided events through every part; stage times for traces."""
        parts = self.parts
        parts[0].observe_batch(batch, out)  # the model path: scores
        scored = time.monotonic_ns()
        out.stages["fast_score"] = (out.stages["freshness"][1], scored)
        for part in parts[1:]:
            part.observe_batch(batch, out)
        out.stages["decide"] = (scored, time.monotonic_ns())

    def flush(self) -> BatchResult:
        """End of input: close open slow windows, report held sequence gaps, close the
        open quality window."""
        out = BatchResult(mode=self.board.mode, now_ms=self.clock.now_ms())
        self.slow.close(out.now_ms, out.mode, out, every=True)
        self.freshness.flush_gaps()
        out.alarms = self.freshness.drain_alarms() + self.drift.drain_alarms()
        self.quality.add_decisions(out.decisions, 0, out.now_ms)
        self.quality.add_alarms(len(out.alarms), out.now_ms)
        out.quality = self.quality.close(out.now_ms, force=True)
        return out

    def _store_outages(self, now: int) -> list[Alarm]:
        """One alarm per store outage that ended, or per write so slow that it held the
        input (``store_stall``), taken by whichever shard asks first.

        The flow is held while the store is down, so the alarm comes with the first
        batch decided after it (one that ends after the last batch is the store sink's
        to write as the run ends).
        """
        return outage_alarms(self.board.take_outages(), now)

    def health(self, now: int) -> Health:
        """This shard's view of the pipeline's health at pipeline time ``now``."""
        tracker, drifted = self.freshness, self._drift_alarms
        while drifted and drifted[0][0] <= now - self.board.config.drift_window_ms:
            drifted.popleft()
        return Health(
            lag_ms=tracker.lag_ms(now), lags=tracker.lag_sketch,
            silent_sources=tracker.silent_sources,
            active_sources=tracker.active_sources,
            drifting_sources=len({source for _, source, _ in drifted if source}),
            fleet_drift=len({signal for _, source, signal in drifted if not source}),
            failing_model_canaries=self.canaries.failing("model"),
            failing_rules_canaries=self.canaries.failing("rules"),
            model_failing_ms=self.model.failing_ms(now))

    def _check(self, now: int, out: BatchResult, close_slow: bool = True) -> None:
        """Post health and follow the mode; closed slow windows (``close_slow``: at the
        batch's end, once its fast decisions are applied, so a slow decision is judged
        against every fast one the clock has passed); expired outcomes."""
        health = self.health(now)
        out.lag_ms = health.lag_ms
        for change in self.board.post(self.shard, now, health):
            if isinstance(change, ModeChange):
                out.mode_changes.append(change)
            else:
                out.rollout.append(change)
        if close_slow:
            self.slow.close(now, self.board.mode_at(now), out)
        self.feedback.expire(now)
        out.escalations += self.escalations.breaches(now)
