from __future__ import annotations

import math

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from operators.events import DeadLetter, EventDecoder, OutcomeEvent, SensorEvent

decoder = EventDecoder(max_bytes=4096)


def decode(obj: object) -> SensorEvent | OutcomeEvent | DeadLetter:
    return decoder.decode("test:1", orjson.dumps(obj) if not isinstance(obj, bytes) else obj)


GOOD = {"source_id": "s-1", "event_time": "2026-01-01T00:00:01Z", "values": {"v": 1.5}}


def test_minimal_event_gets_defaults():
    event = decode(GOOD)
    assert isinstance(event, SensorEvent)
    assert event.event_ms == 1_767_225_601_000
    assert (event.kind, event.seq, event.arrival_ms, event.extra) == ("telemetry", None, None, None)


def test_epoch_ms_offsets_and_extra_fields_are_kept():
    event = decode({**GOOD, "event_time": "2026-01-01T01:00:01+01:00", "seq": 3,
                    "arrival_time": 1_767_225_601_250, "site": "north", "kind": "alarm"})
    assert event.event_ms == 1_767_225_601_000 and event.arrival_ms == 1_767_225_601_250
    assert event.extra == {"site": "north"} and event.kind == "alarm" and event.seq == 3


def test_outcome_event():
    event = decode({"decision_id": "d-1", "outcome": "collision", "label": 1,
                    "event_time": 5})
    assert isinstance(event, OutcomeEvent) and event.label == 1.0


@pytest.mark.parametrize("payload, reason", [
    (b"{not json", "invalid_json"),
    (b"[1, 2]", "not_an_object"),
    ({k: v for k, v in GOOD.items() if k != "source_id"}, "missing_field: source_id"),
    ({k: v for k, v in GOOD.items() if k != "event_time"}, "missing_field: event_time"),
    ({k: v for k, v in GOOD.items() if k != "values"}, "missing_field: values"),
    ({**GOOD, "source_id": ""}, "bad_source_id"),
    ({**GOOD, "source_id": "x" * 129}, "bad_source_id"),
    ({**GOOD, "source_id": 7}, "bad_source_id"),
    ({**GOOD, "event_time": "yesterday"}, "bad_time"),
    ({**GOOD, "event_time": "2026-01-01T00:00:00"}, "bad_time"),  # no offset
    ({**GOOD, "event_time": -5}, "bad_time"),
    ({**GOOD, "event_time": 1.7e18}, "bad_time"),  # nanoseconds by mistake
    ({**GOOD, "event_time": True}, "bad_type"),
    ({**GOOD, "values": {}}, "empty_values"),
    ({**GOOD, "values": [1]}, "bad_type"),
    ({**GOOD, "values": {"v": "1.5"}}, "bad_value"),
    ({**GOOD, "values": {"v": True}}, "bad_value"),
    ({**GOOD, "values": {"v": None}}, "bad_value"),
    ({**GOOD, "seq": -1}, "bad_seq"),
    ({**GOOD, "seq": 1.5}, "bad_seq"),
    ({**GOOD, "kind": ""}, "bad_kind"),
    ({**GOOD, "arrival_time": "soon"}, "bad_time"),
    (b'{"source_id":"s","event_time":1,"values":{"v":NaN}}', "invalid_json"),
    (b"x" * 5000, "oversized"),
    ({"decision_id": "d", "outcome": "ok", "label": "high", "event_time": 1}, "bad_value"),
])
def test_contract_violations_become_dead_letters(payload, reason):
    result = decode(payload)
    assert isinstance(result, DeadLetter)
    assert result.reason.startswith(reason), result.reason
    assert result.origin == "test:1" and result.raw


def test_dict_payload_with_nan_is_rejected_not_passed_on():
    result = decoder.decode("sim:0:0", {**GOOD, "values": {"v": math.nan}})
    assert isinstance(result, DeadLetter) and result.reason.startswith("bad_value")


def test_batch_keeps_order_and_splits_kinds():
    out = decoder.decode_batch([("a", orjson.dumps({**GOOD, "seq": i})) for i in range(3)]
                               + [("b", b"oops")])
    assert [e.seq for e in out.events] == [0, 1, 2]
    assert [d.origin for d in out.dead] == ["b"]


@given(st.binary(max_size=300))
def test_decoder_never_raises_on_arbitrary_bytes(raw):
    assert isinstance(decoder.decode("fuzz", raw), (SensorEvent, OutcomeEvent, DeadLetter))


scalars = (st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1)
           | st.floats(allow_nan=False) | st.text(max_size=5))
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                  max_size=3), max_leaves=8)


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.dictionaries(st.sampled_from(["source_id", "event_time", "values", "seq", "kind",
                                        "arrival_time", "decision_id", "x"]), json_values))
def test_decoder_never_raises_on_arbitrary_objects(obj):
    result = decoder.decode("fuzz", orjson.dumps(obj))
    if isinstance(result, SensorEvent):
        assert result.values and all(math.isfinite(v) for v in result.values.values())


def test_rfc3339_milliseconds_are_exact():
    from datetime import datetime, timedelta, timezone

    from operators.events import parse_time_ms

    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    for ms in range(0, 100_000, 7):
        text = (start + timedelta(milliseconds=ms)).isoformat().replace("+00:00", "Z")
        assert parse_time_ms(text) == 1_767_225_600_000 + ms


def test_decision_ids_are_rfc_4122_uuid5_of_their_identity():
    import uuid

    from hypothesis import given
    from hypothesis import strategies as st

    from operators.ids import NAMESPACE, decision_id

    @given(st.text(min_size=1), st.integers(min_value=0, max_value=2**63))
    def check(source: str, seq: int) -> None:
        expected = uuid.uuid5(NAMESPACE, f"{source}\x1fmotion\x1fseq\x1f{seq}")
        assert decision_id(source, "motion", seq, 0, "") == str(expected)

    check()


