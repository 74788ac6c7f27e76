"""Model variants: a stable hash of ``source_id`` routes each source to one.

A split such as control 90 % / candidate 10 % sends the same sources to the
same variant in every process and every run (crc32, not Python's salted
``hash``), so a variant's quality metrics compare like with like over time.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from operators.models import OnlineScorer

__all__ = ["Variant", "VariantRouter"]


@dataclass(frozen=True)
class Variant:
    """A named model with its share of the sources."""

    name: str
    share: float
    scorer: Callable[[], OnlineScorer] = field(default=OnlineScorer, compare=False)


class VariantRouter:
    """Maps a source to its variant by a configured split.

    >>> router = VariantRouter([Variant("control", 0.9), Variant("candidate", 0.1)])
    >>> router.route("s7") == router.route("s7")
    True
    >>> shares = [router.route(f"s{i}") for i in range(10_000)].count("candidate") / 10_000
    >>> 0.08 < shares < 0.12
    True
    """

    def __init__(self, variants: Sequence[Variant]) -> None:
        if not variants:
            raise ValueError("need at least one variant")
        total = sum(v.share for v in variants)
        if total <= 0 or any(v.share < 0 for v in variants):
            raise ValueError("variant shares must be >= 0 and add up to more than 0")
        if len({v.name for v in variants}) != len(variants):
            raise ValueError("variant names must be unique")
        self.variants = list(variants)
        bounds, acc = [], 0.0
        for v in variants:
            acc += v.share / total
            bounds.append(acc)
        self._bounds = bounds
        self._cache: dict[str, str] = {}

    def route(self, source_id: str) -> str:
        name = self._cache.get(source_id)
        if name is None:
            point = zlib.crc32(b"variant:" + source_id.encode()) / 2**32
            index = next((i for i, b in enumerate(self._bounds) if point < b),
                         len(self.variants) - 1)
            name = self._cache[source_id] = self.variants[index].name
        return name

    def route_all(self, source_ids: list[str]) -> list[str]:
        """:meth:`route` of each of ``source_ids``.

        >>> VariantRouter([Variant("control", 1.0)]).route_all(["s1", "s2"])
        ['control', 'control']
        """
        if len(self.variants) == 1:  # every source takes the only variant
            return [self.variants[0].name] * len(source_ids)
        route = self.route
        return [route(source_id) for source_id in source_ids]

    def forget(self, source_id: str) -> None:
        """Drop ``source_id``'s cached route (a retired source; it routes the same way
        if it comes back)."""
        self._cache.pop(source_id, None)
