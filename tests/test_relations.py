"""A value against what the source's other values say it should be (operators.relations).

The streams are synthetic and of our own making on purpose: a load that each unit
switches between two duties, a temperature that follows the load with a lag (a
first-order response, as a motor's does), positions that wander and that nothing
explains. What a user relies on: a slow drift of one unit's temperature, inside
its own wander and its peers' range, is that unit's ``relation:`` alarm with its
onset; a fleet whose values all keep their relation raises nothing; a value the
others do not explain (a position) is not judged at all.
"""

from __future__ import annotations

import random

import numpy as np

from operators.changes import Change
from operators.drift import DriftConfig, DriftMonitor
from operators.relations import RelationWatch, _Model, _Source

UNITS = 8
SAMPLES = 5_000  # per unit, one every 100 ms


def _stream(ramp_unit: int | None = None, ramp_from: int = 3_000, seed: int = 1,
            warm_from: int | None = None, vibration_from: int | None = None):
    """(source, values, event_ms) in time order: each unit's load switches between a light
    and a heavy duty at random (every 30 s on average), its temperature follows the load
    with a lag of 6 s, and its position wanders; ``ramp_unit``'s temperature drifts 24
    degrees (the swing between its duties) over 2 minutes. From ``warm_from`` every
    unit runs warmer at once, each by its own amount (10 to 66 degrees). With
    ``vibration_from``, each unit also reports a vibration that nothing explains (fast
    noise with a 1 s memory), nearly still until then and 100 times as wide after."""
    rng = random.Random(seed)
    duty = [rng.random() < 0.5 for _ in range(UNITS)]
    temps = [50.0] * UNITS
    pos = [0.0] * UNITS
    vib = [0.0] * UNITS
    for i in range(SAMPLES):
        for u in range(UNITS):
            if rng.random() < 1 / 300:
                duty[u] = not duty[u]
            load = (0.9 if duty[u] else 0.3) + rng.gauss(0, 0.05)
            temps[u] += (35 + 40 * load - temps[u]) / 60
            pos[u] += rng.gauss(0, 1)
            temp = temps[u] + rng.gauss(0, 0.3)
            if warm_from is not None and i >= warm_from:
                temp += 10.0 + 8.0 * u
            if u == ramp_unit and i >= ramp_from:
                temp += 24.0 * min(1.0, (i - ramp_from) / 1_200)
            values = {"load": load, "temp_c": temp, "x": pos[u]}
            if vibration_from is not None:
                vib[u] = 0.9 * vib[u] + rng.gauss(0, 0.01 if i < vibration_from else 1.0)
                values["vib"] = vib[u]
            yield f"unit-{u}", values, i * 100


def _alarms(stream, config: DriftConfig | None = None):
    monitor = DriftMonitor(config or DriftConfig(ignore=("x",)))
    for source, values, ms in stream:
        monitor.observe(source, values, ms, now=ms)
    return monitor.drain_alarms()


def test_a_slow_ramp_against_what_the_load_explains_is_that_units_relation_alarm():
    alarms = _alarms(_stream(ramp_unit=3))
    relation = [a for a in alarms if a.signal.startswith("relation:")]
    assert relation, [(a.source_id, a.signal) for a in alarms]
    first = relation[0]
    assert (first.source_id, first.signal, first.direction, first.detector) == \
        ("unit-3", "relation:temp_c", "up", "relation")
    # the ramp runs from 300 s to 420 s
    assert 300_000 <= first.onset_ms <= first.event_ms <= 420_000 + 30_000
    assert {a.source_id for a in relation} == {"unit-3"}


def test_a_fleet_that_keeps_its_relations_raises_no_relation_alarm():
    for seed in (1, 2, 3):
        alarms = _alarms(_stream(seed=seed))
        assert not [a for a in alarms if a.signal.startswith("relation:")], seed


def test_a_fleet_that_warms_together_is_its_fleet_alarm_not_one_relation_alarm_per_unit():
    alarms = _alarms(_stream(warm_from=3_000))
    assert [a.signal for a in alarms if a.signal == "fleet:temp_c" and
            300_000 <= a.event_ms <= 310_000]
    assert not [(a.source_id, a.event_ms) for a in alarms if a.signal.startswith("relation:")]


def test_values_that_explain_nothing_neither_hide_a_ramp_nor_raise_alarms():
    """Beside the load and the temperature, a position that wanders and a vibration that
    nothing explains, still at first or from the start, then 100 times as wide from
    60 s. Fitted on every value, the temperature's model read both (their coefficients
    noise) and was never judged, or judged and then off on every unit at once when the
    vibration woke: the ramp was found in 1 of these 8 streams. Now a value enters a
    model only when it explains part of what the others leave, and a change two thirds
    of the fleet show at once is the model's: no relation alarm on any unit but the
    ramped one, and the ramp found by 480 s (it ends at 420 s) in 7 of 8 (in all 8 since
    features are chosen across halves of the sources: the vibration no longer enters
    the temperature's model by chance; 35 of 36 over seeds 1-12 with no vibration, a
    still one and one that wakes at 60 s, against 33 of 36 and 1 false alarm before)."""
    found = 0
    for vibration_from in (0, 600):
        for seed in (1, 2, 3, 4):
            alarms = _alarms(_stream(ramp_unit=3, seed=seed, vibration_from=vibration_from),
                             DriftConfig())
            relation = [(a.source_id, a.signal, a.event_ms) for a in alarms
                        if a.signal.startswith("relation:")]
            assert {source for source, _, _ in relation} <= {"unit-3"}, relation
            found += any(300_000 <= ms <= 480_000 for _, _, ms in relation)
    assert found >= 7, found


