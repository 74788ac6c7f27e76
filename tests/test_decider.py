from __future__ import annotations

from operators.decider import Decider, DecisionPolicy
from operators.events import SensorEvent
from operators.modes import ModeConfig
from operators.records import DECISION_COLUMNS, QUALITY_COLUMNS
from operators.rules import Rule, RuleSet

POLICY = DecisionPolicy(
    "motion",
    RuleSet([Rule("close", "obstacle_m", "<", 0.5, "stop", priority=0),
             Rule("low", "battery", "<", 15, "dock")]),
    sla_ms=1_000, default_action="go", fallback_action="hold",
)


def as_dicts(rows, slow=False):
    """Decision rows as dicts; the slow path's window decisions only when asked."""
    dicts = [dict(zip(DECISION_COLUMNS, row, strict=True)) for row in rows]
    return [d for d in dicts if slow or d["path"] != "slow"]


def event(i, values=None, event_ms=None, arrival=None, source="r1", seq=None):
    t = i * 100 if event_ms is None else event_ms
    return SensorEvent(source, t, values or {"battery": 50.0, "obstacle_m": 3.0},
                       seq=i if seq is None else seq, arrival_ms=t + 20 if arrival is None
                       else arrival)


def test_rules_fire_in_priority_order_and_partial_events_are_still_decided():
    d = Decider(POLICY, replay=True)
    rows = as_dicts(d.process([
        event(1, {"battery": 5.0, "obstacle_m": 0.1}),
        event(2, {"battery": 5.0}),
        event(3, {"temperature": 20.0}),  # no field any rule reads
    ]).decisions)
    assert [(r["action"], r["reason"]) for r in rows] == [
        ("stop", "rule:close"), ("dock", "rule:low"), ("go", "nominal")]
    assert all(r["path"] == "fast" and r["fresh"] for r in rows)
    assert all(0.5 <= r["confidence"] <= 1 for r in rows)


def test_stale_input_is_never_fresh_and_takes_the_fallback():
    d = Decider(POLICY, replay=True)
    rows = as_dicts(d.process([
        event(1), event(2, event_ms=0, arrival=5_000),
        event(3, {"battery": 5.0}, event_ms=100, arrival=5_100),
    ]).decisions)
    assert [r["fresh"] for r in rows] == [True, False, False]
    assert [r["path"] for r in rows] == ["fast", "fallback", "fallback"]
    assert [r["action"] for r in rows[1:]] == ["hold", "hold"]  # even when a rule would fire
    assert rows[1]["age_ms"] == 5_000 and "sla 1000" in rows[1]["reason"]


def test_clock_skewed_input_is_not_fresh():
    d = Decider(POLICY, replay=True)
    rows = as_dicts(d.process([event(1, event_ms=60_000, arrival=1_000)]).decisions)
    assert rows[0]["fresh"] is False and rows[0]["reason"].startswith("clock skew")


def test_skip_and_escalate_policies():
    for policy, action, escalated in (("skip", "none", False), ("escalate", "hold", True)):
        d = Decider(DecisionPolicy("t", POLICY.rules, sla_ms=10, on_stale=policy), replay=True)
        row = as_dicts(d.process([event(1, event_ms=0, arrival=500)]).decisions)[0]
        assert (row["action"], row["escalated"], row["path"]) == (action, escalated, "fallback")


def test_decision_ids_are_deterministic_and_unique_per_input():
    def run():
        d = Decider(POLICY, replay=True)
        return [r["decision_id"] for r in as_dicts(
            d.process([event(i) for i in range(100)]).decisions)]
    first = run()
    assert first == run() and len(set(first)) == 100


def test_events_without_seq_get_ids_from_time_and_origin():
    d = Decider(POLICY, replay=True)
    a = SensorEvent("r", 5, {"v": 1.0}, origin="file:x:1", arrival_ms=5)
    b = SensorEvent("r", 5, {"v": 1.0}, origin="file:x:2", arrival_ms=5)
    ids = [r[0] for r in d.process([a, b]).decisions]
    assert len(set(ids)) == 2


