"""The slow path: a heavier look at each source over event-time windows.

Per source, events fall into tumbling windows of ``window_ms`` of event time.
A window closes when the pipeline clock passes its end plus ``lateness_ms``;
then the path takes the window's median of every value (a spike inside a window
moves nothing, and a heavy-tailed reading's median is well behaved where its
mean is not) and asks, per value, how far it is from two references, each in
its own learned scale:

* the source's history (an exponentially weighted mean of its past window
  medians), in units of how far window medians usually fall from it;
* the window before, in units of how far consecutive window medians usually
  differ.

A value is unusual only when it is far from both: a window after a step, at
the new level, is like the one before it (and the history takes the new level
at once); a window after a spike is like the history. The risk is the largest
such distance over the window's values, in standard deviations, and a window
at or over the threshold revises the fast path to the slow action; otherwise
the slow path confirms the window's last fast action. Agreement between the
two is a quality metric. Events for a window that already closed are counted
late.

The threshold comes from a budget, not from data: ``false_revisions_per_million``
windows of a source whose values behave as they did, split over the values the
window carries (a normal quantile at ``budget / (2 k)``: it holds whatever the
values' dependence). The scales are honest about what they do not know:

* each is learned over ``memory_windows`` windows (an expanding mean until then),
  from deviations clipped at the threshold, so one wild window does not blind
  the path for long;
* a scale learned from ``n`` windows is widened to the 3-sigma upper bound of a
  variance known from ``n`` samples (:func:`operators.longrun.chi2_lower`): a
  young source is judged conservatively, and nothing is judged before
  ``warm_windows``;
* a value reported in steps of ``q`` (whole degrees, a 0/1 state) moves its median
  by half steps or more; its scales are at least ``q / sqrt(6)``, the spread of a
  difference of two readings rounded to ``q``;
* a value that has never moved has no scale yet and is not judged (the value
  detectors watch a stuck or a first-moving sensor).
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from operator import itemgetter
from statistics import NormalDist
from typing import Any

import numpy as np
from mypy_extensions import mypyc_attr

from operators.longrun import chi2_lower, median
from operators.matrix import value_names

__all__ = ["SlowPath", "SlowPathConfig", "SlowResult", "revision_threshold"]

# events in a window from which its values are summarised together in numpy (below,
# each one's calls cost more than the loop they save)
BLOCK_FROM = 100
# a reading rounded to steps of q: the difference of two such readings has sd q / sqrt(6)
_STEP_SD = 1 / math.sqrt(6)
_NOTHING: tuple = ()


@mypyc_attr(native_class=False)
@dataclass(frozen=True)
class SlowPathConfig:
    window_ms: int = 5_000
    lateness_ms: int = 1_000
    false_revisions_per_million: float = 100.0  # windows of a source, as it behaved
    min_events: int = 3
    history: float = 0.2  # weight of the newest window in a source's history
    memory_windows: int = 120  # windows the scales are learned over
    warm_windows: int = 3  # windows of history before the risk counts


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)
class _Window:
    """One source's open window (an explicit ``__init__``: compiled, it is C, where a
    dataclass's generated one is Python)."""

    def __init__(self, start: int) -> None:
        self.start = start
        # each event's readings of names (the first event's value names, in its order),
        # picked in C, as doubles side by side (a window of a fast source holds
        # thousands of events: read back as they came in memory, its close costs
        # a cache miss per reading); every event's values as they came once their names
        # differ
        self.names: tuple[str, ...] = ()
        self.pick: Any = None
        self.rows: Any = array("d")
        self.events = 0
        self.mixed: list[dict[str, float]] | None = None
        self.action = ""  # the fast action of its latest event
        self.last_event_ms = 0
        self.version = ""
        self.variant = ""
        self.based_on = 0


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)
@dataclass(slots=True)
class _Value:
    """One value of one source: where its window medians sit and how far they move."""
    level: float  # the history: a weighted mean of past window medians
    last: float  # the window before's median
    far: float = 0.0  # mean square of (window median - level), clipped
    step: float = 0.0  # mean square of (window median - last), clipped
    seen: int = 0  # windows learned
    resolution: float = math.inf  # the smallest step between two readings seen
    reading: float = math.nan  # the last reading, for the step into the next window


