"""The feedback loop's pending table: bounded by count and by age, oldest first, and an
outcome that comes too late is told apart from one that was never this shard's."""

from __future__ import annotations

from operators.feedback import FeedbackLoop, Pending


def _pending(at: int) -> Pending:
    return Pending("control", "lr-1", {"v": 1.0}, 0.5, decided_at=at)


def test_past_its_bound_the_oldest_decisions_expire_and_their_outcomes_are_late():
    loop = FeedbackLoop(max_pending=3)
    for i in range(5):
        loop.remember(f"d{i}", _pending(i))
    assert loop.pending == 3
    assert [loop.is_late(f"d{i}") for i in range(5)] == [True, True, False, False, False]
    assert loop.resolve("d0") is None and loop.resolve("d4").decided_at == 4


def test_a_resolved_decision_leaves_room_and_is_never_late():
    loop = FeedbackLoop(max_pending=2)
    loop.remember("a", _pending(0))
    assert loop.resolve("a") is not None
    loop.remember("b", _pending(1))
    loop.remember("c", _pending(2))  # "a" is gone: no expiry needed for two
    assert loop.pending == 2 and not any(map(loop.is_late, "abc"))
    loop.remember("d", _pending(3))
    assert loop.is_late("b") and not loop.is_late("a")


def test_age_expires_from_the_oldest_past_resolved_ones():
    loop = FeedbackLoop(ttl_ms=100)
    for i, at in enumerate((0, 10, 20, 500)):
        loop.remember(f"d{i}", _pending(at))
    loop.resolve("d0")  # resolved at the front: it holds nothing back
    loop.expire(now=115)
    assert [loop.is_late(f"d{i}") for i in range(4)] == [False, True, False, False]
    assert loop.pending == 2


def test_memory_stays_bounded_when_every_outcome_arrives():
    loop = FeedbackLoop(ttl_ms=10**12, max_pending=1_000, remember_expired=500)
    for i in range(100_000):
        loop.remember(f"d{i}", _pending(i))
        if i >= 10:
            loop.resolve(f"d{i - 10}")  # each outcome ten decisions later
    assert loop.pending == 10
    assert len(loop._order) <= 2 * loop.pending + 1_024


def test_expired_ids_are_remembered_up_to_their_bound():
    loop = FeedbackLoop(max_pending=1, remember_expired=3)
    for i in range(10):
        loop.remember(f"d{i}", _pending(i))
    assert [i for i in range(10) if loop.is_late(f"d{i}")] == [6, 7, 8]
