"""What crosses processes arrives whole: a shard's events, and rows for the store's owner.

In a cluster (``--processes N``) Bytewax pickles a shard's batch to the worker that owns
the shard and every batch of rows to the worker that owns the embedded store. Both are
pickled as columns (see ``ShardBatch.__reduce__`` and ``Rows.__reduce__``); these tests
hold them to the objects they came from. The cluster itself is exercised end to end in
``tests/test_kafka.py`` (two processes make exactly the decisions of one).
"""

from __future__ import annotations

import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flows.pipeline import ShardBatch
from operators.decision import DECISION_COLUMNS, Decision
from operators.events import OutcomeEvent, SensorEvent
from operators.records import Rows
from operators.sensorevent import from_columns, to_columns

finite = st.floats(allow_nan=False)
events = st.builds(
    SensorEvent,
    source_id=st.text(min_size=1, max_size=12),
    event_ms=st.integers(min_value=0, max_value=2**62),
    values=st.dictionaries(st.text(min_size=1, max_size=8), finite, max_size=4),
    seq=st.none() | st.integers(min_value=0, max_value=2**62),
    kind=st.sampled_from(["telemetry", "heartbeat", "canary"]),
    arrival_ms=st.none() | st.integers(min_value=0, max_value=2**62),
    origin=st.text(max_size=20),
    extra=st.none() | st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
    trace_parent=st.none() | st.text(max_size=55),
)


@given(st.lists(events, max_size=30))
def test_a_shard_batch_crosses_processes_whole(batch):
    outcome = OutcomeEvent("d-1", "correct", 1.0, 5, origin="file:o:1")
    sent = ShardBatch("shard-2", batch, 1_234, 99, [outcome], (1, 2))
    got = pickle.loads(pickle.dumps(sent, protocol=5))
    assert got == sent
    assert all(type(e) is SensorEvent for e in got.events)


def test_event_columns_of_unequal_lengths_are_refused_with_a_reason():
    columns = to_columns([SensorEvent("u1", 1, {"v": 1.0}), SensorEvent("u2", 2, {})])
    columns[2].pop()  # a value dict lost
    with pytest.raises(ValueError, match="equally long"):
        from_columns(columns)


def _decision(i: int) -> Decision:
    return Decision(f"id-{i}", f"{i:032x}", f"robot-{i % 3}", "motion", "fast", "go",
                    None if i % 2 else 0.25, 0.75, "m1", "control", "NORMAL", 1_000 + i,
                    1_010 + i, 10, bool(i % 3), 0.5, False, "nominal", "fleet",
                    f"file:x.jsonl:{i}")


def test_decision_rows_cross_as_plain_tuples_with_every_value():
    rows = Rows("decisions", DECISION_COLUMNS, [_decision(i) for i in range(50)],
                trace=["opaque"])
    got = pickle.loads(pickle.dumps(rows, protocol=5))
    assert (got.table, got.columns, got.trace) == (rows.table, rows.columns, ["opaque"])
    assert got.rows == [tuple(r) for r in rows.rows]
    assert [type(r) for r in got.rows] == [tuple] * 50


@pytest.mark.parametrize("rows", [[], [(1, 2), (3,)], [(1, 2, 3)]])
def test_rows_that_do_not_fit_their_columns_cross_as_they_are(rows):
    # an empty batch, ragged rows, or rows wider than the columns: never cut to fit
    sent = Rows("t", ("a", "b"), rows)
    assert pickle.loads(pickle.dumps(sent)).rows == rows
