"""Each value of a source against what the source's other values say it should be.

A value that follows another one (a motor's temperature follows its speed, with a
lag) can drift slowly while staying inside everything the value does by itself and
everything its peers do: a slow ramp on a sensor whose level wanders with the duty
cycle is neither a step nor beyond its own wander. What gives it away is the
relation: the speed did not change, the temperature did.

:class:`RelationWatch` learns, per fleet of sources (a shard's, or a peer group's)
and per set of value names, a linear model of each value from the *other* values of
the same source: their block means (``block`` samples of a source) and those means
smoothed at a few time constants (``TAUS``, in blocks: a bank of first-order lags,
which fits a value that answers another with a delay). The value's own history is
never a feature: a model that may read its own past absorbs a slow drift. The model
is pooled over the fleet's sources (one unit that drifts is one voice in many) and
fitted by ridge regression on the correlation matrix of the features, from the
running sums of products (no sample kept), refitted as its data doubles until it
settles (enough blocks, and a value explained on blocks the fit had not seen), then
fixed, so what it calls normal does not follow a drift. A value is judged only when
the relation explains ``EXPLAINED`` of its variance out of sample.
Blocks far off the model (beyond ``OUTLIER`` residual sds) are not learned from.

Each source's residual, less the fleet's median residual (what every source did
together is the fleet's, and a fleet alarm's), in the model's residual sds, is
judged against its own baseline (the median of its first ``warmup`` blocks): the
median of its last ``HOLD`` blocks beyond ``Z_MIN`` and beyond ``RECORD`` times the
largest any other source of the fleet has shown is a ``relation:<name>`` change of
that source (one value of a source at a time: the others' models read the value that
moved, and would follow it). A residual's baseline is its own, not a CUSUM's that
learns as it goes: a CUSUM still young re-learns a slow ramp as its normal.

>>> import math, random
>>> rng = random.Random(3)
>>> watch = RelationWatch(min_sources=5)
>>> found = []
>>> for i in range(6_000):
...     for s in range(6):
...         load = math.sin(i / 300 + s) + rng.gauss(0, 0.05)   # each unit's duty
...         temp = 40 + 10 * load + rng.gauss(0, 0.5)            # follows it
...         if s == 2 and i >= 4_000:
...             temp += min(8.0, 8.0 * (i - 4_000) / 1_000)     # unit 2 ramps
...         found += watch.observe(f"u{s}", "", {"load": load, "temp": temp}, i)
>>> sorted({(source, name) for source, name, change in found})
[('u2', 'temp')]
>>> 4_000 <= found[0][2].onset_ms <= 4_400
True
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping

import numpy as np

from operators.changes import Change
from operators.longrun import median

__all__ = ["RelationWatch"]

TAUS = (2.0, 8.0, 32.0)  # time constants of the smoothed features, in blocks
RIDGE = 1e-2             # on the features' correlation matrix
OUTLIER = 4.0            # blocks beyond this many residual sds are not learned from
MAX_NAMES = 12           # values of a source that take part (the first, by name)
EXPLAINED = 0.8          # a value is judged when the relation explains this much of it
HOLD = 8                 # blocks whose median residual is the level judged
Z_MIN = 6.0              # least level judged a change, in residual sds
RECORD = 2.0             # ... and at least this many times the fleet's largest normal one


class _Model:
    """The relation of one set of value names over one fleet: running sums of the
    features' products, the fitted coefficients, the sources' latest residuals."""

    __slots__ = ("coef", "common", "due", "fitted_at", "gram", "judged", "latest", "m", "n",
                 "names", "oos_n", "oos_sq", "records", "resid_sd", "settled", "sources")

    def __init__(self, names: tuple[str, ...]) -> None:
        self.names = names
        self.m = m = len(names)
        p = 1 + m * (1 + len(TAUS))
        self.gram = np.zeros((p, p))
        self.n = 0
        self.sources: set[str] = set()
        self.fitted_at = 0
        self.settled = False
        self.coef: np.ndarray | None = None  # m x p: one row of coefficients per value
        self.resid_sd = np.ones(m)
        self.latest: dict[str, np.ndarray] = {}  # source -> its latest residuals
        self.common = np.zeros(m)
        self.due = 1
        self.judged: list[int] = []  # the values the relation explains well enough
        # squared residuals of the current fit on blocks it was not fitted to
        self.oos_sq = np.zeros(m)
        self.oos_n = 0
        self.records: list[dict[str, float]] = [{} for _ in names]

    def fit(self, ridge: float) -> None:
        """Ridge regression of each value on the others' features, in correlation units."""
        g, m = self.gram, self.m
        w = g[0, 0]
        mean = g[0, 1:] / w
        cov = g[1:, 1:] / w - np.outer(mean, mean)
        sd = np.sqrt(np.clip(np.diag(cov), 0.0, None))
        live = sd > 1e-9 * (np.abs(mean) + 1.0)
        sd_safe = np.where(live, sd, 1.0)
        corr = cov / np.outer(sd_safe, sd_safe)
        corr[~live, :] = 0.0
        corr[:, ~live] = 0.0
        coef = np.zeros((m, 1 + len(mean)))
        resid_sd = np.ones(m)
        for j in range(m):
            own = np.arange(j, len(mean), m)  # the value itself and its smoothed past
            feats = np.setdiff1d(np.flatnonzero(live), own)
            if not live[j] or len(feats) == 0:
                coef[j, 0] = mean[j]
                resid_sd[j] = max(sd[j], 1e-12)
                continue
            a = corr[np.ix_(feats, feats)] + ridge * np.eye(len(feats))
            b = corr[feats, j]
            beta = np.linalg.solve(a, b)
            raw = beta * sd[j] / sd[feats]
            coef[j, 1 + feats] = raw
            coef[j, 0] = mean[j] - raw @ mean[feats]
            explained = float(beta @ b)
            resid_sd[j] = max(sd[j] * max(1.0 - explained, 1e-6) ** 0.5, 1e-12)
        # What the previous fit did on blocks it had not seen is the honest measure: a
        # fit to a few sources' wandering values (positions) explains them in sample only.
        unseen = np.sqrt(self.oos_sq / self.oos_n) if self.oos_n else np.full(m, np.inf)
        resid_sd = np.maximum(resid_sd, np.where(np.isfinite(unseen), unseen, 0.0))
        self.judged = [j for j in range(m) if unseen[j] ** 2 <= (1 - EXPLAINED) * sd[j] ** 2]
        self.coef, self.resid_sd, self.fitted_at = coef, resid_sd, self.n
        self.oos_sq, self.oos_n = np.zeros(m), 0


