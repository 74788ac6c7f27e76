"""Score a fault scenario from the store alone, as an operator would read it.

Everything comes from the ClickHouse tables (``decisions``, ``drift_events``,
``mode_changes``, ``dead_letters``, ``canary_results``, ``escalations``,
``invariant_violations``), so a score holds for a ClickHouse server as for
the embedded store. The truth record (:mod:`flows.faults`) says what was
injected and what should catch it; the score says whether it was caught, by
which signal on which source, how fast (in event time and on the pipeline
clock), how the system responded, and what it got wrong: alarms nothing
explains, decisions on stale input marked fresh, decisions lost or doubled.
"""

from __future__ import annotations

import json
from typing import Any

from operators.modes import MODES
from sinks.store import Store

__all__ = ["answers_drift", "score"]

_RANK = {m: i for i, m in enumerate(MODES)}
# alarms that say a condition ended, not that one began
RESOLUTIONS = ("silence_end", "canary_recovered", "retired")
# how long after a fault, or a simulator's own change, alarms on it are explained
AFTERMATH_MS = 180_000
# the model's own signals (source_id empty)
MODEL_SIGNALS = ("score", "confidence")
# how near a change made on purpose must be to where an alarm says its change began
ONSET_SLACK_MS = 10_000
# how near (pipeline clock) an alarm of the unfaulted replay makes the same alarm its own
BASELINE_SLACK_MS = 30_000


def _ms(column: str) -> str:
    return f"toUnixTimestamp64Milli({column})"


class _Reader:
    def __init__(self, store: Store) -> None:
        self.store = store

    def rows(self, sql: str, **params: Any) -> list[tuple]:
        return self.store.query(sql, parameters=params or None)[1]

    def alarms(self) -> list[dict]:
        rows = self.rows(f"SELECT {_ms('detected_at')}, {_ms('event_time')}, source_id, signal,"
                         f" details, {_ms('onset_time')} FROM drift_events FINAL ORDER BY "
                         "detected_at, alarm_id")
        return [{"at": r[0], "event_ms": r[1], "source_id": r[2], "signal": r[3],
                 "details": r[4], "onset_ms": r[5] if r[5] and r[5] > 0 else None}
                for r in rows]

    def modes(self) -> list[dict]:
        rows = self.rows(f"SELECT {_ms('at')}, from_mode, to_mode, reason, scope FROM "
                         "mode_changes FINAL ORDER BY at, change_id")
        return [{"at": r[0], "from": r[1], "to": r[2], "reason": r[3], "scope": r[4]}
                for r in rows]


def _matches(signal: str, alarm: dict, sources: set[str] | None) -> bool:
    if alarm["signal"] != signal:
        return False
    return sources is None or alarm["source_id"] in sources


def _evidence(reader: _Reader, signal: str, alarms: list[dict],
              modes: list[dict], sources: set[str] | None, since: int) -> list[dict]:
    """Every piece of evidence for ``signal`` after ``since`` (pipeline clock), first first:
    ``{"at", "event_ms", "source_id", "signal"}``."""
    where = "" if sources is None else "AND source_id IN {sources:Array(String)}"
    params: dict[str, Any] = {"since": since}
    if sources is not None:
        params["sources"] = sorted(sources)
    if signal.startswith("mode:"):
        floor = _RANK[signal.split(":", 1)[1]]
        return [{"at": m["at"], "event_ms": None, "source_id": m["scope"], "signal": signal}
                for m in modes if m["at"] >= since and _RANK.get(m["to"], 0) >= floor]
    if signal == "stale":
        rows = reader.rows(f"SELECT source_id, min({_ms('decided_at')}), min({_ms('event_time')})"
                           " FROM decisions FINAL WHERE NOT fresh AND path != 'canary' AND "
                           f"{_ms('decided_at')} >= {{since:Int64}} {where} GROUP BY source_id",
                           **params)
        return sorted(({"at": r[1], "event_ms": r[2], "source_id": r[0], "signal": "stale"}
                       for r in rows), key=lambda e: e["at"])
    if signal == "dead_letters":
        rows = reader.rows(f"SELECT min({_ms('received_at')}), count() FROM dead_letters FINAL "
                           f"WHERE {_ms('received_at')} >= {{since:Int64}}", since=since)
        return [{"at": rows[0][0], "event_ms": None, "source_id": "", "signal": signal}] \
            if rows and rows[0][1] else []
    if signal == "invariant":
        rows = reader.rows(f"SELECT source_id, min({_ms('at')}) FROM invariant_violations FINAL"
                           f" WHERE {_ms('at')} >= {{since:Int64}} {where} GROUP BY source_id",
                           **params)
        return sorted(({"at": r[1], "event_ms": None, "source_id": r[0], "signal": signal}
                       for r in rows), key=lambda e: e["at"])
    return [{"at": a["at"], "event_ms": a["event_ms"], "source_id": a["source_id"],
             "signal": signal} for a in alarms
            if a["at"] >= since and _matches(signal, a, sources)]


