"""The fast path: each event's decision from the rules, the model's score and its age.

For every event of the batch: the rules, else the model's score above the policy's
threshold, else the default action say what to do (the *content*); an event older
than the freshness SLA, or from beyond the skew tolerance in the future, is not
fresh and follows the stale policy instead (``fallback``: the fallback action,
``skip``: no action, ``escalate``: the fallback action, escalated). In
CONSERVATIVE every decision is escalated. A stale decision is never marked fresh.
Each decision gets a deterministic ID (:func:`~operators.ids.decision_id`) and a
trace ID, or the producer's when the input carried a ``traceparent``.
"""

from __future__ import annotations

import time

from mypy_extensions import mypyc_attr

from operators.batch import BatchResult, DecideBatch
from operators.decision import Decision
from operators.ids import decision_ids, parent_span_of, parse_traceparent, trace_id_for
from operators.modelpath import ModelPath
from operators.modes import CONSERVATIVE, NORMAL
from operators.policy import DecisionPolicy
from operators.policy import content as content_of
from operators.sensorevent import SensorEvent

__all__ = ["FastPath"]


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)
class FastPath:
    """Decides each event of a batch (after the model path has scored it).

    >>> from operators.events import SensorEvent
    >>> from operators.modeboard import ModeBoard
    >>> from operators.rules import Rule, RuleSet
    >>> policy = DecisionPolicy("motion", RuleSet([Rule("low", "battery", "<", 15, "dock")]),
    ...                         sla_ms=1_000, default_action="go")
    >>> events = [SensorEvent("r1", 1_000, {"battery": 9.0}, seq=1),
    ...           SensorEvent("r1", 1_100, {"battery": 50.0}, seq=2)]
    >>> batch = DecideBatch(events, [1_020, 3_000], ["NORMAL"] * 2, ModeBoard(),
    ...                     variant=["control"] * 2, score=[None, None])
    >>> out = BatchResult()
    >>> FastPath(policy, "demo", skew_tolerance_ms=500).observe_batch(batch, out)
    >>> [(d.path, d.action, d.fresh) for d in out.decisions]
    [('fast', 'dock', True), ('fallback', 'hold', False)]
    """

    def __init__(self, policy: DecisionPolicy, flow: str, skew_tolerance_ms: int,
                 model: ModelPath | None = None) -> None:
        self.policy = policy
        self.flow = flow
        self.skew_tolerance_ms = skew_tolerance_ms
        self.model = model

    def observe_batch(self, batch: DecideBatch, out: BatchResult) -> None:
        policy, flow, model = self.policy, self.flow, self.model
        rules, model_action, threshold = policy.rules, policy.model_action, \
            policy.model_threshold
        default_action = policy.default_action
        sla, tolerance = policy.sla_ms, self.skew_tolerance_ms
        stale_action, on_stale = policy.stale_action, policy.on_stale
        decision_type = policy.decision_type
        latency = 0.0 if batch.ingest_ns is None else \
            (time.monotonic_ns() - batch.ingest_ns) / 1e6
        decisions, parents = out.decisions, out.parents
        model_down = batch.model_down
        untaught = batch.untaught
        ids = decision_ids(batch.events, decision_type)
        contents, fired, actions, fresh_flags, escalations, versions, reasons = \
            [], [], [], [], [], [], []
        stale_count = 0
        new = tuple.__new__  # a Decision without NamedTuple's Python-level __new__
        # each variant's model version, asked once a batch (the model path is Python)
        version_of: dict[str, str] = {}
        # typed here: a zip of six or more is typed Any by its stubs, and compiled, every
        # field of an Any event is then looked up by name
        ev: SensorEvent
        now: int
        mode: str
        variant: str
        score: float | None
        did: str
        for ev, now, mode, variant, score, did in zip(  # noqa: B905 - only a keyword-free zip compiles to a C loop
                batch.events, batch.now, batch.mode, batch.variant, batch.score, ids):
            content, reason, rule = content_of(rules, model_action, threshold, default_action,
                                               ev.values, score,
                                               not untaught or variant not in untaught)
            if model_down and score is None and mode == NORMAL:
                reason += " (model path failing: rules only)"
            age = now - ev.event_ms
            conservative = mode == CONSERVATIVE
            if age > sla or age < -tolerance:
                path, fresh = "fallback", False
                escalated = conservative or on_stale == "escalate"
                action = stale_action
                why = "clock skew" if age < 0 else f"stale: age {age} ms > sla {sla} ms"
                reason = f"{why}; policy {on_stale}"
                stale_count += 1
            else:
                path, fresh, escalated, action = "fast", True, conservative, content
            if score is None or model is None:
                version = "rules"
            else:
                version = version_of.get(variant, "")
                if not version:
                    version = version_of[variant] = model.version(variant)
            trace = None
            if ev.trace_parent:
                trace = parse_traceparent(ev.trace_parent)
                parent = parent_span_of(ev.trace_parent)
                if parent is not None:
                    parents[did] = parent
            decisions.append(new(Decision, (
                did, trace or trace_id_for(did), ev.source_id, decision_type, path, action,
                score, None if score is None else max(score, 1.0 - score), version, variant,
                mode, ev.event_ms, now, age, fresh, latency, escalated, reason, flow,
                ev.origin)))
            contents.append(content)
            fired.append(rule is not None)
            actions.append(action)
            fresh_flags.append(fresh)
            escalations.append(escalated)
            versions.append(version)
            reasons.append(reason)
        out.stale += stale_count
        batch.content, batch.rule_fired, batch.action, batch.fresh = \
            contents, fired, actions, fresh_flags
        batch.escalated, batch.decision_id, batch.version = escalations, ids, versions
        batch.reason = reasons

    def forget(self, source_id: str) -> None:
        """Nothing per source."""
