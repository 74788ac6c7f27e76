"""The slow path's decisions: one per closed window of one source.

In ``NORMAL`` (and with the ``slow_path`` capability on) every decided event also
goes into its source's window of :class:`~operators.slowpath.SlowPath`. A closed
window becomes a decision on ``path = "slow"``: it revises the fast path to the
policy's slow action when the window's risk is high, else confirms the window's
last fast action. A revision decided against a source state that has since changed
is rejected (the state in force is kept, and the violation recorded); in
CONSERVATIVE it is escalated instead. Windows close as the pipeline clock passes
them (:meth:`SlowDecisions.close`, at the end of each batch), or when a later window of
the same source opens. The part also applies the fast decisions to the sources' state,
event by event, so that a window one of them closes is committed between that fast
decision and the next, whatever the batching; a window the clock passes is committed
at the batch's end, after every fast decision that came on the same clock.
"""

from __future__ import annotations

from mypy_extensions import mypyc_attr

from operators.batch import BatchResult, DecideBatch
from operators.decision import Decision
from operators.escalation import EscalationQueue
from operators.ids import decision_id, trace_id_for
from operators.invariants import StateStore
from operators.modes import CONSERVATIVE, NORMAL, RULES_ONLY
from operators.policy import DecisionPolicy
from operators.quality import QualityTracker
from operators.slowpath import SlowPath, SlowResult

__all__ = ["SlowDecisions"]


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)
class SlowDecisions:
    """Windows the batch's decisions and decides each window that closes.

    >>> from operators.rules import RuleSet
    >>> from operators.slowpath import SlowPathConfig
    >>> policy = DecisionPolicy("motion", RuleSet([]), default_action="go")
    >>> slow = SlowDecisions(SlowPath(SlowPathConfig(window_ms=1_000, min_events=1)),
    ...                      policy, "demo", StateStore(), EscalationQueue("demo"),
    ...                      QualityTracker("demo", "s0"))
    >>> out = BatchResult()
    >>> slow.close(now=0, mode="NORMAL", out=out)        # nothing open yet
    >>> len(out.decisions)
    0
    """

    def __init__(self, slow: SlowPath, policy: DecisionPolicy, flow: str, state: StateStore,
                 escalations: EscalationQueue, quality: QualityTracker) -> None:
        self.slow = slow
        self.policy = policy
        self.flow = flow
        self.state = state
        self.escalations = escalations
        self.quality = quality
        self.action = policy.slow_action or policy.model_action or "inspect"

    def observe_batch(self, batch: DecideBatch, out: BatchResult) -> None:
        """Apply the batch's executed fast decisions to the sources' state in order (an
        escalated one waits for a person) and, in NORMAL with the slow path on, window
        each decided event with the state version it left its source at. A
        window an event closes is decided and committed right after that event's fast
        decision and before the next one's, as one event at a time would: the slow
        decisions do not depend on how the stream is batched."""
        windowing = batch.board.flags.enabled("slow_path")
        slow, decisions, state = self.slow, out.decisions, self.state
        # the columns as locals: an attribute of the (interpreted) batch is a dict lookup
        modes, actions, versions, variants = batch.mode, batch.action, batch.version, \
            batch.variant
        escalated, ids, nows = batch.escalated, batch.decision_id, batch.now
        for i, ev in enumerate(batch.events):
            action = actions[i]
            if escalated[i] or action == "none":
                at = state.version(ev.source_id)
            else:  # executed: the source's state is this action now
                at = state.apply(ev.source_id, action, ids[i], nows[i])
            mode = modes[i]
            if windowing and mode == NORMAL:
                for result in slow.add(ev.source_id, ev.event_ms, ev.values, action,
                                       versions[i], variants[i], at):
                    decisions.append(self.decide(result, nows[i], mode, out))

    def close(self, now: int, mode: str, out: BatchResult, every: bool = False) -> None:
        """Decide the windows the clock has passed, or ``every`` window at the end of
        input (dropped in a rules-only mode, where long-horizon decisions are off)."""
        closed = self.slow.close(2**62 if every else now)
        if mode not in RULES_ONLY:
            for result in closed:
                out.decisions.append(self.decide(result, now, mode, out))

    def forget(self, source_id: str) -> None:
        self.slow.forget(source_id)
        self.state.forget(source_id)

    def decide(self, r: SlowResult, now: int, mode: str, out: BatchResult) -> Decision:
        """The slow decision for one closed window of one source."""
        policy, flow = self.policy, self.flow
        action = self.action if r.revised else r.fast_action
        did = decision_id(r.source_id, f"{policy.decision_type}/slow", None, r.window_start,
                          "window")
        age = now - r.last_event_ms
        fresh = age <= policy.sla_ms + self.slow.config.window_ms
        verdict = "revises" if action != r.fast_action else "confirms"
        farthest = f" ({r.value})" if r.value else ""
        reason = (f"slow: risk {r.risk:.2f}{farthest} against {r.threshold:.2f} over "
                  f"{r.events} events {verdict} fast {r.fast_action}")
        escalated = mode == CONSERVATIVE
        if not escalated:
            conflict = self.state.commit(r.source_id, r.based_on, action, did, now)
            if conflict is not None:
                current = conflict.current
                out.violations.append(conflict.row(now, policy.decision_type, "slow", action,
                                                   "kept current state", flow))
                reason += (f"; rejected: decided against state v{r.based_on}, now "
                           f"v{current.version} ({current.action}); kept {current.action}")
                action = current.action
        self.quality.add_agreement(r.version, r.variant, action == r.fast_action, now)
        if escalated:
            out.escalations.append(self.escalations.open(
                did, r.source_id, policy.decision_type, action, reason, mode, now,
                policy.response_sla_ms))
        return Decision(did, trace_id_for(did), r.source_id, policy.decision_type, "slow",
                        action, round(r.risk, 6), None, "slow-risk-2", r.variant, mode,
                        r.last_event_ms, now, age, fresh, 0.0, escalated, reason, flow,
                        f"window:{r.window_start}-{r.window_end}")
