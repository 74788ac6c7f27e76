"""Online drift detection: every value, the fleet as a reference, the model's output.

Every numeric field of ``values`` is watched per source, whatever its name, so
a stream of ``{"v": ...}`` events is covered with no tuning. Each stream has a
:class:`~operators.changes.ChangeDetector`: a CUSUM on its level and on its
spread, scaled by the stream's long-run variance (so a slow, autocorrelated
sensor keeps its power and its false-alarm budget), with a baseline from its
``warmup``-th sample and its level judged once ``young`` samples or ``young_ms`` of
event time are behind it, whichever comes first. Signals:

* ``value:<name>``: this source's level changed against its own baseline;
* ``peer:<name>``: the same, when the source has peers (at least
  ``min_peers`` sources report ``name``): the fleet's common movement (the
  median of every source's standardised deviation) is taken out first, so the
  source moved against its peers;
* ``fleet:<name>`` (``source_id`` empty): the common movement itself changed
  (a hot afternoon): one alarm for the fleet, not one per source. The median
  moves as soon as half the sources move, so a fleet move also needs a quorum
  (``FLEET_QUORUM`` of the sources moved with it); a group that moves short of
  one (3 units of a 5-unit shard) gets a ``peer:<name>`` alarm per unit that
  moved, the fleet's move in its details. A common move the fleet's detector
  has not found yet is also found by a source's held change against it, when
  its peers' move measured at that onset explains the change (detector
  ``peers``; see :func:`_peers_went`);
* ``relation:<name>``: this source's value left what its other values say it
  should be (a relation learned over its fleet, :mod:`operators.relations`):
  a slow drift inside the value's own wander and its peers' range;
* ``variance:<name>``: the spread of this source's value changed. The fleet's
  common movement has no spread test: a median takes the noise of whichever
  source is in the middle, so its spread changes as its sources' levels cross,
  with no change in any of them. A fleet that turns noisy together is a
  ``variance:`` alarm per source;
* ``frozen:<name>``: the value repeated, after it had varied, as long as its own
  rate of repeats makes a run a one-in-ten-million chance, and at least
  ``freeze_run`` (20) times (a sensor in coarse steps repeats itself; a fine one never).

Each level or spread alarm carries what changed, by how much (``magnitude``,
in the baseline's standard deviations), which way, since when (``onset_ms``,
the estimated event time where the change began) and against what baseline.

The model's score and confidence (per shard, ``source_id`` empty), as their mean
per second of pipeline clock, go to the same change detector (``cusum``; a river
detector may be named instead), and prediction errors, once outcomes arrive, to
a river binary detector (``hddm_a``). The scores are watched with what the model's
own learning moved them taken out (measured as it learns:
:attr:`~operators.modelpath.ModelPath.learned`): a model that learns in steps (a
replay's large batches) moves its scores at each step, which is no news; its input
moving, or the model breaking, is. A model that learns online moves its
scores as the fleet's mix moves, slowly: a detector that takes those means as
independent samples (ADWIN) alarms on that wander. Alarms are debounced per
source and signal (``debounce_ms`` of pipeline clock) and their IDs count
samples, so a replay writes the same alarms.
"""

from __future__ import annotations

import itertools
import math
from array import array
from collections import deque
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mypy_extensions import mypyc_attr

from operators.alarms import Alarm
from operators.changes import STEP_RECORD, Change, ChangeDetector
from operators.longrun import median
from operators.relations import RelationWatch

if TYPE_CHECKING:
    from operators.batch import BatchResult, DecideBatch

__all__ = ["DriftConfig", "DriftMonitor"]

VALUES = ("cusum",)
# a source's move beyond this many times its fleet's (same moment) is its own
FLEET_SHARE = 4.0
# a common move is the fleet's when at least this share of its sources moved with it;
# a median moves once half of them do, and a fleet-wide change (heat, a road closed)
# moves nearly all: between the two, a group of units moved, and each is named
FLEET_QUORUM = 2 / 3
# a group that moved stands clear of the rest by this many times what the common level
# usually moves by itself between the windows that measure the moves
GROUP_GAP_Z = 3.0
# rounds of every source's standardised level kept to tell who moved: up to
# FLEET_WINDOW rounds before a move's onset and as many since (the rounds it took to
# find the move, and a held change's grace, lie between)
FLEET_WINDOW = 32
FLEET_ROUNDS = 1_024
# a held source change is its share of a move its peers made when their measured move
# since its onset is this many times what their common level's usual move is
PEERS_MOVED_Z = 3.0
LISTED_PEERS = 64  # an alarm against a fleet names its sources up to this many
STANDARDISE = 1_000  # samples of a source that define its level and spread for the fleet
REAL = ("cusum", "adwin", "page_hinkley", "kswin")
BINARY = ("hddm_a", "hddm_w", "ddm", "eddm")


# a frozen run is at least this many times the longest the stream has shown (as a
# step is STEP_RECORD times the largest the stream has shown)
RUN_RECORD = int(STEP_RECORD)


