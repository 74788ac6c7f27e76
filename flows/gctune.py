"""Python's garbage collector, set for a long-running dataflow.

A flow allocates millions of short-lived objects. Python's defaults run a
young collection every 700 net allocations and a full one whenever the
long-lived heap has grown by a quarter, and a full collection walks every
object alive: the models, the open escalations, the pending outcomes. After
the flow is built, :func:`tune_gc` freezes what is alive then (modules,
classes, the flow) out of every later collection and raises the young
threshold to 500,000 net allocations: a young collection walks every young
object still alive, and a flow's rows live until their insert, so frequent
young collections walk the same rows again and again. Cyclic garbage is
still collected, only in larger steps. What it saved is in RESULTS.md
("Settings measured").

``LUCIDSTREAM_GC=default`` keeps Python's settings; ``LUCIDSTREAM_GC=A,B,C``
sets the three thresholds.
"""

from __future__ import annotations

import gc

from operators.errors import ConfigError

__all__ = ["TUNED", "parse_gc", "tune_gc"]

TUNED = (500_000, 20, 100)


def parse_gc(setting: str) -> tuple[int, int, int] | None:
    """``tuned``, ``default`` or ``A,B,C`` to thresholds (``None``: Python's own).

    >>> parse_gc("tuned"), parse_gc("default"), parse_gc("10000,10,10")
    ((500000, 20, 100), None, (10000, 10, 10))
    """
    text = setting.strip().lower()
    if text in ("", "tuned"):
        return TUNED
    if text == "default":
        return None
    try:
        a, b, c = (int(part) for part in text.split(","))
    except ValueError:
        raise ConfigError(f"LUCIDSTREAM_GC={setting!r}: use tuned, default, or three "
                          "thresholds like 500000,20,100") from None
    if a < 1 or b < 1 or c < 1:
        raise ConfigError(f"LUCIDSTREAM_GC={setting!r}: thresholds must be at least 1 "
                          "(use default for Python's own)")
    return a, b, c


def tune_gc(thresholds: tuple[int, int, int] | None) -> None:
    """Freeze the objects alive now and set the thresholds (``None``: leave Python's)."""
    if thresholds is None:
        return
    gc.collect()
    gc.freeze()
    gc.set_threshold(*thresholds)