@lru_cache(maxsize=64)
def revision_threshold(per_million: float, values: int) -> float:
    """The distance (in sd) that a window of ``values`` values reaches on fewer than
    ``per_million`` windows in a million when it behaves as before: a normal quantile
    at the budget split over the values and both sides.

    >>> round(revision_threshold(100.0, 1), 2), round(revision_threshold(100.0, 5), 2)
    (3.89, 4.26)
    """
    share = per_million / 1e6 / (2 * max(values, 1))
    return NormalDist().inv_cdf(1 - min(max(share, 1e-15), 0.5))


@mypyc_attr(native_class=False)
@dataclass(frozen=True, slots=True)
class SlowResult:
    source_id: str
    window_start: int
    window_end: int
    events: int
    risk: float
    revised: bool
    fast_action: str
    last_event_ms: int
    version: str
    variant: str
    based_on: int = 0  # the source's state version its last event was decided against
    threshold: float = math.inf  # the risk at which the window is revised
    value: str = ""  # the value farthest from the source's past


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)
class SlowPath:
    """Windows per source and the risk of each closed window.

    >>> slow = SlowPath(SlowPathConfig(window_ms=1_000, lateness_ms=0))
    >>> import random
    >>> rng = random.Random(1)
    >>> results = []
    >>> for w in range(40):
    ...     level = 60.0 if w == 30 else 10.0           # window 30 is unusual
    ...     for i in range(5):
    ...         t = level + rng.gauss(0, 1)
    ...         results += slow.add("r1", w * 1_000 + i * 100, {"t": t}, "go", "v", "c")
    ...     results += slow.close(now=(w + 1) * 1_000)
    >>> [r.window_start for r in results if r.revised]
    [30000]
    >>> unusual = results[30]
    >>> unusual.value, round(unusual.threshold, 2), unusual.risk > unusual.threshold
    ('t', 3.89, True)
    """

    def __init__(self, config: SlowPathConfig | None = None) -> None:
        self.config = config or SlowPathConfig()
        self._size = self.config.window_ms
        self._open: dict[str, _Window] = {}
        self._history: dict[str, dict[str, _Value]] = {}
        self._closed_until: dict[str, int] = {}
        self.late_events = 0

    def add(self, source_id: str, event_ms: int, values: dict[str, float], fast_action: str,
            version: str, variant: str, based_on: int = 0) -> Sequence[SlowResult]:
        """Buffer one event; returns results of a window this event pushed closed."""
        size = self._size
        start = event_ms - event_ms % size
        window = self._open.get(source_id)
        out: Sequence[SlowResult] = _NOTHING  # the common case: no list made per event
        if window is None or window.start != start:  # else: the common case, same window
            if start < self._closed_until.get(source_id, -1):
                self.late_events += 1
                return out
            if window is not None and start > window.start:
                result = self._finish(source_id, window)
                if result is not None:
                    out = [result]
                window = None
            if window is None:
                window = self._open[source_id] = _Window(start)
        if window.mixed is not None:
            window.mixed.append(values)
        elif not window.events:  # the window's first event: its names are the window's
            window.names = names = tuple(values)
            if len(names) > 1:
                window.pick = itemgetter(*names)
            if not names or not _picked(window, values):
                window.mixed = [values]
        elif len(values) != len(window.names) or not _picked(window, values):
            window.mixed = _as_dicts(window)
            window.mixed.append(values)
        window.action = fast_action
        if event_ms > window.last_event_ms:
            window.last_event_ms = event_ms
        window.version, window.variant, window.based_on = version, variant, based_on
        return out

    def close(self, now: int) -> list[SlowResult]:
        """Close every window whose end plus lateness the clock has passed."""
        cfg = self.config
        due = [s for s, w in self._open.items()
               if now >= w.start + cfg.window_ms + cfg.lateness_ms]
        results = [self._finish(source_id, self._open[source_id]) for source_id in due]
        return [r for r in results if r is not None]

    def forget(self, source_id: str) -> None:
        self._open.pop(source_id, None)
        self._history.pop(source_id, None)
        self._closed_until.pop(source_id, None)

    def _finish(self, source_id: str, window: _Window) -> SlowResult | None:
        cfg = self.config
        del self._open[source_id]
        end = window.start + cfg.window_ms
        self._closed_until[source_id] = end
        mixed = window.mixed
        events = window.events if mixed is None else len(mixed)
        if events < cfg.min_events:
            return None
        history = self._history.setdefault(source_id, {})
        summaries: list[tuple[str, _Summary]] = []
        if mixed is None:  # every event read the window's names
            names, rows, k = window.names, window.rows, len(window.names)
            befores = [_last_reading(history, name) for name in names]
            whole = _block_summaries(rows, k, befores) if events >= BLOCK_FROM else \
                [_summary_whole(rows[j::k], before) for j, before in enumerate(befores)]
            for j, name in enumerate(names):
                summary = whole[j]
                if summary is None:  # a NaN or an absurd magnitude: read one by one
                    summary = _summary(rows[j::k], befores[j])
                if summary is not None:
                    summaries.append((name, summary))
            summaries.sort()  # by name (each name once): the order of the judgement
        else:  # None where an event lacks a value
            for name in value_names(mixed):
                summary = _summary([row.get(name) for row in mixed],
                                   _last_reading(history, name))
                if summary is not None:  # else no reading of it: not carried
                    summaries.append((name, summary))
        threshold = revision_threshold(cfg.false_revisions_per_million, len(summaries))
        risk, farthest = 0.0, ""
        for name, (middle, smallest, last) in summaries:
            value = history.get(name)
            if value is None:
                history[name] = value = _Value(middle, middle)
            else:
                distance = self._judge(value, middle, threshold)
                if distance > risk:
                    risk, farthest = distance, name
            if smallest < value.resolution:
                value.resolution = smallest
            value.reading = last
        return SlowResult(source_id, window.start, end, events, risk,
                          risk >= threshold, window.action, window.last_event_ms,
                          window.version, window.variant, window.based_on, threshold,
                          farthest)

    def _judge(self, value: _Value, median: float, threshold: float) -> float:
        """How far ``median`` is from both of the value's references (0 while they are
        not known well enough to say); then the window is learned."""
        cfg = self.config
        floor = value.resolution * _STEP_SD if value.resolution < math.inf else 0.0
        widen = 1 / math.sqrt(chi2_lower(value.seen, 3.0)) if value.seen else 0.0
        far_sd = max(math.sqrt(value.far), floor) * widen
        step_sd = max(math.sqrt(value.step), floor) * widen
        off, moved = median - value.level, median - value.last
        judged = value.seen >= cfg.warm_windows and far_sd > 0 and step_sd > 0
        distance = from_history = from_last = 0.0
        if judged:
            from_history, from_last = abs(off) / far_sd, abs(moved) / step_sd
            distance = min(from_history, from_last)
        # learned at most to the threshold: one wild window moves the scales and the
        # level by no more than a window at the threshold would
        far_cap = (threshold * far_sd) ** 2 if judged else math.inf
        step_cap = (threshold * step_sd) ** 2 if judged else math.inf
        weight = 1 / min(value.seen + 1, cfg.memory_windows)
        value.far += weight * (min(off * off, far_cap) - value.far)
        value.step += weight * (min(moved * moved, step_cap) - value.step)
        value.seen += 1
        if judged and from_history >= threshold and from_last < threshold:
            value.level = median  # a level held for a second window: the history takes it
        else:
            bound = threshold * far_sd if judged else math.inf
            value.level += cfg.history * max(-bound, min(off, bound))
        value.last = median
        return distance