@mypyc_attr(native_class=False)
@dataclass(frozen=True)
class DriftConfig:
    """Which detector watches what; every default holds for unseen streams.

    ``false_alarms_per_million`` is the budget of each value stream (level and
    spread together, per million samples); ``min_peers`` sources reporting a
    value make a fleet that serves as their reference (``None``: never), and
    ``peer_group`` says which sources make one fleet (default: all of them).
    """

    values: str | None = "cusum"
    scores: str | None = "cusum"
    errors: str | None = "hddm_a"
    warmup: int = 30
    # a value stream's level is judged once it has this many samples, or this much event
    # time, behind it, whichever comes first (operators.changes)
    young: int = 1_000
    young_ms: int = 100_000
    false_alarms_per_million: float = 1.0
    min_peers: int | None = 5
    # which sources are peers: a module-level function of the source ID giving its
    # group (None: every source of the shard is one group)
    peer_group: Callable[[str], str] | None = None
    freeze_run: int = 20
    debounce_ms: int = 30_000
    adwin_delta: float = 1e-4
    adwin_clock: int = 4
    kswin_every: int = 10
    ignore: tuple[str, ...] = ()
    # bounds on memory whatever the stream sends: value names watched per source, and
    # value names with a fleet reference per shard; names beyond are not watched
    max_names_per_source: int = 64
    max_fleet_names: int = 1_024
    # the model's scores are watched as their mean per this much pipeline clock (0: each
    # score): an online model's scores move sample to sample as the mix of sources turns
    # and as it learns, and a detector that takes them as independent alarms on that
    score_bucket_ms: int = 1_000
    # a change of the model's mean score (or confidence) smaller than this, in
    # probability, is not reported: a shard's mean over a few sources is so steady that
    # the change detector finds moves of a few thousandths, which change no decision
    score_min_change: float = 0.05
    # a source's level change against its peers is held this long (pipeline clock), and
    # dropped if its fleet moved within this much of its onset: one alarm for the fleet
    fleet_grace_ms: int = 5_000
    # each value against what the source's other values predict (a relation learned
    # over its fleet, see operators.relations): samples per block mean, or 0 for none
    relation_block: int = 8

    def __post_init__(self) -> None:
        for name, kind, allowed in (("values", self.values, VALUES),
                                    ("scores", self.scores, REAL),
                                    ("errors", self.errors, BINARY)):
            if kind is not None and kind not in allowed:
                raise ValueError(f"drift {name}={kind!r}: use one of {allowed} or None")
        if self.warmup < 10:
            raise ValueError(f"drift warmup={self.warmup}: use at least 10 samples")
        if self.young < self.warmup:
            raise ValueError(f"drift young={self.young}: use at least warmup "
                             f"({self.warmup}) samples")
        if not 0.0 <= self.score_min_change < 1.0:
            raise ValueError(f"drift score_min_change={self.score_min_change}: a change "
                             "of a probability; use 0 (every change) up to below 1")
        if self.max_names_per_source < 1 or self.max_fleet_names < 1:
            raise ValueError("drift max_names_per_source and max_fleet_names: use at least 1")
        if self.min_peers is not None and self.min_peers < 3:
            raise ValueError(f"drift min_peers={self.min_peers}: a median of fewer than 3 "
                             "sources is no reference; use 3 or more, or None")

    def detector(self, spread: bool = True) -> ChangeDetector:
        return ChangeDetector(warmup=self.warmup,
                              false_alarms_per_million=self.false_alarms_per_million,
                              spread=spread, young=self.young, young_ms=self.young_ms)