def _explained(alarm: dict, truth: dict, everyone: bool) -> bool:
    """Whether the fault, or a change the stream's generator made on purpose, explains
    ``alarm``."""
    start, end = truth["start"]["arrival_ms"], truth["end"]["arrival_ms"]
    sources = set(truth["sources"])
    value = alarm["signal"].split(":", 1)[1] if ":" in alarm["signal"] else None
    # a fleet-wide fault's signals on one source: the fault does not explain them (one
    # alarm for the fleet, not one per unit); that source's own deliberate change does,
    # where the alarm says its change began (the fault moved every unit at once)
    onset = alarm.get("onset_ms")
    if alarm["source_id"] and alarm["signal"] in truth["expect"].get("per_source_false", []):
        return onset is not None and any(
            change["source_id"] == alarm["source_id"] and
            (value is None or value in change["values"]) and
            abs(change["at_ms"] - onset) <= ONSET_SLACK_MS
            for change in truth.get("background", []))
    peers = _peers(alarm)
    if truth["kind"] != "control" and start - 1_000 <= alarm["at"] <= end + AFTERMATH_MS and \
            (everyone or "" in sources or alarm["source_id"] in sources or
             alarm["signal"] in truth["expect"]["signals"] or
             (not alarm["source_id"] and sources & peers and
              (alarm["signal"] in MODEL_SIGNALS or _at_a_transition(onset, truth)))):
        # the model's scores are a mean over its peers' decisions, which any faulty one
        # moves; a fleet's common level or spread moved by its faulty peers is judged
        # by when its change began: as the fault began or ended
        return True
    moved = set()
    for change in truth.get("background", []):
        # the model's scores are a mean over its shard's decisions: one of its sources
        # changing on purpose moves them by its share, from that moment
        if alarm["signal"] in MODEL_SIGNALS and onset is not None and \
                (not peers or change["source_id"] in peers) and \
                abs(change["at_ms"] - onset) <= ONSET_SLACK_MS:
            return True
        if (value is None or value in change["values"]) and \
                change["at_ms"] - 10_000 <= alarm["event_ms"] <= change["at_ms"] + AFTERMATH_MS:
            if change["source_id"] == alarm["source_id"]:
                return True
            moved.add(change["source_id"])
    # the fleet's common level is a median: it moves when most of the fleet does, and so
    # do what is judged against it (a source's peer alarms) and what reads the whole
    # fleet (the model's scores); the common level's spread too (``variance:`` of the
    # fleet, ``source_id`` empty). The fleet is the alarm's own peers where it names them
    # (a shard's sources), else the whole stream.
    if peers:
        moved &= peers
    fleet = len(peers) if peers else truth.get("stream_sources", 1 << 30)
    signal = alarm["signal"]
    return len(moved) > fleet / 2 and (
        signal.startswith(("fleet:", "peer:")) or signal in MODEL_SIGNALS or
        (signal.startswith("variance:") and not alarm["source_id"]))


