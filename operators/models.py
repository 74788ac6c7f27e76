"""The fast path's online model: river's logistic regression, scored in batches.

The model reads whatever numeric values the events carry (up to
``max_features`` names, discovered as they appear), so a stream it has never
seen is scored without tuning. A value an event lacks is imputed with its
running mean, which after scaling contributes nothing. Scoring is progressive:
each batch is predicted first, then learned. Until outcome labels arrive, the
label is the decider's teacher signal (whether a rule fired), so the model
learns to flag events that look like intervention cases even when the fields
a rule reads are missing.

The arithmetic is river's ``StandardScaler`` and ``LogisticRegression`` with SGD
(``tests/test_models.py`` checks it number for number against river's public
methods); the state is kept here, in plain dictionaries, because importing river's
linear models imports scipy: most of a second of every process's start.
"""

from __future__ import annotations

import logging
import math
import operator
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence

import numpy as np

from operators.matrix import value_matrix

__all__ = ["CLIP", "OnlineScorer"]

CLIP = 1e12
# river's LogisticRegression default: the intercept's own constant learning rate
INTERCEPT_RATE = 0.01

log = logging.getLogger("lucidstream.model")


class OnlineScorer:
    """Batch predict-then-learn logistic regression over named values.

    >>> scorer = OnlineScorer(seed=1)
    >>> rows = [{"t": float(i % 10)} for i in range(200)]
    >>> labels = [r["t"] > 7 for r in rows]
    >>> for _ in range(20):
    ...     _ = scorer.score(rows); scorer.learn(rows, labels)
    >>> p = scorer.score([{"t": 9.0}, {"t": 1.0}])
    >>> bool(p[0] > 0.5 > p[1])
    True
    """

    # a scorer restored from a snapshot taken before it kept its arrays has none yet
    _arrays: tuple[int, np.ndarray, np.ndarray, np.ndarray] | None = None

    def __init__(
        self,
        version: str = "lr-1",
        features: Sequence[str] | None = None,
        max_features: int = 64,
        learning_rate: float = 0.05,
        seed: int = 0,
    ) -> None:
        self.version = version
        self.features = list(features) if features else None
        self.max_features = max_features
        self.learning_rate = learning_rate
        self.seed = seed
        self._reset()

    def _reset(self) -> None:
        self._names: list[str] = list(self.features or [])
        self._known = set(self._names)
        # the scaler's running means, variances and counts per name, as river keeps them
        self.means: defaultdict[str, float] = defaultdict(float)
        self.vars: defaultdict[str, float] = defaultdict(float)
        self.counts: Counter[str] = Counter()
        self.weights: dict[str, float] = {}
        self.intercept = 0.0
        self._seen = 0
        # the scaler's means and spreads and the weights as arrays over the names, kept
        # until a learning step changes them or a name joins: a batch's score then
        # costs no Python loop over the names
        self._arrays = None

    @property
    def feature_names(self) -> list[str]:
        return list(self._names)

    @property
    def samples_seen(self) -> int:
        return self._seen

    def spread(self, name: str) -> float | None:
        """The standard deviation of ``name`` in what the model has learned from."""
        var = self.vars.get(name, 0.0)
        return math.sqrt(var) if var > 0 else None

    def _matrix(self, rows: Sequence[Mapping[str, float]], impute: bool = True) -> np.ndarray:
        if self.features is None:
            known, names = self._known, self._names
            superset = known.issuperset
            if not all(map(superset, rows)):  # the common case (no new name), in C
                for row in rows:
                    for name in row:
                        if name not in known and len(names) < self.max_features:
                            known.add(name)
                            names.append(name)
        names = self._names
        matrix = value_matrix(rows, names)
        # Finite but absurd values (1e308) would overflow the running variance and
        # poison the weights; beyond +-1e12 nothing a sensor reports is still meaningful.
        # (np.clip's own arithmetic, without its Python wrapper: NaN stays NaN.)
        np.maximum(matrix, -CLIP, out=matrix)
        np.minimum(matrix, CLIP, out=matrix)
        return self._imputed(matrix) if impute else matrix

    def _learned_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The scaler's running means and standard deviations, and the weights, as
        arrays over the names (see ``_arrays``)."""
        names = self._names
        cached = self._arrays
        if cached is None or cached[0] != len(names):
            means = np.array([self.means.get(n, 0.0) for n in names])
            with np.errstate(invalid="ignore"):  # a variance rounded below 0: no spread
                stds = np.sqrt(np.array([self.vars.get(n, 0.0) for n in names]))
            weights = np.array([self.weights.get(n, 0.0) for n in names])
            cached = self._arrays = (len(names), means, stds, weights)
        return cached[1], cached[2], cached[3]

    def _imputed(self, matrix: np.ndarray) -> np.ndarray:
        """``matrix`` with each missing value (NaN) its name's running mean."""
        if not matrix.size or not np.isnan(matrix).any():
            return matrix
        return np.where(np.isnan(matrix), self._learned_arrays()[0], matrix)

    def score(self, rows: Sequence[Mapping[str, float]]) -> np.ndarray:
        """Probability of the positive class for each row, before learning from it.

        The same arithmetic as river's ``transform_many`` and ``predict_proba_many``,
        done on one numpy matrix: river's many-methods go through a dataframe, which
        cost more than the model itself.
        """
        if not rows:
            return np.empty(0)
        return self.score_prepared(self.prepared(rows))

    def prepared(self, rows: Sequence[Mapping[str, float]]) -> np.ndarray:
        """The rows' values as the model reads them (NaN where a row lacks a name), for
        :meth:`score_prepared`: the same rows scored again after learning cost no second
        pass over their dicts."""
        return self._matrix(rows, impute=False)

    def score_prepared(self, matrix: np.ndarray) -> np.ndarray:
        """:meth:`score` of the rows :meth:`prepared` gave, by the model as it is now
        (names that joined since are missing from them).

        >>> scorer = OnlineScorer(seed=1)
        >>> rows = [{"t": float(i % 10)} for i in range(200)]
        >>> matrix = scorer.prepared(rows)
        >>> scorer.learn(rows, [r["t"] > 7 for r in rows])
        >>> bool((scorer.score_prepared(matrix) == scorer.score(rows)).all())
        True
        """
        rows = len(matrix)
        if not rows:
            return np.empty(0)
        if not self._names or not self._seen:
            return np.full(rows, 0.5)
        joined = len(self._names) - matrix.shape[1]
        if joined > 0:
            matrix = np.hstack([matrix, np.full((rows, joined), np.nan)])
        with np.errstate(all="ignore"):
            scaled = self._scaled(self._imputed(matrix))
            logits = scaled @ self._learned_arrays()[2] + self.intercept
            np.maximum(logits, -35.0, out=logits)
            np.minimum(logits, 35.0, out=logits)
            proba = 1.0 / (1.0 + np.exp(-logits))
        missing = np.isnan(proba)
        if missing.any():
            proba[missing] = 0.5
        return proba

    def _scaled(self, matrix: np.ndarray) -> np.ndarray:
        """``matrix`` standardised by the scaler's running means and variances."""
        means, stds, _ = self._learned_arrays()
        scaled = matrix - means
        np.divide(scaled, stds, where=stds > 0, out=scaled)
        return scaled

    def learn(self, rows: Sequence[Mapping[str, float]], labels: Sequence[bool]) -> None:
        """Update the scaler with the rows, then the model with one SGD step per row, in
        order: what river's ``learn_one`` does with each scaled row.

        One step per row, not one per call: a mean-gradient step for a whole batch
        (river's ``learn_many``) learns a batch of 250 rows as far as one row would,
        so a model fed in batches would take minutes to learn what it learns online in
        seconds. The scaler is river's ``StandardScaler.learn_many`` arithmetic and the
        step river's ``LogisticRegression`` with SGD (log loss, its intercept rate), on
        one numpy matrix and plain floats: river's per-row calls cost twice as much.
        """
        if not rows:
            return
        # finds the names of a scorer that has not scored yet
        matrix = self._matrix(rows, impute=False)
        if not self._names:
            return
        with np.errstate(all="ignore"):
            # the scaler learns the values the rows carry: a value imputed with its mean
            # would narrow its spread with every row that lacks it (a value only the
            # rules' probes carry, on a stream that never reports it, would shrink to
            # nothing, and the probes with it)
            self._learn_scaler(matrix)
            scaled = self._scaled(self._imputed(matrix))
        self._sgd(scaled, labels)
        self._seen += len(rows)

    def _sgd(self, scaled: np.ndarray, labels: Sequence[bool]) -> None:
        names = self._names
        weights = [self.weights.get(n, 0.0) for n in names]
        intercept = self.intercept
        rate, intercept_rate = self.learning_rate, INTERCEPT_RATE
        exp, mul = math.exp, operator.mul
        for x, y in zip(scaled.tolist(), labels, strict=True):
            # river's log loss gradient (sigmoid(z) - y), branch for branch
            sign = 1.0 if y else -1.0
            z = (intercept + sum(map(mul, weights, x))) * sign
            g = exp(-z) * -sign if z > 18.0 else -sign if z < -18.0 else -sign / (exp(z) + 1.0)
            if g:
                step = rate * g
                weights = [w - step * v for w, v in zip(weights, x, strict=True)]
                intercept -= intercept_rate * g
        if all(map(math.isfinite, weights)) and math.isfinite(intercept):
            for name, w in zip(names, weights, strict=True):
                self.weights[name] = w
            self.intercept = intercept
            self._arrays = None  # the weights moved
        else:  # a row beyond what floats hold; the model keeps what it knew
            log.warning("model %s: a learning step gave non-finite weights; not applied",
                        self.version)

    def _learn_scaler(self, matrix: np.ndarray) -> None:
        """River's batch update of running means and variances (Chan et al.), over the
        values present (NaN: missing)."""
        means, variances, counts = self.means, self.vars, self.counts
        present = ~np.isnan(matrix)
        values = np.where(present, matrix, 0.0)
        batch_counts = present.sum(axis=0)
        seen = np.maximum(batch_counts, 1)
        batch_means = values.sum(axis=0) / seen
        batch_vars = np.einsum("ij,ij->j", values, values) / seen - batch_means**2
        for name, new_mean, new_var, new_count in zip(
                self._names, batch_means, batch_vars, batch_counts, strict=True):
            if not new_count:
                continue
            old_mean, old_var, old_count = means[name], variances[name], counts[name]
            a = old_count / (old_count + new_count)
            b = new_count / (old_count + new_count)
            means[name] = (a * old_mean + b * new_mean).item()
            variances[name] = (a * old_var + b * new_var
                               + a * b * (old_mean - new_mean) ** 2).item()
            counts[name] += new_count.item()
        self._arrays = None  # the means and spreads moved

    def __repr__(self) -> str:
        return f"OnlineScorer(version={self.version!r}, features={len(self._names)})"
