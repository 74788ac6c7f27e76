"""A model fault injected on purpose, for fault scenarios and chaos experiments.

For a span of the pipeline clock the model path is ``broken`` (it answers, with
its scores inverted: a model that learned the wrong thing) or ``stalled`` (it
does not answer: its heartbeat is lost). Keyed on the pipeline clock, so a replay
injects it at the same events every time. Off unless a run asks for it
(``LUCIDSTREAM_MODEL_FAULT=broken:FROM_MS-TO_MS``).

>>> fault = ModelFault.parse("broken:1000-2000")
>>> import numpy as np
>>> fault.apply(np.array([0.9, 0.2]), now=1_500).round(1).tolist(), fault.apply(
...     np.array([0.9]), now=2_000).tolist()
([0.1, 0.8], [0.9])
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from operators.errors import ConfigError

__all__ = ["KINDS", "ModelFault"]

KINDS = ("broken", "stalled")


@dataclass(frozen=True)
class ModelFault:
    kind: str
    from_ms: int
    to_ms: int

    def __post_init__(self) -> None:
        if self.kind not in KINDS or self.to_ms <= self.from_ms:
            raise ConfigError(f"model fault {self.kind}:{self.from_ms}-{self.to_ms}: use "
                              f"one of {KINDS} and a span FROM_MS-TO_MS with FROM < TO")

    @classmethod
    def parse(cls, text: str) -> ModelFault:
        """``KIND:FROM_MS-TO_MS`` (epoch ms of the pipeline clock)."""
        try:
            kind, span = text.split(":", 1)
            start, end = span.split("-", 1)
            return cls(kind, int(start), int(end))
        except ValueError:
            raise ConfigError(f"model fault {text!r}: expected KIND:FROM_MS-TO_MS, for "
                              "example broken:1767225750000-1767225810000") from None

    def apply(self, scores: np.ndarray, now: int) -> np.ndarray:
        """The scores the faulty model gives at ``now``; raises while it is stalled."""
        if not self.from_ms <= now < self.to_ms:
            return scores
        if self.kind == "stalled":
            raise TimeoutError("injected model fault: the model does not answer")
        return 1.0 - scores
