"""Bounded memory under churn: sources come and go, and what the decider keeps
does not grow with the number of sources it has ever seen.

The stream: 10,000 distinct sources, 500 reporting at a time, each for a short life,
so the fleet turns over 20 times. Every container the decider holds is measured at
a third of the stream and at its end; any that grew is a leak, unless it is one of
the memories bounded by configuration, which must then be within its bound.
"""

from __future__ import annotations

import random
from collections import deque

from flows.fleet import DRIFT, POLICY
from operators.decider import Decider
from operators.events import SensorEvent
from operators.freshness import FreshnessConfig

SOURCES, ACTIVE, EVERY_MS = 10_000, 500, 5_000
LIFE_MS = 30_000  # each source reports for 30 s, then is gone for good
T0 = 1_767_225_600_000
# memories kept on purpose, each bounded by a setting (their bound is asserted)
REMEMBERED = {
    "decider.freshness._retired": 100_000,          # FreshnessConfig.remember_retired
    "decider.outcomes.feedback._expired": 200_000,  # FeedbackLoop.remember_expired
    "decider.outcomes.feedback._expired_order": 200_000,  # ... and their order
    "decider.parts[*]._known": 20_000,              # EscalationQueue.max_known
    "decider.parts[*]._open": 20_000,               # EscalationQueue.max_open
}


def churn_stream() -> list[SensorEvent]:
    """Sources born one after another, so that ``ACTIVE`` report at any time."""
    rng = random.Random(3)
    span = LIFE_MS * SOURCES // ACTIVE
    events = []
    for i in range(SOURCES):
        born = (span - LIFE_MS) * i // (SOURCES - 1) + rng.randrange(EVERY_MS)
        level = rng.uniform(20, 80)
        for seq, t in enumerate(range(born, born + LIFE_MS, EVERY_MS)):
            events.append(SensorEvent(f"unit-{i:05d}", T0 + t, {
                "temp": level + rng.gauss(0, 1), "load": rng.random()}, seq=seq,
                arrival_ms=T0 + t + 20))
    events.sort(key=lambda e: e.arrival_ms)
    return events


def container_sizes(root: object, at_least: int = 200) -> dict[str, int]:
    """Every dict, set, list or deque reachable from ``root`` with at least
    ``at_least`` items, by attribute path (``[*]`` for an item of a container)."""
    found: dict[str, int] = {}
    seen: set[int] = set()
    todo: list[tuple[str, object, int]] = [("decider", root, 0)]
    while todo:
        path, obj, depth = todo.pop()
        if id(obj) in seen or depth > 8:
            continue
        seen.add(id(obj))
        if isinstance(obj, (dict, set, list, deque)):
            if len(obj) >= at_least:
                found[path] = max(found.get(path, 0), len(obj))
            items = list(obj.values() if isinstance(obj, dict) else obj)[:3]
            todo += [(f"{path}[*]", item, depth + 1) for item in items]
            continue
        names = list(getattr(obj, "__dict__", {}))
        for cls in type(obj).__mro__:  # a compiled class lists its own (make native)
            names += [n for n in (*getattr(cls, "__slots__", ()),
                                  *getattr(cls, "__mypyc_attrs__", ())) if isinstance(n, str)]
        for name in names:
            value = getattr(obj, name, None)
            if value is not None and not callable(value) and \
                    not isinstance(value, (str, bytes, int, float, bool)):
                todo.append((f"{path}.{name}", value, depth + 1))
    return found


def test_what_the_decider_keeps_stays_flat_as_sources_come_and_go():
    events = churn_stream()
    # checks every 2 s of pipeline clock, not 250 ms: each check visits every tracked
    # source, which is what this test's time would go to, and memory is its subject
    decider = Decider(POLICY, replay=True, flow="churn", drift=DRIFT,
                      freshness=FreshnessConfig(retire_after_ms=60_000, check_every_ms=2_000))
    checkpoints = {len(events) // 3: "third", len(events) - 1: "end"}
    sizes: dict[str, dict[str, int]] = {}
    for i in range(0, len(events), 2_000):
        decider.process(events[i:i + 2_000])
        for at, name in checkpoints.items():
            if i <= at < i + 2_000:
                sizes[name] = container_sizes(decider)
    grown = {path: (sizes["third"].get(path, 0), n) for path, n in sizes["end"].items()
             if n > 1.2 * sizes["third"].get(path, 0) + 100 and path not in REMEMBERED}
    assert not grown, f"grew with the sources seen, not the sources active: {grown}"
    for path, bound in REMEMBERED.items():
        assert sizes["end"].get(path, 0) <= bound, path
    # the sources tracked are those alive or within their retirement delay, not all
    tracked = sizes["end"].get("decider.freshness._sources", 0)
    assert tracked <= SOURCES // 3, tracked