def test_backlog_degrades_mode_rules_only_then_escalates_and_recovers_with_hold():
    d = Decider(POLICY, replay=True, modes=ModeConfig(recover_hold_ms=2_000))
    batches = [[event(i)] for i in range(10)]                       # healthy
    batches += [[event(10 + i, event_ms=1_000 + i, arrival=12_000 + i * 300)]
                for i in range(10)]                                # 11 s behind
    batches += [[event(20 + i, event_ms=1_000 + i, arrival=16_000 + i * 300)]
                for i in range(10)]                                # 15+ s behind
    batches += [[event(30 + i, event_ms=40_000 + i * 300, arrival=60_000 + i * 300)]
                for i in range(5)]                                  # 20 s behind
    batches += [[event(40 + i, event_ms=60_000 + i * 300, arrival=60_050 + i * 300)]
                for i in range(20)]                                # caught up
    rows, changes = [], []
    for batch in batches:
        result = d.process(batch)
        rows += as_dicts(result.decisions)
        changes += result.mode_changes
    assert [(c.from_mode, c.to_mode) for c in changes] == [
        ("NORMAL", "REACTIVE_ONLY"), ("REACTIVE_ONLY", "NORMAL")]
    reactive = [r for r in rows if r["mode"] == "REACTIVE_ONLY"]
    assert reactive and all(r["score"] is None and r["model_version"] == "rules"
                            for r in reactive)
    recovered_at = changes[1].at
    assert recovered_at - 60_050 >= 2_000  # held healthy for the hold time first
    assert rows[-1]["mode"] == "NORMAL" and rows[-1]["score"] is not None


def test_conservative_mode_escalates_every_decision():
    d = Decider(POLICY, replay=True)
    d.process([event(1)])
    result = d.process([event(2, event_ms=200, arrival=40_000), event(3, event_ms=40_000,
                                                                    arrival=40_010)])
    rows = as_dicts(result.decisions)
    assert result.mode == "CONSERVATIVE"
    assert rows[-1]["mode"] == "CONSERVATIVE" and all(r["escalated"] for r in rows
                                                      if r["mode"] == "CONSERVATIVE")


def test_heartbeats_are_not_decided_but_keep_sources_current():
    d = Decider(POLICY, replay=True)
    hb = SensorEvent("r", 0, {"alive": 1.0}, kind="heartbeat", arrival_ms=10)
    assert d.process([hb]).decisions == []
    assert "r" in d.freshness.sources


def test_a_shard_with_no_events_still_sees_time_and_reports_silence():
    d = Decider(POLICY, replay=True)
    d.process([event(i) for i in range(20)])
    result = d.process([], tick_ms=60_000)
    assert [a.signal for a in result.alarms] == ["silence"]
    assert result.lag_ms >= 58_000


def test_variants_split_sources_and_each_records_its_model_version():
    from operators.models import OnlineScorer
    from operators.variants import Variant

    variants = (Variant("control", 0.5, lambda: OnlineScorer(version="lr-1")),
                Variant("candidate", 0.5, lambda: OnlineScorer(version="lr-2")))
    d = Decider(POLICY, replay=True, variants=variants)
    rows = as_dicts(d.process([event(i, source=f"r{i % 20}") for i in range(200)]).decisions)
    pairs = {(r["variant"], r["model_version"]) for r in rows}
    assert pairs == {("control", "lr-1"), ("candidate", "lr-2")}
    by_source = {}
    for r in rows:
        by_source.setdefault(r["source_id"], set()).add(r["variant"])
    assert all(len(v) == 1 for v in by_source.values())  # a source stays in its variant


