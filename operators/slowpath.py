"""The slow path: a heavier look at each source over event-time windows.

Per source, events fall into tumbling windows of ``window_ms`` of event time.
A window closes when the pipeline clock passes its end plus ``lateness_ms``;
then numpy computes the window's mean of every value and compares it with
the source's own history of window means (an exponentially weighted mean and
spread per value). The risk is the root mean square of those z-scores: one
number for "this window looks unlike this source's past". A risk at or over
``risk_threshold`` revises the fast path to the slow action; otherwise the
slow path confirms the window's last fast action. Agreement between the two
is a quality metric. Events for a window that already closed are counted late.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from mypy_extensions import mypyc_attr

from operators.matrix import value_matrix, value_names

__all__ = ["SlowPath", "SlowPathConfig", "SlowResult"]


@mypyc_attr(native_class=False)
@dataclass(frozen=True)
class SlowPathConfig:
    window_ms: int = 5_000
    lateness_ms: int = 1_000
    risk_threshold: float = 3.0
    min_events: int = 3
    history: float = 0.2  # weight of the newest window in a source's history
    warm_windows: int = 3  # windows of history before the risk counts


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)
@dataclass(slots=True)
class _Window:
    start: int
    values: list[dict[str, float]] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    last_event_ms: int = 0
    version: str = ""
    variant: str = ""
    based_on: int = 0


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)
@dataclass(slots=True)
class _History:
    mean: dict[str, float] = field(default_factory=dict)
    var: dict[str, float] = field(default_factory=dict)
    windows: int = 0


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


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)
class SlowPath:
    """Windows per source and the risk of each closed window.

    >>> slow = SlowPath(SlowPathConfig(window_ms=1_000, lateness_ms=0, warm_windows=2))
    >>> results = []
    >>> for w in range(6):
    ...     level = 100.0 if w == 5 else 10.0 + (w % 2)          # window 5 is unusual
    ...     for i in range(5):
    ...         results += slow.add("r1", w * 1_000 + i * 100, {"t": level + i % 2}, "go",
    ...                             "v", "c")
    ...     results += slow.close(now=(w + 1) * 1_000)
    >>> [r.revised for r in results]
    [False, False, False, False, False, True]
    """

    def __init__(self, config: SlowPathConfig | None = None) -> None:
        self.config = config or SlowPathConfig()
        self._open: dict[str, _Window] = {}
        self._history: dict[str, _History] = {}
        self._closed_until: dict[str, int] = {}
        self.late_events = 0

    def add(self, source_id: str, event_ms: int, values: dict[str, float], fast_action: str,
            version: str, variant: str, based_on: int = 0) -> list[SlowResult]:
        """Buffer one event; returns results of a window this event pushed closed."""
        size = self.config.window_ms
        start = event_ms - event_ms % size
        window = self._open.get(source_id)
        out: list[SlowResult] = []
        if window is None or window.start != start:  # else: the common case, same window
            if start < self._closed_until.get(source_id, -1):
                self.late_events += 1
                return out
            if window is not None and start > window.start:
                result = self._finish(source_id, window)
                if result is not None:
                    out.append(result)
                window = None
            if window is None:
                window = self._open[source_id] = _Window(start)
        window.values.append(values)
        window.actions.append(fast_action)
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
        if len(window.values) < cfg.min_events:
            return None
        names = value_names(window.values)
        matrix = value_matrix(window.values, names)
        np.clip(matrix, -1e12, 1e12, out=matrix)  # absurd magnitudes, as the model does
        with np.errstate(all="ignore"):
            means = np.nanmean(matrix, axis=0)
        history = self._history.setdefault(source_id, _History())
        zs = []
        for name, mean in zip(names, means.tolist(), strict=True):
            if math.isnan(mean):
                continue
            if name in history.mean:
                past, var = history.mean[name], history.var[name]
                spread = math.sqrt(var) if var > 1e-18 else max(abs(past) * 1e-3, 1e-9)
                zs.append((mean - past) / spread)
                delta = mean - past
                history.mean[name] = past + cfg.history * delta
                history.var[name] = (1 - cfg.history) * (var + cfg.history * delta * delta)
            else:
                history.mean[name], history.var[name] = mean, 0.0
        history.windows += 1
        warm = history.windows > cfg.warm_windows
        risk = math.sqrt(sum(z * z for z in zs) / len(zs)) if zs and warm else 0.0
        if math.isnan(risk):
            risk = 0.0
        result = SlowResult(source_id, window.start, end, len(window.values), risk,
                            risk >= cfg.risk_threshold, window.actions[-1],
                            window.last_event_ms, window.version, window.variant,
                            window.based_on)
        return result
