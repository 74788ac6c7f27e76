"""Faults with ground truth: named transformations of an event stream.

A scenario takes any stream of contract events (the simulator's, or a user's
recorded JSONL), injects one known fault and says, in a truth record, what
was done (which sources and values, from when to when, in event time and in
arrival time) and what a correct system does about it: which signals should
catch it, on which sources, how degraded the mode should get. The stream is
written in arrival order, so a replay on the pipeline clock (driven by
``arrival_time``) reproduces the fault exactly, run after run.

Faults are sized from the stream itself (each source's own spread, the
flow's declared rules and freshness SLA), never from constants tuned to one
generator, so they apply to streams this module has never seen.

>>> events = [{"source_id": f"s{i}", "event_time": t * 100, "seq": t,
...            "values": {"v": float(t % 7)}} for t in range(600) for i in range(4)]
>>> stream = Stream.from_events(events)
>>> truth = inject("frozen", stream, FlowFacts(watched=("v",)), seed=1)
>>> truth["sources"], truth["values"], truth["expect"]["signals"]
(['s1'], ['v'], ['frozen:v'])
"""

from __future__ import annotations

import bisect
import math
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from operators.events import EventDecoder, OutcomeEvent, SensorEvent
from operators.ids import decision_id
from operators.stamping import NOT_DECIDED

__all__ = ["SCENARIOS", "SIZES_SD", "FlowFacts", "Stream", "describe", "inject"]


@dataclass(frozen=True)
class FlowFacts:
    """What a scenario needs to know of the flow it is aimed at."""

    watched: tuple[str, ...] = ()          # values its drift detectors watch, preferred first
    rules: tuple[tuple[str, str, float], ...] = ()  # (value, op, threshold) of each rule
    decision_type: str = "decision"
    sla_ms: int = 2_000
    slow_window_ms: int = 5_000
    model_canaries: bool = False


@dataclass
class Line:
    """One line of the stream: a parsed event (times as epoch ms) or raw bytes kept as
    they are (bad input stays bad input)."""

    arrival: int
    event: dict | None = None
    raw: bytes | None = None


@dataclass
class Stream:
    """A stream of lines in arrival order, with each event's times in epoch ms."""

    lines: list[Line] = field(default_factory=list)

    @classmethod
    def from_events(cls, events: Iterable[dict]) -> Stream:
        return cls._parse(orjson.dumps(e) for e in events)

    @classmethod
    def from_jsonl(cls, path: str | Path) -> Stream:
        with open(path, "rb") as handle:
            return cls._parse(line.strip() for line in handle if line.strip())

    @classmethod
    def _parse(cls, payloads: Iterable[bytes]) -> Stream:
        decoder, lines, last = EventDecoder(), [], 0
        for number, payload in enumerate(payloads, 1):
            ev = decoder.decode(f"scenario:{number}", payload)
            if isinstance(ev, SensorEvent):
                arrival = ev.arrival_ms if ev.arrival_ms is not None else ev.event_ms
                event = orjson.loads(payload)
                event["event_time"], event["arrival_time"] = ev.event_ms, arrival
                last = max(last, arrival)
                lines.append(Line(arrival, event))
            elif isinstance(ev, OutcomeEvent):
                event = orjson.loads(payload)
                arrival = event.get("arrival_time", ev.event_ms)
                arrival = arrival if isinstance(arrival, int) else last
                lines.append(Line(arrival, event))
            else:  # not an event: it arrives where it stood
                lines.append(Line(last, raw=payload))
        return cls(lines)

    def telemetry(self) -> list[dict]:
        return [ln.event for ln in self.lines if ln.event is not None and "values" in ln.event
                and ln.event.get("kind", "telemetry") not in NOT_DECIDED]

    def sources(self) -> list[str]:
        return sorted({e["source_id"] for e in self.telemetry()})

    def span(self) -> tuple[int, int]:
        """First and last event time of the telemetry."""
        times = [e["event_time"] for e in self.telemetry()]
        if not times:
            raise ValueError("the stream holds no telemetry event to inject a fault into")
        return min(times), max(times)

    def counts(self, decision_type: str) -> dict[str, int]:
        """What a correct run makes of this stream: a decision per distinct decided
        event, a dead letter per bad line."""
        decoder, ids, bad, outcomes = EventDecoder(), set(), 0, 0
        for number, ln in enumerate(self.lines, 1):
            payload = ln.raw if ln.raw is not None else orjson.dumps(ln.event)
            ev = decoder.decode(f"line:{number}", payload)
            if isinstance(ev, SensorEvent):
                if ev.kind not in NOT_DECIDED:
                    ids.add(decision_id(ev.source_id, decision_type, ev.seq, ev.event_ms,
                                        ev.origin))
            elif isinstance(ev, OutcomeEvent):
                outcomes += 1
            else:
                bad += 1
        return {"decisions": len(ids), "dead_letters": bad, "outcomes": outcomes}

    def write(self, path: str | Path) -> int:
        """Write the lines in arrival order (stable); returns how many."""
        self.lines.sort(key=lambda ln: ln.arrival)
        with open(path, "wb") as handle:
            for ln in self.lines:
                if ln.event is not None:  # a fault may have moved when it arrives
                    ln.event["arrival_time"] = ln.arrival
                handle.write((ln.raw if ln.raw is not None else orjson.dumps(ln.event)) + b"\n")
        return len(self.lines)


