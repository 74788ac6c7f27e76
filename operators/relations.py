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
is pooled over the fleet's sources (one unit that drifts is one voice in many), fitted
within sources (each block's features less its source's mean: sources differ in their
levels, and a relation is how values move together within one) by ridge regression
on the features' correlation matrix, from running sums of products (no sample kept),
and refitted as its data doubles. The other values enter a value's model one at a
time, the most telling first, each only while it explains at least ``MIN_SHARE`` of
what the others left, as measured across halves of the fleet's sources (a fit to
each half predicting the other: two slow series correlate by chance over a stretch of
time, on the blocks they were fitted to, never on other sources'): a value that
explains nothing of it (a vibration, a position) would carry its own swings into the
prediction. A value is judged, and its
coefficients fixed (so what it calls normal does not follow a drift), from ``settle``
blocks per feature and ``SETTLE_PER_SOURCE`` blocks per source on (three memories of
the slowest smoothing: fitted on a fleet's first seconds, the slow features' weights,
and with them how far a value goes when another moves, are chance), once the previous
fit (on half those blocks) predicted it on blocks it had not seen:
explaining ``EXPLAINED`` of its variance within sources, with a residual that does not
wander (lag-1 autocorrelation at most ``MAX_RHO``; a battery's drain or a position is
followed by the others for a while, not pinned down); a residual that forgets slowly
has its baseline over ``MEMORIES`` of its memories. Blocks far off the model
(beyond ``OUTLIER`` residual sds of their source's own level) are not learned from,
unless most blocks since the fit are: then it is the fit's scale that is off (fitted
to a fleet that had not shown its range yet), not the blocks, and all are learned
until the next fit measures its residuals on them.

Each source's residual, less the fleet's median residual (what every source did
together is the fleet's, and a fleet alarm's), in the model's residual sds, is
judged against its own baseline (the median of its first ``warmup`` blocks): the
median of its last ``HOLD`` blocks beyond ``Z_MIN`` and beyond ``RECORD`` times the
largest any other source of the fleet has shown is a ``relation:<name>`` change of
that source (one value of a source at a time: the others' models read the value that
moved, and would follow it). A residual's baseline is its own, not a CUSUM's that
learns as it goes: a CUSUM still young re-learns a slow ramp as its normal. A change
that two thirds of the fleet's sources show at once (counting those that just alarmed),
each its own way (so the median did not take it), is the model's: it stopped holding (a
value it reads went beyond the range it was fitted on), and it learns afresh; a change
found within the hold of such a reset is the model's too.

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
...         found += [(f"u{s}", *f) for f in watch.observe(f"u{s}", {"load": load,
...                                                                   "temp": temp}, i)]
>>> sorted({source for source, name, group, change in found}), found[0][1]
(['u2'], 'temp')
>>> 4_000 <= found[0][3].onset_ms <= 4_400
True
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Mapping

import numpy as np
from mypy_extensions import mypyc_attr

from operators.changes import Change
from operators.longrun import median

__all__ = ["RelationWatch"]

TAUS = (2.0, 8.0, 32.0)  # time constants of the smoothed features, in blocks
RIDGE = 1e-2             # on the features' correlation matrix
MIN_SHARE = 0.05         # a value is a feature of another when it explains this much more
MIN_HALF = 32            # blocks in each half of the sources before features are chosen across them
OUTLIER = 4.0            # blocks beyond this many residual sds are not learned from
OUTLIERS_TRUSTED = 64    # blocks since a fit before most of them off it is the fit's fault
MAX_NAMES = 12           # values of a source that take part (the first, by name)
MAX_MODELS = 64          # sets of value names (per group) modelled; others are not
EXPLAINED = 0.8          # a value is judged when the relation explains this much of it
MAX_RHO = 0.98           # ... and its residual's lag-1 autocorrelation is at most this
MEMORIES = 3.0           # a residual's baseline spans this many of its memories (in blocks)
# blocks of each source before a value is judged: MEMORIES of the slowest feature's
SETTLE_PER_SOURCE = math.ceil(MEMORIES * TAUS[-1])
GIVE_UP = 8              # values not explained by this many times the settling blocks
                         # per feature (and twice the blocks a value waits to be judged)
                         # are not judged (the model stops learning)
