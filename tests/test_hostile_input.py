"""Hostile input: whatever arrives, no crash, every bad message a dead letter with a
specific reason, every good one decided once.

Property tests at the decoder (hypothesis), then a 100,000-message mixed stream end
to end through the CLI, scored from the store.
"""

from __future__ import annotations

import json
import random

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from operators import events as ev
from operators.events import DeadLetter, EventDecoder, OutcomeEvent, SensorEvent
from tests.conftest import cli, query_scalar

# every reason a dead letter may carry: a generic one would hide what was wrong
REASONS = {"invalid_json", "not_an_object", "missing_field", "bad_source_id", "bad_time",
           "bad_type", "empty_values", "bad_value", "bad_value_name", "too_many_values",
           "bad_seq", "bad_kind", "oversized", "duplicate_key", "too_deep", "empty_message",
           "bad_decision_id"}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) |
    st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                               max_size=4),
    max_leaves=20)
near_events = st.fixed_dictionaries({}, optional={
    "source_id": st.text(max_size=140) | json_values,
    "event_time": st.integers(-5, 2**62) | st.text(max_size=30) | json_values,
    "values": st.dictionaries(st.text(max_size=130), json_values, max_size=5) | json_values,
    "seq": st.integers(-5, 2**65) | json_values,
    "kind": st.text(max_size=70) | json_values,
    "arrival_time": st.integers(-5, 2**62) | json_values,
    "extra": json_values,
})


def assert_well_formed(result: SensorEvent | OutcomeEvent | DeadLetter) -> None:
    if isinstance(result, DeadLetter):
        assert result.reason.split(":")[0] in REASONS, result.reason
        assert len(result.reason) <= 300
        return
    if isinstance(result, SensorEvent):
        assert result.source_id.isprintable() and 0 < len(result.source_id) <= 128
        assert result.values and all(type(v) in (int, float) for v in result.values.values())
        assert all(name.isprintable() and 0 < len(name) <= 128 for name in result.values)
        assert 0 <= result.event_ms < ev.MAX_EPOCH_MS


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_raise(payload):
    assert_well_formed(EventDecoder().decode("o", payload))


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(near_events)
def test_objects_that_almost_follow_the_contract_decode_or_dead_letter(obj):
    payload = json.dumps(obj, ensure_ascii=False).encode("utf-8", "surrogatepass")
    result = EventDecoder().decode("o", payload)
    assert_well_formed(result)
    if isinstance(result, SensorEvent):  # what the decoder accepted follows the contract
        assert type(obj["source_id"]) is str and type(obj["values"]) is dict


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.sampled_from(["source_id", "event_time", "values", "v"]), st.integers(0, 2),
       st.sampled_from(["", " ", "\t"]))
def test_a_repeated_key_is_refused_wherever_it_is(key, where, space):
    """Fails without _may_repeat_keys / _repeated_key in operators/events.py (the last
    copy silently won); the whitespace cases fail if the cheap test trusts `":` alone."""
    values = '{"v": 1, "v": 2}' if key == "v" else '{"v": 1}'
    fields = [f'"source_id"{space}:"a"', f'"event_time"{space}:1', f'"values"{space}:{values}']
    if key != "v":
        again = {"source_id": '"b"', "event_time": "2", "values": '{"v": 3}'}[key]
        fields.insert(where, f'"{key}"{space}:{again}')
    result = EventDecoder().decode("o", ("{" + ",".join(fields) + "}").encode())
    assert isinstance(result, DeadLetter) and result.reason.startswith("duplicate_key"), result


@pytest.mark.parametrize("payload", [
    b'{"source_id":"a","event_time":1,"kind":"telemetry","kind":"telemetry","values":{"x":1}}',
    b'{"source_id":"a","kind":"telemetry","event_time":1,"values":{"x":1,"x":2}}',
    b'{"source_id":"a","kind":"telemetry","event_time":1,"event_time":2,"values":{"x":1}}',
])
def test_a_repeated_key_beside_an_explicit_default_kind_is_refused(payload):
    """The fast path counts an explicit ``"kind":"telemetry"`` as a key; the first
    case is accepted (the last copy wins) if it counts every copy."""
    result = EventDecoder().decode("o", payload)
    assert isinstance(result, DeadLetter) and result.reason.startswith("duplicate_key"), result
    plain = b'{"source_id":"a","kind":"telemetry","event_time":1,"values":{"x":1}}'
    assert isinstance(EventDecoder().decode("o", plain), SensorEvent)


def test_limits_are_configuration():
    wide = {"source_id": "a", "event_time": 1, "values": {f"v{i}": i for i in range(20)}}
    assert isinstance(EventDecoder().decode("o", orjson.dumps(wide)), SensorEvent)
    tight = EventDecoder(max_values=10, max_name=2)
    assert tight.decode("o", orjson.dumps(wide)).reason.startswith("too_many_values")
    long_name = {"source_id": "a", "event_time": 1, "values": {"abc": 1}}
    assert tight.decode("o", orjson.dumps(long_name)).reason.startswith("bad_value_name")
    assert EventDecoder(max_bytes=50).decode("o", orjson.dumps(wide)).reason.startswith(
        "oversized")