def _detector(kind: str, config: DriftConfig) -> Any:
    if kind == "cusum":
        return config.detector()
    # river's detectors are imported when one is asked for: river.drift imports scipy,
    # most of a second of a process's start, and a flow without outcome labels or a
    # river detector named never needs it
    from river import drift
    from river.drift import binary

    if kind == "adwin":
        return drift.ADWIN(delta=config.adwin_delta, clock=config.adwin_clock)
    if kind == "page_hinkley":
        return drift.PageHinkley(mode="both", threshold=50.0, delta=0.1, min_instances=100)
    if kind == "kswin":
        return drift.KSWIN(alpha=0.0001, window_size=200, stat_size=60, seed=0)
    return {"hddm_a": binary.HDDMA, "hddm_w": binary.HDDMW, "ddm": binary.DDM,
            "eddm": binary.EDDM}[kind]()


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)
class _Stream:
    """One watched value of one source: its detector, its frozen run, and the level and
    spread that standardise it for the fleet (learned over its first samples, then
    fixed, so the fleet's common level never feeds back into what defines it)."""

    __slots__ = ("counter", "det", "fleet", "freeze_at", "last", "longest", "m2", "mean", "n",
                 "paced", "pairs", "probe", "repeats", "rises", "run", "sd", "varied")

    def __init__(self, det: ChangeDetector, fleet: _Fleet | None) -> None:
        self.det = det
        self.fleet = fleet
        # its latest readings (with their event and pipeline times) while it may be a
        # cumulative counter (then None), and how many of their steps rose; a counter is
        # watched by its increments
        self.probe: list[tuple[float, int, int]] | None = []
        self.rises = 0
        self.counter = False
        self.last = math.nan  # its latest reading (none yet: NaN, which equals nothing)
        self.run = 0
        self.varied = False
        # consecutive readings compared, how many were equal, and the longest run (of the
        # runs ended); the run that is a frozen sensor for this stream (see frozen_after)
        self.pairs = self.repeats = self.longest = 0
        self.freeze_at = 0
        self.n = 0
        self.mean = 0.0
        self.m2 = 0.0
        self.sd = 0.0  # its spread for the fleet, once it has one
        # the fleet's rounds kept, and this stream's samples, when it first took part in
        # a round of a fleet that was a reference (its pace against the rounds' since)
        self.paced: tuple[int, int] | None = None

    def frozen_after(self, least: int, per_million: float) -> int:
        """How long a run of equal readings is news for this stream. With each reading
        equal to the one before with probability ``q`` (measured over the runs that
        ended, at its upper bound for the readings seen), a run of ``n`` comes by chance
        with ``q ** (n - 1)``: a frozen run is one that rare within a tenth of the
        budget, and at least ``least`` readings (a sensor in coarse steps repeats
        itself; a fine one almost never does), and ``RUN_RECORD`` times the longest
        this stream has shown: a slow wander in coarse steps sits on one for longer than
        chance alone says (runs end where the wander crosses a step, and a step's middle
        holds it for hundreds of readings), and the longest run of such a stream grows
        as it is watched, as a heavy tail's record does (the step test's bar is 4 times
        its record for the same reason).

        >>> fine, coarse = _Stream(None, None), _Stream(None, None)  # type: ignore[arg-type]
        >>> fine.pairs, fine.repeats, fine.longest = 101, 1, 2        # 1 in 101 repeats
        >>> coarse.pairs, coarse.repeats, coarse.longest = 1200, 1100, 12  # 11 in 12
        >>> fine.frozen_after(50, 1.0), coarse.frozen_after(50, 1.0)
        (50, 230)
        >>> coarse.pairs, coarse.repeats, coarse.longest = 1400, 1299, 200  # a long one
        >>> coarse.frozen_after(50, 1.0)                        # 4 times it is news
        800
        """
        n = self.pairs + 2
        q = (self.repeats + 1) / n
        # at its upper bound for the readings seen: a young stream has shown few runs
        q = min(q + 2.0 * math.sqrt(q * (1.0 - q) / n), 1.0 - 1e-12)
        tail = max(per_million, 1e-9) * 1e-7
        return max(least, math.ceil(1 + math.log(tail) / math.log(q)),
                   RUN_RECORD * self.longest)

    def rounds_since(self, samples: int) -> int:
        """The fleet's rounds in the time of this stream's last ``samples`` samples: a
        round is one sample of every source, and a source may report faster or slower
        than the fleet's mean."""
        fleet, paced = self.fleet, self.paced
        if fleet is None or paced is None or self.det.n <= paced[1] or fleet.kept <= paced[0]:
            return samples
        return round(samples * (fleet.kept - paced[0]) / (self.det.n - paced[1]))


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)
class _Fleet:
    """The common movement of one value over a shard's sources, and its detector.

    Each source's deviation from its own level, in its own standard deviations
    (both learned over its first ``STANDARDISE`` samples), is its standardised
    level; the median of the latest one of every source is the fleet's common
    level, recomputed once per round of samples (as many as there are sources).
    ``common`` is 0 until ``min_peers`` sources take part: no fleet, no reference.
    """

    __slots__ = ("common", "det", "due", "group", "kept", "latest", "peers", "rounds")

    def __init__(self, det: ChangeDetector, group: str) -> None:
        self.det = det
        self.group = group
        self.latest: dict[str, float] = {}
        self.common = 0.0
        self.peers = False  # enough sources to be a reference
        self.due = 1        # samples until the next round
        # the last rounds: (sources, their standardised levels), oldest first; a round
        # whose sources are the previous round's shares its tuple of names
        self.rounds: deque[tuple[tuple[str, ...], array[float]]] = \
            deque(maxlen=FLEET_ROUNDS)
        self.kept = 0  # rounds kept since the start

    def keep_round(self) -> None:
        """Keep this round's standardised levels (the oldest round goes past
        ``FLEET_ROUNDS``)."""
        names = tuple(self.latest)
        if self.rounds and self.rounds[-1][0] == names:
            names = self.rounds[-1][0]
        # an array is a quarter of a list's memory; from a list it is made in C, from the
        # dict's view through the iterator protocol (1.6x the time)
        self.rounds.append((names, array("d", list(self.latest.values()))))
        self.kept += 1

    def windows(self, since_rounds: int) -> tuple[int, int, int, int] | None:
        """The kept rounds (``[start, end)`` before, and after) that measure a move
        begun ``since_rounds`` rounds ago: up to ``FLEET_WINDOW`` either side of it, the
        nearest ones (the level wanders on), each a block clear of it (an onset is
        estimated to about a block; fewer when the move is young); ``None`` when too
        few are kept to tell."""
        kept = len(self.rounds)
        onset = kept - since_rounds
        gap = min(self.det.block, since_rounds // 4)
        pre_end = onset - gap
        pre_start = max(0, pre_end - FLEET_WINDOW)
        post_start = onset + gap
        post_end = min(kept, post_start + FLEET_WINDOW)
        if post_end - post_start < 2 or pre_end - pre_start < 4:
            return None
        return pre_start, pre_end, post_start, post_end

    def moves(self, windows: tuple[int, int, int, int]) -> dict[str, float]:
        """Each source's move between two ``windows`` of kept rounds: the median of
        its standardised levels in the second, less the median in the first."""
        pre_start, pre_end, post_start, post_end = windows
        levels: dict[str, tuple[list[float], list[float]]] = {}
        for i, (names, values) in enumerate(self.rounds):
            if pre_start <= i < pre_end:
                side = 0
            elif post_start <= i < post_end:
                side = 1
            else:
                continue
            for name, x in zip(names, values, strict=True):
                levels.setdefault(name, ([], []))[side].append(x)
        return {name: median(post) - median(pre)
                for name, (pre, post) in levels.items() if pre and post}


def _increment(before: float, after: float) -> float:
    """``after - before``, rounded to the digits the readings hold: a float's difference
    of two large readings carries the last bits of both (0.0004 kWh between readings of
    3,000 comes out as 0.00039999999989 or 0.00040000000012), and a detector would take
    those for the increments' own spread.

    >>> _increment(3000.1234, 3000.1238), _increment(0.5, 0.75)
    (0.0004, 0.25)
    """
    size = max(abs(before), abs(after))
    digits = 14 - math.ceil(math.log10(size)) if size >= 1 else 14
    return round(after - before, digits)


def _went_along(moves: dict[str, float], move: float) -> list[str]:
    """The sources (sorted) whose own move went at least half of a common ``move``, its
    way."""
    return sorted(name for name, x in moves.items() if x * move >= 0.5 * move * move)


def _a_group(moves: dict[str, float], move: float, movers: list[str],
             usual: float | None) -> bool:
    """Whether the ``movers`` of a common ``move`` are a group of the sources and not
    their fleet.

    Fewer than ``FLEET_QUORUM`` of the sources moving make a group, provided the group
    stands clear of the rest: its least move beats the others' greatest by half the
    common move, and by ``GROUP_GAP_Z`` times the common level's ``usual`` move between
    the windows that measured them (see :func:`_usual_move`; unknown yet, no group). A
    source's move is measured over a few rounds of a noisy, often slow, level, and a
    spread of moves with no such gap in it is one fleet, moving unevenly.
    """
    if usual is None or not movers or len(movers) >= FLEET_QUORUM * len(moves):
        return False
    moved = set(movers)
    went = [moves[m] for m in movers]
    stayed = [x for name, x in moves.items() if name not in moved]
    gap = min(went) - max(stayed) if move > 0 else min(stayed) - max(went)
    return gap >= max(0.5 * abs(move), GROUP_GAP_Z * usual)


def _usual_move(fleet: _Fleet, windows: tuple[int, int, int, int]) -> float | None:
    """How far the fleet's common level usually moves by itself between two windows of
    kept rounds: the fleet detector's jump scale, taken to those windows (see
    :func:`_jump_share`); ``None`` until that scale is learned."""
    scale = fleet.det.jump_sd
    if not scale:  # not learned yet, or a common level that never moved
        return None
    pre_start, pre_end, post_start, post_end = windows
    return scale * _jump_share(pre_end - pre_start, post_end - post_start,
                               post_start - pre_end, fleet.det.block)


@mypyc_attr(native_class=False)
@dataclass(frozen=True, slots=True)
class _Held:
    """A source's change held for the fleet's grace: when it was found (pipeline clock),
    what, of which source and value, and the fleet's rounds kept by then."""

    at: int
    change: Change
    source_id: str
    name: str
    event_ms: int
    group: str
    signal: str  # "peer" or "relation"
    kept: int


def _own_z(change: Change, stream: _Stream) -> float:
    """A source's level change against its fleet in its standardised units (the
    fleet's)."""
    return change.magnitude * change.baseline_sd / stream.sd


def _within_share(change: Change, stream: _Stream, fleet_z: float) -> bool:
    """Whether a source's level change against its fleet is small enough to be its share
    of a common move of ``fleet_z`` (standardised units; see ``FLEET_SHARE``)."""
    r = max(1.0, change.baseline_sd / stream.sd)
    return abs(_own_z(change, stream)) <= FLEET_SHARE * r * abs(fleet_z)


@mypyc_attr(native_class=False)
@dataclass(frozen=True, slots=True)
class _PeersMove:
    """A common move measured in the kept rounds: its size (standardised units), in
    multiples of the common level's usual move, and the peers that went with it."""

    move: float
    z: float
    along: list[str]
    measured: int


def _peers_went(fleet: _Fleet, held: _Held, stream: _Stream) -> _PeersMove | None:
    """The move its peers made that a held change is its source's share of, measured;
    ``None`` when there is none.

    The fleet's detector finds a common move of a slow, wandering value late (it judges
    the common level against how far it wanders by itself), while each source against
    that level sees the difference between its move and the median's at once. So the
    peers' own moves at the change's onset are measured from the kept rounds (see
    :meth:`_Fleet.windows`): the move is theirs when their median move is
    ``PEERS_MOVED_Z`` times what the common level usually moves by itself between such
    windows (see :func:`_usual_move`),
    ``FLEET_QUORUM`` of them went half of it its way, the source itself went its way,
    and the change is within ``FLEET_SHARE`` of it.
    """
    change = held.change
    since = fleet.kept - held.kept + stream.rounds_since(change.sample - change.onset_sample)
    windows = fleet.windows(since)
    noise = _usual_move(fleet, windows) if windows and stream.sd else None
    if windows is None or noise is None:
        return None
    moves = fleet.moves(windows)
    moves.pop(held.source_id, None)
    if len(moves) < 2:
        return None
    went = median(list(moves.values()))
    along = _went_along(moves, went)
    # the source's own move (its change against the fleet, plus the fleet's) did not go
    # against the fleet's by half of it: a unit that rose while its peers fell did not
    # move with them (one that moved little, its own wander against it, may have)
    own = _own_z(change, stream) + went
    if abs(went) >= PEERS_MOVED_Z * noise and len(along) >= FLEET_QUORUM * len(moves) and \
            own * went >= -0.5 * went * went and _within_share(change, stream, went):
        return _PeersMove(went, abs(went) / noise, along, len(moves))
    return None


def _jump_share(before: int, after: int, between: int, block: int) -> float:
    """The usual difference of two windows' levels (``before`` and ``after`` rounds long,
    with ``between`` rounds from the end of one to the start of the other) as a share
    of the jump test's (blocks with two blocks between): the larger of what it is for a
    level that is white noise (its variance goes as one over each window's length) and
    for one that wanders as a random walk (as the rounds between the windows plus a
    third of each window's length).

    >>> round(_jump_share(16, 16, 32, 16), 3)  # the jump test's own windows
    1.0
    >>> round(_jump_share(32, 32, 32, 16), 3)  # longer windows: the wander counts most
    1.118
    """
    white = (1 / before + 1 / after) * block / 2
    walk = (between + (before + after) / 3) / (8 * block / 3)
    return max(white, walk) ** 0.5


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)
class DriftMonitor:
    """Feeds values, scores and errors to their detectors; returns alarms.

    >>> import random
    >>> rng = random.Random(0)
    >>> monitor = DriftMonitor()
    >>> for i in range(2_000):
    ...     level = 0.0 if i < 1_000 else 3.0          # a sudden shift at sample 1,000
    ...     monitor.observe("s1", {"v": rng.gauss(level, 1)}, event_ms=i, now=i * 100)
    >>> a = monitor.drain_alarms()[0]
    >>> a.signal, a.source_id, a.direction, 990 <= a.onset_ms <= 1_010, round(a.magnitude)
    ('value:v', 's1', 'up', True, 3)
    """

    def __init__(self, config: DriftConfig | None = None) -> None:
        cfg = self._config = config or DriftConfig()
        # what every sample reads, held as this compiled class's own fields: the config
        # is a Python dataclass, and each of its fields is a lookup by name
        self._values_on = cfg.values is not None
        self._freeze_run = cfg.freeze_run
        self._warmup = cfg.warmup
        self._reset()

    @property
    def config(self) -> DriftConfig:
        """The settings it was made with (fixed: some are copied at construction)."""
        return self._config

    def _reset(self) -> None:
        self._streams: dict[str, dict[str, _Stream]] = {}  # source -> value name -> stream
        self._fleets: dict[tuple[str, str], _Fleet] = {}    # (group, value) -> common movement
        self._fleet: dict[str, Any] = {}
        self._fleet_n: dict[str, int] = {}
        self._last_alarm: dict[tuple[str, str], int] = {}
        self._alarms: list[Alarm] = []
        # source level changes against peers, held for fleet_grace_ms; the onset of each
        # fleet's latest move of each value
        self._held: deque[_Held] = deque()
        self._fleet_moves: dict[tuple[str, str], tuple[int, float]] = {}
        # the onset of each fleet's latest move found by its peers' measure
        self._peer_found: dict[tuple[str, str], int] = {}
        self._bucket: list = [None, 0.0, 0, 0]  # the model's scores of the open bucket
        cfg = self.config
        self._ignore = frozenset(cfg.ignore)  # looked up for every value of every event
        self._relations = RelationWatch(cfg.relation_block, cfg.min_peers, warmup=cfg.warmup,
                                        ignore=cfg.ignore, group_of=cfg.peer_group) \
            if cfg.relation_block and cfg.min_peers is not None else None

    @property
    def streams(self) -> int:
        return sum(len(named) for named in self._streams.values())

    def observe(self, source_id: str, values: dict[str, float], event_ms: int,
                now: int) -> None:
        """Watch every value of one event."""
        if not self._values_on:
            return
        cfg = self.config
        streams = self._streams.get(source_id)
        if streams is None:
            streams = self._streams[source_id] = {}
        ignore, fleets = self._ignore, self._fleets
        if self._relations is not None:
            for name, group, moved in self._relations.observe(source_id, values, event_ms):
                self._held.append(_Held(now, moved, source_id, name, event_ms, group,
                                        "relation", 0))
        for name, x in values.items():
            if name in ignore:
                continue
            s = streams.get(name)
            if s is None:
                if len(streams) >= cfg.max_names_per_source:
                    self._unwatched(source_id, name, event_ms, now)
                    continue
                fleet = None
                if cfg.min_peers is not None:
                    group = cfg.peer_group(source_id) if cfg.peer_group else ""
                    fleet = fleets.get((group, name))
                    if fleet is None and len(fleets) < cfg.max_fleet_names:
                        fleet = fleets[group, name] = _Fleet(cfg.detector(spread=False), group)
                s = streams[name] = _Stream(cfg.detector(), fleet)
            x = float(x)
            if not -1e12 <= x <= 1e12:  # as the model does: absurd magnitudes are clipped
                x = 1e12 if x > 0 else -1e12
            last = s.last
            if x == last:
                s.run += 1
                if s.run >= self._freeze_run and s.varied:
                    # no run is frozen before freeze_run: the stream's own bar is worked
                    # out then, once a run (a fine sensor's runs end at 1 or 2)
                    if s.run == self._freeze_run:
                        s.freeze_at = s.frozen_after(self._freeze_run,
                                                     cfg.false_alarms_per_million)
                    if s.run == s.freeze_at:
                        self._alarm(now, event_ms, source_id, f"frozen:{name}", "run_length",
                                    s.run, s.freeze_at,
                                    {"value": x, "sample": s.det.n + 1})
            else:
                if last == last:  # not NaN: a reading before this one
                    s.varied = True
                    s.pairs += s.run
                    s.repeats += s.run - 1
                    if s.run > s.longest:
                        s.longest = s.run
                s.run = 1
            s.last = x
            probe = s.probe
            if probe is not None:
                # watched as readings while it may be a cumulative counter (an energy
                # meter, an odometer, a message count): it is not once it falls; it is
                # once its latest warm-up's worth of readings rose in at least half their
                # steps (an idle meter is flat until its machine starts)
                if probe and x < probe[-1][0]:
                    s.probe = None
                else:
                    if probe and x > probe[-1][0]:
                        s.rises += 1
                    probe.append((x, event_ms, now))
                    if len(probe) > self._warmup:
                        if probe[1][0] > probe[0][0]:
                            s.rises -= 1
                        del probe[0]
                    if len(probe) >= self._warmup and 2 * s.rises >= len(probe) - 1:
                        s.probe = None
                        self._as_counter(s, source_id, name, probe)
                        continue
            elif s.counter:
                if x < last:
                    if x > 0.1 * last:  # not a reset to near zero: no counter after all
                        fresh = streams[name] = _Stream(cfg.detector(), s.fleet)
                        fresh.probe = [(x, event_ms, now)]
                        self._feed(fresh, source_id, name, x, event_ms, now)
                    continue  # a counter's reset is no increment
                x = _increment(last, x)
            self._feed(s, source_id, name, x, event_ms, now)

    def _as_counter(self, s: _Stream, source_id: str, name: str,
                    probe: list[tuple[float, int, int]]) -> None:
        """``s`` is a cumulative counter: watched from scratch by its increments (each at
        the later reading's times, from the latest warm-up's worth of readings); what its
        readings taught its detector and its fleet is forgotten."""
        s.counter = True
        s.det = self.config.detector()
        s.n, s.mean, s.m2, s.sd, s.paced = 0, 0.0, 0.0, 0.0, None
        if s.fleet is not None:
            s.fleet.latest.pop(source_id, None)
        for (a, _, _), (b, at, then) in itertools.pairwise(probe):
            self._feed(s, source_id, name, _increment(a, b), at, then)

    def _feed(self, s: _Stream, source_id: str, name: str, x: float, event_ms: int,
              now: int) -> None:
        """One sample of a watched stream (a reading, or a counter's increment): against
        its fleet's common level, then its detector."""
        fleet = s.fleet
        common = 0.0
        if fleet is not None:
            if s.n < STANDARDISE:
                self._standardise(s, x)
            sd = s.sd
            if sd:
                fleet.latest[source_id] = (x - s.mean) / sd
                if fleet.peers:
                    common = sd * fleet.common
                    x -= common  # what the fleet did, this source did not
                    if s.paced is None:
                        s.paced = (fleet.kept, s.det.n)
                fleet.due -= 1
                if fleet.due <= 0:
                    self._fleet_round(name, fleet, event_ms, now)
        change = s.det.update(x, event_ms, common)
        if change is not None:
            if change.kind == "level":  # its own new level is its normal from now on
                s.mean += change.magnitude * change.baseline_sd
            peers = fleet is not None and fleet.peers and s.sd != 0
            if peers and change.kind == "level":
                # held a moment: the fleet may be moving with it (one alarm for the
                # fleet, not one per source)
                assert fleet is not None
                self._held.append(_Held(now, change, source_id, name, event_ms,
                                        fleet.group, "peer", fleet.kept))
            else:
                self._change(change, source_id, name, "peer" if peers else "value",
                             event_ms, now, peers=fleet.latest if peers and fleet
                             else None)

    def observe_batch(self, batch: DecideBatch, out: BatchResult) -> None:
        """Watch every value of the batch's events, then the model's scores (alarms wait
        in :meth:`drain_alarms`)."""
        if not batch.board.flags.enabled("drift"):
            return
        for ev, now in zip(batch.events, batch.now):  # noqa: B905 - only a keyword-free zip compiles to a C loop
            self.observe(ev.source_id, ev.values, ev.event_ms, now)
        if batch.model_young:
            return
        every = self.config.score_bucket_ms
        # a score is watched with what its model's learning moved it taken out: one
        # offset when one variant scored the batch, each its own in a rollout
        scores = batch.score
        learned = batch.learned
        off = 0.0
        if len(learned) == 1:
            off = next(iter(learned.values()))
        elif learned:
            scores = [None if s is None else s - learned.get(v, 0.0)
                      for s, v in zip(scores, batch.variant)]  # noqa: B905 - only a keyword-free zip compiles to a C loop
        if every <= 0:
            modelled = [s - off for s in scores if s is not None]
            if modelled:
                self.observe_model(modelled, batch.events[-1].event_ms, batch.now[-1])
            return
        bucket = self._bucket  # (bucket, sum, count, event_ms) of the open bucket
        for score, ev, now in zip(scores, batch.events, batch.now):  # noqa: B905 - only a keyword-free zip compiles to a C loop
            if score is None:
                continue
            at = now // every
            if at != bucket[0]:
                if bucket[2]:
                    self.observe_model([bucket[1] / bucket[2]], bucket[3], bucket[0] * every)
                bucket = [at, 0.0, 0, ev.event_ms]
            bucket[1] += score - off
            bucket[2] += 1
            bucket[3] = ev.event_ms
        self._bucket = bucket

    def _standardise(self, s: _Stream, x: float) -> None:
        """Welford's running mean and variance over a source's first samples."""
        s.n += 1
        delta = x - s.mean
        s.mean += delta / s.n
        s.m2 += delta * (x - s.mean)
        if s.n >= self._warmup and s.m2 > 0:
            s.sd = (s.m2 / (s.n - 1)) ** 0.5

    def _fleet_round(self, name: str, fleet: _Fleet, event_ms: int, now: int) -> None:
        """A round of samples is in: the common level moves, and is itself watched."""
        latest = fleet.latest
        fleet.due = len(latest)
        fleet.peers = len(latest) >= (self.config.min_peers or 0)
        if not fleet.peers:
            fleet.common = 0.0
            return
        fleet.common = median(list(latest.values()))
        fleet.keep_round()
        change = fleet.det.update(fleet.common, event_ms)
        if change is None:
            return
        # a level change (the fleet's detector tests no spread): its size in standardised
        # units (a magnitude is signed, in baseline sds); a source's level change against
        # the moved median is explained by it either way
        move = change.magnitude * change.baseline_sd
        key = (fleet.group, name)
        found = self._peer_found.get(key)
        self._fleet_moves[key] = (change.onset_ms, move)
        if found is not None and abs(found - change.onset_ms) <= self.config.fleet_grace_ms:
            return  # the move its peers' measure found: alarmed then
        windows = fleet.windows(change.sample - change.onset_sample)
        moves = fleet.moves(windows) if windows else {}
        moved = _went_along(moves, move)
        if not windows or not _a_group(moves, move, moved, _usual_move(fleet, windows)):
            self._change(change, "", name, "fleet", event_ms, now, fleet.group, peers=latest,
                         moved=moved if moves else None)
            return
        for source_id in moved:  # a group moved, not the fleet: an alarm for each unit
            s = self._streams.get(source_id, {}).get(name)
            if s is not None and s.sd:
                own = moves[source_id]
                self._alarm(now, event_ms, source_id, f"peer:{name}", "cusum", change.statistic,
                            change.threshold, {"sample": s.det.n, "kind": "level",
                                               "group": fleet.group, "fleet_move": round(move, 3),
                                               "moved": len(moved), "measured": len(moves)},
                            onset_ms=change.onset_ms, magnitude=round(own, 3),
                            direction="up" if own > 0 else "down", baseline=s.mean,
                            baseline_sd=s.sd)

    def _change(self, c: Change, source_id: str, name: str, signal: str, event_ms: int,
                now: int, group: str = "", peers: Collection[str] | None = None,
                moved: list[str] | None = None) -> None:
        """An alarm for a change of a value (``signal:name``; ``variance:name`` for its
        spread) or, with ``name`` empty, of the model's ``signal``. ``peers``: the
        sources it was judged with (a fleet's, or the model's), named in its details
        up to ``LISTED_PEERS`` of them, so a reader can tell which units moved together;
        ``moved``: of a fleet's, those that moved with it."""
        details = {"sample": c.sample, "onset_sample": c.onset_sample, "kind": c.kind,
                   "autocorrelation": round(c.autocorrelation, 3)}
        stream = self._streams.get(source_id, {}).get(name) if source_id and name else None
        if stream is not None and stream.counter:
            details["of"] = "increments"  # a counter: its rate changed, not its level
        if group:
            details["group"] = group
        if peers:
            details["peer_count"] = len(peers)
            if len(peers) <= LISTED_PEERS:
                details["peers"] = sorted(peers)
        if moved is not None:
            details["moved_count"] = len(moved)
            if len(moved) <= LISTED_PEERS:
                details["moved"] = moved
        detector = "relation" if signal == "relation" else "cusum"
        if name:
            signal = f"{'variance' if c.kind == 'spread' else signal}:{name}"
        self._alarm(now, event_ms, source_id, signal, detector, c.statistic,
                    c.threshold, details,
                    onset_ms=c.onset_ms, magnitude=round(c.magnitude, 3),
                    direction=c.direction, baseline=c.baseline_mean,
                    baseline_sd=c.baseline_sd)

    def observe_model(self, scores: Iterable[float], event_ms: int, now: int) -> None:
        """Watch the model's scores and confidences (fleet-wide for this shard)."""
        kind = self.config.scores
        if kind is None:
            return
        scores = list(scores)
        self._fleet_updates("score", kind, scores, event_ms, now)
        self._fleet_updates("confidence", kind, [s if s > 0.5 else 1.0 - s for s in scores],
                            event_ms, now)

    def observe_errors(self, errors: Iterable[bool], event_ms: int, now: int) -> None:
        """Watch the binary prediction-error stream (1 = the model was wrong)."""
        kind = self.config.errors
        if kind is None:
            return
        self._fleet_updates("error", kind, [float(e) for e in errors], event_ms, now)

    def _fleet_updates(self, signal: str, kind: str, values: list[float], event_ms: int,
                       now: int) -> None:
        det = self._fleet.get(signal)
        if det is None:
            det = self._fleet[signal] = _detector(kind, self.config)
        n = self._fleet_n.get(signal, 0)
        every = self.config.kswin_every if kind == "kswin" else 1
        least = self.config.score_min_change
        update = det.update
        for value in values:
            n += 1
            if isinstance(det, ChangeDetector):
                change = update(value, event_ms)
                if change is not None and (signal == "error" or abs(
                        change.magnitude * change.baseline_sd) >= least):
                    self._change(change, "", "", signal, event_ms, now,
                                 peers=self._streams)
                continue
            if every > 1 and n % every:
                continue
            update(value)
            if det.drift_detected:
                estimate = getattr(det, "estimation", value)
                self._alarm(now, event_ms, "", signal, kind, float(estimate), 0.0,
                            {"sample": n})
        self._fleet_n[signal] = n

    def forget(self, source_id: str) -> None:
        """Drop a retired source's streams, its place in the fleet and its alarm
        debounce (bounds memory)."""
        self._streams.pop(source_id, None)
        if self._relations is not None:
            self._relations.forget(source_id)
        for fleet in self._fleets.values():
            fleet.latest.pop(source_id, None)  # the next round sees one source fewer
        for key in [k for k in self._last_alarm if k[0] == source_id]:
            del self._last_alarm[key]

    def _unwatched(self, source_id: str, name: str, event_ms: int, now: int) -> None:
        """A value name beyond the source's limit: one alarm (debounced), not watched."""
        self._alarm(now, event_ms, source_id, "too_many_names", "limit",
                    self.config.max_names_per_source + 1, self.config.max_names_per_source,
                    {"name": name[:64], "sample": event_ms})

    def drain_alarms(self, now: int | None = None) -> list[Alarm]:
        """The alarms raised so far, with the held source level changes whose grace
        ended by pipeline time ``now`` (all of them with ``now`` None: end of input),
        less those the fleet's own move explains (see :meth:`_explained`). A held
        change's alarm is detected when its grace ends: that is when it is known to be
        the source's."""
        held, grace = self._held, self.config.fleet_grace_ms
        while held and (now is None or held[0].at + grace <= now):
            h = held.popleft()
            change, source_id, name, group = h.change, h.source_id, h.name, h.group
            if h.signal == "relation" and self._relations is not None and \
                    self._relations.went_with(source_id, name, change, grace, h.event_ms):
                continue
            stream = self._streams.get(source_id, {}).get(name)
            fleet = self._fleets.get((group, name))
            if self._explained(change, self._fleet_moves.get((group, name)), grace, stream):
                continue
            went = _peers_went(fleet, h, stream) if h.signal == "peer" and \
                fleet is not None and stream is not None else None
            if went is not None:
                assert fleet is not None
                self._peers_moved(fleet, name, h, went)
                continue
            self._change(change, source_id, name, h.signal, h.event_ms, h.at + grace,
                         peers=fleet.latest if fleet else None)
        alarms, self._alarms = self._alarms, []
        return alarms

    def _peers_moved(self, fleet: _Fleet, name: str, held: _Held, went: _PeersMove) -> None:
        """A fleet alarm for a common move its peers' measure found (see
        :func:`_peers_went`), unless the fleet's move is known already: a source's change
        that a move of its peers explains is two tests passed (the source's against the
        moved median at the budget, the peers' at their onset), and the fleet's detector
        may find that move late or not at all. Later changes at the same onset, and the
        fleet detector's own alarm for it, are taken as that move's."""
        key, change = (fleet.group, name), held.change
        known = self._fleet_moves.get(key)
        if known is not None and abs(known[0] - change.onset_ms) <= self.config.fleet_grace_ms:
            return
        self._fleet_moves[key] = (change.onset_ms, went.move)
        self._peer_found[key] = change.onset_ms
        base = fleet.det.baseline
        sd = base[1] if base is not None and base[1] > 0 else 1.0
        details = {"sample": fleet.kept, "kind": "level", "group": fleet.group,
                   "found_by": held.source_id, "measured": went.measured,
                   "moved_count": len(went.along), "peer_count": len(fleet.latest)}
        if len(went.along) <= LISTED_PEERS:
            details["moved"] = went.along
        self._alarm(held.at + self.config.fleet_grace_ms, held.event_ms, "", f"fleet:{name}",
                    "peers", went.z, PEERS_MOVED_Z,
                    details, onset_ms=change.onset_ms, magnitude=round(went.move / sd, 3),
                    direction="up" if went.move > 0 else "down",
                    baseline=base[0] if base is not None else 0.0, baseline_sd=sd)

    @staticmethod
    def _explained(change: Change, moved: tuple[int, float] | None, grace: int,
                   stream: _Stream | None) -> bool:
        """Whether the fleet's latest move explains a source's level change against it.

        The move must begin within the grace of the change. A common move shifts
        sources by different amounts (their spreads differ, and have changed since they
        were standardised: ``r``, the source's spread now over then), so a source that
        moved up to ``FLEET_SHARE`` times the fleet's move, in standardised units and
        either way, moved with it; beyond that the move is the source's own (one unit of
        24 reporting Fahrenheit moves 26 sd, and their median a little, the same moment).
        """
        if moved is None or stream is None or not stream.sd:
            return False
        onset_ms, fleet_z = moved
        return abs(change.onset_ms - onset_ms) <= grace and _within_share(change, stream,
                                                                          fleet_z)

    def _alarm(self, now: int, event_ms: int, source_id: str, signal: str, detector: str,
               value: float, threshold: float, details: dict, **shape: Any) -> None:
        group = details.get("group", "")
        key = (source_id or group, signal)
        last = self._last_alarm.get(key)
        if last is not None and now - last < self.config.debounce_ms:
            return
        self._last_alarm[key] = now
        self._alarms.append(Alarm(now, event_ms, source_id, signal, detector, float(value),
                                  float(threshold), details,
                                  key=f"{group}:sample={details['sample']}" if group
                                  else f"sample={details['sample']}", **shape))