HOLD = 8                 # blocks whose median residual is the level judged
Z_MIN = 6.0              # least level judged a change, in residual sds
RECORD = 2.0             # ... and at least this many times the fleet's largest normal one
# a source's change up to this many times its fleet's median move, the same way and
# where it began, is its share of the fleet's move (each source moves by its own spread;
# as for a level change against a fleet, operators.drift.FLEET_SHARE)
SHARE = 4.0
# the fleet's median move kept, one a second for 5 minutes: where a change began (a slow
# one is found a minute or more after its onset)
MOVES_KEPT, MOVES_STEP_MS = 300, 1_000
_RATES = tuple(1.0 / tau for tau in TAUS)


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)
class _Model:
    """The relation of one set of value names over one fleet: running sums of the
    features' products within each source, the fitted coefficients, the sources'
    latest residuals."""

    __slots__ = ("coef", "coef_rows", "common", "due", "fitted_at", "gram", "gram_b", "joined",
                 "judged", "judged_at", "latest", "m", "moved", "moves", "n", "n_b", "names",
                 "offered", "oos_c1", "oos_n", "oos_sq", "records", "refused", "resid_sd",
                 "settled", "sources", "sums", "warmups")

    def __init__(self, names: tuple[str, ...]) -> None:
        self.names = names
        self.m = m = len(names)
        p = m * (1 + len(TAUS))
        # products of each block's features less its source's mean (sources differ in
        # their levels: a relation is how values move together within a source), and
        # plain sums, for the fleet's means
        self.gram = np.zeros((p, p))
        self.sums = [0.0] * p
        self.n = 0
        # the same products of the sources of one half (every other source to join):
        # features are chosen by how a fit to one half predicts the other
        self.gram_b = np.zeros((p, p))
        self.n_b = 0
        self.joined = 0
        self.sources: set[str] = set()
        self.fitted_at = 0
        self.settled = False
        self.coef: np.ndarray | None = None  # m x (1 + p): one row per value
        # the same coefficients as lists, for the per-block path (a numpy call on a
        # dozen numbers costs more than its arithmetic); set with coef by fit
        self.coef_rows: list[list[float]] = []
        self.resid_sd = [1.0] * m
        # blocks of a source's residual that make its baseline, per value (set when judged)
        self.warmups = [0] * m
        self.latest: dict[str, list[float]] = {}  # source -> its latest residuals
        self.common = [0.0] * m
        # each source's residuals less its own baseline (in residual sds), and their
        # median per round: (event ms, how far the fleet as a whole moved)
        self.moves: dict[str, list[float]] = {}
        self.moved: deque[tuple[int, list[float]]] = deque(maxlen=MOVES_KEPT)
        self.due = 1
        self.judged: list[int] = []  # the values the relation explains well enough
        self.judged_at = 0  # the fit since which they are judged (their coefficients fixed)
        # squared residuals of the current fit on blocks it was not fitted to (less
        # their source's mean residual)
        self.oos_sq = [0.0] * m
        self.oos_c1 = [0.0] * m  # ... and their products with the block before
        self.oos_n = 0
        self.offered = self.refused = 0  # blocks since the fit, and those off its scale
        self.records = [_Records() for _ in names]

    def fit(self, ridge: float, settle: int, warmup: int) -> None:
        """Ridge regression of each value on the others' features, in correlation units;
        a value is judged (and its coefficients fixed) from ``settle`` blocks on, once
        the previous fit explained it on blocks it had not seen, its residual's baseline
        over ``warmup`` blocks or ``MEMORIES`` of its memories, whichever is more."""
        m, n = self.m, self.n
        mean = np.array(self.sums) / n
        cov = self.gram / n
        sd = np.sqrt(np.clip(np.diag(cov), 0.0, None))
        live = sd > 1e-9 * (np.abs(mean) + 1.0)
        sd_safe = np.where(live, sd, 1.0)
        scale = np.outer(sd_safe, sd_safe)
        corr = cov / scale
        corr[~live, :] = 0.0
        corr[:, ~live] = 0.0
        halves = _halves(self.gram, self.gram_b, n, self.n_b, scale)
        frozen = self.judged  # their coefficients are kept: what they call normal stays
        coef = self.coef.copy() if self.coef is not None else np.zeros((m, 1 + len(mean)))
        resid_sd = list(self.resid_sd)
        # What the previous fit did on blocks it had not seen is the honest measure: a
        # fit to a few sources' wandering values (positions) explains them in sample only.
        unseen = np.sqrt(np.array(self.oos_sq) / self.oos_n) if self.oos_n else \
            np.full(m, np.inf)
        judged = list(frozen)
        for j in range(m):
            if j in frozen:
                continue
            coef[j, 1:] = 0.0
            feats, beta, b = _select(corr, live, j, m, ridge, halves) if live[j] else \
                (_NONE, _NONE, _NONE)
            if len(feats):
                raw = beta * sd[j] / sd[feats]
                coef[j, 1 + feats] = raw
                coef[j, 0] = mean[j] - raw @ mean[feats]
                resid_sd[j] = float(max(sd[j] * max(1.0 - float(beta @ b), 1e-6) ** 0.5,
                                        1e-12))
            else:
                coef[j, 0] = mean[j]
                resid_sd[j] = float(max(sd[j], 1e-12))
            if np.isfinite(unseen[j]):
                resid_sd[j] = float(max(resid_sd[j], unseen[j]))
            explained = unseen[j] ** 2 <= (1 - EXPLAINED) * sd[j] ** 2
            # a residual that wanders (a drain, a position) is a value the others follow
            # for a while, not one they pin down
            rho = self.oos_c1[j] / self.oos_sq[j] if self.oos_sq[j] > 0 else 1.0
            if n >= settle and live[j] and explained and rho <= MAX_RHO:
                judged.append(j)
                # a residual that forgets slowly needs a baseline over as many blocks
                memory = -1.0 / math.log(max(rho, 1e-9))
                self.warmups[j] = max(warmup, math.ceil(MEMORIES * memory))
        self.judged = sorted(judged)
        self.settled = len(self.judged) == int(live.sum())  # nothing left to learn
        self.coef, self.coef_rows = coef, coef.tolist()
        self.resid_sd, self.fitted_at = resid_sd, n
        self.oos_sq, self.oos_c1, self.oos_n = [0.0] * m, [0.0] * m, 0
        self.offered = self.refused = 0


