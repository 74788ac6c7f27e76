"""The fast path's online model: a river logistic regression, scored in batches.

The model reads whatever numeric values the events carry (up to
``max_features`` names, discovered as they appear), so a stream it has never
seen is scored without tuning. A value an event lacks is imputed with its
running mean, which after scaling contributes nothing. Scoring is progressive:
each batch is predicted first, then learned. Until outcome labels arrive, the
label is the decider's teacher signal (whether a rule fired), so the model
learns to flag events that look like intervention cases even when the fields
a rule reads are missing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from river import linear_model, optim, preprocessing

from operators.matrix import value_matrix

__all__ = ["CLIP", "OnlineScorer"]

CLIP = 1e12


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
        self._scaler = preprocessing.StandardScaler()
        self._model = linear_model.LogisticRegression(optimizer=optim.SGD(self.learning_rate))
        self._seen = 0

    @property
    def feature_names(self) -> list[str]:
        return list(self._names)

    @property
    def samples_seen(self) -> int:
        return self._seen

    def _matrix(self, rows: Sequence[Mapping[str, float]]) -> np.ndarray:
        if self.features is None:
            known, names = self._known, self._names
            superset = known.issuperset
            for row in rows:
                if superset(row):  # the common case, checked in C
                    continue
                for name in row:
                    if name not in known and len(names) < self.max_features:
                        known.add(name)
                        names.append(name)
        names = self._names
        matrix = value_matrix(rows, names)
        # Finite but absurd values (1e308) would overflow the running variance and
        # poison the weights; beyond +-1e12 nothing a sensor reports is still meaningful.
        np.clip(matrix, -CLIP, CLIP, out=matrix)
        if matrix.size and np.isnan(matrix).any():
            means = self._scaler.means
            fill = np.array([means.get(n, 0.0) for n in names])
            matrix = np.where(np.isnan(matrix), fill, matrix)
        return matrix

    def _frame(self, rows: Sequence[Mapping[str, float]]) -> pd.DataFrame:
        return pd.DataFrame(self._matrix(rows), columns=self._names, copy=False)

    def score(self, rows: Sequence[Mapping[str, float]]) -> np.ndarray:
        """Probability of the positive class for each row, before learning from it.

        The same arithmetic as river's ``transform_many`` and ``predict_proba_many``,
        done on one numpy matrix: river's many-methods go through a dataframe, which
        cost more than the model itself.
        """
        if not rows:
            return np.empty(0)
        matrix = self._matrix(rows)
        names = self._names
        if not names or not self._seen:
            return np.full(len(rows), 0.5)
        means = np.array([self._scaler.means.get(n, 0.0) for n in names])
        stds = np.sqrt(np.array([self._scaler.vars.get(n, 0.0) for n in names]))
        scaled = matrix - means
        np.divide(scaled, stds, where=stds > 0, out=scaled)
        weights = np.array([self._model.weights.get(n, 0.0) for n in names])
        with np.errstate(all="ignore"):
            logits = scaled @ weights + self._model.intercept
            proba = 1.0 / (1.0 + np.exp(-np.clip(logits, -35.0, 35.0)))
        return np.nan_to_num(proba, nan=0.5)

    def learn(self, rows: Sequence[Mapping[str, float]], labels: Sequence[bool]) -> None:
        """Update the scaler and the model with labelled rows."""
        if not rows or not self._names:
            return
        frame = self._frame(rows)
        with np.errstate(all="ignore"):
            self._scaler.learn_many(frame)
            scaled = self._scaler.transform_many(frame)
            self._model.learn_many(scaled, pd.Series(labels, dtype=bool))
        self._seen += len(rows)

    def __repr__(self) -> str:
        return f"OnlineScorer(version={self.version!r}, features={len(self._names)})"
