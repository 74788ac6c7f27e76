"""Deterministic identities: the same input yields the same IDs on every run.

A decision's identity is its input's identity plus the decision type: the
source and sequence number when the event has one, otherwise the source, the
event time and the event's origin (file line or topic/partition/offset). A
replay after a crash therefore produces the same ``decision_id`` and the store
deduplicates. Trace IDs are derived from the decision ID unless the input
brought its own W3C trace context.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from operators.events import SensorEvent

__all__ = [
    "NAMESPACE",
    "decision_id",
    "decision_ids",
    "parent_span_of",
    "parse_traceparent",
    "row_id",
    "span_id_for",
    "trace_id_for",
]

NAMESPACE = uuid.UUID("6f1c1d4e-8d0a-5b7e-9a53-2d1f7c0e4b11")


# the namespace hashed once: copying a hash's state is cheaper than a new hash object
_NAMESPACE_SHA1 = hashlib.sha1(NAMESPACE.bytes)


# the variant bits 10 (the top two bits of hex digit 16), for each digit there
_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}


def _uuid5(name: str) -> str:
    # uuid.uuid5's bytes without its UUID object: the version nibble is 5 and the
    # variant bits are set in the hex text.
    digest = _NAMESPACE_SHA1.copy()
    digest.update(name.encode())
    h = digest.hexdigest()
    return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:32]}"


def decision_ids(events: Sequence[SensorEvent], decision_type: str) -> list[str]:
    """:func:`decision_id` of each event, in one loop.

    >>> from operators.events import SensorEvent
    >>> events = [SensorEvent("sensor-1", 0, {"v": 1.0}, seq=7),
    ...           SensorEvent("sensor-1", 5, {"v": 1.0}, origin="file:x:3")]
    >>> decision_ids(events, "motion") == [decision_id("sensor-1", "motion", 7, 0, ""),
    ...                                    decision_id("sensor-1", "motion", None, 5, "file:x:3")]
    True
    """
    by_seq, by_time = f"\x1f{decision_type}\x1fseq\x1f", f"\x1f{decision_type}\x1fat\x1f"
    return [_uuid5(f"{ev.source_id}{by_seq}{ev.seq}" if ev.seq is not None else
                   f"{ev.source_id}{by_time}{ev.event_ms}\x1f{ev.origin}") for ev in events]


def decision_id(
    source_id: str, decision_type: str, seq: int | None, event_ms: int, origin: str
) -> str:
    """UUIDv5 of the input's identity and the decision type.

    >>> decision_id("sensor-1", "motion", 7, 0, "ignored when seq is set")
    'aacc7b3b-3f93-513b-834f-aefe5f9b78e5'
    >>> decision_id("sensor-1", "motion", 7, 0, "") == str(
    ...     uuid.uuid5(NAMESPACE, "sensor-1\\x1fmotion\\x1fseq\\x1f7"))
    True
    """
    if seq is not None:
        return _uuid5(f"{source_id}\x1f{decision_type}\x1fseq\x1f{seq}")
    return _uuid5(f"{source_id}\x1f{decision_type}\x1fat\x1f{event_ms}\x1f{origin}")


def row_id(*parts: object) -> str:
    """A deterministic UUIDv5 for any row (alarms, dead letters, mode changes)."""
    return _uuid5("\x1f".join(map(str, parts)))


def trace_id_for(decision: str) -> str:
    """A 32-hex-digit W3C trace ID derived from a decision ID: a UUID's own 128 bits
    (never all zero: its version is 5), else a hash of the ID.

    >>> trace_id_for("ee5ccc0d-6f54-5d2b-8e57-bf2d17a7a1a0")
    'ee5ccc0d6f545d2b8e57bf2d17a7a1a0'
    >>> len(trace_id_for("not a uuid"))
    32
    """
    if len(decision) == 36 and decision[14] == "5" and decision.count("-") == 4:
        return decision.replace("-", "")
    return hashlib.blake2b(decision.encode(), digest_size=16).hexdigest()


def span_id_for(decision: str) -> str:
    """A 16-hex-digit span ID derived from a decision ID."""
    return hashlib.blake2b(decision.encode(), digest_size=8, person=b"span").hexdigest()


def parse_traceparent(header: str | bytes | None) -> str | None:
    """The trace ID of a valid W3C ``traceparent`` header, else ``None``.

    >>> parse_traceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
    '0af7651916cd43dd8448eb211c80319c'
    >>> parse_traceparent("00-00000000000000000000000000000000-b7ad6b7169203331-01") is None
    True
    """
    if header is None:
        return None
    text = header.decode("ascii", "replace") if isinstance(header, bytes) else header
    parts = text.strip().split("-")
    if len(parts) < 4 or len(parts[0]) != 2 or parts[0] == "ff":
        return None
    trace, span = parts[1].lower(), parts[2].lower()
    if len(trace) != 32 or len(span) != 16 or trace == "0" * 32 or span == "0" * 16:
        return None
    try:
        int(trace, 16)
        int(span, 16)
    except ValueError:
        return None
    return trace


def parent_span_of(header: str | bytes | None) -> str | None:
    """The parent span ID of a valid W3C ``traceparent`` header, else ``None``.

    >>> parent_span_of("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
    'b7ad6b7169203331'
    """
    if parse_traceparent(header) is None:
        return None
    assert header is not None
    text = header.decode("ascii", "replace") if isinstance(header, bytes) else header
    return text.strip().split("-")[2].lower()
