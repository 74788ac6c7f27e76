"""Autonomy controls, replayed on the replay clock: every run gives the same answer.

Each test feeds a :class:`~operators.decider.Decider` a stream whose
``arrival_time`` makes a backlog, a failure or a conflict happen at a known
pipeline time, then checks the transition, its timing, and that nothing was
executed autonomously while the mode forbade it.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from operators.canary import CANARY_COLUMNS, Canary, CanarySchedule
from operators.decider import Decider, DecisionPolicy
from operators.events import EventDecoder, OutcomeEvent, SensorEvent
from operators.flags import Flags
from operators.invariants import VIOLATION_COLUMNS
from operators.modeboard import ModeBoard
from operators.modelfault import ModelFault
from operators.models import OnlineScorer
from operators.modes import Health, ModeConfig, Override
from operators.records import DECISION_COLUMNS
from operators.rollout import RolloutConfig
from operators.rules import Rule, RuleSet
from operators.slowpath import SlowPathConfig
from operators.variants import Variant

POLICY = DecisionPolicy(
    "motion", RuleSet([Rule("low", "battery", "<", 15, "dock")]), sla_ms=2_000,
    default_action="go", model_action="inspect", model_threshold=0.9, fallback_action="hold")
ROBOTS = [f"r{i}" for i in range(10)]


def stream(start_ms, end_ms, delay_ms, seq0=0, every_ms=100, values=None, robots=ROBOTS):
    """Every robot reports every ``every_ms``; each report arrives ``delay_ms`` late."""
    rng = np.random.default_rng(start_ms)
    events = []
    for n, t in enumerate(range(start_ms, end_ms, every_ms)):
        for robot in robots:
            v = values or {"battery": float(rng.uniform(0, 100)),
                           "vibration": float(rng.normal(1, 0.1))}
            events.append(SensorEvent(robot, t, v, seq=seq0 + n, arrival_ms=t + delay_ms))
    return events


def replay(decider, events, batch=50, outcomes=None):
    """Feed ``events`` in arrival order; returns decision dicts and every batch result."""
    events = sorted(events, key=lambda e: e.arrival_ms)
    rows, results = [], []
    for i in range(0, len(events), batch):
        chunk = events[i:i + batch]
        result = decider.process(chunk, outcomes=outcomes(rows) if outcomes else ())
        results.append(result)
        rows += [dict(zip(DECISION_COLUMNS, r, strict=True)) for r in result.decisions]
    return rows, results


def transitions(results):
    return [(c.from_mode, c.to_mode, c.at) for r in results for c in r.mode_changes]


def assert_nothing_autonomous_when_forbidden(rows):
    for row in rows:
        if row["path"] == "canary":
            continue  # a probe: decided, checked, never executed
        if row["mode"] == "CONSERVATIVE":
            assert row["escalated"], row
        if row["mode"] in ("REACTIVE_ONLY", "PAUSED"):
            assert row["score"] is None and row["path"] != "slow", row


def test_backlogs_degrade_on_time_and_recovery_waits_for_the_hold():
    d = Decider(POLICY, replay=True, modes=ModeConfig(recover_hold_ms=10_000))
    events = (stream(0, 20_000, 20)                          # healthy
              + stream(20_000, 40_000, 10_000, seq0=200)      # 10 s backlog lands at 30 s
              + stream(40_000, 60_000, 45_000, seq0=400)      # 45 s backlog lands at 85 s
              + stream(105_000, 140_000, 20, seq0=600))       # caught up from 105 s
    rows, results = replay(d, events)
    changes = transitions(results)
    assert [(a, b) for a, b, _ in changes] == [
        ("NORMAL", "REACTIVE_ONLY"), ("REACTIVE_ONLY", "CONSERVATIVE"),
        ("CONSERVATIVE", "NORMAL")]
    reactive_at, conservative_at, normal_at = (at for _, _, at in changes)
    assert reactive_at == 30_000                 # the first 10 s-old report
    assert conservative_at == 85_000             # the first 45 s-old report
    caught_up = 105_020                          # every robot reports fresh again
    assert caught_up + 10_000 <= normal_at <= caught_up + 10_000 + 500
    conservative = [r for r in rows if r["mode"] == "CONSERVATIVE"]
    assert len(conservative) > 1_000 and all(r["escalated"] for r in conservative)
    assert_nothing_autonomous_when_forbidden(rows)
    assert rows[-1]["mode"] == "NORMAL" and rows[-1]["score"] is not None


def test_an_override_beats_the_automatic_mode_until_cleared():
    d = Decider(POLICY, replay=True, modes=ModeConfig(recover_hold_ms=1_000))
    replay(d, stream(0, 5_000, 20))
    d.board.control(True, Override("CONSERVATIVE", "storm", "ops"))
    held, _ = replay(d, stream(5_000, 10_000, 20, seq0=50))
    assert {r["mode"] for r in held} == {"CONSERVATIVE"}
    assert all(r["escalated"] for r in held)
    assert d.board.machine.auto_mode == "NORMAL"          # the data says NORMAL underneath
    cleared = d.board.control(True, None, "ops")
    assert [(c.to_mode, c.trigger) for c in cleared] == [("NORMAL", "override")]
    after, _ = replay(d, stream(10_000, 12_000, 20, seq0=100))
    assert {r["mode"] for r in after} == {"NORMAL"}


class FlakyScorer(OnlineScorer):
    """A model whose serving fails while ``broken`` is set: a fault we cannot cause in
    the real scorer, so this test injects it."""

    broken = False

    def score(self, rows):
        if FlakyScorer.broken:
            raise ConnectionError("model server unreachable")
        return super().score(rows)


def test_a_lost_model_heartbeat_pauses_the_model_path_and_a_probe_resumes_it():
    d = Decider(POLICY, replay=True, modes=ModeConfig(recover_hold_ms=3_000),
                variants=[Variant("control", 1.0, FlakyScorer)])
    FlakyScorer.broken = False
    rows, _ = replay(d, stream(0, 5_000, 20))
    FlakyScorer.broken = True
    try:
        failing, results = replay(d, stream(5_000, 12_000, 20, seq0=50))
    finally:
        FlakyScorer.broken = False
    [(frm, to, paused_at)] = transitions(results)
    assert (frm, to) == ("NORMAL", "PAUSED")
    first_failure = min(r["decided_at"] for r in failing)
    assert 2_000 <= paused_at - first_failure <= 2_300   # the heartbeat's 2 s, then a check
    assert all(r["score"] is None for r in failing if r["path"] != "slow")  # rules only
    before = [r for r in failing if r["mode"] == "NORMAL" and r["path"] == "fast"]
    assert before and all("model path failing" in r["reason"] for r in before
                          if r["action"] == "go")
    healed, results = replay(d, stream(12_000, 20_000, 20, seq0=120))
    [(frm, to, resumed_at)] = transitions(results)
    assert (frm, to) == ("PAUSED", "NORMAL") and resumed_at - 12_020 >= 3_000
    assert_nothing_autonomous_when_forbidden(rows + failing + healed)
    assert healed[-1]["score"] is not None


def _slow_decider():
    return Decider(POLICY, replay=True, slow=SlowPathConfig(
        window_ms=1_000, lateness_ms=500, warm_windows=1, min_events=3))


def _window_stream(after_window):
    """One robot, calm windows, then a wild window [4 s, 5 s), then ``after_window``."""
    events = [SensorEvent("r1", t, {"battery": 80.0, "vibration": 1.0 + (t % 300) / 1e3},
                          seq=t // 100, arrival_ms=t + 10) for t in range(0, 4_000, 100)]
    events += [SensorEvent("r1", t, {"battery": 80.0, "vibration": 50.0}, seq=t // 100,
                           arrival_ms=t + 10) for t in range(4_000, 5_000, 100)]
    events.append(SensorEvent("r1", 5_100, after_window, seq=51, arrival_ms=5_110))
    return events


def test_a_slow_revision_made_against_an_old_state_is_rejected_and_recorded():
    d = _slow_decider()
    rows, results = replay(d, _window_stream({"battery": 5.0, "vibration": 1.0}), batch=5)
    slow = [r for r in rows if r["path"] == "slow" and "risk" in r["reason"]]
    wild = [r for r in slow if r["event_time"] >= 4_000]
    assert len(wild) == 1
    assert wild[0]["action"] == "dock"                  # kept: the newer fast decision
    assert "rejected: decided against state" in wild[0]["reason"]
    violations = [v for r in results for v in r.violations]
    assert len(violations) == 1
    v = dict(zip(VIOLATION_COLUMNS, violations[0], strict=True))
    assert (v["attempted_action"], v["current_action"]) == ("inspect", "dock")
    assert v["current_version"] == v["based_on_version"] + 1
    assert d.state.conflicts == 1


def test_a_slow_revision_against_the_current_state_commits():
    d = _slow_decider()
    rows, results = replay(d, _window_stream({"battery": 80.0, "vibration": 1.0}), batch=5)
    wild = [r for r in rows if r["path"] == "slow" and r["event_time"] >= 4_000]
    assert [r["action"] for r in wild] == ["inspect"]
    assert not [v for r in results for v in r.violations]
    assert d.state.current("r1").action == "inspect"


class InvertedScorer(OnlineScorer):
    """A broken model: it learns like the real one and answers the opposite."""

    def score(self, rows):
        return 1.0 - super().score(rows)


CANARIES = [Canary("flat-battery", {"battery": 2.0, "vibration": 1.0}, "dock"),
            Canary("model-ranks-flat-battery", {"battery": 1.0, "vibration": 1.0},
                   checks="model", versus={"battery": 90.0, "vibration": 1.0},
                   warmup_samples=300)]


def _with_canaries(events, every_ms=2_000):
    """The stream plus canary records decoded from the contract, as the flow injects them."""
    schedule, decoder = CanarySchedule(CANARIES, every_ms), EventDecoder()
    out = list(events)
    for t in range(0, max(e.arrival_ms for e in events), 500):
        out += decoder.decode_batch(schedule.due(t)).events
    return out


@pytest.mark.parametrize("scorer,expected", [(OnlineScorer, "pass"), (InvertedScorer, "fail")])
def test_canaries_pass_on_a_sound_model_and_a_broken_one_fails_and_degrades(scorer, expected):
    d = Decider(POLICY, replay=True, canaries=CANARIES,
                variants=[Variant("control", 1.0, scorer)])
    rows, results = replay(d, _with_canaries(stream(0, 30_000, 20)), batch=200)
    canary_rows = [dict(zip(CANARY_COLUMNS, c, strict=True))
                   for r in results for c in r.canaries]
    assert len({c["slot"] for c in canary_rows}) == 15       # one check per slot
    rules = [c for c in canary_rows if c["checks"] == "rules"]
    assert {c["status"] for c in rules} == {"pass"}
    model = [c for c in canary_rows if c["checks"] == "model"]
    assert model[0]["status"] == "warmup"                     # not judged before it learns
    assert model[-1]["status"] == expected
    assert len([r for r in rows if r["path"] == "canary"]) == 2 * 15  # each canary, each slot
    assert not any(r["source_id"].startswith("canary:") for r in rows if r["path"] != "canary")
    alarms = [a.signal for r in results for a in r.alarms if a.detector == "canary"]
    modes = [c[1] for c in transitions(results)]
    if expected == "fail":
        assert alarms == ["canary_failed"] and modes == ["REACTIVE_ONLY"]
    else:
        assert alarms == [] and modes == []
    assert_nothing_autonomous_when_forbidden(rows)


def _graded(variants, rollout, hold_ms=5_000):
    """Replay 60 s with every decision graded by its true label (battery under 15)."""
    board = ModeBoard(rollout=RolloutConfig("candidate", hold_ms=hold_ms, min_outcomes=100,
                                            margin=0.05, **rollout))
    d = Decider(POLICY, replay=True, variants=variants, board=board, learn_per_batch=200)
    graded: set[str] = set()

    def outcomes(rows):
        out = []
        for r in rows:
            if r["score"] is not None and r["decision_id"] not in graded:
                graded.add(r["decision_id"])
                label = 1.0 if r["reason"].startswith("rule:low") else 0.0
                out.append(OutcomeEvent(r["decision_id"], "observed", label, r["event_time"]))
        return out

    fleet = [f"r{i}" for i in range(50)]  # 3 of them take the candidate at 10 %
    rows, results = replay(d, stream(0, 40_000, 20, robots=fleet), batch=250,
                           outcomes=outcomes)
    return rows, [c for r in results for c in r.rollout]


def test_the_model_learns_the_same_rows_whether_the_stream_comes_in_small_or_large_batches():
    """A live stream polled every few ms hands the decider batches of a few events; its
    replay, thousands. Distillation samples one fresh decision in ``learn_every`` counted
    across batches (every one until the model is past its warm-up) and learns whole
    chunks, so both teach the model the same rows, and a small batch does not cost a
    learning step per event (it did: the stride was a share of each batch, so a batch of
    25 taught the model all 25)."""
    events = stream(0, 60_000, 20)  # 6,000 fresh decisions
    models = []
    for batch in (7, 50, 1_000):
        d = Decider(POLICY, replay=True)
        replay(d, events, batch=batch)
        scorer = d.model.scorers["control"]
        models.append((scorer.samples_seen, sorted(scorer.weights.items()),
                       scorer.intercept))
    assert models[0] == models[1] == models[2]
    # the first 1,000 learned, then one in 32: 1,157 rows, so 36 whole chunks of 32,
    # each with its rule's probes
    assert 36 * 32 < models[0][0] <= 36 * 40


def test_a_bad_variant_is_rolled_back_on_its_own():
    rows, changes = _graded([Variant("control", 1.0), Variant("candidate", 0.0,
                                                               InvertedScorer)], {})
    assert [c.state for c in changes] == ["rolled_back"]
    rolled_back_at = changes[0].at
    assert changes[0].values["candidate_accuracy"] < changes[0].values["control_accuracy"]
    after = [r for r in rows if r["decided_at"] > rolled_back_at + 1_000 and r["score"]]
    assert after and {r["variant"] for r in after} == {"control"}
    on_candidate = {r["source_id"] for r in rows if r["variant"] == "candidate"}
    assert len(on_candidate) == 3                               # 10 % of 50, by hash


def test_a_sound_variant_rolls_out_in_steps():
    rows, changes = _graded([Variant("control", 1.0), Variant("candidate", 0.0)], {})
    assert [(c.from_share, c.to_share, c.state) for c in changes] == [
        (0.1, 0.5, "rolling"), (0.5, 1.0, "rolling"), (1.0, 1.0, "complete")]
    assert all(b.at - a.at >= 5_000 for a, b in itertools.pairwise(changes))
    last = [r for r in rows if r["decided_at"] > changes[-1].at and r["score"] is not None]
    assert last and {r["variant"] for r in last} == {"candidate"}


def test_flags_switch_capabilities_globally_and_per_source():
    d = Decider(POLICY, replay=True, slow=SlowPathConfig(window_ms=1_000, lateness_ms=0))
    d.board.set_flags(Flags.parse({"off": ["slow_path"], "off_for": {"model": ["r3"]}}))
    rows, _ = replay(d, stream(0, 10_000, 20))
    assert not [r for r in rows if r["path"] == "slow"]
    assert {r["score"] is None for r in rows if r["source_id"] == "r3"} == {True}
    assert {r["score"] is None for r in rows if r["source_id"] == "r4"} == {False}
    d.board.set_flags(Flags())
    rows, _ = replay(d, stream(10_000, 20_000, 20, seq0=100))
    assert [r for r in rows if r["path"] == "slow"]
    assert {r["score"] is None for r in rows if r["source_id"] == "r3"} == {False}


def test_processes_share_health_through_the_control_directory(tmp_path):
    from sinks.control import HealthExchange

    boards = [ModeBoard(peers=HealthExchange(tmp_path, f"process-{i}", poll_s=0).swap)
              for i in range(2)]
    assert boards[0].post("shard-0", 1_000, Health(lag_ms=100)) == []
    [change] = boards[1].post("shard-3", 1_000, Health(lag_ms=8_000))
    assert change.to_mode == "REACTIVE_ONLY"
    [change] = boards[0].post("shard-0", 1_100, Health(lag_ms=100))  # hears process 1
    assert change.to_mode == "REACTIVE_ONLY" and change.values["lag_ms"] == 8_000


def test_kafka_lag_and_a_failing_sink_drive_the_mode():
    import time

    board = ModeBoard(ModeConfig(sink_conservative_ms=50))
    board.kafka_lag(250_000)
    [change] = board.post("shard-0", 1_000, Health())
    assert (change.to_mode, change.values["kafka_lag"]) == ("REACTIVE_ONLY", 250_000)
    board.sink_result(False)
    time.sleep(0.06)  # the sink's failure is measured in wall time, as a retry waits
    [change] = board.post("shard-0", 1_100, Health())
    assert change.to_mode == "CONSERVATIVE" and "store writes failing" in change.reason
    board.sink_result(True)
    board.kafka_lag(0)
    assert board.post("shard-0", 1_200, Health()) == []     # healthy, but held
    [change] = board.post("shard-0", 11_200, Health())
    assert change.to_mode == "NORMAL"


class ConstantScorer(OnlineScorer):
    """A broken model: it learns, and answers the same for everything."""

    def score(self, rows):
        return np.full(len(rows), 0.3)


class NanScorer(OnlineScorer):
    """A broken model: it learns, and answers NaN."""

    def score(self, rows):
        return np.full(len(rows), np.nan)


def _readings(values, end_ms):
    """Every robot reports ``values()`` every 100 ms until ``end_ms``, 20 ms late."""
    return [SensorEvent(r, t, values(), seq=t // 100, arrival_ms=t + 20)
            for t in range(0, end_ms, 100) for r in ROBOTS]


def _model_checks(results):
    """The model canaries' rows of every batch result."""
    return [dict(zip(CANARY_COLUMNS, c, strict=True)) for r in results
            for c in r.canaries if c[3] == "model"]