# -- a mixed stream end to end ---------------------------------------------------------

def nested(depth: int) -> list:
    inner: list = []
    for _ in range(depth):
        inner = [inner]
    return inner


def hostile_lines(rng: random.Random, n: int) -> list[tuple[bytes, str]]:
    """``n`` bad lines, each with the reason it must get."""
    def event(**fields) -> dict:
        return {"source_id": "evil", "event_time": 1_767_225_600_000,
                "values": {"v": 1.0}, **fields}

    makers = [
        (lambda: bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 40))).replace(
            b"\n", b" ").replace(b"\r", b" ") + b"}", "invalid_json"),
        (lambda: b"[" * 2000 + b"]" * 2000, "invalid_json"),
        (lambda: orjson.dumps(event(x=nested(40))), "too_deep"),
        (lambda: b'{"source_id":"evil","source_id":"good","event_time":1,"values":{"v":1}}',
         "duplicate_key"),
        (lambda: orjson.dumps(event(values={"v": True})), "bad_value"),
        (lambda: b'{"source_id":"evil","event_time":1,"values":{"v":NaN}}', "invalid_json"),
        (lambda: b'{"source_id":"evil","event_time":1,"values":{"v":1e999}}', "invalid_json"),
        (lambda: orjson.dumps(event(source_id="evil\u202egnp.exe")), "bad_source_id"),
        (lambda: orjson.dumps(event(source_id="evil\x00")), "bad_source_id"),
        (lambda: b'{"source_id":"evil\\ud800","event_time":1,"values":{"v":1}}',
         "invalid_json"),
        (lambda: orjson.dumps(event(values={"v\u200f": 1})), "bad_value_name"),
        (lambda: orjson.dumps(event(event_time=10**17)), "bad_time"),
        (lambda: orjson.dumps(event(event_time="yesterday")), "bad_time"),
        (lambda: orjson.dumps(event(values={f"v{i}": i for i in range(300)})),
         "too_many_values"),
        (lambda: orjson.dumps(event(source_id="x'; DROP TABLE decisions; --" * 5)),
         "bad_source_id"),
        (lambda: b"null", "not_an_object"),
    ]
    out = []
    for _ in range(n):
        make, reason = rng.choice(makers)
        out.append((make(), reason))
    return out


def test_a_100k_mixed_stream_decides_every_good_message_once(tmp_path):
    clean = tmp_path / "clean.jsonl"
    assert cli("simulate", "--out", str(clean), "--events", "90000", "--seed",
               "3").returncode == 0
    good = clean.read_bytes().splitlines()
    rng = random.Random(5)
    bad = hostile_lines(rng, 10_000)
    # SQL-looking and control-character names in good events too: stored as they are
    sneaky = [orjson.dumps({**orjson.loads(line), "source_id": name})
              for line, name in zip(good[:2], ["o'hara\"; DROP TABLE decisions --",
                                              "{sources:Array(String)}"], strict=True)]
    lines: list[bytes] = []
    expected: dict[int, str] = {}
    queue = sneaky + good[2:]
    bad_at = sorted(rng.sample(range(len(queue) + len(bad)), len(bad)))
    it_good, it_bad = iter(queue), iter(bad)
    for i in range(len(queue) + len(bad)):
        if bad_at and bad_at[0] == i:
            bad_at.pop(0)
            raw, reason = next(it_bad)
            expected[i + 1] = reason
            lines.append(raw)
        else:
            lines.append(next(it_good))
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_bytes(b"\n".join(lines) + b"\n")
    assert len(lines) == 100_000

    dsn = f"chdb://{tmp_path}/store"
    run = cli("replay", str(mixed), "--store", dsn, "--quiet")
    assert run.returncode == 0, run.stderr[-2000:]
    fast = "FROM decisions FINAL WHERE path IN ('fast', 'fallback')"
    assert int(query_scalar(dsn, f"SELECT count() {fast}")) == len(queue)
    assert int(query_scalar(dsn, "SELECT count() FROM decisions FINAL WHERE source_id IN "
                                 "('o''hara\"; DROP TABLE decisions --', "
                                 "'{sources:Array(String)}')")) == 2
    got = cli("query", "SELECT origin, reason FROM dead_letters FINAL", "--store", dsn,
              "--format", "csv")
    assert got.returncode == 0, got.stderr
    reasons = {}
    for row in got.stdout.strip().splitlines()[1:]:
        origin, reason = row.split(",", 1)
        reasons[int(origin.strip('"').rsplit(":", 1)[1])] = reason.strip('"').split(":")[0]
    assert len(reasons) == len(expected) == 10_000
    wrong = {line: (reasons.get(line), why) for line, why in expected.items()
             if reasons.get(line) != why}
    assert not wrong, list(wrong.items())[:10]
