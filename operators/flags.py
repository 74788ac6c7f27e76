"""Feature flags: capabilities switched on and off at runtime, globally or per source.

Everything is on unless a flag turns it off. Capabilities:

* ``model``: score with the model (off: rules decide, as in REACTIVE_ONLY);
* ``slow_path``: windowed slow decisions;
* ``drift``: the drift detectors;
* ``learning``: the model learns from outcomes and distillation;
* ``canaries``: scheduled canary decisions.

Flags arrive through the control directory (``lucidstream flag set``) and are
read by every shard, like the mode override.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["CAPABILITIES", "Flags"]

CAPABILITIES = ("model", "slow_path", "drift", "learning", "canaries")


@dataclass(frozen=True)
class Flags:
    """Which capabilities are off, everywhere (``off``) or for some sources (``off_for``).

    >>> flags = Flags.parse({"off": ["drift"], "off_for": {"model": ["r7"]}})
    >>> flags.enabled("drift"), flags.enabled("model", "r1"), flags.enabled("model", "r7")
    (False, True, False)
    >>> Flags.parse({"off": ["telepathy"]})
    Traceback (most recent call last):
    ...
    ValueError: unknown capability 'telepathy': use one of model, slow_path, drift, \
learning, canaries
    """

    off: frozenset[str] = frozenset()
    off_for: Mapping[str, frozenset[str]] = field(default_factory=dict)

    @classmethod
    def parse(cls, data: Mapping) -> Flags:
        off = frozenset(data.get("off", ()))
        off_for = {c: frozenset(s) for c, s in dict(data.get("off_for", {})).items() if s}
        for capability in off | set(off_for):
            if capability not in CAPABILITIES:
                raise ValueError(f"unknown capability {capability!r}: use one of "
                                 f"{', '.join(CAPABILITIES)}")
        return cls(off, off_for)

    def to_json(self) -> dict:
        return {"off": sorted(self.off),
                "off_for": {c: sorted(s) for c, s in sorted(self.off_for.items())}}

    def enabled(self, capability: str, source_id: str | None = None) -> bool:
        if capability in self.off:
            return False
        return source_id is None or source_id not in self.off_for.get(capability, ())

    def any_off(self, capability: str) -> bool:
        """Whether ``capability`` is off anywhere (globally or for some source)."""
        return capability in self.off or bool(self.off_for.get(capability))

    def switched(self, capability: str, on: bool, sources: tuple[str, ...] = ()) -> Flags:
        """A copy with ``capability`` switched, globally or for ``sources``."""
        if capability not in CAPABILITIES:
            raise ValueError(f"unknown capability {capability!r}: use one of "
                             f"{', '.join(CAPABILITIES)}")
        off, off_for = set(self.off), {c: set(s) for c, s in self.off_for.items()}
        if sources:
            chosen = off_for.setdefault(capability, set())
            chosen.difference_update(sources) if on else chosen.update(sources)
        elif on:
            off.discard(capability)
            off_for.pop(capability, None)
        else:
            off.add(capability)
        return Flags(frozenset(off), {c: frozenset(s) for c, s in off_for.items() if s})
