"""The decider: freshness, rules, the online model and the mode, per batch.

One :class:`Decider` owns a slice of the sources (a shard). For each batch it
stamps every event with the pipeline clock, updates freshness, scores the
batch with the model (skipped outside ``NORMAL``), applies the rules and the
freshness SLA, and returns decision rows, alarms and mode changes. A decision
whose input is older than the SLA, or whose event time lies in the future
beyond the skew tolerance, is ``fresh = false`` and follows the stale policy:
``fallback`` (the fallback action), ``skip`` (action ``none``) or ``escalate``
(the fallback action, escalated). A stale decision is never marked fresh.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from operators.alarms import Alarm
from operators.clock import ReplayClock, WallClock, make_clock
from operators.drift import DriftConfig, DriftMonitor
from operators.events import SensorEvent
from operators.freshness import FreshnessConfig, FreshnessTracker
from operators.ids import decision_id, parse_traceparent, trace_id_for
from operators.models import OnlineScorer
from operators.modes import CONSERVATIVE, NORMAL, ModeChange, ModeConfig, ModeMachine
from operators.rules import RuleSet

__all__ = ["STALE_POLICIES", "BatchResult", "Decider", "DecisionPolicy"]

STALE_POLICIES = ("fallback", "skip", "escalate")
NOT_DECIDED = frozenset({"heartbeat", "idle"})


@dataclass(frozen=True)
class DecisionPolicy:
    """What one decision type does: its rules, model action, SLA and stale policy."""

    decision_type: str
    rules: RuleSet
    sla_ms: int = 2_000
    default_action: str = "none"
    model_action: str | None = None
    model_threshold: float = 0.9
    fallback_action: str = "hold"
    on_stale: str = "fallback"

    def __post_init__(self) -> None:
        if self.on_stale not in STALE_POLICIES:
            raise ValueError(f"on_stale={self.on_stale!r}: use one of {STALE_POLICIES}")
        if self.sla_ms <= 0:
            raise ValueError(f"sla_ms={self.sla_ms}: the freshness SLA must be positive")


@dataclass
class BatchResult:
    """What one batch produced, plus counters for progress and metrics."""

    decisions: list[tuple] = field(default_factory=list)
    alarms: list[Alarm] = field(default_factory=list)
    mode_changes: list[ModeChange] = field(default_factory=list)
    events: int = 0
    stale: int = 0
    escalated: int = 0
    now_ms: int = 0
    lag_ms: int = 0
    mode: str = NORMAL


class Decider:
    """Decides a stream of sensor events for one shard of sources.

    >>> from operators.rules import Rule
    >>> policy = DecisionPolicy("motion", RuleSet([Rule("low", "battery", "<", 15, "dock")]),
    ...                         sla_ms=1_000, default_action="go")
    >>> decider = Decider(policy, replay=True, flow="demo")
    >>> events = [SensorEvent("r1", 1_000, {"battery": 9.0}, seq=1, arrival_ms=1_020),
    ...           SensorEvent("r1", 1_100, {"battery": 50.0}, seq=2, arrival_ms=3_000)]
    >>> [(d[4], d[5], d[14]) for d in decider.process(events).decisions]  # path, action, fresh
    [('fast', 'dock', True), ('fallback', 'hold', False)]
    """

    def __init__(
        self,
        policy: DecisionPolicy,
        replay: bool = False,
        flow: str = "flow",
        freshness: FreshnessConfig | None = None,
        modes: ModeConfig | None = None,
        scorer: Callable[[], OnlineScorer] = OnlineScorer,
        variant: str = "control",
        drift: DriftConfig | None = None,
    ) -> None:
        self.policy = policy
        self.replay = replay
        self.flow = flow
        self.variant = variant
        self.clock: WallClock | ReplayClock = make_clock(replay)
        self.freshness = FreshnessTracker(freshness)
        self.modes = ModeMachine(modes)
        self.scorer = scorer()
        self.drift = DriftMonitor(drift)

    @property
    def mode(self) -> str:
        return self.modes.mode

    def process(
        self, events: list[SensorEvent], tick_ms: int | None = None,
        ingest_ns: int | None = None,
    ) -> BatchResult:
        """Decide ``events`` in order; ``tick_ms`` advances the replay clock
        for a shard that saw no events of its own in this batch."""
        clock, tracker, modes = self.clock, self.freshness, self.modes
        observe, replay = tracker.observe, self.replay
        every = tracker.config.check_every_ms
        out = BatchResult(events=len(events), mode=modes.mode)
        now = clock.now_ms()
        decided: list[tuple[SensorEvent, int, str]] = []
        for ev in events:
            if replay:
                clock.observe(ev.event_ms if ev.arrival_ms is None else ev.arrival_ms)
                now = clock.now_ms()
            observe(ev.source_id, ev.event_ms, now, ev.seq, ev.kind)
            if now - tracker.last_check_ms >= every:
                self._check(now, out)
            if ev.kind not in NOT_DECIDED:
                decided.append((ev, now, modes.mode))
        if decided:
            self._decide(decided, ingest_ns, out)
        if replay and tick_ms is not None:
            clock.observe(tick_ms)
        now = clock.now_ms()
        self._check(now, out)
        out.alarms = tracker.drain_alarms()
        for alarm in out.alarms:
            if alarm.signal == "retired":
                self.drift.forget(alarm.source_id)
        out.alarms += self.drift.drain_alarms()
        out.now_ms, out.mode = now, modes.mode
        return out

    def _check(self, now: int, out: BatchResult) -> None:
        """Look for silent sources, then let the lag move the mode."""
        lag = self.freshness.lag_ms(now)
        out.lag_ms = lag
        change = self.modes.update(now, lag)
        if change is not None:
            out.mode_changes.append(change)

    def _decide(
        self, decided: list[tuple[SensorEvent, int, str]], ingest_ns: int | None,
        out: BatchResult,
    ) -> None:
        policy, scorer = self.policy, self.scorer
        rows = [ev.values for ev, _, _ in decided]
        use_model = any(mode == NORMAL for _, _, mode in decided)
        scores = scorer.score(rows) if use_model else None
        evaluate = policy.rules.evaluate
        sla, tolerance = policy.sla_ms, self.freshness.config.skew_tolerance_ms
        decision_type, flow, variant = policy.decision_type, self.flow, self.variant
        model_version = scorer.version
        model_action, threshold = policy.model_action, policy.model_threshold
        latency = 0.0 if ingest_ns is None else (time.monotonic_ns() - ingest_ns) / 1e6
        labels: list[bool] = []
        learn_rows: list = []
        model_scores: list[float] = []
        decisions = out.decisions
        stale_count = escalated_count = 0
        for i, (ev, now, mode) in enumerate(decided):
            values = ev.values
            conservative = mode == CONSERVATIVE
            rule = evaluate(values)
            age = now - ev.event_ms
            score: float | None = None
            confidence: float | None = None
            if scores is not None and mode == NORMAL:
                p = float(scores[i])
                score, confidence = p, max(p, 1.0 - p)
            if age > sla or age < -tolerance:
                path, fresh = "fallback", False
                escalated = conservative or policy.on_stale == "escalate"
                action = "none" if policy.on_stale == "skip" else policy.fallback_action
                why = "clock skew" if age < 0 else f"stale: age {age} ms > sla {sla} ms"
                reason = f"{why}; policy {policy.on_stale}"
                stale_count += 1
            else:
                path, fresh, escalated = "fast", True, conservative
                if rule is not None:
                    action, reason = rule.action, f"rule:{rule.name}"
                elif score is not None and model_action and score >= threshold:
                    action, reason = model_action, f"model:score {score:.3f} >= {threshold}"
                else:
                    action, reason = policy.default_action, "nominal"
                if score is not None:
                    learn_rows.append(values)
                    labels.append(rule is not None)
                    model_scores.append(score)
            if escalated:
                escalated_count += 1
            did = decision_id(ev.source_id, decision_type, ev.seq, ev.event_ms, ev.origin)
            trace = parse_traceparent(ev.trace_parent) if ev.trace_parent else None
            decisions.append((
                did, trace or trace_id_for(did), ev.source_id, decision_type, path, action,
                score, confidence, model_version if score is not None else "rules", variant,
                mode, ev.event_ms, now, age, fresh, latency, escalated, reason, flow, ev.origin,
            ))
        out.stale += stale_count
        out.escalated += escalated_count
        watch = self.drift.observe
        for ev, now, _ in decided:
            watch(ev.source_id, ev.values, ev.event_ms, now)
        if learn_rows:
            self.drift.observe_model(model_scores, decided[-1][0].event_ms, decided[-1][1])
            scorer.learn(learn_rows, labels)