_NONE = np.zeros(0)


def _halves(gram: np.ndarray, gram_b: np.ndarray, n: int, n_b: int, scale: np.ndarray
            ) -> list[tuple[np.ndarray, float]]:
    """The two halves' covariances, in the pooled scale (so one error is comparable with
    the other's), each with its share of the blocks; none while a half has too few."""
    n_a = n - n_b
    if min(n_a, n_b) < MIN_HALF:
        return []
    return [((gram - gram_b) / n_a / scale, n_a / n), (gram_b / n_b / scale, n_b / n)]


def _rest(corr: np.ndarray, halves: list[tuple[np.ndarray, float]], feats: np.ndarray, j: int,
          ridge: float) -> tuple[float, np.ndarray, np.ndarray]:
    """What is left of value ``j`` (a share of its variance) once ``feats`` predict it, and
    their pooled coefficients and correlations with it. Left is measured across halves of
    the sources (a fit to each half predicting the other) where there are two: two slow
    series correlate by chance over a stretch of time (a smoothed vibration and a
    temperature's slow noise), and a fit counts that as explained on the blocks it was
    fitted to, never on other sources'."""
    ridged = ridge * np.eye(len(feats))
    b = corr[feats, j]
    beta = np.linalg.solve(corr[np.ix_(feats, feats)] + ridged, b)
    if not halves:
        return 1.0 - float(beta @ b), beta, b
    left = 0.0
    for (fit, _), (test, share) in ((halves[0], halves[1]), (halves[1], halves[0])):
        own = np.linalg.solve(fit[np.ix_(feats, feats)] + ridged, fit[feats, j])
        left += share * float(test[j, j] - 2.0 * own @ test[feats, j] +
                              own @ test[np.ix_(feats, feats)] @ own)
    return left, beta, b