class _Source:
    __slots__ = ("buf", "model", "smooth", "tests")

    def __init__(self) -> None:
        self.buf: list[Mapping[str, float]] = []
        self.model: _Model | None = None
        self.smooth: np.ndarray | None = None  # len(TAUS) x m smoothed block means
        self.tests: dict[str, _Excursion] = {}


class RelationWatch:
    """Level changes of each value against what the source's other values predict.

    ``observe(source_id, group, values, event_ms)`` takes one event and returns the
    ``(source_id, name, change)`` found as its block closes. A model is fitted once
    ``fit_per_feature`` blocks per feature are in from at least ``min_sources``
    sources, refitted each time its blocks double, and fixed from ``settle`` blocks
    per feature on once it explains a value on blocks it was not fitted to; each
    source's residuals are judged after ``warmup`` blocks of their own. See the
    module docstring for the method; example there.
    """

    def __init__(self, block: int = 8, min_sources: int = 5, fit_per_feature: int = 10,
                 settle: int = 20, warmup: int = 30, ignore: tuple[str, ...] = ()) -> None:
        if block < 1 or min_sources < 3:
            raise ValueError(f"relations block={block}, min_sources={min_sources}: use a "
                             "block of 1 or more samples and 3 or more sources")
        self.block, self.min_sources = block, min_sources
        self.fit_per_feature, self.settle, self.ignore = fit_per_feature, settle, ignore
        self.warmup = warmup
        self._sources: dict[str, _Source] = {}
        self._models: dict[tuple[str, tuple[str, ...]], _Model] = {}

    def observe(self, source_id: str, group: str, values: Mapping[str, float],
                event_ms: int) -> list[tuple[str, str, Change]]:
        src = self._sources.get(source_id)
        if src is None:
            src = self._sources[source_id] = _Source()
        src.buf.append(values)
        if len(src.buf) < self.block:
            return []
        buf, src.buf = src.buf, []
        return self._block(source_id, group, src, buf, event_ms)

    def forget(self, source_id: str) -> None:
        """Drop a retired source (its residuals leave its fleet's median)."""
        src = self._sources.pop(source_id, None)
        if src is not None and src.model is not None:
            src.model.latest.pop(source_id, None)

    def _block(self, source_id: str, group: str, src: _Source,
               buf: list[Mapping[str, float]], event_ms: int) -> list[tuple[str, str, Change]]:
        means = _means(buf, self.ignore)
        if len(means) < 2:  # a single value has nothing to be related to
            return []
        names = tuple(sorted(means)[:MAX_NAMES])
        key = (group, names)
        model = self._models.get(key)
        if model is None:
            model = self._models[key] = _Model(names)
        z = np.array([means[n] for n in names])
        if src.model is not model:  # a new set of values: start its smoothing afresh
            if src.model is not None:
                src.model.latest.pop(source_id, None)
            src.model, src.smooth, src.tests = model, np.tile(z, (len(TAUS), 1)), {}
        else:
            assert src.smooth is not None
            src.smooth += (z - src.smooth) / np.array(TAUS)[:, None]
        x = np.concatenate(([1.0], z, src.smooth.ravel()))
        found: list[tuple[str, str, Change]] = []
        learn = True
        if model.coef is not None:
            resid = z - model.coef @ x
            learn = bool(np.all(np.abs(resid - model.common) <= OUTLIER * model.resid_sd))
            found = self._judge(source_id, model, src, resid, event_ms)
        if learn and not model.settled:
            if model.coef is not None:
                model.oos_sq += resid * resid
                model.oos_n += 1
            model.gram += np.outer(x, x)
            model.n += 1
            model.sources.add(source_id)
            p = len(x)
            if len(model.sources) >= self.min_sources and \
                    model.n >= max(self.fit_per_feature * p, 2 * model.fitted_at):
                model.fit(RIDGE)
                # fixed once it predicts blocks it was not fitted to: until then it
                # learns on (a fleet that has not yet shown its range explains little)
                model.settled = model.n >= self.settle * p and bool(model.judged)
                model.latest.clear()  # residuals of the old fit are not comparable
        return found

    def _judge(self, source_id: str, model: _Model, src: _Source, resid: np.ndarray,
               event_ms: int) -> list[tuple[str, str, Change]]:
        """The source's residuals, less the fleet's, to its excursion tests."""
        latest = model.latest
        latest[source_id] = resid
        model.due -= 1
        if model.due <= 0:  # a round of blocks is in: the fleet's median residual
            model.due = len(latest)
            if len(latest) >= self.min_sources:
                stacked = np.array(list(latest.values()))
                model.common = np.array([median(col.tolist()) for col in stacked.T])
        if len(latest) < self.min_sources or not model.settled:
            return []
        own = (resid - model.common) / model.resid_sd
        found = []
        alarmed = any(t.alarmed for t in src.tests.values())
        for j in model.judged:
            name = model.names[j]
            test = src.tests.get(name)
            if test is None:
                test = src.tests[name] = _Excursion(model.records[j])
            change = test.update(float(own[j]), event_ms, source_id, self.warmup)
            if change is not None and not alarmed:  # one relation alarm of a source at a time
                found.append((source_id, name, _change(change, model.resid_sd[j])))
                alarmed = True
        return found


