"""A shard's recovery snapshot: this version's state resumes as it was; an older
version's is not loaded into classes whose shape has changed (a crash mid-run), the
shard starts fresh and says so."""

from __future__ import annotations

import logging
import pickle

from flows.pipeline import STATE_VERSION, _DecideLogic, resume_decider
from operators.decider import Decider
from tests.test_decider import POLICY, as_dicts, event


def decided(decider: Decider, events) -> list[tuple]:
    return [(d["decision_id"], d["action"], d["fresh"]) for d in
            as_dicts(decider.process(events).decisions)]


def test_a_snapshot_resumes_the_shard_as_it_was():
    first, again = Decider(POLICY, replay=True), Decider(POLICY, replay=True)
    warmup = [event(i) for i in range(1, 200)]
    first.process(warmup)
    again.process(warmup)
    logic = _DecideLogic(first, None, True, None, None, None)  # type: ignore[arg-type]
    restored = resume_decider(logic.snapshot(), "shard-0")
    assert restored is not None
    after = [event(i) for i in range(200, 260)]
    assert decided(restored, after) == decided(again, after)


def test_an_older_versions_snapshot_starts_the_shard_fresh_with_a_warning(caplog):
    older = pickle.dumps(Decider(POLICY, replay=True))  # version 1: the decider alone
    with caplog.at_level(logging.WARNING, "lucidstream.pipeline"):
        assert resume_decider(older, "shard-2") is None
    assert f"shard-2: its state in the recovery directory is version 1 and this " \
           f"lucidstream writes version {STATE_VERSION}; the shard starts fresh" in caplog.text


def test_a_snapshot_that_does_not_load_starts_the_shard_fresh(caplog):
    with caplog.at_level(logging.WARNING, "lucidstream.pipeline"):
        assert resume_decider(b"\x80\x04not a pickle", "shard-1") is None
    assert "shard-1: its state in the recovery directory is version unreadable" in caplog.text
