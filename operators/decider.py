"""The decider: freshness, rules, models, slow path, drift and quality, per batch.

One :class:`Decider` owns a slice of the sources (a shard). For each batch it
joins arriving outcomes to their decisions, stamps every event with the
pipeline clock, updates freshness, scores the batch with each source's model
variant (skipped outside ``NORMAL``), applies the rules and the freshness SLA,
feeds the slow path, the drift detectors, the regret tracker and the quality
windows, and returns rows for the store. A decision
whose input is older than the SLA, or whose event time lies in the future
beyond the skew tolerance, is ``fresh = false`` and follows the stale policy:
``fallback`` (the fallback action), ``skip`` (action ``none``) or ``escalate``
(the fallback action, escalated). A stale decision is never marked fresh.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from operators.alarms import Alarm
from operators.clock import ReplayClock, WallClock, make_clock
from operators.drift import DriftConfig, DriftMonitor
from operators.escalation import EscalationQueue
from operators.events import OutcomeEvent, SensorEvent
from operators.feedback import FeedbackLoop, Pending
from operators.freshness import FreshnessConfig, FreshnessTracker
from operators.ids import decision_id, parse_traceparent, trace_id_for
from operators.modes import CONSERVATIVE, NORMAL, ModeChange, ModeConfig, ModeMachine, Override
from operators.quality import QualityTracker
from operators.regret import RegretTracker
from operators.rules import RuleSet
from operators.slowpath import SlowPath, SlowPathConfig, SlowResult
from operators.variants import Variant, VariantRouter

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
    slow_action: str | None = None  # what a risky slow window revises to (None: model_action)
    response_sla_ms: int = 60_000  # how long an escalated decision may wait for a person

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
    quality: list[tuple] = field(default_factory=list)
    regrets: list[tuple] = field(default_factory=list)
    escalations: list[tuple] = field(default_factory=list)
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
        variants: Sequence[Variant] = (Variant("control", 1.0),),
        drift: DriftConfig | None = None,
        slow: SlowPathConfig | None = None,
        shard: str = "",
        quality_window_ms: int = 10_000,
        outcome_ttl_ms: int = 600_000,
        max_pending_outcomes: int = 20_000,
        learn_per_batch: int = 1_000,
    ) -> None:
        self.policy = policy
        self.replay = replay
        self.flow = flow
        self.clock: WallClock | ReplayClock = make_clock(replay)
        self.freshness = FreshnessTracker(freshness)
        self.modes = ModeMachine(modes)
        self.router = VariantRouter(variants)
        self.scorers = {v.name: v.scorer() for v in variants}
        self.drift = DriftMonitor(drift)
        self.slow = SlowPath(slow)
        self.regrets = RegretTracker()
        self.feedback = FeedbackLoop(ttl_ms=outcome_ttl_ms, max_pending=max_pending_outcomes)
        self.quality = QualityTracker(flow, shard, quality_window_ms)
        self.escalations = EscalationQueue(flow)
        self.learn_per_batch = learn_per_batch
        self._last_label_at: int | None = None
        self._slow_action = policy.slow_action or policy.model_action or "inspect"

    @property
    def mode(self) -> str:
        return self.modes.mode

    def process(
        self, events: list[SensorEvent], tick_ms: int | None = None,
        ingest_ns: int | None = None, outcomes: Sequence[OutcomeEvent] = (),
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
        if outcomes:  # after the batch's decisions: an outcome never precedes its decision
            self._outcomes(outcomes, clock.now_ms())
        if replay and tick_ms is not None:
            clock.observe(tick_ms)
        now = clock.now_ms()
        self._check(now, out)
        out.alarms = tracker.drain_alarms()
        for alarm in out.alarms:
            if alarm.signal == "retired":
                for part in (self.drift, self.slow, self.regrets):
                    part.forget(alarm.source_id)
        out.alarms += self.drift.drain_alarms()
        self.quality.add_decisions(out.decisions, len(events), now)
        self.quality.add_alarms(len(out.alarms), now)
        out.quality = self.quality.close(now)
        out.now_ms, out.mode = now, modes.mode
        return out

    def control(self, changed: bool, override: Override | None, who: str = ""
                ) -> list[ModeChange]:
        """Apply a manual override read from the control channel, and expire an old one."""
        now, wall = self.clock.now_ms(), time.time_ns() // 1_000_000
        changes = []
        if changed:
            if override is None:
                change = self.modes.clear_override(now, who=who or "control file")
            elif override != self.modes.override:
                change = self.modes.set_override(override, now)
            else:
                change = None
            if change is not None:
                changes.append(change)
        expired = self.modes.expire(now, wall)
        if expired is not None:
            changes.append(expired)
        return changes

    def flush(self) -> BatchResult:
        """End of input: close open slow windows and the open quality window."""
        out = BatchResult(mode=self.modes.mode, now_ms=self.clock.now_ms())
        for result in self.slow.close(2**62):
            out.decisions.append(self._slow_row(result, out.now_ms, self.modes.mode, out))
        self.quality.add_decisions(out.decisions, 0, out.now_ms)
        out.quality = self.quality.close(out.now_ms, force=True)
        return out

    def _check(self, now: int, out: BatchResult) -> None:
        """Silent sources, then the mode; closed slow windows; expired outcomes."""
        lag = self.freshness.lag_ms(now)
        out.lag_ms = lag
        change = self.modes.update(now, lag)
        if change is not None:
            out.mode_changes.append(change)
        mode = self.modes.mode
        for result in self.slow.close(now):
            out.decisions.append(self._slow_row(result, now, mode, out))
        self.feedback.expire(now)
        out.escalations += self.escalations.breaches(now)

    def _outcomes(self, outcomes: Sequence[OutcomeEvent], now: int) -> None:
        """Grade and teach the model with outcomes whose decision this shard made."""
        learn: dict[str, tuple[list, list[bool]]] = {}
        errors = []
        for outcome in outcomes:
            pending = self.feedback.resolve(outcome.decision_id)
            if pending is None:
                if self.feedback.is_late(outcome.decision_id):
                    self.quality.add_late_outcome(now)
                continue
            label = outcome.label >= 0.5
            correct = (pending.score > 0.5) == label  # an undecided 0.5 is no positive call
            errors.append(not correct)
            self.quality.add_outcome(pending.version, pending.variant, correct,
                                     (pending.score - label) ** 2, now)
            rows, labels = learn.setdefault(pending.variant, ([], []))
            rows.append(pending.values)
            labels.append(label)
        if errors:
            self._last_label_at = now
            self.drift.observe_errors(errors, now, now)
        for variant, (rows, labels) in learn.items():
            self.scorers[variant].learn(rows, labels)

    def _decide(
        self, decided: list[tuple[SensorEvent, int, str]], ingest_ns: int | None,
        out: BatchResult,
    ) -> None:
        policy = self.policy
        route = self.router.route
        variants = [route(ev.source_id) for ev, _, _ in decided]
        scores: list[float | None] = [None] * len(decided)
        groups: dict[str, list[int]] = {}
        for i, (_, _, mode) in enumerate(decided):
            if mode == NORMAL:
                groups.setdefault(variants[i], []).append(i)
        for variant, index in groups.items():
            predicted = self.scorers[variant].score([decided[i][0].values for i in index])
            for i, p in zip(index, predicted.tolist(), strict=True):
                scores[i] = p
        evaluate = policy.rules.evaluate
        sla, tolerance = policy.sla_ms, self.freshness.config.skew_tolerance_ms
        decision_type, flow = policy.decision_type, self.flow
        model_action, threshold = policy.model_action, policy.model_threshold
        latency = 0.0 if ingest_ns is None else (time.monotonic_ns() - ingest_ns) / 1e6
        distil = self._last_label_at is None or \
            decided[-1][1] - self._last_label_at > self.feedback.ttl_ms
        learn: dict[str, tuple[list, list[bool]]] = {}
        decisions, regrets, slow, feedback = out.decisions, self.regrets, self.slow, \
            self.feedback
        stale_count = escalated_count = 0
        for i, (ev, now, mode) in enumerate(decided):
            values, variant, score = ev.values, variants[i], scores[i]
            rule = evaluate(values)
            age = now - ev.event_ms
            if rule is not None:
                content, reason = rule.action, f"rule:{rule.name}"
            elif score is not None and model_action and score >= threshold:
                content, reason = model_action, f"model:score {score:.3f} >= {threshold}"
            else:
                content, reason = policy.default_action, "nominal"
            conservative = mode == CONSERVATIVE
            if age > sla or age < -tolerance:
                path, fresh = "fallback", False
                escalated = conservative or policy.on_stale == "escalate"
                action = "none" if policy.on_stale == "skip" else policy.fallback_action
                why = "clock skew" if age < 0 else f"stale: age {age} ms > sla {sla} ms"
                reason = f"{why}; policy {policy.on_stale}"
                stale_count += 1
            else:
                path, fresh, escalated, action = "fast", True, conservative, content
            if escalated:
                escalated_count += 1
            version = self.scorers[variant].version if score is not None else "rules"
            did = decision_id(ev.source_id, decision_type, ev.seq, ev.event_ms, ev.origin)
            trace = parse_traceparent(ev.trace_parent) if ev.trace_parent else None
            decisions.append((
                did, trace or trace_id_for(did), ev.source_id, decision_type, path, action,
                score, None if score is None else max(score, 1.0 - score), version, variant,
                mode, ev.event_ms, now, age, fresh, latency, escalated, reason, flow, ev.origin,
            ))
            if escalated:  # a person decides; the action waits in the queue
                out.escalations.append(self.escalations.open(
                    did, ev.source_id, decision_type, action, reason, mode, now,
                    policy.response_sla_ms))
            for regret in regrets.check(ev.source_id, ev.event_ms, now, content, ev.origin):
                out.regrets.append(regret.row(flow))
                self.quality.add_regret(regret.version, regret.variant, regret.changed, now)
            regrets.record(ev.source_id, did, ev.event_ms, now, action, version, variant)
            if score is not None:
                feedback.remember(did, Pending(variant, version, values, score, now))
                if distil and fresh:
                    rows, labels = learn.setdefault(variant, ([], []))
                    rows.append(values)
                    labels.append(rule is not None)
            if mode == NORMAL:
                for result in slow.add(ev.source_id, ev.event_ms, values, action, version,
                                       variant):
                    decisions.append(self._slow_row(result, now, mode, out))
        out.stale += stale_count
        out.escalated += escalated_count
        watch = self.drift.observe
        for ev, now, _ in decided:
            watch(ev.source_id, ev.values, ev.event_ms, now)
        modelled = [s for s in scores if s is not None]
        if modelled:
            self.drift.observe_model(modelled, decided[-1][0].event_ms, decided[-1][1])
        for variant, (rows, labels) in learn.items():
            # Distillation needs a sample, not every event: a fixed stride keeps the
            # model's cost per batch bounded and the choice deterministic.
            step = max(1, len(rows) // self.learn_per_batch)
            self.scorers[variant].learn(rows[::step], labels[::step])

    def _slow_row(self, r: SlowResult, now: int, mode: str, out: BatchResult) -> tuple:
        """The slow path's decision for one closed window of one source."""
        policy = self.policy
        action = self._slow_action if r.revised else r.fast_action
        did = decision_id(r.source_id, f"{policy.decision_type}/slow", None, r.window_start,
                          "window")
        age = now - r.last_event_ms
        fresh = age <= policy.sla_ms + self.slow.config.window_ms
        verdict = "revises" if action != r.fast_action else "confirms"
        reason = (f"slow: risk {r.risk:.2f} over {r.events} events {verdict} fast "
                  f"{r.fast_action}")
        self.quality.add_agreement(r.version, r.variant, action == r.fast_action, now)
        if mode == CONSERVATIVE:
            out.escalations.append(self.escalations.open(
                did, r.source_id, policy.decision_type, action, reason, mode, now,
                policy.response_sla_ms))
        return (did, trace_id_for(did), r.source_id, policy.decision_type, "slow", action,
                round(r.risk, 6), None, "slow-risk-1", r.variant, mode, r.last_event_ms, now,
                age, fresh, 0.0, mode == CONSERVATIVE, reason, self.flow,
                f"window:{r.window_start}-{r.window_end}")