def test_a_vibration_that_explains_nothing_is_not_a_feature_of_the_temperature():
    """A vibration with a 1 s memory, smoothed over 25 s, wanders slowly, and so does the
    temperature's own noise: over a fleet's first minute the two correlate by chance on
    the blocks a fit sees. Chosen by what they explain on those blocks, the vibration
    was in the temperature's model in 15 of the 48 fits of these 8 streams (seed 5's to
    the end); chosen by how a fit to half the sources predicts the other half, it is in
    none of the models the streams end with."""
    for seed in range(1, 9):
        monitor = DriftMonitor(DriftConfig())
        for source, values, ms in _stream(seed=seed, vibration_from=600):
            monitor.observe(source, values, ms, now=ms)
        models = [m for m in monitor._relations._models.values() if "vib" in m.names]
        assert models, seed
        for model in models:
            temp, vib = model.names.index("temp_c"), model.names.index("vib")
            assert model.coef is not None, seed
            assert not np.any(model.coef[temp, 1 + vib::model.m]), (seed, model.coef[temp])


def test_a_relation_change_is_dropped_as_the_fleets_only_when_the_fleet_went_its_way():
    """The rule itself, on a fleet whose sources' median move from their own baselines
    stood at 0 and went to 3 residual sds at 150 s: a source whose relation changed at
    150.3 s by up to 4 times that, the same way, moved with it; one that went the other
    way, 5 times as far, or began a minute later (a ramp while the fleet stood still) did
    not. A change whose excursion began before the move and was found after it went with
    it too, and so did one found within 5 s of its model's reset."""
    watch = RelationWatch(min_sources=5)
    model = _Model(("load", "temp_c"))
    source = _Source()
    source.model = model
    watch._sources["unit-1"] = source
    for ms in range(100_000, 200_000, 1_000):
        model.moved.append((ms, [0.0, 0.0 if ms < 150_000 else 3.0]))

    def change(onset_ms: int, level: float) -> Change:  # in residual sds
        return Change("level", "up" if level > 0 else "down", level, 10, 10, onset_ms,
                      0.0, 1.0, 0.0, abs(level), 6.0)

    assert watch.went_with("unit-1", "temp_c", change(150_300, 11.0), 5_000)
    assert not watch.went_with("unit-1", "temp_c", change(150_300, 15.0), 5_000)
    assert not watch.went_with("unit-1", "temp_c", change(150_300, -11.0), 5_000)
    assert not watch.went_with("unit-1", "temp_c", change(210_000, 11.0), 5_000)
    assert not watch.went_with("unit-1", "load", change(150_300, 2.0), 5_000)
    assert not watch.went_with("unit-9", "temp_c", change(150_300, 11.0), 5_000)  # unknown
    # an excursion placed 40 s before the move, found 5 s after it, went with it; found
    # before the move, it did not
    assert watch.went_with("unit-1", "temp_c", change(110_000, 11.0), 5_000, 155_000)
    assert not watch.went_with("unit-1", "temp_c", change(110_000, 11.0), 5_000)
    assert not watch.went_with("unit-1", "temp_c", change(110_000, 11.0), 5_000, 140_000)
    # a change found within the hold of its model's reset (two thirds of its sources off
    # the model at once) was the model's, whichever way it went
    watch._resets[("", ("load", "temp_c"))] = 212_000
    assert watch.went_with("unit-1", "temp_c", change(210_000, -11.0), 5_000, 215_000)
    assert not watch.went_with("unit-1", "temp_c", change(210_000, -11.0), 5_000, 218_000)


def test_a_value_nothing_explains_is_not_judged():
    watch = RelationWatch(min_sources=5)
    for source, values, ms in _stream(ramp_unit=None):
        watch.observe(source, values, ms)
    model = next(iter(watch._models.values()))
    judged = {model.names[j] for j in model.judged}
    assert "temp_c" in judged and "x" not in judged, judged


def test_a_fit_to_a_fleets_first_seconds_does_not_refuse_the_range_it_shows_later():
    """A vibration that is nearly still for 25 s and then swings 100 times as wide: the
    first fit's residual sd for it is tiny, and every block after is beyond 4 of them.
    Refusing them all would stop the model at its first fit (it did: about 250 blocks of
    5,000, nothing judged); most blocks off the fit are the fit's fault, so it learns
    on, refits as its data doubles and judges what it explains."""
    for seed in (1, 2, 3):
        watch = RelationWatch(min_sources=5, ignore=("x",))
        for source, values, ms in _stream(seed=seed, vibration_from=250):
            watch.observe(source, values, ms)
        (model,) = watch._models.values()
        # fitted four times, the last on six times the blocks in when the vibration woke
        assert model.n >= 2_000 and model.fitted_at >= 1_500, (seed, model.n, model.fitted_at)
        assert model.judged, seed


def test_relations_off_and_a_retired_source_forgotten():
    alarms = _alarms(_stream(ramp_unit=3), DriftConfig(ignore=("x",), relation_block=0))
    assert not [a for a in alarms if a.signal.startswith("relation:")]
    watch = RelationWatch(min_sources=5)
    for source, values, ms in _stream():
        watch.observe(source, values, ms)
    watch.forget("unit-3")
    model = next(iter(watch._models.values()))
    assert "unit-3" not in watch._sources and "unit-3" not in model.latest
    assert all("unit-3" not in records.by_source for records in model.records)