_Summary = tuple[float, float, float]


def _picked(window: _Window, values: dict[str, float]) -> bool:
    """Add an event's readings of the window's names (as many as it has) to its rows;
    ``False`` when it lacks one of them, or one is not a number."""
    rows = window.rows
    try:
        if window.pick is not None:
            rows.extend(window.pick(values))
        else:
            rows.append(values[window.names[0]])
    except (KeyError, TypeError, OverflowError):
        del rows[window.events * len(window.names):]  # a reading or two may be in
        return False
    window.events += 1
    return True


def _as_dicts(window: _Window) -> list[dict[str, float]]:
    """The window's rows as each event's values, for events whose names differ."""
    names, rows, k = window.names, window.rows, len(window.names)
    return [dict(zip(names, rows[i:i + k])) for i in range(0, len(rows), k)]  # noqa: B905 - one length


def _last_reading(history: dict[str, _Value], name: str) -> float:
    """The value's last reading of the window before (NaN: none)."""
    known = history.get(name)
    return known.reading if known is not None else math.nan


def _block_summaries(rows: array[float], k: int, befores: list[float]
                     ) -> list[_Summary | None]:
    """:func:`_summary_whole` of each of the ``k`` values of a window's ``rows`` (the
    events' readings side by side), at once: a fast source's window holds thousands
    of events, and sorting each value's readings to find its median held the flow's
    thread for milliseconds per window, all of a fleet's windows closing together. The
    same numbers: a median is the same middle readings (partitioned, not sorted), the
    steps the same differences.

    >>> rows = array("d", [2.0, 10.0, 1.0, 10.0, 5.0, 12.0, 5.5, 12.0])
    >>> _block_summaries(rows, 2, [1.0, math.nan])
    [(3.5, 0.5, 5.5), (11.0, 2.0, 12.0)]
    >>> [_summary_whole(rows[j::2], b) for j, b in enumerate([1.0, math.nan])]
    [(3.5, 0.5, 5.5), (11.0, 2.0, 12.0)]
    """
    # one row per value (a copy: reductions along a row run on adjacent numbers)
    a = np.frombuffer(rows, dtype=np.float64).reshape(-1, k).T.copy()
    n = a.shape[1]
    # NaN fails both comparisons, as an absurd magnitude fails one
    good = (a.min(axis=1) >= -1e12) & (a.max(axis=1) <= 1e12)
    middle = np.partition(a, [(n - 1) // 2, n // 2], axis=1)
    medians = (middle[:, (n - 1) // 2] + middle[:, n // 2]) * 0.5
    steps = np.abs(np.diff(a, axis=1, prepend=np.array(befores).reshape(k, 1)))
    steps[~(steps > 0.0)] = np.inf  # no step, or none known (NaN)
    smallest = steps.min(axis=1)
    last = a[:, n - 1]
    return [(float(medians[j]), float(smallest[j]), float(last[j])) if good[j] else None
            for j in range(k)]


def _summary_whole(readings: array[float], before: float) -> _Summary | None:
    """:func:`_summary` of a value that every event of the window read, sorted in C;
    ``None`` when a reading is NaN or beyond +-1e12 (then :func:`_summary` decides).

    >>> _summary_whole(array("d", (2.0, 1, 5.0, 5.5)), before=1.0)
    (3.5, 0.5, 5.5)
    """
    prev = before
    smallest = math.inf
    for x in readings:
        if x != x:
            return None
        step = abs(x - prev)
        if 0.0 < step < smallest:
            smallest = step
        prev = x
    ordered = sorted(readings)
    n = len(ordered)
    low, high = float(ordered[0]), float(ordered[n - 1])
    if low < -1e12 or high > 1e12:
        return None
    return (float(ordered[(n - 1) // 2]) + float(ordered[n // 2])) * 0.5, smallest, prev


def _summary(readings: Sequence[float | None], before: float) -> _Summary | None:
    """A value's median over a window's ``readings`` (in event order; ``None`` or NaN
    where an event lacks it), the smallest step between two consecutive events'
    readings (from ``before``, the window before's last reading, on; inf when none
    moved) and its last reading; ``None`` when it has none. Readings are clipped to
    +-1e12, as the model clips them.

    >>> _summary([2.0, None, 5.0, 5.5], before=1.0)
    (5.0, 0.5, 5.5)
    >>> _summary([None, float("nan")], before=1.0) is None
    True
    """
    present: list[float] = []
    prev = before  # NaN when unknown: its step compares False
    smallest = math.inf
    for reading in readings:
        if reading is None:
            prev = math.nan
            continue
        x = float(reading)
        if x != x:
            prev = math.nan
            continue
        x = 1e12 if x > 1e12 else -1e12 if x < -1e12 else x
        step = abs(x - prev)
        if 0.0 < step < smallest:
            smallest = step
        present.append(x)
        prev = x
    if not present:
        return None
    return median(present), smallest, present[-1]
