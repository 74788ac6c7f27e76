"""Freshness: how old each input is, and how far behind the pipeline runs.

Per event the decider reads ``age_ms = now - event_time``. Per source the
tracker keeps the newest event time, the last sequence number, when the source
last spoke (pipeline clock) and its usual cadence. From these it reports:

* ``seq_gap``: sequence numbers went missing (``value`` = how many). A jump is
  held for ``reorder_ms`` of pipeline clock first: numbers that arrive late in
  that time fill the gap, so reordered delivery is not reported as loss;
* ``duplicate``: a sequence number seen before arrived again (delivered twice; its
  decision keeps its ID, so the store keeps one). One alarm per source per
  ``duplicate_alarm_ms`` of pipeline clock, the duplicates counted in between;
* ``clock_skew``: an event claims a time ahead of now by more than the tolerance;
* ``silence``: a source is overdue by ``silence_factor`` times its own cadence,
  bounded to ``[min_silence_ms, max_silence_ms]`` (a source heard once, whose
  cadence is unknown, after ``max_silence_ms``), and ``silence_end`` when it
  speaks again. A source's cadence is the gap a moment of its time falls in on
  average (the length-weighted mean of its gaps, over ``cadence_memory_ms`` of
  them): a regular source's interval, twice a random (Poisson) source's mean gap,
  and a bursty source's pause between bursts, not the gaps inside a burst. Each
  gap is learned at most to the silence limit in force, so an outage does not
  teach a source to be quiet, and a source that turns out to be bursty is learned
  within a few of its pauses;
* ``retired``: a source silent for three times its silence limit (at least
  ``retire_after_ms``), or declared idle and quiet for ``retire_after_ms``, is
  dropped with an alarm (detector ``cadence`` or ``idle``). Its cadence is remembered (for
  ``remember_retired`` sources), so one that comes back is judged by it.

So a source reporting every 30 minutes is neither silent nor retired between
its reports, and keeps its detectors. Each is one alarm per occurrence, not
one per event.

Watermark lag is the pipeline's delay. Each active source's lag is
``arrival - event_time`` of its latest event, or ``now - event_time`` once it
is overdue; the fleet's lag is a high quantile of those (see
:mod:`operators.lags`: by default the lag a tenth of the sources exceed). So a
backlog shows at once, a silent group (a stalled partition, a cut-off tenth of
the fleet) holds the watermark back while it is silent, as Flink's minimum
over partitions does, and one dark unit raises its own ``silence`` alarm
without moving the fleet's lag. A source that is quiet on
purpose sends ``kind="heartbeat"`` events (they keep it current and are not
decided) or ``kind="idle"`` (excluded until it speaks again).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from mypy_extensions import mypyc_attr

from operators.alarms import Alarm
from operators.lags import Sketch, kth_largest, quantile_rank, sketch

__all__ = ["FreshnessConfig", "FreshnessTracker", "SourceState"]


@mypyc_attr(native_class=False)
@dataclass(frozen=True)
class FreshnessConfig:
    """Thresholds for freshness; every default holds for streams never seen before."""

    skew_tolerance_ms: int = 2_000
    silence_factor: float = 10.0
    min_silence_ms: int = 3_000
    max_silence_ms: int = 3_600_000
    retire_after_ms: int = 300_000
    remember_retired: int = 100_000  # retired sources whose cadence is kept
    check_every_ms: int = 250
    reset_window: int = 1_000  # a seq this far below the last one means the source restarted
    # A jump in seq is reported once its missing numbers have not arrived for this long;
    # a jump of more than max_held numbers (not reordering) is reported at once.
    reorder_ms: int = 1_000
    max_held: int = 1_000
    duplicate_alarm_ms: int = 60_000
    cadence_memory_ms: int = 3_600_000  # the span of gaps a source's cadence is learned over


_SEEN_MASK = (1 << 64) - 1


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)
class SourceState:
    """What the tracker remembers about one source (about 150 bytes)."""

    __slots__ = ("arrival_ms", "dup_at", "event_ms", "gap_squares", "gap_sum", "gaps", "idle",
                 "seen", "seq", "silent", "skewed")

    def __init__(self, event_ms: int, arrival_ms: int) -> None:
        self.event_ms = event_ms
        self.arrival_ms = arrival_ms
        self.seq: int | None = None
        self.gap_sum = 0.0  # of its gaps, each weighted by how recent it is
        self.gap_squares = 0.0  # of their squares, the same way
        self.silent = False
        self.skewed = False
        self.idle = False
        self.gaps: list[_Gap] | None = None  # jumps waiting for late numbers
        self.seen = 0  # bit i: seq - 1 - i arrived (the 64 numbers below the last)
        self.dup_at: int | None = None  # when its last duplicate alarm was raised


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)
class _Gap:
    """Sequence numbers missing after a jump, until ``due`` (pipeline clock)."""

    __slots__ = ("after_seq", "due", "event_ms", "missing", "seq")

    def __init__(self, after_seq: int, seq: int, event_ms: int, due: int) -> None:
        self.after_seq, self.seq, self.event_ms, self.due = after_seq, seq, event_ms, due
        self.missing = set(range(after_seq + 1, seq))


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)
class FreshnessTracker:
    """Per-source freshness state and the pipeline watermark.

    >>> t = FreshnessTracker()
    >>> t.observe("s1", event_ms=1_000, now=1_050, seq=1)
    >>> t.observe("s1", event_ms=1_100, now=1_150, seq=4)   # 2 and 3 missing
    >>> t.observe("s1", event_ms=1_050, now=1_160, seq=3)   # 3 was only late
    >>> t.lag_ms(now=1_160), t.drain_alarms()
    (60, [])
    >>> t.check(now=2_200)                                   # 2 never came
    >>> [(a.signal, a.value) for a in t.drain_alarms()]
    [('seq_gap', 1.0)]
    >>> t.check(now=10_000)                                  # overdue: silent
    >>> t.lag_ms(now=10_000), [a.signal for a in t.drain_alarms()]
    (8900, ['silence'])
    """

    def __init__(self, config: FreshnessConfig | None = None, lag_share: float = 0.1) -> None:
        cfg = self._config = config or FreshnessConfig()
        # what every event reads, held as this compiled class's own fields: the config is
        # a Python dataclass, and each of its fields is a lookup by name
        self._skew_ms = cfg.skew_tolerance_ms
        self._min_silence_ms = float(cfg.min_silence_ms)
        self._max_silence_ms = float(cfg.max_silence_ms)
        self._silence_factor = float(cfg.silence_factor)
        self._cadence_memory_ms = float(cfg.cadence_memory_ms)
        self.lag_share = lag_share
        self._reset()

    @property
    def config(self) -> FreshnessConfig:
        """The settings it was made with (fixed: its fields are copied at construction)."""
        return self._config

    def _reset(self) -> None:
        self._sources: dict[str, SourceState] = {}
        self._retired: dict[str, tuple[int, float]] = {}  # source -> (last arrival, cadence)
        self._sketch: Sketch = ()
        self._alarms: list[Alarm] = []
        self._last_check = 0
        self._lag = 0
        self.gaps = 0
        self.reordered = 0
        self.duplicates = 0
        self.skewed_events = 0

    @property
    def sources(self) -> dict[str, SourceState]:
        return self._sources

    @property
    def last_check_ms(self) -> int:
        return self._last_check

    @property
    def active_sources(self) -> int:
        return sum(1 for s in self._sources.values() if not s.idle)

    @property
    def silent_sources(self) -> int:
        return sum(1 for s in self._sources.values() if s.silent)

    def observe(
        self, source_id: str, event_ms: int, now: int, seq: int | None = None, kind: str = ""
    ) -> None:
        """Record that ``source_id`` spoke at pipeline time ``now``."""
        state = self._sources.get(source_id)
        skewed = event_ms > now + self._skew_ms
        if state is None:
            state = self._sources[source_id] = SourceState(min(event_ms, now), now)
            known = self._retired.pop(source_id, None)
            if known is not None:  # back after retirement: its cadence is still known
                state.gap_sum, state.gap_squares = known[1], known[1] * known[1]
                self._learn_gap(state, now - known[0])
        else:
            self._learn_gap(state, now - state.arrival_ms)
            if state.silent:
                state.silent = False
                self._alarm(now, state.event_ms, source_id, "silence_end", "cadence",
                            now - state.arrival_ms, 0, key=f"last={state.event_ms}")
            state.arrival_ms = now
        state.idle = kind == "idle"
        if skewed:
            self.skewed_events += 1
            if not state.skewed:
                state.skewed = True
                self._alarm(now, event_ms, source_id, "clock_skew", "skew",
                            event_ms - now, self._skew_ms, key=f"at={event_ms}:{seq}")
        else:
            state.skewed = False
            if event_ms > state.event_ms:
                state.event_ms = event_ms
        if seq is not None:
            self._observe_seq(state, source_id, seq, event_ms, now)

    def _observe_seq(
        self, state: SourceState, source_id: str, seq: int, event_ms: int, now: int
    ) -> None:
        last = state.seq
        if last is not None and last < seq <= last + 64:
            step = seq - last
            state.seen = ((state.seen << step) | (1 << (step - 1))) & _SEEN_MASK
        elif last is None or seq > last:
            state.seen = 0
        if last is None or seq == last + 1:
            state.seq = seq
        elif seq > last + 1:
            cfg = self.config
            if cfg.reorder_ms > 0 and seq - last - 1 <= cfg.max_held:
                if state.gaps is None:
                    state.gaps = []
                state.gaps.append(_Gap(last, seq, event_ms, now + cfg.reorder_ms))
            else:
                self._gap_alarm(source_id, last, seq, seq - last - 1, event_ms, now)
            state.seq = seq
        elif last - seq > self.config.reset_window:
            self._alarm(now, event_ms, source_id, "seq_reset", "sequence", seq, last,
                        details={"last_seq": last, "seq": seq}, key=f"reset={last}>{seq}")
            state.seq = seq
            state.seen = 0
        elif seq == last or (last - seq <= 64 and state.seen >> (last - 1 - seq) & 1):
            self._duplicate(state, source_id, seq, event_ms, now)
        else:
            if last - seq <= 64:
                state.seen |= 1 << (last - 1 - seq)
            self.reordered += 1  # a late seq: counted, and fills its gap
            gaps = state.gaps
            if gaps:
                for gap in gaps:
                    if gap.after_seq < seq < gap.seq:
                        gap.missing.discard(seq)
                        if not gap.missing:
                            gaps.remove(gap)
                        break

    def _duplicate(self, state: SourceState, source_id: str, seq: int, event_ms: int,
                   now: int) -> None:
        self.duplicates += 1
        if state.dup_at is None or now - state.dup_at >= self.config.duplicate_alarm_ms:
            state.dup_at = now
            self._alarm(now, event_ms, source_id, "duplicate", "sequence", seq, 0,
                        details={"seq": seq}, key=f"dup={seq}")

    def _gap_alarm(self, source_id: str, after_seq: int, seq: int, missing: int,
                   event_ms: int, now: int) -> None:
        self.gaps += 1
        self._alarm(now, event_ms, source_id, "seq_gap", "sequence", missing, 1,
                    details={"after_seq": after_seq, "seq": seq}, key=f"seq={seq}")

    def _due_gaps(self, source_id: str, state: SourceState, now: int | None) -> None:
        """Report the held gaps of ``state`` that are due at ``now`` (all when None)."""
        assert state.gaps is not None
        waiting = []
        for gap in state.gaps:
            if now is None or gap.due <= now:
                self._gap_alarm(source_id, gap.after_seq, gap.seq, len(gap.missing),
                                gap.event_ms, gap.due if now is None else now)
            else:
                waiting.append(gap)
        state.gaps = waiting or None

    def flush_gaps(self) -> None:
        """End of input: what is still missing stays missing; report every held gap."""
        for source_id, state in self._sources.items():
            if state.gaps:
                self._due_gaps(source_id, state, None)

    @staticmethod
    def cadence_ms(state: SourceState) -> float:
        """The gap a moment of ``state``'s source's time falls in, on average (0 while
        unknown): the length-weighted mean of its recent gaps."""
        return state.gap_squares / state.gap_sum if state.gap_sum > 0 else 0.0

    def silence_after_ms(self, state: SourceState) -> float:
        """How long ``state``'s source may stay quiet before it counts as silent: its
        cadence times ``silence_factor``, within the configured bounds (the upper one
        while its cadence is unknown)."""
        cadence = self.cadence_ms(state)
        if cadence <= 0:
            return self._max_silence_ms
        return min(max(self._min_silence_ms, self._silence_factor * cadence),
                   self._max_silence_ms)

    def _learn_gap(self, state: SourceState, gap: float) -> None:
        """Add one gap to the source's cadence, at most the silence limit in force (beyond
        it the source was silent: an outage, not its cadence), older gaps fading over
        ``cadence_memory_ms``."""
        if gap <= 0:  # two events at one instant of the pipeline clock
            return
        gap = min(gap, self.silence_after_ms(state))
        keep = math.exp(-gap / self._cadence_memory_ms)
        state.gap_sum = keep * state.gap_sum + gap
        state.gap_squares = keep * state.gap_squares + gap * gap

    @property
    def lag_sketch(self) -> Sketch:
        """Every active source's lag at the last check, as a mergeable sketch."""
        return self._sketch

    def check(self, now: int, force: bool = False) -> None:
        """Find silent and retired sources and recompute the lag (rate-limited)."""
        cfg = self.config
        if not force and now - self._last_check < cfg.check_every_ms:
            return
        self._last_check = now
        lags = []
        retired = []
        for source_id, state in self._sources.items():
            if state.gaps:
                self._due_gaps(source_id, state, now)
            quiet = now - state.arrival_ms
            if state.idle:  # quiet on purpose: not silent, not lag, but not kept for ever
                if quiet > cfg.retire_after_ms:
                    retired.append(source_id)
                continue
            limit = self.silence_after_ms(state)
            if quiet > limit:
                if not state.silent:
                    state.silent = True
                    self._alarm(now, state.event_ms, source_id, "silence", "cadence", quiet,
                                limit, key=f"last={state.event_ms}")
                if quiet > max(cfg.retire_after_ms, 3 * limit):
                    retired.append(source_id)
                    continue
                lags.append(now - state.event_ms)
            else:
                lags.append(state.arrival_ms - state.event_ms)
        remembered = self._retired
        for source_id in retired:
            state = self._sources.pop(source_id)
            remembered[source_id] = (state.arrival_ms, self.cadence_ms(state))
            if len(remembered) > cfg.remember_retired:
                del remembered[next(iter(remembered))]
            self._alarm(now, state.event_ms, source_id, "retired",
                        "idle" if state.idle else "cadence",
                        now - state.arrival_ms, cfg.retire_after_ms,
                        key=f"retired={state.event_ms}")
        self._lag = kth_largest(lags, quantile_rank(len(lags), self.lag_share))
        self._sketch = sketch(lags)

    def lag_ms(self, now: int) -> int:
        """Watermark lag: the fleet's delay, a high quantile over active sources."""
        self.check(now)
        return self._lag

    def watermark_ms(self, now: int) -> int:
        """The event-time watermark, ``now - lag``."""
        return now - self.lag_ms(now)

    def drain_alarms(self) -> list[Alarm]:
        """Alarms raised since the last call."""
        alarms, self._alarms = self._alarms, []
        return alarms

    def _alarm(
        self, now: int, event_ms: int, source_id: str, signal: str, detector: str,
        value: float, threshold: float, details: dict | None = None, key: str = "",
    ) -> None:
        self._alarms.append(Alarm(now, event_ms, source_id, signal, detector, float(value),
                                  float(threshold), details or {}, key))
