"""The public event contract: decode, validate, and turn failures into dead letters.

A sensor event is one JSON object::

    {"source_id": "sensor-7", "event_time": "2026-01-01T00:00:00.250Z",
     "values": {"battery": 41.5, "speed": 1.2}, "seq": 17, "kind": "telemetry"}

``source_id`` (1-128 printable characters), ``event_time`` (RFC 3339 with an
offset, or epoch milliseconds) and ``values`` (names of 1-128 printable characters
to finite numbers, at least one, at most 256) are required; ``seq`` (integer >= 0),
``kind`` (default ``telemetry``) and ``arrival_time`` (replay only) are optional;
unknown fields are kept in ``extra``. "Printable" excludes control characters (NUL
among them), bidirectional and other format marks (a right-to-left override makes
an ID read differently than it is), surrogates and unassigned code points. A key
repeated within one object is refused: parsers disagree on which copy counts. An
outcome event carries ``decision_id``, ``outcome``, ``label`` and ``event_time``.
Anything else becomes a :class:`DeadLetter` with a reason, its
origin and the raw bytes; decoding never raises on bad input.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Union

import msgspec
import orjson

from operators.fastdecode import MAX_EPOCH_MS, MAX_KIND, MAX_SOURCE_ID, fast_event, fast_events
from operators.fastdecode import may_repeat_keys as _may_repeat_keys
from operators.sensorevent import SensorEvent

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_NAME",
    "DEFAULT_MAX_VALUES",
    "MAX_EPOCH_MS",
    "DeadLetter",
    "Decoded",
    "EventDecoder",
    "OutcomeEvent",
    "SensorEvent",
    "parse_time_ms",
]

DEFAULT_MAX_BYTES = 1 << 20
DEFAULT_MAX_VALUES = 256
DEFAULT_MAX_NAME = 128
MAX_DEPTH = 32  # objects and arrays within an event, unknown fields included

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MS = timedelta(milliseconds=1)
Payload = Union[bytes, str, dict, None]  # noqa: UP007 - a runtime alias on Python 3.10
# (origin, payload) or (origin, payload, W3C traceparent header)
Record = Union[tuple[str, Payload], tuple[str, Payload, str | None]]  # noqa: UP007
_SENSOR_KEYS = frozenset({"source_id", "event_time", "values", "seq", "kind", "arrival_time"})
_OUTCOME_KEYS = frozenset({"decision_id", "outcome", "label", "event_time"})


@dataclass(slots=True)
class OutcomeEvent:
    """Feedback on an earlier decision: what happened, and a numeric label."""

    decision_id: str
    outcome: str
    label: float
    event_ms: int
    origin: str = ""
    extra: dict[str, Any] | None = None


@dataclass(slots=True)
class DeadLetter:
    """Input that broke the contract, kept with why and where it came from."""

    origin: str
    reason: str
    raw: bytes


@dataclass(slots=True)
class Decoded:
    """The result of decoding one batch, split by kind."""

    events: list[SensorEvent] = field(default_factory=list)
    outcomes: list[OutcomeEvent] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    # for each dead letter, how many events of the batch came before it (its place on
    # the replay clock: the arrival of the event read just before it)
    dead_after: list[int] = field(default_factory=list)


class _Wire(msgspec.Struct, forbid_unknown_fields=True):
    """The common shape of a sensor event, typed, for the fast path of decoding."""

    source_id: str
    event_time: int | str
    values: dict[str, int | float]
    seq: int | None = None
    # UNSET when absent: an explicit kind is one more key for the repeated-key check
    kind: str | msgspec.UnsetType = msgspec.UNSET
    arrival_time: int | str | None = None


_WIRE = msgspec.json.Decoder(_Wire)


def _fast(payload: bytes, origin: str, trace_parent: str | None, max_values: int,
          max_name: int) -> SensorEvent | None:
    """A sensor event in the common shape (no unknown fields, epoch-ms times), typed
    by msgspec in one pass; ``None`` for anything else, which the full
    validation then decodes or dead-letters with its reason."""
    return fast_event(payload, origin, trace_parent, _WIRE.decode, msgspec.UNSET,
                      max_values, max_name)


def _repeated_key(payload: bytes | str) -> str | None:
    """The first key that appears twice in one object of ``payload``, if any.

    >>> _repeated_key(b'{"a": 1, "b": {"c": 2, "c": 3}}'), _repeated_key(b'{"a" : 1}')
    ('c', None)
    """
    found: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict:
        seen: set[str] = set()
        for key, _ in items:
            if key in seen and not found:
                found.append(key)
            seen.add(key)
        return dict(items)

    try:
        json.loads(payload, object_pairs_hook=pairs)
    except ValueError:  # orjson parsed it; where the two disagree, orjson decides
        return None
    return found[0] if found else None


def _shape(obj: Any) -> tuple[int, int]:
    """Keys in every object of a parsed JSON value, and how deep it nests (iterative:
    JSON may nest deeper than Python recurses).

    >>> _shape({"a": 1, "b": [{"c": 2}, {"d": {"e": 3}}]})
    (5, 4)
    """
    keys, deepest, todo = 0, 0, [(obj, 1)]
    while todo:
        item, depth = todo.pop()
        deepest = max(deepest, depth)
        inner = item.values() if type(item) is dict else item
        keys += len(item) if type(item) is dict else 0
        todo.extend((v, depth + 1) for v in inner if type(v) in (dict, list))
    return keys, deepest


def _text_problem(text: str) -> str | None:
    r"""What makes ``text`` unfit for an ID or a name, or ``None``.

    >>> _text_problem("unit-7"), _text_problem("unit\u202e7"), _text_problem("a\x00")
    (None, 'U+202E at 4', 'U+0000 at 1')
    """
    if text.isprintable():
        return None
    at = next(i for i, c in enumerate(text) if not c.isprintable())
    return f"U+{ord(text[at]):04X} at {at}"


class _Invalid(Exception):
    """Internal: carries a dead-letter reason out of the validators."""


def parse_time_ms(value: Any, name: str = "event_time") -> int:
    """RFC 3339 text or epoch milliseconds to epoch milliseconds.

    >>> parse_time_ms("2026-01-01T00:00:00.250Z")
    1767225600250
    >>> parse_time_ms(1767225600250)
    1767225600250
    """
    kind = type(value)
    if kind is int or kind is float:
        if not math.isfinite(value) or value < 0 or value >= MAX_EPOCH_MS:
            raise _Invalid(f"bad_time: {name}={value!r} is not epoch milliseconds in range")
        return int(value)
    if kind is str:
        text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise _Invalid(f"bad_time: {name}={value[:64]!r} is not RFC 3339") from None
        if parsed.tzinfo is None:
            raise _Invalid(f"bad_time: {name}={value[:64]!r} has no UTC offset")
        return (parsed - _EPOCH) // _MS  # exact: float timestamps can lose a millisecond
    raise _Invalid(f"bad_type: {name} must be RFC 3339 text or epoch ms, got {kind.__name__}")


def _check_values(values: Any, max_values: int, max_name: int) -> dict[str, float]:
    if type(values) is not dict:
        raise _Invalid(f"bad_type: values must be an object, got {type(values).__name__}")
    if not values:
        raise _Invalid("empty_values: values needs at least one number")
    if len(values) > max_values:
        raise _Invalid(f"too_many_values: {len(values)} values, more than the limit of "
                       f"{max_values}")
    isfinite = math.isfinite
    for name, number in values.items():
        if not 0 < len(name) <= max_name:
            raise _Invalid(f"bad_value_name: a value name must have 1 to {max_name} "
                           f"characters, got {len(name)}")
        problem = _text_problem(name)
        if problem is not None:
            raise _Invalid(f"bad_value_name: values.{name.encode('unicode_escape')[:64]!r} "
                           f"has a non-printable character ({problem})")
        kind = type(number)
        if kind is not float and kind is not int:
            raise _Invalid(f"bad_value: values.{name[:64]} is {kind.__name__}, not a number")
        if not isfinite(number):
            raise _Invalid(f"bad_value: values.{name[:64]} is not finite")
    return values


def _sensor(obj: dict, origin: str, max_values: int, max_name: int) -> SensorEvent:
    source_id = obj.get("source_id")
    if source_id is None:
        raise _Invalid("missing_field: source_id")
    if type(source_id) is not str or not 0 < len(source_id) <= MAX_SOURCE_ID:
        raise _Invalid("bad_source_id: source_id must be a string of 1 to 128 characters")
    problem = _text_problem(source_id)
    if problem is not None:
        raise _Invalid(f"bad_source_id: source_id has a non-printable character ({problem})")
    if "event_time" not in obj:
        raise _Invalid("missing_field: event_time")
    event_ms = obj["event_time"]
    if type(event_ms) is not int or not 0 <= event_ms < MAX_EPOCH_MS:  # else: epoch ms
        event_ms = parse_time_ms(event_ms)
    if "values" not in obj:
        raise _Invalid("missing_field: values")
    values = _check_values(obj["values"], max_values, max_name)
    seq = obj.get("seq")
    if seq is not None and (type(seq) is not int or seq < 0):
        raise _Invalid(f"bad_seq: seq must be an integer >= 0, got {seq!r:.40}")
    kind = obj.get("kind", "telemetry")
    if kind != "telemetry" and (type(kind) is not str or not 0 < len(kind) <= MAX_KIND
                                or not kind.isprintable()):
        raise _Invalid("bad_kind: kind must be a string of 1 to 64 printable characters")
    arrival_ms = obj.get("arrival_time")
    if arrival_ms is not None and (type(arrival_ms) is not int
                                   or not 0 <= arrival_ms < MAX_EPOCH_MS):
        arrival_ms = parse_time_ms(arrival_ms, "arrival_time")
    extra = None
    if len(obj) > 3 and not _SENSOR_KEYS.issuperset(obj):
        extra = {k: v for k, v in obj.items() if k not in _SENSOR_KEYS}
    return SensorEvent(source_id, event_ms, values, seq, kind, arrival_ms, origin, extra)


def _outcome(obj: dict, origin: str) -> OutcomeEvent:
    decision_id = obj["decision_id"]
    if type(decision_id) is not str or not decision_id:
        raise _Invalid("bad_decision_id: decision_id must be a non-empty string")
    outcome = obj.get("outcome")
    if type(outcome) is not str:
        raise _Invalid("missing_field: outcome (a string)")
    label: Any = obj.get("label")
    if type(label) not in (int, float) or not math.isfinite(label):
        raise _Invalid("bad_value: label must be a finite number")
    if "event_time" not in obj:
        raise _Invalid("missing_field: event_time")
    event_ms = parse_time_ms(obj["event_time"])
    extra = {k: v for k, v in obj.items() if k not in _OUTCOME_KEYS} or None
    return OutcomeEvent(decision_id, outcome, float(label), event_ms, origin, extra)


def _as_bytes(payload: Payload) -> bytes:
    if payload is None:
        return b""
    if isinstance(payload, bytes):
        return payload
    if isinstance(payload, str):
        return payload.encode("utf-8", "replace")
    try:
        return orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY)
    except TypeError:
        return repr(payload).encode()


class EventDecoder:
    """Decodes raw payloads (bytes, text or already-parsed dicts) by the contract.

    >>> decoder = EventDecoder()
    >>> out = decoder.decode_batch([
    ...     ("file:a.jsonl:1", b'{"source_id":"s1","event_time":0,"values":{"v":1}}'),
    ...     ("file:a.jsonl:2", b'{"source_id":"s1","values":{"v":1}}'),
    ... ])
    >>> [e.source_id for e in out.events], [d.reason for d in out.dead]
    (['s1'], ['missing_field: event_time'])
    """

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES,
                 max_values: int = DEFAULT_MAX_VALUES, max_name: int = DEFAULT_MAX_NAME
                 ) -> None:
        self.max_bytes = max_bytes
        self.max_values = max_values
        self.max_name = max_name

    def decode(
        self, origin: str, payload: Payload, trace_parent: str | None = None
    ) -> SensorEvent | OutcomeEvent | DeadLetter:
        """Decode one payload; never raises on bad input."""
        if type(payload) is bytes and len(payload) <= self.max_bytes:
            event = _fast(payload, origin, trace_parent, self.max_values, self.max_name)
            if event is not None:
                return event
        return self._full(origin, payload, trace_parent)

    def _full(self, origin: str, payload: Payload, trace_parent: str | None = None
              ) -> SensorEvent | OutcomeEvent | DeadLetter:
        """The full validation of one payload (the fast path's misses)."""
        try:
            if payload is None:
                raise _Invalid("empty_message: the message has no value (a tombstone?)")
            if isinstance(payload, dict):
                obj: Any = payload
            else:
                if len(payload) > self.max_bytes:
                    raise _Invalid(f"oversized: {len(payload)} bytes > limit {self.max_bytes}")
                try:
                    obj = orjson.loads(payload)
                except orjson.JSONDecodeError as exc:
                    raise _Invalid(f"invalid_json: {exc}"[:200]) from None
            if type(obj) is not dict:
                raise _Invalid(f"not_an_object: got JSON {type(obj).__name__}")
            keys, depth = _shape(obj)
            if depth > MAX_DEPTH:
                raise _Invalid(f"too_deep: JSON nested {depth} levels, more than the limit "
                               f"of {MAX_DEPTH}")
            if not isinstance(payload, dict) and _may_repeat_keys(_as_bytes(payload), keys):
                repeated = _repeated_key(payload)
                if repeated is not None:
                    raise _Invalid(f"duplicate_key: {repeated[:64]!r} appears twice in one "
                                   "object; which copy counts would be a guess")
            if "source_id" not in obj and "decision_id" in obj:
                return _outcome(obj, origin)
            event = _sensor(obj, origin, self.max_values, self.max_name)
            if trace_parent is None and event.extra:  # a file line may carry the context
                field = event.extra.get("traceparent")
                trace_parent = field if type(field) is str else None
            event.trace_parent = trace_parent
            return event
        except _Invalid as bad:
            return DeadLetter(origin, str(bad), _as_bytes(payload))
        except Exception as bug:
            return DeadLetter(origin, f"decode_error: {type(bug).__name__}: {bug}"[:200],
                              _as_bytes(payload))

    def decode_batch(self, records: list[Record],
                     arrivals: Sequence[int | None] | None = None) -> Decoded:
        """Decode ``(origin, payload[, traceparent])`` records, keeping input order
        within each kind. ``arrivals``: each record's arrival (epoch ms) as its source
        knows it, for an event without its own ``arrival_time``."""
        out = Decoded()
        fast, missed = fast_events(records, arrivals, _WIRE.decode, msgspec.UNSET,
                                   self.max_bytes, self.max_values, self.max_name)
        if not missed:  # the common case: every record an event in the common shape
            out.events = fast  # type: ignore[assignment]
            return out
        events, outcomes, dead = out.events, out.outcomes, out.dead
        full = self._full
        for i, record in enumerate(records):
            item = fast[i] or full(*record)
            if type(item) is SensorEvent:
                if arrivals is not None and item.arrival_ms is None:
                    item.arrival_ms = arrivals[i]
                events.append(item)
            elif type(item) is OutcomeEvent:
                outcomes.append(item)
            else:
                dead.append(item)  # type: ignore[arg-type]
                out.dead_after.append(len(events))
        return out