def test_a_healthy_model_passes_on_readings_the_stream_never_visited_and_a_constant_fails():
    # batteries between 40 and 95 %: the stream never shows a flat one, but the model
    # learns the rules over each value's whole range, so it still ranks one right
    rng = np.random.default_rng(9)
    events = _readings(lambda: {"battery": float(rng.uniform(40, 95)),
                                "vibration": float(rng.normal(1, 0.1))}, 30_000)
    for scorer, status, modes in ((OnlineScorer, "pass", []),
                                  (InvertedScorer, "fail", ["REACTIVE_ONLY"]),
                                  (ConstantScorer, "fail", ["REACTIVE_ONLY"]),
                                  (NanScorer, "fail", ["PAUSED"])):
        d = Decider(POLICY, replay=True, canaries=CANARIES,
                    variants=[Variant("control", 1.0, scorer)])
        _, results = replay(d, _with_canaries(events), batch=200)
        model = _model_checks(results)
        judged = [c["status"] for c in model if c["status"] != "warmup"]
        assert judged and set(judged) == {status}, (scorer, model[-1])  # from the first check
        assert [c[1] for c in transitions(results)] == modes


def test_only_whoever_may_write_the_control_directory_steers_the_flow(tmp_path):
    """Fails without sinks.control._trusted (a world-writable directory's override would
    be obeyed) or with _write_json's default permissions."""
    from sinks.control import ControlFile, untrusted

    directory = tmp_path / "store-control"
    control = ControlFile(directory)
    control.set(Override("CONSERVATIVE", "drill", "ops"))
    assert directory.stat().st_mode & 0o777 == 0o700
    assert (directory / "mode.json").stat().st_mode & 0o777 == 0o600
    assert control.poll(force=True)[1].mode == "CONSERVATIVE"

    directory.chmod(0o777)  # anyone could have written it now: the flow ignores it
    control.set(Override("PAUSED", "someone else", "mallory"))
    assert "writable by others" in untrusted(directory / "mode.json")
    assert control.poll(force=True) == (False, None)
    directory.chmod(0o700)
    (directory / "mode.json").touch()  # a change the flow sees again, from its owner
    assert control.poll(force=True)[1].mode == "PAUSED"


