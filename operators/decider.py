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

import logging
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from operators.alarms import Alarm
from operators.canary import Canary, canary_row
from operators.clock import ReplayClock, WallClock, make_clock
from operators.drift import DriftConfig, DriftMonitor
from operators.escalation import EscalationQueue
from operators.events import OutcomeEvent, SensorEvent
from operators.feedback import FeedbackLoop, Pending
from operators.freshness import FreshnessConfig, FreshnessTracker
from operators.ids import decision_id, parent_span_of, parse_traceparent, trace_id_for
from operators.invariants import StateStore
from operators.modeboard import ModeBoard
from operators.modes import (
    CONSERVATIVE,
    NORMAL,
    PAUSED,
    RULES_ONLY,
    Health,
    ModeChange,
    ModeConfig,
)
from operators.quality import QualityTracker
from operators.regret import RegretTracker
from operators.rollout import RolloutChange, RolloutConfig
from operators.rules import Rule, RuleSet
from operators.slowpath import SlowPath, SlowPathConfig, SlowResult
from operators.variants import Variant, VariantRouter

__all__ = ["STALE_POLICIES", "BatchResult", "Decider", "DecisionPolicy"]

log = logging.getLogger("lucidstream.decider")

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

    @property
    def stale_action(self) -> str:
        """What a stale decision does: nothing under ``skip``, else the fallback."""
        return "none" if self.on_stale == "skip" else self.fallback_action

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
    canaries: list[tuple] = field(default_factory=list)
    violations: list[tuple] = field(default_factory=list)
    rollout: list[RolloutChange] = field(default_factory=list)
    # for traces: monotonic ns of each stage, and the producer's span of traced inputs
    stages: dict[str, tuple[int, int]] = field(default_factory=dict)
    parents: dict[str, str] = field(default_factory=dict)
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
        learn_per_batch: int = 250,
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
        self.variants = list(variants)
        self.router = VariantRouter(variants)
        self._routed_share: float | None = None
        self.scorers = {v.name: v.scorer() for v in variants}
        self.drift = DriftMonitor(drift)
        self.slow = SlowPath(slow)
        self.regrets = RegretTracker()
        self.feedback = FeedbackLoop(ttl_ms=outcome_ttl_ms, max_pending=max_pending_outcomes)
        self.quality = QualityTracker(flow, shard, quality_window_ms)
        self.escalations = EscalationQueue(flow)
        self.state = StateStore()
        self.canaries = {c.source_id: c for c in canaries}
        self.learn_per_batch = learn_per_batch
        self._distil: dict[str, tuple[list, list[bool]]] = {}  # rows waiting to be learned
        self._last_label_at: int | None = None
        self._slow_action = policy.slow_action or policy.model_action or "inspect"
        self._model_failing_since: int | None = None
        # (at, source, signal) of value drift: a source's own, or the fleet's ("fleet:...")
        self._drift_alarms: deque[tuple[int, str, str]] = deque()
        self._canary_slots: dict[str, int] = {}
        self._canary_failing: dict[tuple[str, str], str] = {}  # (canary, variant) -> checks

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

    def process(
        self, events: list[SensorEvent], tick_ms: int | None = None,
        ingest_ns: int | None = None, outcomes: Sequence[OutcomeEvent] = (),
    ) -> BatchResult:
        """Decide ``events`` in order; ``tick_ms`` advances the replay clock
        for a shard that saw no events of its own in this batch."""
        started = time.monotonic_ns()
        clock, tracker, board = self.clock, self.freshness, self.board
        observe, replay = tracker.observe, self.replay
        every = tracker.config.check_every_ms
        self._route()
        now = clock.now_ms()
        mode_at = board.mode_at
        mode = mode_at(now)
        out = BatchResult(events=len(events), mode=mode)
        decided: list[tuple[SensorEvent, int, str]] = []
        canaries: list[tuple[SensorEvent, int, str]] = []
        for ev in events:
            if replay:
                clock.observe(ev.event_ms if ev.arrival_ms is None else ev.arrival_ms)
                now = clock.now_ms()
            kind = ev.kind
            if kind == "canary":  # a probe: not a source, never holds the watermark
                canaries.append((ev, now, mode))
                continue
            observe(ev.source_id, ev.event_ms, now, ev.seq, kind)
            if now - tracker.last_check_ms >= every:
                self._check(now, out)
                mode = mode_at(now)
            if kind not in NOT_DECIDED:
                decided.append((ev, now, mode))
        fresh_ns = time.monotonic_ns()
        out.stages["freshness"] = (started, fresh_ns)
        if decided:
            self._decide(decided, ingest_ns, out)
            out.stages["decide"] = (out.stages["fast_score"][1], time.monotonic_ns())
        if outcomes:  # after the batch's decisions: an outcome never precedes its decision
            self._outcomes(outcomes, clock.now_ms())
        if replay and tick_ms is not None:
            clock.observe(tick_ms)
        now = clock.now_ms()
        self._check(now, out)
        out.alarms = tracker.drain_alarms()
        for alarm in out.alarms:
            if alarm.signal == "retired":
                for part in (self.drift, self.slow, self.regrets, self.state):
                    part.forget(alarm.source_id)
        drift_alarms = self.drift.drain_alarms()
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
            self._canaries(canaries, out)
        out.now_ms, out.mode = now, mode_at(now)
        return out

    def flush(self) -> BatchResult:
        """End of input: close open slow windows, report held sequence gaps, close the
        open quality window."""
        out = BatchResult(mode=self.board.mode, now_ms=self.clock.now_ms())
        closed = self.slow.close(2**62)
        if out.mode not in RULES_ONLY:
            for result in closed:
                out.decisions.append(self._slow_row(result, out.now_ms, out.mode, out))
        self.freshness.flush_gaps()
        out.alarms = self.freshness.drain_alarms()
        self.quality.add_decisions(out.decisions, 0, out.now_ms)
        self.quality.add_alarms(len(out.alarms), out.now_ms)
        out.quality = self.quality.close(out.now_ms, force=True)
        return out

    def health(self, now: int) -> Health:
        """This shard's view of the pipeline's health at pipeline time ``now``."""
        tracker, drifted = self.freshness, self._drift_alarms
        while drifted and drifted[0][0] <= now - self.board.config.drift_window_ms:
            drifted.popleft()
        failing = self._canary_failing.values()
        return Health(
            lag_ms=tracker.lag_ms(now), lags=tracker.lag_sketch,
            silent_sources=tracker.silent_sources,
            active_sources=tracker.active_sources,
            drifting_sources=len({source for _, source, _ in drifted if source}),
            fleet_drift=len({signal for _, source, signal in drifted if not source}),
            failing_model_canaries=sum(1 for c in failing if c == "model"),
            failing_rules_canaries=sum(1 for c in failing if c == "rules"),
            model_failing_ms=0 if self._model_failing_since is None
            else now - self._model_failing_since)

    def _route(self) -> None:
        """Follow the rollout: the candidate's share of the sources, candidate first so
        that a source on the candidate stays on it as the share grows."""
        rollout = self.board.rollout
        if rollout is None or rollout.share == self._routed_share:
            return
        share, cfg = rollout.share, rollout.config
        self._routed_share = share
        self.router = VariantRouter([Variant(cfg.candidate, share),
                                     Variant(cfg.control, 1.0 - share)])

    def _check(self, now: int, out: BatchResult) -> None:
        """Post health and follow the mode; closed slow windows; expired outcomes."""
        health = self.health(now)
        out.lag_ms = health.lag_ms
        for change in self.board.post(self.shard, now, health):
            if isinstance(change, ModeChange):
                out.mode_changes.append(change)
            else:
                out.rollout.append(change)
        mode = self.board.mode_at(now)
        closed = self.slow.close(now)
        if mode not in RULES_ONLY:  # rules only: long-horizon decisions are off
            for result in closed:
                out.decisions.append(self._slow_row(result, now, mode, out))
        self.feedback.expire(now)
        out.escalations += self.escalations.breaches(now)

    def _outcomes(self, outcomes: Sequence[OutcomeEvent], now: int) -> None:
        """Grade and teach the model with outcomes whose decision this shard made."""
        learn: dict[str, tuple[list, list[bool]]] = {}
        grades: dict[str, list[int]] = {}
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
            grade = grades.setdefault(pending.variant, [0, 0])
            grade[0] += correct
            grade[1] += 1
            self.quality.add_outcome(pending.version, pending.variant, correct,
                                     (pending.score - label) ** 2, now)
            rows, labels = learn.setdefault(pending.variant, ([], []))
            rows.append(pending.values)
            labels.append(label)
        for variant, (correct_count, total) in grades.items():
            self.board.grade(variant, correct_count, total)
        if errors:
            self._last_label_at = now
            self.drift.observe_errors(errors, now, now)
        if self.board.flags.enabled("learning"):
            for variant, (rows, labels) in learn.items():
                self._learn(variant, rows, labels)

    def _learn(self, variant: str, rows: list, labels: list[bool]) -> None:
        try:
            self.scorers[variant].learn(rows, labels)
        except Exception as exc:  # a model that cannot learn must not stop the decisions
            log.warning("step=decide shard=%s variant=%s model failed to learn: %s",
                        self.shard, variant, exc)

    def _score(self, variant: str, rows: list, now: int) -> list[float] | None:
        """The model's scores, or ``None`` when the model path fails (its heartbeat is
        lost while it keeps failing)."""
        try:
            predicted = self.scorers[variant].score(rows)
            if not np.isfinite(predicted).all():
                raise ValueError("the model returned non-finite scores")
        except Exception as exc:  # any failure of a model is the model path's failure
            if self._model_failing_since is None:
                self._model_failing_since = now
                log.warning("step=decide shard=%s variant=%s model path failing: %s",
                            self.shard, variant, exc)
            return None
        if self._model_failing_since is not None:
            log.warning("step=decide shard=%s variant=%s model path answers again after "
                        "%d ms", self.shard, variant, now - self._model_failing_since)
            self._model_failing_since = None
        return predicted.tolist()

    def _content(self, values: dict[str, float], score: float | None
                 ) -> tuple[str, str, Rule | None]:
        """What the rules, else the model, else the default say: (action, reason, rule)."""
        policy = self.policy
        rule = policy.rules.evaluate(values)
        if rule is not None:
            return rule.action, f"rule:{rule.name}", rule
        if score is not None and policy.model_action and score >= policy.model_threshold:
            return policy.model_action, \
                f"model:score {score:.3f} >= {policy.model_threshold}", None
        return policy.default_action, "nominal", None

    def _decide(
        self, decided: list[tuple[SensorEvent, int, str]], ingest_ns: int | None,
        out: BatchResult,
    ) -> None:
        policy, flags = self.policy, self.board.flags
        route = self.router.route
        variants = [route(ev.source_id) for ev, _, _ in decided]
        scores: list[float | None] = [None] * len(decided)
        groups: dict[str, list[int]] = {}
        model_off = flags.any_off("model")
        for i, (ev, _, mode) in enumerate(decided):
            if mode == NORMAL and (not model_off or flags.enabled("model", ev.source_id)):
                groups.setdefault(variants[i], []).append(i)
        model_down = False
        for variant, index in groups.items():
            predicted = self._score(variant, [decided[i][0].values for i in index],
                                    decided[index[0]][1])
            if predicted is None:
                model_down = True
                continue
            for i, p in zip(index, predicted, strict=True):
                scores[i] = p
        if decided[-1][2] == PAUSED:  # probe the lost model with one row per batch
            self._score(self.variants[0].name, [decided[-1][0].values], decided[-1][1])
        out.stages["fast_score"] = (out.stages["freshness"][1], time.monotonic_ns())
        content_of = self._content
        sla, tolerance = policy.sla_ms, self.freshness.config.skew_tolerance_ms
        stale_action = policy.stale_action
        decision_type, flow = policy.decision_type, self.flow
        latency = 0.0 if ingest_ns is None else (time.monotonic_ns() - ingest_ns) / 1e6
        distil = self._last_label_at is None or \
            decided[-1][1] - self._last_label_at > self.feedback.ttl_ms
        learn: dict[str, tuple[list, list[bool]]] = {}
        decisions, regrets, slow, feedback = out.decisions, self.regrets, self.slow, \
            self.feedback
        state = self.state
        slow_on = flags.enabled("slow_path")
        stale_count = escalated_count = 0
        for i, (ev, now, mode) in enumerate(decided):
            values, variant, score = ev.values, variants[i], scores[i]
            content, reason, rule = content_of(values, score)
            if model_down and score is None and mode == NORMAL:
                reason += " (model path failing: rules only)"
            age = now - ev.event_ms
            conservative = mode == CONSERVATIVE
            if age > sla or age < -tolerance:
                path, fresh = "fallback", False
                escalated = conservative or policy.on_stale == "escalate"
                action = stale_action
                why = "clock skew" if age < 0 else f"stale: age {age} ms > sla {sla} ms"
                reason = f"{why}; policy {policy.on_stale}"
                stale_count += 1
            else:
                path, fresh, escalated, action = "fast", True, conservative, content
            version = self.scorers[variant].version if score is not None else "rules"
            did = decision_id(ev.source_id, decision_type, ev.seq, ev.event_ms, ev.origin)
            trace = None
            if ev.trace_parent:
                trace = parse_traceparent(ev.trace_parent)
                parent = parent_span_of(ev.trace_parent)
                if parent is not None:
                    out.parents[did] = parent
            decisions.append((
                did, trace or trace_id_for(did), ev.source_id, decision_type, path, action,
                score, None if score is None else max(score, 1.0 - score), version, variant,
                mode, ev.event_ms, now, age, fresh, latency, escalated, reason, flow, ev.origin,
            ))
            if escalated:  # a person decides; the action waits in the queue
                escalated_count += 1
                out.escalations.append(self.escalations.open(
                    did, ev.source_id, decision_type, action, reason, mode, now,
                    policy.response_sla_ms))
                version_now = state.version(ev.source_id)
            elif action != "none":  # executed: the source's state is this action now
                version_now = state.apply(ev.source_id, action, did, now)
            else:
                version_now = state.version(ev.source_id)
            for regret in regrets.check(ev.source_id, ev.event_ms, now, content, ev.origin):
                out.regrets.append(regret.row(flow))
                self.quality.add_regret(regret.version, regret.variant, regret.changed, now)
            regrets.record(ev.source_id, did, ev.event_ms, now, action, version, variant)
            if score is not None:
                feedback.remember(did, Pending(variant, version, values, score, now))
            if distil and fresh:  # the model learns the rules even while it may not decide
                rows, labels = learn.setdefault(variant, ([], []))
                rows.append(values)
                labels.append(rule is not None)
            if mode == NORMAL and slow_on:
                for result in slow.add(ev.source_id, ev.event_ms, values, action, version,
                                       variant, version_now):
                    decisions.append(self._slow_row(result, now, mode, out))
        out.stale += stale_count
        out.escalated += escalated_count
        if flags.enabled("drift"):
            watch = self.drift.observe
            for ev, now, _ in decided:
                watch(ev.source_id, ev.values, ev.event_ms, now)
            modelled = [s for s in scores if s is not None]
            if modelled:
                self.drift.observe_model(modelled, decided[-1][0].event_ms, decided[-1][1])
        if not flags.enabled("learning"):
            return
        for variant, (rows, labels) in learn.items():
            # Distillation needs a sample, not every event: a fixed stride keeps the
            # model's cost per batch bounded and the choice deterministic. A learning
            # step costs 0.4-0.5 ms for 250 rows, mostly per call, and is one SGD update,
            # so small batches (a live stream polled every few ms) are learned in chunks.
            step = max(1, len(rows) // self.learn_per_batch)
            chunk_rows, chunk_labels = self._distil.setdefault(variant, ([], []))
            chunk_rows += rows[::step]
            chunk_labels += labels[::step]
            if len(chunk_rows) >= self.learn_per_batch:
                del self._distil[variant]
                # the rules' own examples, from two rows of the chunk: the model knows
                # each rule over its value's whole range, whatever the stream visited
                spread = getattr(self.scorers[variant], "spread", lambda name: None)
                for row in (chunk_rows[0], chunk_rows[len(chunk_rows) // 2]):
                    probe_rows, probe_labels = policy.rules.probes(row, spread)
                    chunk_rows += probe_rows
                    chunk_labels += probe_labels
                self._learn(variant, chunk_rows, chunk_labels)

    def _canaries(self, canaries: list[tuple[SensorEvent, int, str]], out: BatchResult) -> None:
        """Decide each canary (first copy of its slot only), check it, record it."""
        policy = self.policy
        for ev, now, mode in canaries:
            canary = self.canaries.get(ev.source_id)
            slot = ev.seq if ev.seq is not None else ev.event_ms
            if canary is None or slot <= self._canary_slots.get(ev.source_id, -1):
                continue  # unknown to this flow, or a copy another worker injected
            self._canary_slots[ev.source_id] = slot
            did = decision_id(ev.source_id, policy.decision_type, slot, ev.event_ms, ev.origin)
            age = now - ev.event_ms
            stale = age > policy.sla_ms or age < -self.freshness.config.skew_tolerance_ms
            checks: list[tuple[str, str | None]]  # (variant, model version; None: rules)
            if canary.checks == "rules":
                checks = [(self.variants[0].name, None)]
            else:
                checks = [(v, self.scorers[v].version) for v in self._in_service()]
            for variant, version in checks:
                score = None
                if canary.checks == "rules":
                    actual, reason, _ = self._content(ev.values, None)
                else:
                    assert canary.versus is not None
                    scores = self._score(variant, [ev.values, dict(canary.versus)], now)
                    if scores is None:
                        actual, reason = "error", "model path failing"
                    else:
                        score = scores[0]
                        gap = scores[0] - scores[1]
                        actual = "ranks_higher" if gap > canary.min_gap else "ranks_lower"
                        reason = f"model scores {scores[0]:.4f} vs harmless {scores[1]:.4f}"
                        if abs(gap) < 1e-12:  # wrong wherever it is asked: not judged by range
                            actual, reason = "constant", reason + ": the same score for both"
                if stale and canary.checks == "rules":
                    actual = policy.stale_action
                    reason = f"stale canary: age {age} ms > sla {policy.sla_ms} ms"
                if version is not None and \
                        self.scorers[variant].samples_seen < canary.warmup_samples:
                    status = "warmup"
                else:
                    status = "pass" if actual == canary.expect else "fail"
                out.canaries.append(canary_row(
                    self.flow, canary, slot, now, variant, version or "rules", actual, status,
                    score, mode, did, age, reason))
                self._canary_outcome(canary, variant if version else "rules", status, now,
                                     actual, out)
            out.decisions.append((
                did, trace_id_for(did), ev.source_id, policy.decision_type, "canary", actual,
                score, None if score is None else max(score, 1.0 - score),
                version or "rules", checks[-1][0], mode, ev.event_ms, now, age, not stale,
                0.0, False, f"canary {canary.name}: expect {canary.expect}; {reason}",
                self.flow, ev.origin))

    def _in_service(self) -> list[str]:
        """Variants that decide for some sources now (a rolled-back candidate does not)."""
        rollout = self.board.rollout
        if rollout is None:
            return [v.name for v in self.variants]
        names = [rollout.config.control]
        if rollout.share > 0:
            names.append(rollout.config.candidate)
        return names

    def _canary_outcome(self, canary: Canary, variant: str, status: str, now: int,
                        actual: str, out: BatchResult) -> None:
        key = (canary.name, variant)
        if status != "fail":
            if self._canary_failing.pop(key, None) is not None:
                out.alarms.append(Alarm(now, now, canary.source_id, "canary_recovered",
                                        "canary", 0.0, 0.0, {"variant": variant},
                                        key=f"{variant}:{now}"))
            return
        rollout = self.board.rollout
        if canary.checks == "model" and rollout is not None \
                and variant == rollout.config.candidate:
            change = self.board.rollback(now, f"candidate {variant} failed canary "
                                              f"{canary.name}: {actual} != {canary.expect}")
            if change is not None:
                out.rollout.append(change)
            return
        if key not in self._canary_failing:
            out.alarms.append(Alarm(now, now, canary.source_id, "canary_failed", "canary",
                                    1.0, 0.0, {"variant": variant, "expected": canary.expect,
                                               "actual": actual},
                                    key=f"{variant}:{now}"))
        self._canary_failing[key] = canary.checks

    def _slow_row(self, r: SlowResult, now: int, mode: str, out: BatchResult) -> tuple:
        """The slow path's decision for one closed window of one source; a revision
        decided against a state that has since changed is rejected (kept as is)."""
        policy = self.policy
        action = self._slow_action if r.revised else r.fast_action
        did = decision_id(r.source_id, f"{policy.decision_type}/slow", None, r.window_start,
                          "window")
        age = now - r.last_event_ms
        fresh = age <= policy.sla_ms + self.slow.config.window_ms
        verdict = "revises" if action != r.fast_action else "confirms"
        reason = (f"slow: risk {r.risk:.2f} over {r.events} events {verdict} fast "
                  f"{r.fast_action}")
        escalated = mode == CONSERVATIVE
        if not escalated:
            conflict = self.state.commit(r.source_id, r.based_on, action, did, now)
            if conflict is not None:
                current = conflict.current
                out.violations.append(conflict.row(now, policy.decision_type, "slow", action,
                                                   "kept current state", self.flow))
                reason += (f"; rejected: decided against state v{r.based_on}, now "
                           f"v{current.version} ({current.action}); kept {current.action}")
                action = current.action
        self.quality.add_agreement(r.version, r.variant, action == r.fast_action, now)
        if escalated:
            out.escalations.append(self.escalations.open(
                did, r.source_id, policy.decision_type, action, reason, mode, now,
                policy.response_sla_ms))
        return (did, trace_id_for(did), r.source_id, policy.decision_type, "slow", action,
                round(r.risk, 6), None, "slow-risk-1", r.variant, mode, r.last_event_ms, now,
                age, fresh, 0.0, escalated, reason, self.flow,
                f"window:{r.window_start}-{r.window_end}")
