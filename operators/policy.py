"""What one decision type does: its rules, its model threshold, its SLA and stale policy."""

from __future__ import annotations

from dataclasses import dataclass

from mypy_extensions import mypyc_attr

from operators.rules import Rule, RuleSet

__all__ = ["STALE_POLICIES", "DecisionPolicy", "content"]

STALE_POLICIES = ("fallback", "skip", "escalate")


@mypyc_attr(native_class=False)
@dataclass(frozen=True)
class DecisionPolicy:
    """A decision type's rules, model action, freshness SLA and stale policy.

    >>> policy = DecisionPolicy("motion", RuleSet([Rule("low", "battery", "<", 15, "dock")]),
    ...                         default_action="go", model_action="inspect")
    >>> policy.content({"battery": 9.0}, None)[:2], policy.content({"battery": 50}, 0.95)[:2]
    (('dock', 'rule:low'), ('inspect', 'model:score 0.950 >= 0.9'))
    """

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

    def content(self, values: dict[str, float], score: float | None, heed: bool = True
                ) -> tuple[str, str, Rule | None]:
        """What the rules, else the model, else the default say: (action, reason, rule).
        Without ``heed`` the model's score does not decide, and the reason says so where
        it would have.

        >>> policy = DecisionPolicy("motion", RuleSet([]), default_action="go",
        ...                         model_action="inspect")
        >>> action, reason, _ = policy.content({}, 0.95, heed=False)
        >>> action, reason.split(":")[0]
        ('go', 'nominal (model score 0.950 not heeded')
        """
        return content(self.rules, self.model_action, self.model_threshold,
                       self.default_action, values, score, heed)


def content(rules: RuleSet, model_action: str | None, model_threshold: float,
            default_action: str, values: dict[str, float], score: float | None,
            heed: bool = True) -> tuple[str, str, Rule | None]:
    """:meth:`DecisionPolicy.content` with the policy's fields given: the fast path reads
    them once a batch (a policy is a Python dataclass; compiled code looks each field up
    by name) and calls this for every event."""
    rule = rules.evaluate(values)
    if rule is not None:
        return rule.action, f"rule:{rule.name}", rule
    if score is not None and model_action and score >= model_threshold:
        if heed:
            return model_action, f"model:score {score:.3f} >= {model_threshold}", None
        return default_action, (
            f"nominal (model score {score:.3f} not heeded: no rule has fired on this "
            "stream's rows, so the model knows no intervention here)"), None
    return default_action, "nominal", None