def test_a_model_is_not_judged_on_a_value_its_stream_never_carried():
    # pumps report no battery: the battery canary asks the model about a value it knows
    # only from the rules' examples, so it is not judged (status unseen) and degrades
    # nothing; once the stream's own events carry a battery, it is judged
    rng = np.random.default_rng(4)
    pumps = _readings(lambda: {"pressure_kpa": float(rng.normal(300, 5)),
                               "vibration": float(rng.normal(1, 0.1))}, 60_000)
    batteries = stream(60_000, 120_000, 20, seq0=600)
    d = Decider(POLICY, replay=True, canaries=CANARIES,
                variants=[Variant("control", 1.0, OnlineScorer)])
    _, results = replay(d, _with_canaries(pumps + batteries), batch=200)
    model = _model_checks(results)
    before = [c for c in model if c["at"] < 60_000]
    assert before[-1]["status"] == "unseen", before[-1]
    assert {c["status"] for c in before} == {"warmup", "unseen"}
    assert "the stream has carried no battery" in before[-1]["reason"]
    judged = [c["status"] for c in model if c["at"] >= 62_000]
    assert judged and set(judged) == {"pass"}, model[-1]
    assert transitions(results) == []


def _minute_means(fault=None):
    """Ten minutes of the stream in a replay's batches (2,000 events, 20 s): each
    minute's mean score as decided and as drift watches it (learning taken out), and the
    model's alarms."""
    d = Decider(POLICY, replay=True, variants=[Variant("control", 1.0, OnlineScorer)],
                learn_every=1)  # a model that learns from every decision
    d.model.fault = fault
    events = stream(0, 600_000, 20)
    decided, watched, alarms = {}, {}, []
    for i in range(0, len(events), 2_000):
        learned = d.model.learned.get("control", 0.0)  # as the batch is scored
        result = d.process(events[i:i + 2_000])
        minute = events[i].event_ms // 60_000
        for row in result.decisions:
            score = row[DECISION_COLUMNS.index("score")]
            if score is not None:
                decided.setdefault(minute, []).append(score)
                watched.setdefault(minute, []).append(score - learned)
        alarms += [(a.signal, a.detected_at) for a in result.alarms
                   if a.signal in ("score", "confidence")]
    means = [(np.mean(decided[m]), np.mean(watched[m])) for m in sorted(decided)]
    return means, alarms