def answers_drift(reason: str) -> bool:
    """Whether a mode change's reason is drift (many sources drifting, or the fleet's
    values moving together), as the mode machine words it (``operators.modes``)."""
    return "moved together" in reason or "drifted within" in reason


def _at_a_transition(onset: int | None, truth: dict) -> bool:
    """Whether ``onset`` (event time) is within ``ONSET_SLACK_MS`` of the fault's start
    or end."""
    if onset is None:
        return False
    return any(abs(onset - truth[edge]["event_ms"]) <= ONSET_SLACK_MS
               for edge in ("start", "end"))


def _peers(alarm: dict) -> set[str]:
    """The sources an alarm was judged with, as its details name them (none: unknown)."""
    try:
        details = json.loads(alarm.get("details") or "{}")
    except ValueError:
        return set()
    peers = details.get("peers") if isinstance(details, dict) else None
    return set(peers) if isinstance(peers, list) else set()


def _exposed_for(modes: list[dict], exposure: str | None, start: int, until: int) -> int:
    """How much of ``[start, until]`` the fault could show in: all of it, or for a fault
    that shows only in mode ``exposure`` (conflicts need the slow path, which a degraded
    mode switches off), the time the mode was ``exposure``."""
    if exposure is None:
        return until - start
    mode = next((m["to"] for m in reversed(modes) if m["at"] <= start), "NORMAL")
    total, since = 0, start
    for m in modes:
        if start < m["at"] <= until:
            if mode == exposure:
                total += m["at"] - since
            mode, since = m["to"], m["at"]
    return total + (until - since if mode == exposure else 0)


def _in_baseline(alarm: dict, baseline: list[dict] | None) -> bool:
    """Whether the unfaulted replay raised the same alarm (source and signal) within
    ``BASELINE_SLACK_MS`` of pipeline clock: the stream's own, not the fault's."""
    return any(b["source_id"] == alarm["source_id"] and b["signal"] == alarm["signal"] and
               abs(b["at"] - alarm["at"]) <= BASELINE_SLACK_MS for b in baseline or ())


