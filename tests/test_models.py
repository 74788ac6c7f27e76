"""The fast path's model: our numpy learning steps are river's, number for number."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st
from river import linear_model, optim, preprocessing

from operators.models import OnlineScorer


def _river_reference(batches, names):
    """What river's public methods make of the same batches: the scaler learns each
    batch, then the model learns its scaled rows one by one."""
    scaler = preprocessing.StandardScaler()
    model = linear_model.LogisticRegression(optimizer=optim.SGD(0.05))
    for matrix, labels in batches:
        frame = pd.DataFrame(matrix, columns=names)
        scaler.learn_many(frame)
        for row, label in zip(scaler.transform_many(frame).to_dict("records"), labels,
                              strict=True):
            model.learn_one(row, label)
    return scaler, model


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), batches=st.integers(1, 6), size=st.integers(1, 300),
       scale=st.sampled_from([1e-3, 1.0, 1e4]))
def test_learning_matches_rivers_public_api(seed, batches, size, scale):
    rng = np.random.default_rng(seed)
    names = ["a", "b", "c"]
    data = []
    for _ in range(batches):
        matrix = rng.normal(0, scale, size=(size, 3))
        matrix[:, 2] = 7.0  # a constant column: zero variance
        data.append((matrix, (matrix[:, 0] > 0).tolist()))
    scorer = OnlineScorer(features=names)
    for matrix, labels in data:
        scorer.learn([dict(zip(names, row, strict=True)) for row in matrix.tolist()], labels)
    scaler, model = _river_reference(data, names)
    for name in names:
        # a mean near 0 is compared absolutely: summation order moves its last bits
        assert np.isclose(scorer.means[name], scaler.means[name], rtol=1e-12,
                          atol=1e-15 * scale)
        assert np.isclose(scorer.vars[name], scaler.vars[name], rtol=1e-9, atol=1e-300)
        assert scorer.counts[name] == scaler.counts[name]
        assert np.isclose(scorer.weights.get(name, 0.0), model.weights.get(name, 0.0),
                          rtol=1e-9, atol=1e-12)
    assert np.isclose(scorer.intercept, model.intercept, rtol=1e-9, atol=1e-12)
    assert scorer.samples_seen == batches * size


def _as_river(scorer):
    """River's scaler and model holding the scorer's state."""
    scaler = preprocessing.StandardScaler()
    scaler.means.update(scorer.means)
    scaler.vars.update(scorer.vars)
    scaler.counts.update(scorer.counts)
    model = linear_model.LogisticRegression(optimizer=optim.SGD(scorer.learning_rate))
    for name, weight in scorer.weights.items():
        model._weights[name] = weight
    model.intercept = scorer.intercept
    return scaler, model


def test_a_trained_scorer_ranks_by_what_it_learned():
    scorer = OnlineScorer(seed=1)
    rows = [{"t": float(i % 10), "u": float(i % 3)} for i in range(300)]
    labels = [r["t"] > 7 for r in rows]
    for _ in range(30):
        scorer.score(rows)
        scorer.learn(rows, labels)
    high, low = scorer.score([{"t": 9.0, "u": 1.0}, {"t": 1.0, "u": 1.0}])
    assert high > 0.5 > low


def test_numpy_scoring_matches_rivers_own_pipeline():
    rng = np.random.default_rng(0)
    rows = [{"a": rng.normal(), "b": rng.random() * 5, "flat": 3.0} for _ in range(500)]
    rows += [{"a": rng.normal()} for _ in range(20)]  # missing values are imputed
    scorer = OnlineScorer()
    for _ in range(5):  # learning first: the scorer finds the names itself
        scorer.learn(rows, [r["a"] > 0.5 for r in rows])
    assert scorer.samples_seen == 2_600 and scorer.feature_names == ["a", "b", "flat"]
    frame = pd.DataFrame(scorer._matrix(rows), columns=scorer.feature_names)
    scaler, model = _as_river(scorer)
    river_path = model.predict_proba_many(scaler.transform_many(frame))[True].to_numpy()
    scores = scorer.score(rows)
    assert np.allclose(scores, river_path, atol=1e-12)
    assert np.ptp(scores) > 0.05  # trained: not the untrained 0.5 everywhere
