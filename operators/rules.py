"""Fast-path rules: thresholds on named values, first match by priority wins.

A rule names the value it reads; an event that lacks that value simply does
not trigger it (the contract only promises one value), so a partial event is
still decided by the rules that can read it and by the model.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from mypy_extensions import mypyc_attr

__all__ = ["Rule", "RuleSet"]

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}
# each op as a code that evaluate compares inline (compiled, a call to operator.lt
# through Python's generic call costs more than the rest of the rule)
_LT, _LE, _GT, _GE = range(4)
_CODES = {"<": _LT, "<=": _LE, ">": _GT, ">=": _GE}


@mypyc_attr(native_class=False)
@dataclass(frozen=True)
class Rule:
    """``field op threshold -> action``; lower ``priority`` is checked first.

    >>> Rule("low_battery", "battery", "<", 15, "return_to_base").fires({"battery": 9.0})
    True
    """

    name: str
    field: str
    op: str
    threshold: float
    action: str
    priority: int = 100

    def __post_init__(self) -> None:
        if self.op not in _OPS:
            raise ValueError(f"rule {self.name!r}: op {self.op!r} is not one of {sorted(_OPS)}")

    def fires(self, values: Mapping[str, float]) -> bool:
        value = values.get(self.field)
        return value is not None and _OPS[self.op](value, self.threshold)


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)
class RuleSet:
    """An ordered set of rules; ``evaluate`` returns the first rule that fires.

    >>> rules = RuleSet([Rule("stop", "obstacle_m", "<", 0.5, "stop", priority=0),
    ...                  Rule("hot", "temp", ">", 80, "slow_down")])
    >>> rules.evaluate({"obstacle_m": 0.2, "temp": 90}).name
    'stop'
    >>> rules.evaluate({"v": 1.0}) is None
    True
    """

    def __init__(self, rules: list[Rule]) -> None:
        self.rules = sorted(rules, key=lambda r: r.priority)
        # Compiled form: a tuple per rule, avoiding attribute lookups per event.
        self._compiled = [(r.field, _CODES[r.op], float(r.threshold), r) for r in self.rules]

    @property
    def fields(self) -> list[str]:
        return sorted({r.field for r in self.rules})

    def probes(self, row: Mapping[str, float], spread: Callable[[str], float | None]
               ) -> tuple[list[dict[str, float]], list[bool]]:
        """The rules as examples: for each rule, ``row`` with the rule's value set one
        ``spread(field)`` to either side of its threshold, labelled by whether any rule
        fires. A model distilled from the rules learns them over the whole range of each
        value, not only the part the stream happened to visit.

        >>> rules = RuleSet([Rule("low", "battery", "<", 15, "dock")])
        >>> rules.probes({"battery": 80.0, "speed": 1.0}, lambda field: 10.0)
        ([{'battery': 5.0, 'speed': 1.0}, {'battery': 25.0, 'speed': 1.0}], [True, False])
        """
        rows: list[dict[str, float]] = []
        labels: list[bool] = []
        for rule in self.rules:
            width = spread(rule.field) or max(abs(rule.threshold) * 0.5, 1.0)
            for value in (rule.threshold - width, rule.threshold + width):
                probe = {**row, rule.field: value}
                rows.append(probe)
                labels.append(self.evaluate(probe) is not None)
        return rows, labels

    def evaluate(self, values: dict[str, float]) -> Rule | None:
        for name, op, threshold, rule in self._compiled:
            found = values.get(name)
            if found is None:
                continue
            value: float = found
            if (value < threshold if op == _LT else value <= threshold if op == _LE
                    else value > threshold if op == _GT else value >= threshold):
                return rule
        return None

    def __len__(self) -> int:
        return len(self.rules)

    def __repr__(self) -> str:
        return f"RuleSet({[r.name for r in self.rules]})"