def test_an_event_survives_pickling_whole():
    """Events cross to a shard in another process pickled: every field must arrive."""
    import pickle

    event = EventDecoder().decode(
        "kafka:t/0/7", b'{"source_id": "s1", "event_time": 5, "seq": 3, "kind": "k", '
                       b'"arrival_time": 9, "values": {"v": 1.5}, "note": "x"}',
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
    assert isinstance(event, SensorEvent)
    copy = pickle.loads(pickle.dumps(event, protocol=pickle.HIGHEST_PROTOCOL))
    assert copy == event and copy is not event
    assert (copy.arrival_ms, copy.extra, copy.trace_parent) == (9, {"note": "x"},
                                                                 event.trace_parent)


def test_the_fast_path_decodes_exactly_as_the_full_validation():
    """The typed fast path (msgspec) takes only what the full validation accepts, and
    gives the same event; anything else falls through to the validation and its dead
    letter reason. Valid events, each with at most one field set to an edge or a wrong
    value; drop one of the fast path's checks of ranges and lengths and this fails."""
    import orjson

    from operators import events as ev

    times = st.integers(0, 2**41)
    printable = st.characters(blacklist_categories=("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp",
                                                    "Zs"))
    valid = st.fixed_dictionaries(
        {"source_id": st.text(printable, min_size=1, max_size=4), "event_time": times,
         "values": st.dictionaries(st.text(printable, min_size=1, max_size=3),
                                   st.floats(-1e6, 1e6), min_size=1, max_size=3)},
        optional={"seq": st.integers(0, 2**63),
                  "kind": st.text(printable, min_size=1, max_size=4), "arrival_time": times})
    edges = {
        "source_id": st.one_of(st.just(""), st.text(min_size=127, max_size=130),
                               st.integers(-5, 5)),
        "event_time": st.one_of(st.integers(-3, 0), st.floats(0, 1e12),
                                st.integers(ev.MAX_EPOCH_MS - 2, ev.MAX_EPOCH_MS + 2),
                                st.just("2026-01-01T00:00:00Z"), st.booleans()),
        "values": st.one_of(st.just({}), st.lists(st.integers(-5, 5), max_size=2),
                            st.dictionaries(st.text(max_size=2), st.one_of(
                                st.booleans(), st.none(), st.text(), st.floats(),
                                st.integers(-2**63, 2**63 - 1)), min_size=1, max_size=2)),
        "seq": st.one_of(st.integers(-3, -1), st.integers(2**64 - 2, 2**64 - 1),
                         st.booleans(), st.none()),
        "kind": st.one_of(st.just(""), st.text(min_size=63, max_size=66), st.integers(0, 5)),
        "arrival_time": st.one_of(st.integers(-3, -1), st.none(), st.just("2026-01-01Z"),
                                  st.integers(ev.MAX_EPOCH_MS - 2, ev.MAX_EPOCH_MS + 2)),
        "note": st.integers(-5, 5),
    }
    taken = []

    @settings(max_examples=1_500, suppress_health_check=[HealthCheck.too_slow])
    @given(valid, st.sampled_from([None, *edges]), st.data())
    def check(obj: dict, edge: str | None, data: st.DataObject) -> None:
        if edge is not None:
            obj = {**obj, edge: data.draw(edges[edge])}
        payload = orjson.dumps(obj)
        fast = ev._fast(payload, "o", None, ev.DEFAULT_MAX_VALUES, ev.DEFAULT_MAX_NAME)
        full = ev.EventDecoder().decode("o", orjson.loads(payload))
        if fast is not None:
            taken.append(edge)
            assert fast == full
        elif isinstance(full, SensorEvent):  # fell through, yet valid: an extra field,
            # text times, or text that looks like a key's end (the repeated-key test
            # then needs the exact parse)
            defaults = obj.get("seq", 0) is None or obj.get("arrival_time", 0) is None or \
                obj.get("kind") == "telemetry"
            assert edge in ("note", "event_time", "arrival_time") or defaults or \
                ev._may_repeat_keys(payload, ev._shape(obj)[0]), obj

    check()
    assert taken.count(None) > 100 and len(set(taken)) > 3  # the fast path was exercised


def test_json_as_python_writes_it_takes_the_fast_path_and_repeats_still_fail():
    """``json.dumps`` puts a space after every colon: such lines, with the default kind
    spelled out, decode on the fast path to the same event as compact ones; a key
    written twice in that spelling is still a dead letter with its reason."""
    import json

    from operators import events as ev

    obj = {"source_id": "robot-007", "event_time": 1767225600000, "seq": 0,
           "kind": "telemetry", "values": {"x": 41.57, "speed": 0.747},
           "arrival_time": 1767225600004}
    spaced = json.dumps(obj).encode()
    fast = ev._fast(spaced, "o", None, ev.DEFAULT_MAX_VALUES, ev.DEFAULT_MAX_NAME)
    assert fast is not None
    assert fast == EventDecoder().decode("o", json.dumps(obj, separators=(",", ":")).encode())
    twice = spaced[:-1] + b', "kind": "telemetry"}'
    assert ev._fast(twice, "o", None, ev.DEFAULT_MAX_VALUES, ev.DEFAULT_MAX_NAME) is None
    dead = EventDecoder().decode("o", twice)
    assert isinstance(dead, DeadLetter) and dead.reason.startswith("duplicate_key: 'kind'")