def test_outcomes_grade_the_decision_once_and_late_ones_are_counted():
    from operators.events import OutcomeEvent

    d = Decider(POLICY, replay=True, outcome_ttl_ms=1_000, quality_window_ms=100_000)
    first = as_dicts(d.process([event(1, {"battery": 5.0})]).decisions)[0]
    d.process([], outcomes=[OutcomeEvent(first["decision_id"], "docked", 1.0, 200)])
    d.process([], outcomes=[OutcomeEvent(first["decision_id"], "docked", 1.0, 200)])
    second = as_dicts(d.process([event(2, event_ms=300, arrival=320)]).decisions)[0]
    d.process([event(3, event_ms=5_000, arrival=5_020)])            # the TTL passes
    d.process([], outcomes=[OutcomeEvent(second["decision_id"], "fine", 0.0, 6_000)])
    row = dict(zip(QUALITY_COLUMNS, d.flush().quality[0], strict=True))
    assert row["labelled"] == 1 and row["outcomes_late"] == 1


def test_slow_path_windows_emit_slow_decisions_that_confirm_or_revise():
    d = Decider(POLICY, replay=True)
    events = [event(i, event_ms=i * 100, arrival=i * 100 + 10) for i in range(200)]
    rows = as_dicts(d.process(events).decisions + d.flush().decisions, slow=True)
    slow = [r for r in rows if r["path"] == "slow"]
    assert len(slow) >= 3
    assert all(r["reason"].startswith("slow: risk") for r in slow)
    assert len({r["decision_id"] for r in slow}) == len(slow)


def test_override_beats_the_lag_until_it_expires_then_the_data_decides():
    from operators.modes import Health, ModeMachine, Override

    m = ModeMachine()
    m.set_override(Override("NORMAL", "we know", "ops", until_ms=5_000), now=0)
    assert m.update(now=100, health=Health(lag_ms=45_000)) is None and m.mode == "NORMAL"
    assert m.auto_mode == "CONSERVATIVE"          # tracked underneath
    assert m.expire(now=200, wall_ms=4_999) is None
    change = m.expire(now=300, wall_ms=5_000)
    assert (change.to_mode, change.trigger) == ("CONSERVATIVE", "override")
    assert "expired" in change.reason and m.mode == "CONSERVATIVE"


def test_escalations_past_the_bound_are_recorded_unwatched_not_dropped():
    from operators.escalation import EscalationQueue

    queue = EscalationQueue("f", max_open=3)
    for i in range(5):
        queue.open(f"d{i}", "r1", "motion", "stop", "mode CONSERVATIVE", "CONSERVATIVE",
                   now=1_000 + i, sla_ms=60_000)
    assert queue.open_count == 3
    first = queue.breaches(now=2_000)  # none due yet: only the two that fell off
    assert [(r[1], r[9], r[12]) for r in first] == [("d0", "unwatched", 1),
                                                    ("d1", "unwatched", 1)]
    assert queue.breaches(now=2_000) == []                      # reported once
    assert [r[1] for r in queue.breaches(now=61_004)] == ["d2", "d3", "d4"]
    late = queue.answer("d0", "approved", "ops", at=70_000)     # still answerable
    assert late is not None and late[9:13] == ("approved", "ops", 70_000, 2)


def test_a_source_reporting_every_30_minutes_is_watched_for_a_week_and_its_step_found():
    """One report per 30 minutes for a week (336): never silent, never retired, and a
    3 sd step in its reading (lag-1 autocorrelation 0.5 between reports) found within
    100 reports."""
    import numpy as np

    from benchmarks.detection import ar1
    half_hour = 30 * 60_000
    reading = ar1(np.random.default_rng(12), 1, 336, 0.5, "gauss")[0] * 4.0 + 600.0
    reading[200:] += 3 * 4.0
    decider = Decider(POLICY, replay=True)
    alarms = []
    for i, value in enumerate(reading.tolist()):
        t = i * half_hour
        alarms += decider.process([SensorEvent("tank-7", t, {"level_mm": value}, seq=i,
                                               arrival_ms=t + 900)]).alarms
        alarms += decider.process([], tick_ms=t + half_hour // 2).alarms  # time passes
    assert not [a for a in alarms if a.signal in ("silence", "retired")]
    found = [a for a in alarms if a.signal == "value:level_mm"]
    assert found and found[0].direction == "up"
    assert 200 * half_hour <= found[0].detected_at <= 300 * half_hour, found[0]