def score(store: Store, truth: dict, baseline: list[dict] | None = None) -> dict:
    """The scenario's score against ``truth``, read from ``store``. ``baseline``: the
    alarms of the same stream replayed without the fault (for a recording, whose own
    changes nothing else tells), which explain the same alarms here. A recording's
    control is that baseline: its alarms are the stream's own (``own_alarms``), not
    false."""
    reader = _Reader(store)
    alarms, modes = reader.alarms(), reader.modes()
    expect = truth["expect"]
    start = truth["start"]["arrival_ms"]
    end = truth["end"]["arrival_ms"]
    within = expect["within_ms"]
    all_sources = {s for s in truth["sources"] if s}
    everyone = len(all_sources) >= truth.get("stream_sources", 1 << 30)
    sources = None if (not all_sources or everyone) else all_sources
    found: list[dict] = []
    for signal in expect["signals"]:
        found += _evidence(reader, signal, alarms, modes, sources, start)
    found.sort(key=lambda e: e["at"])
    first = found[0] if found else None
    if first is not None and expect.get("each_source") and sources:
        per = {}
        for e in found:
            per.setdefault(e["source_id"], e)
        # the last source caught, once every affected source is
        first = max(per.values(), key=lambda e: e["at"]) if set(per) >= sources else None
    detected = first is not None and first["at"] <= end + within
    # the delay, in pipeline clock the fault could show in
    delay_clock = _exposed_for(modes, expect.get("exposure"), start, first["at"]) \
        if detected and first else None
    delay_event = (first["event_ms"] - truth["start"]["event_ms"]
                   if detected and first and first["event_ms"] is not None else None)

    window = (start, end + within) if truth["kind"] != "control" else (start, 1 << 62)
    in_force = next((m["to"] for m in reversed(modes) if m["at"] < window[0]), "NORMAL")
    reached = max([in_force, *(m["to"] for m in modes if window[0] <= m["at"] <= window[1])],
                  key=_RANK.__getitem__)
    counted = [a for a in alarms if a["signal"] not in RESOLUTIONS]
    # false alarms are judged from the fault's start: the stream before it is the
    # warm-up, in which baselines and the model learn
    false = [a for a in counted if a["at"] >= start and not _explained(a, truth, everyone)
             and not _in_baseline(a, baseline)]
    own = 0
    if truth["kind"] == "control" and truth.get("recorded"):
        own, false = len(false), []
    response_ok = True
    if "min_mode" in expect:
        response_ok &= _RANK[reached] >= _RANK[expect["min_mode"]]
    if "max_mode" in expect and _RANK[reached] > _RANK[expect["max_mode"]]:
        # degraded beyond the bound: right only if every change in the window answered
        # drift that really happened (the stream's own changes, explained below)
        answered = all(answers_drift(m["reason"]) or m["to"] == "NORMAL"
                       for m in modes if window[0] <= m["at"] <= window[1])
        response_ok &= answered and not any(":" in a["signal"] for a in false
                                            if window[0] <= a["at"] <= window[1])

    flow = truth["flow"]
    stale_fresh = int(reader.rows(
        "SELECT countIf(fresh AND ((path IN ('fast', 'fallback') AND age_ms > {sla:Int64}) OR "
        "(path = 'slow' AND age_ms > {slow:Int64}))) FROM decisions FINAL",
        sla=flow["sla_ms"], slow=flow["slow_sla_ms"])[0][0])
    decided = int(reader.rows("SELECT uniqExact(decision_id) FROM decisions "
                              "WHERE path NOT IN ('slow', 'canary')")[0][0])
    escalated, fallback = reader.rows(
        "SELECT countIf(escalated), countIf(path = 'fallback') FROM decisions FINAL WHERE "
        f"{_ms('decided_at')} BETWEEN {{a:Int64}} AND {{b:Int64}}", a=window[0],
        b=window[1])[0]
    dead = int(reader.rows("SELECT count() FROM dead_letters FINAL")[0][0])
    counts = truth["counts"]
    lost = max(0, counts["decisions"] - decided) + max(0, counts["dead_letters"] - dead)
    doubled = max(0, decided - counts["decisions"]) + max(0, dead - counts["dead_letters"])
    if truth["kind"] == "control":  # nothing to detect: it passes by raising nothing false
        detected = not false
    passed = bool(detected and response_ok and stale_fresh == 0 and lost == 0 and
                  doubled == 0 and (delay_clock is None or delay_clock <= within))
    return {
        "scenario": truth["scenario"], "seed": truth["seed"], "kind": truth["kind"],
        "detected": bool(detected),
        "signal": first["signal"] if detected and first else None,
        "source": first["source_id"] if detected and first else None,
        "delay_event_ms": delay_event, "delay_clock_ms": delay_clock,
        # the pipeline clock from the fault's start to its evidence, in any mode
        "delay_any_mode_ms": first["at"] - start if detected and first else None,
        "bound_ms": within,
        "mode_reached": reached, "response_ok": bool(response_ok),
        "escalated": int(escalated), "fallback": int(fallback),
        "false_alarms": len(false), "own_alarms": own,
        "false_alarm_list": [{k: a[k] for k in ("at", "source_id", "signal")} for a in false[:20]],
        "stale_marked_fresh": stale_fresh, "lost": lost, "doubled": doubled,
        "decisions": decided, "dead_letters": dead,
        "alarms": [{k: a[k] for k in ("at", "source_id", "signal")} for a in counted],
        "modes": [{k: m[k] for k in ("at", "from", "to", "reason")} for m in modes],
        "passed": passed,
        "details": json.dumps({"expected": expect["signals"], "response": truth["response"]}),
    }
