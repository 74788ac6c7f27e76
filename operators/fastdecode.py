"""The fast path of decoding: a batch of sensor events in the common shape, checked
in compiled code (``make native``).

Most payloads are one JSON object with the contract's fields only and epoch-ms times.
:func:`fast_events` decodes each with a typed msgspec decoder (one pass, in C) and
checks it as :mod:`operators.events`'s full validation would; anything else is
``None``, which the full validation then decodes or dead-letters with its reason (a
test holds the two to the same answers). Compiled, the checks of a batch's events
run without the interpreter between them: they were two thirds of decoding's cost.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from operators.sensorevent import SensorEvent

__all__ = ["MAX_EPOCH_MS", "MAX_KIND", "MAX_SOURCE_ID", "fast_event", "fast_events",
           "may_repeat_keys"]

MAX_SOURCE_ID = 128
MAX_KIND = 64
# Epoch milliseconds below this bound (year 5138) are plausible; larger numbers
# are almost always microseconds or nanoseconds sent by mistake.
MAX_EPOCH_MS = 100_000_000_000_000

_QUOTE_SPACE = re.compile(rb'"[ \t\n\r]')


def fast_events(records: Sequence[tuple], arrivals: Sequence[int | None] | None,
                decode: Callable[[bytes], Any], unset: object, max_bytes: int,
                max_values: int, max_name: int) -> tuple[list[SensorEvent | None], int]:
    """Each record's ``(origin, payload[, traceparent])`` as a sensor event, or ``None``
    where the fast path cannot tell (the full validation decides those); and how many
    are ``None``. ``arrivals``: each record's arrival as its source knows it, for an
    event without its own. ``decode`` is the typed decoder (raising on anything off
    its shape), ``unset`` its marker of an absent field."""
    out: list[SensorEvent | None] = []
    missed = 0
    for i, record in enumerate(records):
        payload = record[1]
        event: SensorEvent | None = None
        if type(payload) is bytes and len(payload) <= max_bytes:
            event = fast_event(payload, record[0], record[2] if len(record) > 2 else None,
                               decode, unset, max_values, max_name)
        if event is None:
            missed += 1
        elif arrivals is not None and event.arrival_ms is None:
            event.arrival_ms = arrivals[i]
        out.append(event)
    return out, missed


def fast_event(payload: bytes, origin: str, trace_parent: str | None,
               decode: Callable[[bytes], Any], unset: object, max_values: int,
               max_name: int) -> SensorEvent | None:
    """One payload's event by the fast path, or ``None`` (see :func:`fast_events`)."""
    try:
        wire = decode(payload)
    except Exception:  # msgspec's DecodeError, a validation error too
        return None
    return _checked(wire, payload, origin, trace_parent, unset, max_values, max_name)


def _checked(wire: Any, payload: bytes, origin: str, trace_parent: str | None,
             unset: object, max_values: int, max_name: int) -> SensorEvent | None:
    """The event ``wire`` holds when it meets the contract, else ``None``."""
    source_id: str = wire.source_id
    event_ms: object = wire.event_time
    values: dict[str, float] = wire.values
    seq: int | None = wire.seq
    arrival: object = wire.arrival_time
    given: object = wire.kind
    kind: str = "telemetry" if given is unset else str(given)
    # numbers are finite here: JSON has no NaN or Infinity, and msgspec refuses a
    # number out of a double's range
    if not 0 < len(source_id) <= MAX_SOURCE_ID or not isinstance(event_ms, int) \
            or isinstance(event_ms, bool) or not 0 <= event_ms < MAX_EPOCH_MS \
            or not values or (seq is not None and seq < 0) \
            or (kind != "telemetry" and not 0 < len(kind) <= MAX_KIND):
        return None
    arrival_ms: int | None = None
    if arrival is not None:
        if not isinstance(arrival, int) or isinstance(arrival, bool) \
                or not 0 <= arrival < MAX_EPOCH_MS:
            return None
        arrival_ms = arrival
    names = "".join(values)  # one C call each below, not one per name
    if not (source_id + names).isprintable() or "" in values or len(values) > max_values \
            or (len(names) > max_name and max(map(len, values)) > max_name) \
            or (kind != "telemetry" and not kind.isprintable()):
        return None
    keys = 3 + len(values) + (seq is not None) + (arrival_ms is not None) + \
        (given is not unset)
    if may_repeat_keys(payload, keys):
        return None
    return SensorEvent(source_id, event_ms, values, seq, kind, arrival_ms, origin, None,
                       trace_parent)


def may_repeat_keys(payload: bytes, keys: int) -> bool:
    """Whether ``payload``, which parsed to ``keys`` keys in all, may hold a key twice.

    Cheap, and never wrong when it answers no: every key is followed by a colon, so
    as many colons as keys leave no room for a repeat; failing that (a colon in a
    string), every key without whitespace before its colon ends in ``":``.
    :func:`operators.events._repeated_key` decides the rest exactly.

    >>> may_repeat_keys(b'{"a":1,"b":{"c":"x:y"}}', 3), may_repeat_keys(b'{"a":1,"a":2}', 1)
    (False, True)
    """
    if payload.count(b":") == keys:
        return False
    return payload.count(b'":') != keys or _QUOTE_SPACE.search(payload) is not None