def test_the_model_is_watched_with_what_it_learned_taken_out():
    # a model that learns moves its scores (here by 0.13 in ten minutes, in a step at
    # each batch); drift watches them less what each learning step moved them, measured
    # as it learns, so the learning is no alarm and the model breaking still is
    means, alarms = _minute_means()
    decided, watched = [m[0] for m in means], [m[1] for m in means]
    assert max(decided) - min(decided) > 0.1, means
    assert max(watched) - min(watched) < 0.25 * (max(decided) - min(decided)), means
    assert alarms == []
    _, alarms = _minute_means(ModelFault("broken", 300_000, 360_000))
    assert {"score", "confidence"} <= {signal for signal, _ in alarms}
    assert all(300_000 <= at <= 365_000 for _, at in alarms), alarms


class EagerScorer(OnlineScorer):
    """A model sure of an intervention everywhere: 0.95 for every reading."""

    def score(self, rows):
        return np.full(len(rows), 0.95)


def test_a_model_decides_only_once_the_stream_has_shown_it_an_intervention():
    # no rule fires on the pumps' own readings: the model knows an intervention only
    # from the rules' probes, so its score does not decide there (it did: a model taught
    # nothing by the foreign pumps sent 5-8 % of their readings to inspect); once a rule
    # fires on a reading it learns (one in 32, learned 32 at a time: within 10 s of this
    # stream), its score decides again
    rng = np.random.default_rng(5)
    pumps = _readings(lambda: {"pressure_kpa": float(rng.normal(300, 5))}, 30_000)
    batteries = stream(30_000, 60_000, 20, seq0=300)
    d = Decider(POLICY, replay=True, variants=[Variant("control", 1.0, EagerScorer)])
    rows, _ = replay(d, pumps + batteries, batch=200)
    fast = [r for r in rows if r["path"] == "fast"]
    before = [r for r in fast if r["event_time"] < 30_000]
    assert {r["action"] for r in before} == {"go"}
    assert all("not heeded: no rule has fired on this stream's rows" in r["reason"]
               for r in before)
    after = [r for r in fast if r["event_time"] >= 45_000]
    assert {r["action"] for r in after} == {"dock", "inspect"}


def test_slow_decisions_do_not_depend_on_how_the_stream_is_batched():
    # each robot has one wild window; after it, the fast path keeps deciding ``go``, so
    # the windows after a revision confirm ``go`` however many of them one batch holds
    events = [SensorEvent(r, t, {"battery": 80.0,
                                 "vibration": 50.0 if 4_000 * (i + 1) <= t < 4_000 * (i + 1)
                                 + 1_000 else 1.0 + (t % 300) / 1e3},
                          seq=t // 100, arrival_ms=t + 10)
              for t in range(0, 20_000, 100) for i, r in enumerate(ROBOTS[:3])]

    def slow_rows(batch):
        rows, results = replay(_slow_decider(), events, batch=batch)
        return ([(r["decision_id"], r["action"], r["reason"]) for r in rows
                 if r["path"] == "slow"], sum(len(r.violations) for r in results))

    small, large = slow_rows(7), slow_rows(1_000)
    assert small == large
    decided, violations = large
    assert [a for _, a, _ in decided].count("inspect") == 3  # the wild windows, revised
    assert violations == 0