# -- helpers -------------------------------------------------------------------------


def _sd(xs: list[float]) -> float:
    if len(xs) < 2:
        return 1.0
    mean = sum(xs) / len(xs)
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (len(xs) - 1))
    return sd if sd > 0 else max(abs(mean) * 0.01, 1e-6)


@dataclass
class _Ctx:
    stream: Stream
    facts: FlowFacts
    rng: random.Random
    t0: int
    start: int      # the fault's start, event time
    sources: list[str]
    value: str
    # (event time, first arrival of an event at least that recent) of the clean stream
    clean: list[tuple[int, int]] = field(default_factory=list)
    spreads: dict[str, float] | None = None  # each source's sd of the value before the fault
    outage_s: float = 30.0  # the store outage's length, wall time
    magnitude: float = 1.0  # scales the sized faults (SIZES_SD)

    def pick(self, n: int) -> list[str]:
        return sorted(self.rng.sample(self.sources, min(n, len(self.sources))))

    def spread(self, source: str) -> float:
        """The source's own sd of the value before the fault (every source's in one pass
        over the stream, the first time one is asked for)."""
        if self.spreads is None:
            before: dict[str, list[float]] = {}
            for e in self.stream.telemetry():
                x = e["values"].get(self.value)
                if e["event_time"] < self.start and isinstance(x, (int, float)):
                    before.setdefault(e["source_id"], []).append(x)
            self.spreads = {s: _sd(xs) for s, xs in before.items()}
        return self.spreads.get(source) or _sd([])

    def events_of(self, sources: Iterable[str], start: int, end: int | None = None
                  ) -> Iterable[Line]:
        wanted = set(sources)
        for ln in self.stream.lines:
            ev = ln.event
            if ev is not None and ev.get("source_id") in wanted and "values" in ev and \
                    start <= ev["event_time"] and (end is None or ev["event_time"] < end):
                yield ln

    def clock_at(self, event_ms: int) -> int:
        """When the pipeline clock reached ``event_ms`` of event time in the clean stream."""
        i = bisect.bisect_left(self.clean, (event_ms, -1))
        return self.clean[min(i, len(self.clean) - 1)][1]

    def truth(self, kind: str, sources: list[str], end: int | None, signals: list[str],
              response: str, within_ms: int, **more: Any) -> dict:
        end_ms = end if end is not None else self.stream.span()[1]
        return {"kind": kind, "sources": sources, "values": more.pop("values", []),
                "start": {"event_ms": self.start, "arrival_ms": self.clock_at(self.start)},
                "end": {"event_ms": end_ms, "arrival_ms": self.clock_at(end_ms)},
                "expect": {"signals": signals, "within_ms": within_ms, **more},
                "response": response}


def _hold_back(ctx: _Ctx, sources: list[str], length_ms: int) -> None:
    """The sources' lines that would arrive in ``[start, start + length)`` arrive at its
    end, in their order: a backlog."""
    wanted = set(sources)
    release = ctx.clock_at(ctx.start) + length_ms
    begin = release - length_ms
    for ln in ctx.stream.lines:
        ev = ln.event
        if begin <= ln.arrival < release and (ev is None or ev.get("source_id") in wanted
                                              or "source_id" not in ev):
            ln.arrival = release


def _shift(ctx: _Ctx, sources: list[str], size: Callable[[str, int], float]) -> None:
    for source in sources:
        sd = ctx.spread(source)
        for ln in ctx.events_of([source], ctx.start):
            assert ln.event is not None
            values = ln.event["values"]
            if isinstance(values.get(ctx.value), (int, float)):
                values[ctx.value] = round(values[ctx.value] +
                                          size(source, ln.event["event_time"]) * sd, 6)