class _Excursion:
    """A source's residual (in the model's residual sds) against its own baseline: the
    median of its last ``HOLD`` blocks beyond ``Z_MIN``, and beyond ``RECORD`` times the
    largest such median any other source of the fleet has shown while normal."""

    __slots__ = ("alarmed", "base", "blocks", "last_normal_ms", "recent", "records", "warm")

    def __init__(self, records: dict[str, float]) -> None:
        self.records = records  # the fleet's, per source (shared by the value's tests)
        self.warm: list[float] = []
        self.base: float | None = None
        self.recent: deque[float] = deque(maxlen=HOLD)
        self.blocks = 0
        self.last_normal_ms = 0
        self.alarmed = False

    def update(self, z: float, event_ms: int, source_id: str,
               warmup: int) -> tuple[float, float, float, int, int] | None:
        """``(level, baseline, threshold, onset_ms, blocks)`` when an excursion is found."""
        self.blocks += 1
        if self.base is None:
            self.warm.append(z)
            if len(self.warm) >= warmup:
                self.base = median(self.warm)
                self.warm = []
            self.last_normal_ms = event_ms
            return None
        dev = z - self.base
        self.recent.append(dev)
        if abs(dev) <= 1.0:
            self.last_normal_ms = event_ms
        if len(self.recent) < HOLD:
            return None
        level = median(list(self.recent))
        others = max((r for s, r in self.records.items() if s != source_id), default=0.0)
        threshold = max(Z_MIN, RECORD * others)
        if abs(level) <= threshold:
            self.alarmed = abs(level) > threshold / 2 and self.alarmed
            if not self.alarmed and abs(level) > self.records.get(source_id, 0.0):
                self.records[source_id] = abs(level)
            return None
        if self.alarmed:
            return None
        self.alarmed = True
        base, self.base = self.base, self.base + level  # its new level is its normal
        self.recent.clear()
        return level, base, threshold, self.last_normal_ms, self.blocks


def _change(found: tuple[float, float, float, int, int], resid_sd: float) -> Change:
    level, base, threshold, onset_ms, blocks = found
    return Change("level", "up" if level > 0 else "down", level, blocks, blocks, onset_ms,
                  base * resid_sd, resid_sd, 0.0, abs(level), threshold)


def _means(buf: list[Mapping[str, float]], ignore: tuple[str, ...]) -> dict[str, float]:
    """Each value's mean over a block of a source's events, for the values present (and
    finite) in every one of them."""
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    for values in buf:
        for name, x in values.items():
            if isinstance(x, (int, float)) and -1e12 <= x <= 1e12:
                sums[name] = sums.get(name, 0.0) + x
                counts[name] = counts.get(name, 0) + 1
    n = len(buf)
    return {name: total / n for name, total in sums.items()
            if counts[name] == n and name not in ignore}