def _select(corr: np.ndarray, live: np.ndarray, j: int, m: int, ridge: float,
            halves: list[tuple[np.ndarray, float]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The features value ``j`` is regressed on (indices), their ridge coefficients and
    correlations with it: the other values enter one at a time, each with its smoothed
    past, the one that leaves least first, while it takes at least ``MIN_SHARE`` of
    what those before it left (measured across halves of the sources, see
    :func:`_rest`). A value that explains nothing of it stays out: fitted anyway, its
    coefficients are noise that carries its own swings (a vibration, a position) into
    the prediction, and into every source's residual when they widen."""
    p = corr.shape[0]
    groups = {g: idx for g in range(m) if g != j
              for idx in [np.arange(g, p, m)[live[g::m]]] if len(idx)}
    chosen = _NONE.astype(int)
    left = 1.0 if not halves else sum(share * float(c[j, j]) for c, share in halves)
    best = (_NONE.astype(int), _NONE, _NONE)
    while groups:
        trials = []
        for g, idx in groups.items():
            feats = np.concatenate((chosen, idx))
            rest, beta, b = _rest(corr, halves, feats, j, ridge)
            trials.append((rest, g, feats, beta, b))
        rest, g, feats, beta, b = min(trials, key=lambda t: t[0])
        if left - rest < MIN_SHARE * left:
            break
        chosen, left, best = feats, rest, (feats, beta, b)
        del groups[g]
    return best


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)
class _Source:
    __slots__ = ("base", "base_fit", "buf", "fit", "half", "k", "model", "mu", "prev", "rk",
                 "rmu", "smooth", "tests", "warm")

    def __init__(self) -> None:
        self.buf: list[Mapping[str, float]] = []
        self.model: _Model | None = None
        self.half = False  # in its model's second half of sources
        self.smooth: list[list[float]] = []  # len(TAUS) x m smoothed block means
        self.tests: dict[str, _Excursion] = {}
        self.mu: list[float] | None = None  # the mean of its features (blocks learned)
        self.k = 0
        self.rmu: list[float] = []          # the mean of its residuals under the fit
        self.rk = 0
        self.fit = -1                       # which fit (its blocks) rmu is of
        self.prev: list[float] | None = None  # its last residual less rmu, under that fit
        # its residuals' own baseline (median of its first blocks, in residual sds) since
        # the values judged were last set (fit base_fit), from which its moves are measured
        self.warm: list[list[float]] = []
        self.base: list[float] | None = None
        self.base_fit = -1


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)
class RelationWatch:
    """Level changes of each value against what the source's other values predict.

    ``observe(source_id, values, event_ms)`` takes one event and returns the
    ``(name, group, change)`` found as its block closes (``group_of`` gives a source's
    group of peers: one model per group; default: one group). A model is fitted once
    ``fit_per_feature`` blocks per feature are in from at least ``min_sources``
    sources, refitted each time its blocks double, and fixed from ``settle`` blocks
    per feature and ``SETTLE_PER_SOURCE`` per source on once it explains a value on
    blocks it was not fitted to; each
    source's residuals are judged after ``warmup`` blocks of their own. See the
    module docstring for the method; example there.
    """

    def __init__(self, block: int = 8, min_sources: int = 5, fit_per_feature: int = 10,
                 settle: int = 20, warmup: int = 30, ignore: tuple[str, ...] = (),
                 group_of: Callable[[str], str] | None = None) -> None:
        if block < 1 or min_sources < 3:
            raise ValueError(f"relations block={block}, min_sources={min_sources}: use a "
                             "block of 1 or more samples and 3 or more sources")
        self.block, self.min_sources = block, min_sources
        self.fit_per_feature, self.settle = fit_per_feature, settle
        self.ignore = frozenset(ignore)
        self.warmup, self.group_of = warmup, group_of
        self._sources: dict[str, _Source] = {}
        self._models: dict[tuple[str, tuple[str, ...]], _Model] = {}
        # when each model last stopped holding for most of its sources (event ms)
        self._resets: dict[tuple[str, tuple[str, ...]], int] = {}

    def observe(self, source_id: str, values: Mapping[str, float],
                event_ms: int) -> list[tuple[str, str, Change]]:
        src = self._sources.get(source_id)
        if src is None:
            src = self._sources[source_id] = _Source()
        src.buf.append(values)
        if len(src.buf) < self.block:
            return []
        buf, src.buf = src.buf, []
        group = self.group_of(source_id) if self.group_of else ""
        return [(name, group, change)
                for name, change in self._block(source_id, group, src, buf, event_ms)]

    def forget(self, source_id: str) -> None:
        """Drop a retired source (its residuals leave its fleet's median)."""
        self._sources.pop(source_id, None)
        for model in self._models.values():
            model.latest.pop(source_id, None)
            model.moves.pop(source_id, None)
            model.sources.discard(source_id)
            for records in model.records:
                records.drop(source_id)

    def _block(self, source_id: str, group: str, src: _Source,
               buf: list[Mapping[str, float]], event_ms: int) -> list[tuple[str, Change]]:
        means = _means(buf, self.ignore)
        if len(means) < 2:  # a single value has nothing to be related to
            return []
        names = tuple(sorted(means)[:MAX_NAMES])
        key = (group, names)
        model = self._models.get(key)
        if model is None:
            if len(self._models) >= MAX_MODELS:  # bounded whatever the stream sends
                return []
            model = self._models[key] = _Model(names)
        if model.settled and not model.judged:  # nothing it explains: nothing to do
            return []
        z = [means[n] for n in names]
        if src.model is not model:  # a new set of values: start its smoothing afresh
            if src.model is not None:
                src.model.latest.pop(source_id, None)
                src.model.moves.pop(source_id, None)
            src.model, src.smooth, src.tests = model, [list(z) for _ in TAUS], {}
            src.half = model.joined % 2 == 1
            model.joined += 1
        else:
            for row, rate in zip(src.smooth, _RATES):  # noqa: B905 - only a keyword-free zip compiles to a C loop
                for i, x in enumerate(z):
                    row[i] += (x - row[i]) * rate
        f = list(z)
        for row in src.smooth:
            f.extend(row)
        found: list[tuple[str, Change]] = []
        learn = True
        if model.coef_rows:
            resid = [x - c[0] - _dot(c, f)
                     for x, c in zip(z, model.coef_rows)]  # noqa: B905 - only a keyword-free zip compiles to a C loop
            if not model.settled:
                learn = self._unseen(model, src, resid)
            verdict = self._judge(source_id, model, src, resid, event_ms)
            if verdict is None:  # the model no longer holds for most of its fleet
                self._models[key] = _Model(names)
                self._resets[key] = event_ms
                return []
            found = verdict
        if learn and not model.settled:
            if src.mu is None:
                src.mu, src.k = list(f), 1
            else:
                src.k += 1
                mu, k = src.mu, src.k
                for i, x in enumerate(f):
                    mu[i] += (x - mu[i]) / k
                d = np.array([x - m for x, m in zip(f, mu)])  # noqa: B905 - only a keyword-free zip compiles to a C loop
                product = np.outer(d, d) * (k / (k - 1))
                model.gram += product
                if src.half:
                    model.gram_b += product
            sums = model.sums
            for i, x in enumerate(f):
                sums[i] += x
            model.n += 1
            model.n_b += int(src.half)
            model.sources.add(source_id)
            p = 1 + len(f)
            # a feature smoothed over TAUS[-1] blocks is pinned down only by data that
            # spans a few of its memories in each source: a fleet's first seconds fix the
            # slow features' weights, and with them a value's gain, by chance
            settle = max(self.settle * p, SETTLE_PER_SOURCE * len(model.sources))
            due = max(self.fit_per_feature * p, 2 * model.fitted_at)
            if model.fitted_at < settle:
                # the fit that may judge comes as soon as it may, after one of half its
                # blocks (how that one predicts the other half is what judges a value)
                half = (settle + 1) // 2
                due = min(due, settle if model.fitted_at >= half else
                          max(half, self.fit_per_feature * p))
            if len(model.sources) >= self.min_sources and model.n >= due:
                # a value is fixed once it is predicted on blocks the fit had not seen:
                # until then it learns on (a fleet that has not shown its range yet
                # explains little)
                judged = list(model.judged)
                model.fit(RIDGE, settle, self.warmup)
                model.latest.clear()  # residuals of the old fit are not comparable
                if model.judged != judged:  # a value's residuals begin: so do its moves
                    model.moves.clear()
                    model.moved.clear()
                    model.judged_at = model.fitted_at
            # what is left was not explained by then: it learns no more
            if model.fitted_at >= settle and model.n >= max(GIVE_UP * self.settle * p,
                                                             2 * settle):
                model.settled = True
        return found

    @staticmethod
    def _unseen(model: _Model, src: _Source, resid: list[float]) -> bool:
        """Count a block the current fit was not fitted to (less its source's mean
        residual: its own offset is its level, not an error); whether to learn from it."""
        if src.fit != model.fitted_at:
            src.fit, src.rmu, src.rk, src.prev = model.fitted_at, list(resid), 0, None
        rmu = src.rmu
        own = [r - mu for r, mu in zip(resid, rmu)]  # noqa: B905 - only a keyword-free zip compiles to a C loop
        learn = all(abs(o) <= OUTLIER * sd
                    for o, sd in zip(own, model.resid_sd))  # noqa: B905 - only a keyword-free zip compiles to a C loop
        model.offered += 1
        if not learn:
            model.refused += 1
            # most blocks off the fit: its residual sd is too small, not they too far
            # (else a fit to a fleet's first seconds refuses everything after them)
            learn = model.offered >= OUTLIERS_TRUSTED and 2 * model.refused > model.offered
        if learn and src.rk >= HOLD:
            sq, c1, prev = model.oos_sq, model.oos_c1, src.prev
            for j, o in enumerate(own):
                sq[j] += o * o
                if prev is not None:
                    c1[j] += o * prev[j]
            model.oos_n += 1
            src.prev = own
        src.rk += 1
        rk = src.rk
        for j, r in enumerate(resid):
            rmu[j] += (r - rmu[j]) / rk
        return learn

    def _judge(self, source_id: str, model: _Model, src: _Source, resid: list[float],
               event_ms: int) -> list[tuple[str, Change]] | None:
        """The source's residuals, less the fleet's, to its excursion tests; None when
        a change found is one two thirds of the fleet's sources show (each by its own
        amount and way, so the fleet's median residual did not take it): then it is the
        model that stopped holding (a feature it reads went beyond the range it was fitted
        on), not each source that changed, and the model learns afresh."""
        latest = model.latest
        latest[source_id] = resid
        self._move(model, src, source_id, resid)
        model.due -= 1
        if model.due <= 0:  # a round of blocks is in: the fleet's median residual
            model.due = len(latest)
            if len(latest) >= self.min_sources:
                model.common = _medians(list(latest.values()))
            moved = model.moved
            if len(model.moves) >= self.min_sources and \
                    (not moved or event_ms >= moved[-1][0] + MOVES_STEP_MS):
                moved.append((event_ms, _medians(list(model.moves.values()))))
        if len(latest) < self.min_sources or not model.judged:
            return []
        own = [(r - c) / sd
               for r, c, sd in zip(resid, model.common, model.resid_sd)]  # noqa: B905 - only a keyword-free zip compiles to a C loop
        found = []
        alarmed = any(t.alarmed for t in src.tests.values())
        for j in model.judged:
            name = model.names[j]
            test = src.tests.get(name)
            if test is None:
                test = src.tests[name] = _Excursion(model.records[j])
            change = test.update(own[j], event_ms, source_id, model.warmups[j])
            if change is not None and not alarmed:  # one relation alarm of a source at a time
                if self._most_off(model, name, source_id):
                    return None
                found.append((name, _change(change, model.resid_sd[j])))
                alarmed = True
        return found

    def _most_off(self, model: _Model, name: str, source_id: str) -> bool:
        """Whether, with this source, two thirds of the model's sources judged on ``name``
        stand beyond ``Z_MIN`` of their own baselines (a quorum, as for a fleet's move:
        in a small group two or three residuals that wander far at once are no sign)."""
        tests = [test for sid, other in self._sources.items()
                 if sid != source_id and other.model is model
                 for test in [other.tests.get(name)] if test is not None and test.base is not None]
        # a source that has just alarmed stands on its new level, and is off all the same
        off = sum(test.alarmed or (bool(test.recent) and abs(median(list(test.recent))) > Z_MIN)
                  for test in tests)
        return len(tests) >= self.min_sources - 1 and 3 * (off + 1) >= 2 * (len(tests) + 1)

    def _move(self, model: _Model, src: _Source, source_id: str, resid: list[float]) -> None:
        """How far the source's residuals are from their own baseline, once it has one."""
        if src.base_fit != model.judged_at:  # judged values' coefficients stay fixed
            src.warm, src.base, src.base_fit = [], None, model.judged_at
        z = [r / sd for r, sd in zip(resid, model.resid_sd)]  # noqa: B905 - only a keyword-free zip compiles to a C loop
        if src.base is None:
            src.warm.append(z)
            if len(src.warm) >= self.warmup:
                src.base, src.warm = _medians(src.warm), []
            return
        model.moves[source_id] = [x - b for x, b in zip(z, src.base)]  # noqa: B905 - only a keyword-free zip compiles to a C loop

    def went_with(self, source_id: str, name: str, change: Change, grace_ms: int,
                  found_ms: int | None = None) -> bool:
        """Whether a source's relation change is its share of its fleet's move: the
        median of every source's move from its own baseline went at least 1 residual sd
        the change's way from ``grace_ms`` before where the change began to ``grace_ms``
        after it, or to ``found_ms`` (the event time it was found) when that is later,
        and the change is at most ``SHARE`` times that. A median of moves stays where
        most sources stay: a few units shifted together move it little, a fleet warming
        together moves it with them (each by its own spread, so some more than others).
        The onset is where the residual's excursion began, which on a wandering residual
        can be well before the move that carried it over its bar: the fleet's move
        anywhere in that excursion is the change's cause as much as at its start. A
        change found within ``grace_ms`` of its model's reset (two thirds of its sources
        off it at once) was the model's too."""
        src = self._sources.get(source_id)
        model = src.model if src is not None else None
        if model is None or name not in model.names:
            return False
        group = self.group_of(source_id) if self.group_of else ""
        if found_ms is not None and \
                self._resets.get((group, model.names), -grace_ms) >= found_ms - grace_ms:
            return True  # found as its model stopped holding: the model's, not the source's
        j = model.names.index(name)
        onset = change.onset_ms
        until = max(onset + grace_ms, found_ms or 0)
        levels = [float(m[j]) for at, m in model.moved if onset - grace_ms <= at <= until]
        if len(levels) < 2:
            return False
        went = levels[-1] - levels[0]
        own = change.magnitude
        return abs(went) >= 1.0 and (went > 0) == (own > 0) and abs(own) <= SHARE * abs(went)


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)
class _Excursion:
    """A source's residual (in the model's residual sds) against its own baseline: the
    median of its last ``HOLD`` blocks beyond ``Z_MIN``, and beyond ``RECORD`` times the
    largest such median any other source of the fleet has shown while normal. Its onset
    is where a CUSUM of the deviations (reference half of ``Z_MIN``) last left zero."""

    __slots__ = ("alarmed", "base", "blocks", "down", "recent", "records", "up", "warm")

    def __init__(self, records: _Records) -> None:
        self.records = records  # the fleet's (shared by the value's tests)
        self.warm: list[float] = []
        self.base: float | None = None
        self.recent: deque[float] = deque(maxlen=HOLD)
        self.blocks = 0
        self.up = [0.0, 0]    # the CUSUM upwards, and the event time it last left zero
        self.down = [0.0, 0]
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
            return None
        dev = z - self.base
        self.recent.append(dev)
        for cusum, d in ((self.up, dev), (self.down, -dev)):
            if cusum[0] <= 0.0:
                cusum[1] = event_ms
            cusum[0] = max(0.0, cusum[0] + d - Z_MIN / 2)
        if len(self.recent) < HOLD:
            return None
        level = median(list(self.recent))
        threshold = max(Z_MIN, RECORD * self.records.others(source_id))
        if abs(level) <= threshold:
            self.alarmed = abs(level) > threshold / 2 and self.alarmed
            if not self.alarmed:
                self.records.offer(source_id, abs(level))
            return None
        if self.alarmed:
            return None
        self.alarmed = True
        onset_ms = int((self.up if level > 0 else self.down)[1])
        base, self.base = self.base, self.base + level  # its new level is its normal
        self.recent.clear()
        self.up, self.down = [0.0, event_ms], [0.0, event_ms]
        return level, base, threshold, onset_ms, self.blocks


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)
class _Records:
    """Each source's largest normal level of one value, and the two largest of all
    (the largest of the *other* sources is then one lookup)."""

    __slots__ = ("by_source", "top")

    def __init__(self) -> None:
        self.by_source: dict[str, float] = {}
        self.top: list[tuple[float, str]] = []  # the two largest, largest first

    def others(self, source_id: str) -> float:
        for record, source in self.top:
            if source != source_id:
                return record
        return 0.0

    def offer(self, source_id: str, level: float) -> None:
        if level > self.by_source.get(source_id, 0.0):
            self.by_source[source_id] = level
            rest = [t for t in self.top if t[1] != source_id]
            self.top = sorted([*rest, (level, source_id)], reverse=True)[:2]

    def drop(self, source_id: str) -> None:
        if self.by_source.pop(source_id, None) is not None:
            self.top = sorted(((r, s) for s, r in self.by_source.items()), reverse=True)[:2]


