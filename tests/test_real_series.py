"""A real annotated series (``benchmarks/realseries.py``): river's Water Flow, the hourly
flow through a pipeline branch, whose documentation names three low-value moments
(water losses or maintenance) and a small peak. Replayed through the CLI into a real
embedded store, scored by the alarms an operator reads from ``drift_events``.

What a user relies on: a flow that falls from about 101 to 24 l/s for a day is an alarm
within hours, and the weeks of normal flow around it raise none. Before the held test
(``operators.changes``: a level held beyond the clip for 4 readings), this series raised
no alarm at all: the level CUSUM counts each reading at most to its clip, 4 sd, and needed
about 60 readings, longer than each low moment lasted. The small peak is one reading,
and one reading is no change of level: it is not looked for.
"""

from __future__ import annotations

from benchmarks.realseries import run, water_flow


def test_the_low_moments_of_a_real_pipeline_flow_are_found_within_hours(tmp_path):
    result = run(water_flow(), tmp_path)
    low = [a for a in result["anomalies"] if a["anomaly"].startswith("low value moment")]
    assert len(low) == 3, result
    for a in low:
        assert a["found"] and a["delay_h"] <= 4.0, result
    assert result["false"] == 0, result


def test_series_in_nabs_layout_are_read_with_their_windows_and_scored(tmp_path):
    from benchmarks.realseries import nab, score

    (tmp_path / "data" / "realKnownCause").mkdir(parents=True)
    rows = ["timestamp,value"] + [f"2014-04-01 {h:02d}:00:00,{20.0 + (h >= 12) * 5}"
                                  for h in range(24)]
    (tmp_path / "data" / "realKnownCause" / "tank.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "combined_windows.json").write_text(
        '{"realKnownCause/tank.csv": [["2014-04-01 11:00:00.000000", '
        '"2014-04-01 15:00:00.000000"]]}')
    [series] = nab(tmp_path, None)
    assert series.name == "tank" and len(series.readings) == 24
    assert series.readings[12] == (1396353600000, 25.0)  # naive times are UTC, as NAB's
    window = series.anomalies[0]
    inside, outside = window.start_ms + 3_600_000, window.end_ms + 3_600_000
    result = score(series, [("tank", "value:value", inside), ("tank", "value:value", outside)])
    assert result["anomalies"][0]["found"] and result["anomalies"][0]["delay_h"] == 1.0
    assert result["false"] == 1