# -- the faults ----------------------------------------------------------------------

MINUTE = 60_000


def backlog(ctx: _Ctx) -> dict:
    _hold_back(ctx, ctx.sources, 10_000)
    return ctx.truth("backlog", ctx.sources, ctx.start + 10_000, ["mode:REACTIVE_ONLY", "stale"],
                     "decisions on the backlog are stale and follow the stale policy; the "
                     "mode degrades to at least REACTIVE_ONLY", 15_000,
                     min_mode="REACTIVE_ONLY", stale=True)


def partition(ctx: _Ctx) -> dict:
    cut = ctx.pick(max(1, math.ceil(len(ctx.sources) / 4)))
    _hold_back(ctx, cut, 45_000)
    return ctx.truth("partition", cut, ctx.start + 45_000, ["silence", "mode:REACTIVE_ONLY"],
                     "the cut-off sources go silent with an alarm each; the fleet's lag "
                     "degrades the mode (REACTIVE_ONLY past 5 s, CONSERVATIVE past 30 s); "
                     "their backlog is decided stale", 10_000,
                     min_mode="CONSERVATIVE", stale=True)


def dark_unit(ctx: _Ctx) -> dict:
    unit = ctx.pick(1)
    dark = {id(ln) for ln in ctx.events_of(unit, ctx.start, ctx.start + MINUTE)}
    ctx.stream.lines = [ln for ln in ctx.stream.lines if id(ln) not in dark]
    return ctx.truth("dark_unit", unit, ctx.start + MINUTE, ["silence"],
                     "that unit raises its own silence alarm; the fleet's mode is not "
                     "degraded by one dark unit", 10_000, max_mode="NORMAL")


def duplicates(ctx: _Ctx) -> dict:
    end = ctx.start + MINUTE
    copies = []
    for ln in ctx.events_of(ctx.sources, ctx.start, end):
        if ctx.rng.random() < 0.05:
            assert ln.event is not None
            copies.append(Line(ln.arrival + ctx.rng.randint(0, 2_000), dict(ln.event)))
    ctx.stream.lines += copies
    return ctx.truth("duplicates", ctx.sources, end, ["duplicate"],
                     "each event delivered twice is decided once (same decision ID); the "
                     "duplicates are counted and reported per source", 10_000,
                     copies=len(copies))


def frozen(ctx: _Ctx) -> dict:
    unit, end = ctx.pick(1), ctx.start + MINUTE
    held = None
    for ln in ctx.events_of(unit, ctx.start, end):
        assert ln.event is not None
        values = ln.event["values"]
        if ctx.value in values:
            held = values[ctx.value] if held is None else held
            values[ctx.value] = held
    return ctx.truth("frozen", unit, end, [f"frozen:{ctx.value}"],
                     f"a frozen-sensor alarm on {ctx.value} of that unit", 30_000,
                     values=[ctx.value])


# How far the sized faults move a value, in each source's own sd before the fault, at
# magnitude 1 (``--magnitude`` scales them): sizes at which a level change is plain to
# an operator's eye on a chart of one unit, yet inside a fleet's spread of levels.
SIZES_SD = {"shift": 4.0, "ramp": 6.0, "fleet_shift": 3.0}


def _size(ctx: _Ctx, kind: str) -> float:
    return SIZES_SD[kind] * ctx.magnitude


