"""Checking canaries as they come through: decide, compare with the known answer, react.

A shard decides each canary it owns (the first copy of each schedule slot) with the
same rules, SLA and models as any event, on ``path = "canary"``, and never executes
it. A rules canary checks the decided action; a model canary checks that each
variant in service ranks the canary's reading above the harmless one, once the model
has learned from ``warmup_samples`` rows (status ``warmup`` before) and once the
stream's own events have carried the values that tell the two readings apart (status
``unseen`` before: a model fed on pumps knows nothing of a battery, whatever the rules'
examples taught it). A failure
raises ``canary_failed`` once per episode (``canary_recovered`` when it passes
again) and counts toward the mode machine's health; a failing rollout candidate is
rolled back instead. See :mod:`operators.canary` for the canaries themselves.
"""

from __future__ import annotations

from collections.abc import Sequence

from mypy_extensions import mypyc_attr

from operators.alarms import Alarm
from operators.batch import BatchResult
from operators.canary import Canary, canary_row
from operators.decision import Decision
from operators.events import SensorEvent
from operators.ids import decision_id, trace_id_for
from operators.modeboard import ModeBoard
from operators.modelpath import ModelPath
from operators.policy import DecisionPolicy

__all__ = ["CanaryChecks"]


# Consecutive failed slots before a check counts as failing. A rules canary at once: the
# pipeline decides wrongly. A model canary at the second: an online model still learning
# may rank one reading wrongly once and put it right by the next slot; a broken one fails
# every slot.
FAILS_TO_COUNT = {"rules": 1, "model": 2}


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)
class CanaryChecks:
    """The canaries of one shard, their slots seen and the checks failing now.

    >>> from operators.rules import Rule, RuleSet
    >>> from operators.variants import Variant
    >>> policy = DecisionPolicy("motion", RuleSet([Rule("low", "battery", "<", 15, "dock")]),
    ...                         default_action="go")
    >>> canary = Canary("flat", {"battery": 2.0}, expect="dock")
    >>> checks = CanaryChecks([canary], policy, "demo", 500, ModelPath([Variant("c", 1.0)]))
    >>> out = BatchResult()
    >>> probe = SensorEvent(canary.source_id, 1_000, dict(canary.values), seq=0,
    ...                     kind="canary")
    >>> checks.check([(probe, 1_010, "NORMAL")], ModeBoard(), out)
    >>> [(d.path, d.action, d.fresh) for d in out.decisions], out.canaries[0][9]
    ([('canary', 'dock', True)], 'pass')
    """

    def __init__(self, canaries: Sequence[Canary], policy: DecisionPolicy, flow: str,
                 skew_tolerance_ms: int, model: ModelPath) -> None:
        self.canaries = {c.source_id: c for c in canaries}
        self.policy = policy
        self.flow = flow
        self.skew_tolerance_ms = skew_tolerance_ms
        self.model = model
        self._slots: dict[str, int] = {}
        self._failing: dict[tuple[str, str], str] = {}  # (canary, variant) -> checks
        self._streak: dict[tuple[str, str], int] = {}   # consecutive failed slots
        # a model canary's values that differ from its harmless reading: the model is
        # judged on them once the stream's own events have carried them
        self._asks = {c.source_id: c.distinguishing() for c in canaries if c.checks == "model"}
        model.seek({name for names in self._asks.values() for name in names})

    def failing(self, checks: str) -> int:
        """How many (canary, variant) checks of kind ``checks`` fail now."""
        return sum(1 for kind in self._failing.values() if kind == checks)

    def check(self, probes: list[tuple[SensorEvent, int, str]], board: ModeBoard,
              out: BatchResult) -> None:
        """Decide each canary (first copy of its slot only), check it, record it."""
        policy, model = self.policy, self.model
        for ev, now, mode in probes:
            canary = self.canaries.get(ev.source_id)
            slot = ev.seq if ev.seq is not None else ev.event_ms
            if canary is None or slot <= self._slots.get(ev.source_id, -1):
                continue  # unknown to this flow, or a copy another worker injected
            self._slots[ev.source_id] = slot
            did = decision_id(ev.source_id, policy.decision_type, slot, ev.event_ms, ev.origin)
            age = now - ev.event_ms
            stale = age > policy.sla_ms or age < -self.skew_tolerance_ms
            checks: list[tuple[str, str | None]]  # (variant, model version; None: rules)
            if canary.checks == "rules":
                checks = [(model.variants[0].name, None)]
            else:
                checks = [(v, model.version(v)) for v in model.in_service(board)]
            for variant, version in checks:
                score = None
                if canary.checks == "rules":
                    actual, reason, _ = policy.content(ev.values, None)
                else:
                    assert canary.versus is not None
                    scores = model.score(variant, [ev.values, dict(canary.versus)], now)
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
                unseen = [n for n in self._asks.get(ev.source_id, ()) if not model.carries(n)]
                if version is not None and \
                        model.scorers[variant].samples_seen < canary.warmup_samples:
                    status = "warmup"
                elif unseen:
                    status = "unseen"
                    reason += (f"; not judged: the stream has carried no {', '.join(unseen)}"
                               ", so the model has not learned it from events")
                else:
                    status = "pass" if actual == canary.expect else "fail"
                out.canaries.append(canary_row(
                    self.flow, canary, slot, now, variant, version or "rules", actual, status,
                    score, mode, did, age, reason))
                self._outcome(canary, variant if version else "rules", status, now, actual,
                              board, out)
            out.decisions.append(Decision(
                did, trace_id_for(did), ev.source_id, policy.decision_type, "canary", actual,
                score, None if score is None else max(score, 1.0 - score),
                version or "rules", checks[-1][0], mode, ev.event_ms, now, age, not stale,
                0.0, False, f"canary {canary.name}: expect {canary.expect}; {reason}",
                self.flow, ev.origin))

    def _outcome(self, canary: Canary, variant: str, status: str, now: int, actual: str,
                 board: ModeBoard, out: BatchResult) -> None:
        key = (canary.name, variant)
        if status != "fail":
            self._streak.pop(key, None)
            if self._failing.pop(key, None) is not None:
                out.alarms.append(Alarm(now, now, canary.source_id, "canary_recovered",
                                        "canary", 0.0, 0.0, {"variant": variant},
                                        key=f"{variant}:{now}"))
            return
        rollout = board.rollout
        if canary.checks == "model" and rollout is not None \
                and variant == rollout.config.candidate:
            change = board.rollback(now, f"candidate {variant} failed canary "
                                         f"{canary.name}: {actual} != {canary.expect}")
            if change is not None:
                out.rollout.append(change)
            return
        streak = self._streak[key] = self._streak.get(key, 0) + 1
        if streak < FAILS_TO_COUNT[canary.checks]:
            return
        if key not in self._failing:
            out.alarms.append(Alarm(now, now, canary.source_id, "canary_failed", "canary",
                                    1.0, 0.0, {"variant": variant, "expected": canary.expect,
                                               "actual": actual},
                                    key=f"{variant}:{now}"))
        self._failing[key] = canary.checks
