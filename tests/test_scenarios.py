"""The fault scenario suite, shortened (150 s of event time each), through the CLI.

One run of ``lucidstream scenarios run`` covers every scenario; each test reads its
score, which the suite computed from the store's tables alone. What every scenario
must hold: nothing lost or doubled, no decision on stale input marked fresh. What
each must show: the fault caught by the signal its truth names, within its bound.
Scenarios the product does not catch yet are strict expected failures, named here
with the reason, so the day one is caught this file says so.
"""

from __future__ import annotations

import json

import pytest

from flows.faults import SCENARIOS, FlowFacts, Stream, inject
from tests.conftest import cli

NOT_CAUGHT_YET = {
    # The fleet's motor temperature follows each robot's speed, which the simulator
    # switches with the battery: a near unit-root stream whose long-run scale is
    # hundreds of its short-run sd, so the level test cannot see even a 30 C step.
    "shift": "level test blind on a near unit-root stream (motor temperature)",
    "ramp": "level test blind on a near unit-root stream (motor temperature)",
    "unit_change": "level test blind on a near unit-root stream (motor temperature)",
    # The model's score and confidence move as the model learns online: the control
    # stream raises model-output alarms and, with them, misses its false-alarm budget.
    "control": "model-output alarms while the model learns online",
    # The fleet's common level is watched in rounds of samples: the full suite (300 s,
    # `make scenarios`) finds this step within its bound, later than the shortened
    # stream lasts after it.
    "fleet_shift": "the shortened stream ends before the fleet alarm (caught in the full run)",
}


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    workdir = tmp_path_factory.mktemp("scenarios")
    run = cli("scenarios", "run", "--dir", str(workdir), "--duration", "150", "--jobs", "2",
              timeout=900)
    assert "passed in" in run.stderr, run.stderr[-2000:]
    assert (workdir / "report.html").is_file()
    results = json.loads((workdir / "scenarios.json").read_text())["results"]
    return {r["scenario"]: r for r in results}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_nothing_lost_doubled_or_stale_marked_fresh(suite, name):
    r = suite[name]
    assert "error" not in r, r.get("error")
    assert (r["lost"], r["doubled"], r["stale_marked_fresh"]) == (0, 0, 0)


@pytest.mark.parametrize("name", [
    pytest.param(n, marks=pytest.mark.xfail(reason=NOT_CAUGHT_YET[n], strict=True))
    if n in NOT_CAUGHT_YET else n for n in SCENARIOS])
def test_the_fault_is_caught_by_its_signal_within_its_bound(suite, name):
    r = suite[name]
    assert r["passed"], {k: r[k] for k in ("detected", "signal", "source", "delay_clock_ms",
                                           "bound_ms", "mode_reached", "false_alarms")}


def test_the_report_shows_each_scenario_with_its_fault_window_and_modes(suite, tmp_path):
    from flows.report import write_report

    write_report(list(suite.values()), tmp_path / "r.html")
    page = (tmp_path / "r.html").read_text()
    for name in SCENARIOS:
        assert f'id="{name}-1"' in page
    assert page.count('class="fault"') == len(SCENARIOS) - 1  # the control has no fault
    assert 'class="mode"' in page and 'class="alarm"' in page


def test_faults_apply_to_any_stream_and_their_truth_says_what_was_done():
    events = [{"source_id": f"pump-{i}", "event_time": f"2026-03-01T00:{t // 600:02d}:"
               f"{t % 600 / 10:04.1f}Z", "seq": t, "values": {"flow_lpm": 40.0 + (t * i) % 5}}
              for t in range(1_200) for i in range(6)]
    facts = FlowFacts(watched=("flow_lpm",), rules=(("flow_lpm", ">", 60.0),),
                      decision_type="pumping")
    for name in ("partition", "frozen", "dropped", "duplicates", "unit_change", "poison"):
        stream = Stream.from_events([dict(e, values=dict(e["values"])) for e in events])
        truth = inject(name, stream, facts, seed=3)
        assert truth["start"]["event_ms"] < truth["end"]["event_ms"]
        assert truth["flow"]["decision_type"] == "pumping"
        sources = set(truth["sources"])
        if name == "frozen":
            held = {ln.event["values"]["flow_lpm"] for ln in stream.lines
                    if ln.event and ln.event["source_id"] in sources and
                    truth["start"]["event_ms"] <= ln.event["event_time"]
                    < truth["end"]["event_ms"]}
            assert len(held) == 1
        if name == "dropped":
            assert truth["counts"]["decisions"] == len(events) - truth["expect"]["lost"]
        if name == "duplicates":
            assert truth["counts"]["decisions"] == len(events)  # a copy is one decision
            assert len(stream.lines) == len(events) + truth["expect"]["copies"]
        if name == "poison":
            assert truth["counts"]["dead_letters"] == 200
        if name == "partition":  # held back: they arrive at the end of the cut
            late = [ln for ln in stream.lines if ln.event and ln.event["source_id"] in sources
                    and ln.arrival - ln.event["event_time"] > 10_000]
            release = {ln.arrival for ln in late}
            assert len(release) == 1 and abs(release.pop() - truth["end"]["arrival_ms"]) < 1_000