def shift(ctx: _Ctx) -> dict:
    units, size = ctx.pick(min(3, max(1, len(ctx.sources) // 8))), _size(ctx, "shift")
    _shift(ctx, units, lambda source, t: size)
    return ctx.truth("shift", units, None, [f"peer:{ctx.value}", f"value:{ctx.value}",
                     f"relation:{ctx.value}"],
                     f"a level alarm on {ctx.value} for each shifted unit, with its onset",
                     60_000, values=[ctx.value], each_source=True)


def ramp(ctx: _Ctx) -> dict:
    unit, length, size = ctx.pick(1), 2 * MINUTE, _size(ctx, "ramp")
    _shift(ctx, unit, lambda source, t: size * min(1.0, (t - ctx.start) / length))
    return ctx.truth("ramp", unit, None, [f"peer:{ctx.value}", f"value:{ctx.value}",
                     f"relation:{ctx.value}"],
                     f"a level alarm on {ctx.value} of that unit while it ramps", 3 * MINUTE,
                     values=[ctx.value])


def fleet_shift(ctx: _Ctx) -> dict:
    size = _size(ctx, "fleet_shift")
    _shift(ctx, ctx.sources, lambda source, t: size)
    return ctx.truth("fleet_shift", [""], None, [f"fleet:{ctx.value}"],
                     f"one fleet-wide alarm on {ctx.value}, not one per unit", 2 * MINUTE,
                     values=[ctx.value],
                     per_source_false=[f"peer:{ctx.value}", f"relation:{ctx.value}"])


def unit_change(ctx: _Ctx) -> dict:
    unit = ctx.pick(1)
    for ln in ctx.events_of(unit, ctx.start):
        assert ln.event is not None
        values = ln.event["values"]
        if isinstance(values.get(ctx.value), (int, float)):
            values[ctx.value] = round(values[ctx.value] * 1.8 + 32, 6)  # Celsius to Fahrenheit
    return ctx.truth("unit_change", unit, None, [f"peer:{ctx.value}", f"value:{ctx.value}",
                     f"relation:{ctx.value}"],
                     f"a level alarm on {ctx.value} of that unit (its firmware now reports "
                     "other units)", 30_000, values=[ctx.value])


def clock_skew(ctx: _Ctx) -> dict:
    unit, end = ctx.pick(1), ctx.start + MINUTE
    for ln in ctx.events_of(unit, ctx.start, end):
        assert ln.event is not None
        ln.event["event_time"] += 30_000
    return ctx.truth("clock_skew", unit, end, ["clock_skew"],
                     "a clock-skew alarm for that unit; its skewed events are not decided "
                     "as fresh", 10_000, stale=True)


def stuck_clock(ctx: _Ctx) -> dict:
    unit, end = ctx.pick(1), ctx.start + MINUTE
    for ln in ctx.events_of(unit, ctx.start, end):
        assert ln.event is not None
        ln.event["event_time"] = ctx.start
    return ctx.truth("stuck_clock", unit, end, ["clock_stuck", "stale"],
                     "that unit's decisions turn stale as its constant event time ages; "
                     "an alarm says its clock stopped", 10_000, stale=True)


def dropped(ctx: _Ctx) -> dict:
    units, end = ctx.pick(2), ctx.start + MINUTE
    lost = {id(ln) for ln in ctx.events_of(units, ctx.start, end) if ctx.rng.random() < 0.2}
    ctx.stream.lines = [ln for ln in ctx.stream.lines if id(ln) not in lost]
    return ctx.truth("dropped", units, end, ["seq_gap"],
                     "sequence-gap alarms on those units (the events carry seq)", 10_000,
                     lost=len(lost))


POISON = [
    b"{not json", b'{"event_time": 1, "values": {"v": 1}}',
    b'{"source_id": "p", "event_time": "later", "values": {"v": 1}}',
    b'{"source_id": "p", "event_time": 1767225600000, "values": {}}',
    b'{"source_id": "p", "event_time": 1767225600000, "values": {"v": "high"}}',
    b'{"source_id": "p", "event_time": 1767225600000, "values": {"v": NaN}}',
    b'{"source_id": "p", "event_time": 1767225600000, "values": {"v": true}}',
    b"[1, 2, 3]", b"\xff\xfe garbage",
    b'{"source_id": "p", "event_time": 1767225600000, "values": {"v": 1}, "seq": -3}',
]


def poison(ctx: _Ctx) -> dict:
    at = ctx.clock_at(ctx.start)
    burst = [Line(at + i * 5, raw=ctx.rng.choice(POISON)) for i in range(200)]
    ctx.stream.lines += burst
    return ctx.truth("poison", ["dead_letters"], ctx.start + 1_000, ["dead_letters"],
                     "every poison message is a dead letter with a reason; every valid "
                     "event is still decided once", 5_000, dead_letters=len(burst))


def conflicts(ctx: _Ctx) -> dict:
    if not ctx.facts.rules:
        raise ValueError("conflicts needs a flow with rules (FlowFacts.rules)")
    name, op, threshold = ctx.facts.rules[0]
    firing = threshold - max(abs(threshold) * 0.5, 1.0) if op in ("<", "<=") \
        else threshold + max(abs(threshold) * 0.5, 1.0)
    unit, end = ctx.pick(1), ctx.start + 2 * MINUTE
    # It fires on the unit's first reading of each slow window and on every reading in
    # the window's first tenth, and not after. A slow window is decided when the unit's
    # first reading of the next one closes it, against the state the window's last
    # reading saw; that closing reading fires the rule and so has changed the action:
    # the decision conflicts, in every window, whatever the stream's rate or batching.
    # (A flap at irregular moments changes the action between two given readings in at
    # most about half the windows, so a unit could go 30 s without a conflict; and a
    # unit firing on half its readings moves its fleet's common level with it.)
    window = ctx.facts.slow_window_ms
    last_window = None
    for ln in ctx.events_of(unit, ctx.start, end):
        assert ln.event is not None
        at = int(ln.event["event_time"])
        if at // window != last_window or at % window < window // 10:
            ln.event["values"][name] = firing
        last_window = at // window
    # conflicting assignments need the slow path deciding beside the fast path, which a
    # degraded mode switches off: the bound counts the pipeline clock spent in NORMAL
    return ctx.truth("conflicts", unit, end, ["invariant"],
                     f"{name} flaps across its rule: the slow path's decisions come after "
                     "the fast path changed the action and are rejected as invariant "
                     "violations, never applied", 30_000, values=[name], exposure="NORMAL")


def model_decay(ctx: _Ctx) -> dict:
    if not ctx.facts.rules:
        raise ValueError("model_decay needs a flow with rules (FlowFacts.rules)")
    ops = {"<": float.__lt__, "<=": float.__le__, ">": float.__gt__, ">=": float.__ge__}
    outcomes = []
    for ln in ctx.stream.lines:
        ev = ln.event
        if ev is None or "values" not in ev or ev.get("seq") is None or ev["seq"] % 3:
            continue
        fired = any(isinstance(ev["values"].get(v), (int, float)) and
                    ops.get(op, float.__eq__)(float(ev["values"][v]), t)
                    for v, op, t in ctx.facts.rules)
        label = fired if ev["event_time"] < ctx.start else not fired  # labels turn
        outcomes.append(Line(ln.arrival + 1_000, {
            "decision_id": decision_id(ev["source_id"], ctx.facts.decision_type, ev["seq"],
                                       ev["event_time"], ""),
            "outcome": "observed", "label": float(label),
            "event_time": ev["event_time"] + 1_000, "arrival_time": ln.arrival + 1_000}))
    ctx.stream.lines += outcomes
    return ctx.truth("model_decay", [""], None, ["error"],
                     "the outcome labels turn against the model: its error stream alarms",
                     2 * MINUTE, outcomes=len(outcomes))


def _model_fault(kind: str, signals: list[str], response: str, **more: Any
                 ) -> Callable[[_Ctx], dict]:
    def fault(ctx: _Ctx) -> dict:
        end = ctx.start + MINUTE
        truth = ctx.truth(kind, [""], end, signals, response, 30_000, **more)
        truth["model_fault"] = {"kind": kind.split("_")[0], "from_ms": truth["start"]["arrival_ms"],
                                "to_ms": truth["end"]["arrival_ms"]}
        return truth
    return fault


def store_outage(ctx: _Ctx) -> dict:
    # The stream is untouched: the store fails every write for outage_s of wall time once it
    # holds the decisions of the events before the fault's start (sinks/storefault.py).
    at = ctx.clock_at(ctx.start)
    before = sum(1 for ln in ctx.stream.lines
                 if ln.arrival < at and ln.event is not None and "values" in ln.event)
    truth = ctx.truth("store_outage", [""], None, ["store_outage"],
                      "the input is held while writes fail (nothing decided meanwhile, "
                      "nothing dropped); one store_outage alarm once writes succeed; "
                      "nothing lost or doubled", MINUTE)
    # the bound is on the pipeline clock, which stands still while the input is held:
    # the alarm comes with the first batch decided after the outage, behind the batches
    # that were in flight (the writer's buffer) when it began
    truth["store_fault"] = f"errors:{ctx.outage_s:g}@decisions={before}"
    return truth


def control(ctx: _Ctx) -> dict:
    # judged where a fault would start: the stream before is the warm-up (baselines
    # and the model learn), as a chaos experiment checks its steady state first
    return ctx.truth("control", [], None, [], "nothing: no alarm, NORMAL throughout", 0,
                     max_mode="NORMAL")


SCENARIOS: dict[str, tuple[Callable[[_Ctx], dict], str]] = {
    "backlog": (backlog, "a 10 s log backlog: nothing arrives, then all of it at once"),
    "partition": (partition, "a quarter of the sources cut off for 45 s, then their backlog"),
    "dark_unit": (dark_unit, "one unit dark for a minute: no events, no heartbeat"),
    "duplicates": (duplicates, "5 % of a minute's events delivered twice"),
    "frozen": (frozen, "one sensor of one unit stuck at its last value for a minute"),
    "shift": (shift, "a sudden shift ({shift} sd) of one value on a few units"),
    "ramp": (ramp, "a slow ramp ({ramp} sd over 2 minutes) of one value on one unit"),
    "fleet_shift": (fleet_shift,
                    "every unit's value up {fleet_shift} sd together (a hot afternoon)"),
    "unit_change": (unit_change, "a firmware update: one unit reports Fahrenheit"),
    "clock_skew": (clock_skew, "one unit's clock 30 s ahead for a minute"),
    "stuck_clock": (stuck_clock, "one unit's clock stuck (constant event time) for a minute"),
    "dropped": (dropped, "a fifth of two units' events lost for a minute (sequence gaps)"),
    "poison": (poison, "a burst of 200 poison messages"),
    "conflicts": (conflicts, "a reading flapping across a rule: conflicting assignments"),
    "model_decay": (model_decay, "outcome labels turn against the model"),
    "broken_model": (_model_fault("broken_model", ["canary_failed", "score", "confidence"],
                                  "the model's canaries fail (or its scores shift) and the "
                                  "mode leaves NORMAL for rules only", min_mode="REACTIVE_ONLY"),
                     "the model inverts its scores for a minute"),
    "stalled_model": (_model_fault("stalled_model", ["mode:PAUSED"],
                                   "the model path's heartbeat is lost: PAUSED (rules only) "
                                   "within 2 s, NORMAL again once it answers",
                                   min_mode="PAUSED"),
                      "the model stops answering for a minute"),
    "store_outage": (store_outage, "the store fails every write for 30 s (--outage)"),
    "control": (control, "no fault: the clean stream, for false alarms"),
}


def describe(name: str, magnitude: float = 1.0) -> str:
    """What scenario ``name`` injects, its sizes scaled by ``magnitude``.

    >>> describe("shift", magnitude=0.5)
    'a sudden shift (2 sd) of one value on a few units'
    """
    sizes = {kind: f"{sd * magnitude:g}" for kind, sd in SIZES_SD.items()}
    return SCENARIOS[name][1].format(**sizes)


def inject(name: str, stream: Stream, facts: FlowFacts, seed: int = 0,
           value: str | None = None, at: float = 0.5, outage_s: float = 30.0,
           magnitude: float = 1.0) -> dict:
    """Apply scenario ``name`` to ``stream`` in place; its truth record.

    The fault starts ``at`` of the way through the stream's event time; the store
    outage lasts ``outage_s`` of wall time; the sized faults (``SIZES_SD``) are scaled
    by ``magnitude``.
    """
    if name not in SCENARIOS:
        raise ValueError(f"unknown scenario {name!r}; choose one of {', '.join(SCENARIOS)}")
    if not magnitude > 0:
        raise ValueError(f"magnitude {magnitude!r} is not above 0; give a scale such as "
                         "0.5 or 2 (1 = the sizes the descriptions state)")
    t0, t1 = stream.span()
    sources = stream.sources()
    numeric = {k for e in stream.telemetry()[:5_000] for k, v in e["values"].items()
               if isinstance(v, (int, float)) and not isinstance(v, bool)}
    value = value or next((v for v in facts.watched if v in numeric), None) or \
        (sorted(numeric)[0] if numeric else "")
    clean, latest = [], None  # the pipeline clock against event time, before the fault
    for ln in sorted(stream.lines, key=lambda ln: ln.arrival):
        ev = ln.event
        if ev is not None and "values" in ev and (latest is None or ev["event_time"] > latest):
            latest = ev["event_time"]
            clean.append((latest, ln.arrival))
    ctx = _Ctx(stream, facts, random.Random(seed), t0, t0 + int((t1 - t0) * at), sources,
               value, clean, outage_s=outage_s, magnitude=magnitude)
    truth = SCENARIOS[name][0](ctx)
    truth = {"scenario": name, "description": describe(name, magnitude), "seed": seed,
             **truth}
    if name in SIZES_SD:
        truth["size_sd"] = _size(ctx, name)
    truth["stream_sources"] = len(sources)
    truth["counts"] = stream.counts(facts.decision_type)
    truth["flow"] = {"decision_type": facts.decision_type, "sla_ms": facts.sla_ms,
                     "slow_sla_ms": facts.sla_ms + facts.slow_window_ms}
    return truth