def _change(found: tuple[float, float, float, int, int], resid_sd: float) -> Change:
    level, base, threshold, onset_ms, blocks = found
    return Change("level", "up" if level > 0 else "down", level, blocks, blocks, onset_ms,
                  float(base * resid_sd), float(resid_sd), 0.0, abs(level), threshold)


def _dot(row: list[float], f: list[float]) -> float:
    """``row[1:] . f``: a value's coefficients (after its intercept) on the features."""
    total = 0.0
    for i, x in enumerate(f):
        total += row[i + 1] * x
    return total


def _medians(rows: list[list[float]]) -> list[float]:
    """The median of each column of ``rows`` (as numpy's: the mean of the middle two of
    an even count).

    >>> _medians([[1.0, 5.0], [3.0, 2.0], [2.0, 4.0], [9.0, 0.0]])
    [2.5, 3.0]
    """
    return [median([row[j] for row in rows]) for j in range(len(rows[0]))]


def _means(buf: list[Mapping[str, float]], ignore: frozenset[str]) -> dict[str, float]:
    """Each value's mean over a block of a source's events, for the values of its first
    event present (and finite) in every one of them."""
    n = len(buf)
    out: dict[str, float] = {}
    for name in buf[0]:
        if name in ignore:
            continue
        try:
            total = sum([values[name] for values in buf])
        except (KeyError, TypeError):  # missing from an event, or not a number
            continue
        if -1e12 * n <= total <= 1e12 * n:  # not NaN, not absurd
            out[name] = total / n
    return out
