"""The shared wiring: from raw batches to decisions in the store.

Every flow is the same shape; a flow module supplies its decision policy and
its input. The dataflow reads top to bottom::

    ingest ─► decode ─┬─► contract_rows (dead letters, outcomes) ─────────┐
                      └─► shard (by source) ─► decide (freshness, rules, ├─► store
                            model, SLA, mode; per shard state) ───────────┘

Items are batches throughout, so Bytewax's per-item cost is paid per batch.
Sources are split into ``shards`` by a stable hash of ``source_id``; each
shard is one Bytewax key (named by :func:`~flows.routing.shard_key` so that
shard ``i`` lands on worker ``i % N``), so ``-w N`` and ``--processes N`` spread
shards evenly over workers while every
source's state stays in one place. Every batch reaches every shard (empty
when it has none of its sources), carrying the batch's newest arrival time,
so a shard whose sources have all gone quiet still sees time pass and
reports them silent.
"""

from __future__ import annotations

import logging
import pickle
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.inputs import Source
from bytewax.operators import StatefulBatchLogic
from bytewax.outputs import Sink

from flows.config import RunConfig
from flows.controls import ProcessControls
from flows.gctune import parse_gc, tune_gc
from flows.routing import shard_key
from flows.sources import STOP, JSONLSource, RawBatch, SimulatorSource, TickGenerator
from flows.telemetry import Telemetry
from flows.tracing import DecisionTracer, Traced, tracer_for
from operators.canary import CANARY_COLUMNS, Canary, CanarySchedule
from operators.clock import WallClock
from operators.decider import BatchResult, Decider, DecisionPolicy, outage_alarms
from operators.drift import DriftConfig
from operators.escalation import ESCALATION_COLUMNS
from operators.events import Decoded, EventDecoder, OutcomeEvent, SensorEvent
from operators.freshness import FreshnessConfig
from operators.invariants import VIOLATION_COLUMNS
from operators.modelfault import ModelFault
from operators.modes import ModeConfig
from operators.records import (
    DECISION_COLUMNS,
    QUALITY_COLUMNS,
    Rows,
    alarm_rows,
    dead_letter_rows,
    mode_change_rows,
    outcome_rows,
    rollout_rows,
)
from operators.regret import REGRET_COLUMNS
from operators.rollout import RolloutConfig
from operators.sampling import TraceSampler
from operators.sensorevent import EventColumns, from_columns, to_columns
from operators.slowpath import SlowPathConfig
from operators.variants import Variant
from sinks.breaker import StoreStatus
from sinks.clickhouse import ClickHouseSink, EmbeddedStoreSink
from sinks.control import Answer, control_dir_for
from sinks.storefault import StoreFault

__all__ = ["STATE_VERSION", "FlowSpec", "ShardBatch", "build_flow", "flow_from_config",
           "make_outputs", "make_source", "resume_decider", "shard_of"]

log = logging.getLogger("lucidstream.pipeline")

# the shape of a shard's snapshot (the decider and all it holds): raise it when a change
# to what a decider keeps would not load, or not run, from an older snapshot
STATE_VERSION = 10


@dataclass
class FlowSpec:
    """Everything a flow decides with; the input and store come from the run config."""

    name: str
    policy: DecisionPolicy
    replay: bool
    store: str
    shards: int = RunConfig.shards
    freshness: FreshnessConfig = field(default_factory=FreshnessConfig)
    modes: ModeConfig = field(default_factory=ModeConfig)
    variants: tuple[Variant, ...] = (Variant("control", 1.0),)
    drift: DriftConfig = field(default_factory=DriftConfig)
    slow: SlowPathConfig = field(default_factory=SlowPathConfig)
    max_bytes: int = 1 << 20  # a message's size limit (larger: a dead letter)
    max_values: int = 256  # values per event
    max_name: int = 128  # characters in a value name
    # Bytewax asks every stateful step for a snapshot at each epoch, recovery or not;
    # pickling a shard (models, detectors, pending outcomes) costs ~0.1-0.4 s, so
    # without recovery the snapshot is an empty placeholder.
    snapshots: bool = True
    control: str | None = None  # the control directory (override, flags, peers' health)
    canaries: tuple[Canary, ...] = ()
    canary_every_ms: int = 10_000
    rollout: RolloutConfig | None = None  # a candidate variant rolling out in steps
    process_id: int | None = None  # this process's index in a cluster
    trace_ratio: float = 0.01  # share of the unremarkable decisions traced
    trace_budget: int = 500  # spans per second per process; 0 switches tracing off
    model_fault: ModelFault | None = None  # injected on purpose (fault scenarios)
    store_fault: StoreFault | None = None  # injected on purpose (fault scenarios)
    store_give_up_s: float | None = None  # end the run after the store failed this long
    # batches that may wait for the embedded store's writer, and how long that writer
    # gathers rows into one insert: a run's settings (flow_from_config), whose
    # defaults are RunConfig's
    store_buffer: int = RunConfig.store_buffer
    store_linger_ms: int = RunConfig.store_linger_ms
    engine_nice: int = RunConfig.engine_nice  # the embedded engine's threads' (sinks.enginethreads)


@dataclass(slots=True)
class _DecodedBatch:
    events: list[SensorEvent]
    outcomes: list[OutcomeEvent]
    side_rows: list[Rows]
    tick_ms: int | None
    ingest_ns: int
    decode_ns: tuple[int, int]


@dataclass(slots=True)
class ShardBatch:
    """The events of one shard from one input batch, and the batch's clock tick."""

    shard: str
    events: list[SensorEvent]
    tick_ms: int | None
    ingest_ns: int
    outcomes: list[OutcomeEvent]  # every shard sees every outcome; the owner joins it
    decode_ns: tuple[int, int] = (0, 0)  # monotonic ns: when its batch was decoded

    def __reduce__(self) -> tuple:
        # to a worker of another process, its events as columns (to_columns says why)
        return (_shard_batch, (self.shard, to_columns(self.events), self.tick_ms,
                               self.ingest_ns, self.outcomes, self.decode_ns))


def _shard_batch(shard: str, columns: EventColumns, tick_ms: int | None, ingest_ns: int,
                 outcomes: list[OutcomeEvent], decode_ns: tuple[int, int]) -> ShardBatch:
    """The :class:`ShardBatch` that its ``__reduce__`` took apart."""
    return ShardBatch(shard, from_columns(columns), tick_ms, ingest_ns, outcomes, decode_ns)


def merge_live(batches: list[ShardBatch]) -> list[ShardBatch]:
    """A shard's live batches of one step as one: each call of the decider costs a
    fixed part (its parts' per-batch work), and a live stream from several partitions
    comes as many small batches. A replay's batches each advance the replay clock
    (``tick_ms``) and stay as they are, so a replay decides the same however its
    input was cut. The merged batch keeps the earliest ingest time, so the latency a
    decision reports is never less than its event's.

    >>> a = ShardBatch("shard-0", [1, 2], None, 50, ["o1"], (60, 70))  # type: ignore[list-item]
    >>> b = ShardBatch("shard-0", [3], None, 40, ["o2"], (55, 80))  # type: ignore[list-item]
    >>> [(m.events, m.ingest_ns, m.outcomes, m.decode_ns) for m in merge_live([a, b])]
    [([1, 2, 3], 40, ['o1', 'o2'], (55, 80))]
    >>> b.tick_ms = 9_000  # a replay's
    >>> len(merge_live([a, b]))
    2
    """
    if len(batches) < 2 or any(b.tick_ms is not None or b.shard != batches[0].shard
                               for b in batches):
        return batches
    return [ShardBatch(batches[0].shard, [ev for b in batches for ev in b.events], None,
                       min(b.ingest_ns for b in batches),
                       [o for b in batches for o in b.outcomes],
                       (min(b.decode_ns[0] for b in batches),
                        max(b.decode_ns[1] for b in batches)))]


def shard_of(source_id: str, shards: int) -> int:
    """Stable shard of a source (crc32, the same in every process and run).

    >>> shard_of("source-17", 4), shard_of("source-17", 4), shard_of("source-18", 4)
    (1, 1, 0)
    """
    return zlib.crc32(source_id.encode()) % shards


def _result_rows(result: BatchResult, scope: str, flow: str,
                 trace: list[Traced] | None = None) -> list[Rows]:
    """One :class:`Rows` per table that a decider's batch result has rows for (mode
    and rollout changes are the process's: ``scope``); ``trace``: decisions to trace."""
    rows = []
    if result.decisions:
        rows.append(Rows("decisions", DECISION_COLUMNS, result.decisions, trace or []))
    if result.alarms:
        rows.append(alarm_rows(result.alarms, flow))
    if result.mode_changes:
        rows.append(mode_change_rows(result.mode_changes, scope, flow))
    if result.rollout:
        rows.append(rollout_rows(result.rollout, scope, flow))
    if result.canaries:
        rows.append(Rows("canary_results", CANARY_COLUMNS, result.canaries))
    if result.violations:
        rows.append(Rows("invariant_violations", VIOLATION_COLUMNS, result.violations))
    if result.quality:
        rows.append(Rows("quality_metrics", QUALITY_COLUMNS, result.quality))
    if result.regrets:
        rows.append(Rows("regrets", REGRET_COLUMNS, result.regrets))
    if result.escalations:
        rows.append(Rows("escalations", ESCALATION_COLUMNS, result.escalations))
    return rows


class _DecideLogic(StatefulBatchLogic[ShardBatch, Rows, bytes]):
    def __init__(self, decider: Decider, telemetry: Telemetry, snapshots: bool,
                 controls: ProcessControls, sampler: TraceSampler | None,
                 tracer: DecisionTracer | None) -> None:
        self._snapshots = snapshots
        self._controls = controls
        self._decider = decider
        self._telemetry = telemetry
        self._sampler = sampler
        self._tracer = tracer

    def _traced(self, batch: ShardBatch, result: BatchResult) -> list[Traced]:
        """The decisions of ``result`` to trace, with their batch's stage times."""
        if self._sampler is None or self._tracer is None or not result.decisions:
            return []
        picked = self._sampler.pick(result.decisions)
        if not picked:
            return []
        affordable = self._tracer.reserve(len(picked))
        if affordable < len(picked):  # over the span budget: drop before any work
            self._telemetry.add(traces_dropped=len(picked) - affordable)
            picked = picked[:affordable]
        stages = {"ingest": (batch.ingest_ns, batch.decode_ns[0]),
                  "validate": batch.decode_ns, **result.stages}
        parents = result.parents
        return [Traced(result.decisions[i], stages, parents.get(result.decisions[i][0]))
                for i in picked]

    def on_batch(self, values: list[ShardBatch]) -> tuple[Iterable[Rows], bool]:
        decider, flow, scope = self._decider, self._decider.flow, self._controls.scope
        out: list[Rows] = self._controls.poll()
        answers = self._controls.answers()
        if answers:
            out += self._answer(answers)
        for batch in merge_live(values):
            if decider.shard != batch.shard:
                decider.shard = batch.shard
            result = decider.process(batch.events, batch.tick_ms, batch.ingest_ns,
                                     batch.outcomes)
            out += _result_rows(result, scope, flow, self._traced(batch, result))
            self._telemetry.add(decisions=len(result.decisions), stale=result.stale,
                                escalated=result.escalated, alarms=len(result.alarms))
            scoring = result.stages.get("fast_score")
            if scoring is not None:  # the model path's call for the batch
                self._telemetry.add(inference_ns=scoring[1] - scoring[0],
                                    inference_batches=1, scored=result.events)
            self._telemetry.shard(batch.shard, result.lag_ms, result.mode)
        return out, StatefulBatchLogic.RETAIN

    def _answer(self, answers: list[Answer]) -> list[Rows]:
        """Record the answers to escalations this shard opened."""
        queue, rows = self._decider.escalations, []
        for answer in answers:
            if not queue.knows(answer.escalation_id):
                continue
            row = queue.answer(answer.escalation_id, answer.status, answer.responder,
                               answer.at_ms)
            if row is not None:
                rows.append(row)
            self._controls.answered(answer)  # recorded now, or answered before: final
        return [Rows("escalations", ESCALATION_COLUMNS, rows)] if rows else []

    def on_eof(self) -> tuple[Iterable[Rows], bool]:
        result = self._decider.flush()
        self._telemetry.add(decisions=len(result.decisions), alarms=len(result.alarms))
        return _result_rows(result, self._controls.scope, self._decider.flow), \
            StatefulBatchLogic.RETAIN

    def snapshot(self) -> bytes:
        return pickle.dumps((STATE_VERSION, self._decider)) if self._snapshots else b""


def resume_decider(snapshot: bytes, shard: str = "") -> Decider | None:
    """The decider a shard's snapshot holds, or ``None`` (with a warning) when the
    snapshot is not this version's state: an upgrade then starts the shard fresh (its
    detectors, fleet references and model learn again) and keeps the input's offsets,
    rather than crash on state whose shape has changed.

    >>> resume_decider(pickle.dumps({"an": "older snapshot"}), "shard-0") is None
    True
    """
    try:
        state = pickle.loads(snapshot)
    except Exception as exc:  # an older version's classes may not load at all
        state = exc
    if isinstance(state, tuple) and len(state) == 2 and state[0] == STATE_VERSION:
        return state[1]
    found = state[0] if isinstance(state, tuple) and state else \
        f"unreadable ({state})" if isinstance(state, Exception) else "1"
    log.warning("%s: its state in the recovery directory is version %s and this lucidstream "
                "writes version %d; the shard starts fresh (its detectors and model learn "
                "again, the input's offsets are kept). To resume that state instead, run "
                "the lucidstream that wrote it.", shard or "a shard", found, STATE_VERSION)
    return None


def build_flow(spec: FlowSpec, source: Source[RawBatch], telemetry: Telemetry | None = None,
               extra_sinks: Sequence[Sink[Rows]] = ()) -> Dataflow:
    """The decision dataflow for ``spec`` reading ``source``; every row also goes to
    each of ``extra_sinks`` (for example Kafka topics)."""
    telemetry = telemetry or Telemetry()
    decoder = EventDecoder(spec.max_bytes, spec.max_values, spec.max_name)
    wall = WallClock()
    controls = ProcessControls(spec.name, spec.control, spec.modes, spec.rollout,
                               spec.process_id)
    board = controls.board
    telemetry.on_kafka_lag(board.kafka_lag)
    schedule = CanarySchedule(spec.canaries, spec.canary_every_ms)
    sampler = TraceSampler(spec.trace_ratio) if spec.trace_budget > 0 else None
    tracer, on_stored = None, None
    if sampler is not None:
        tracer = tracer_for(spec.store, spec.name, spec.trace_budget, controls.scope)

        def on_stored(traced: list, start_ns: int, end_ns: int) -> None:
            assert tracer is not None
            telemetry.add(traced=tracer.record(traced, start_ns, end_ns))

    replay_clock = [0]  # the latest arrival decoded (replay only)

    def decode(batch: RawBatch) -> _DecodedBatch:
        decode_start = time.monotonic_ns()
        decoded = decoder.decode_batch(batch.records, batch.arrivals)
        received = wall.now_ms()
        tick, before = None, replay_clock[0]
        if spec.replay and decoded.events:
            tick = max(map(_arrival, decoded.events))
            replay_clock[0] = max(before, tick)
        # received on the pipeline clock: in a replay, the latest arrival read so far
        stamp = replay_clock[0] if spec.replay and replay_clock[0] else received
        side = []
        if batch.alarms:
            side.append(alarm_rows(batch.alarms, spec.name))
        if decoded.dead:
            stamps = _replay_stamps(decoded, before, stamp) if spec.replay else \
                [received] * len(decoded.dead)
            side.append(dead_letter_rows(decoded.dead, stamps, spec.name))
        if decoded.outcomes:
            side.append(outcome_rows(decoded.outcomes, stamp))
        telemetry.add(events=len(decoded.events), dead_letters=len(decoded.dead),
                      outcomes=len(decoded.outcomes))
        events = decoded.events
        # a replayed batch without events has no event time: no canary is due then
        # (the wall clock would carry the replay clock decades ahead)
        if spec.canaries and board.flags.enabled("canaries") and \
                (tick is not None or not spec.replay):
            due = schedule.due(received if tick is None else tick, spec.replay)
            if due:  # canaries take the same decoder as everyone
                events = events + decoder.decode_batch(due).events  # type: ignore[arg-type]
        return _DecodedBatch(events, decoded.outcomes, side, tick, batch.ingest_ns,
                             (decode_start, time.monotonic_ns()))

    keys = [shard_key(i) for i in range(spec.shards)]  # spread evenly over workers

    def split(batch: _DecodedBatch) -> list[tuple[str, ShardBatch]]:
        n = spec.shards
        parts: list[list[SensorEvent]] = [[] for _ in range(n)]
        for event in batch.events:
            parts[shard_of(event.source_id, n)].append(event)
        return [(keys[i], ShardBatch(f"shard-{i}", part, batch.tick_ms, batch.ingest_ns,
                                     batch.outcomes, batch.decode_ns))
                for i, part in enumerate(parts)]

    def build_decider(resume: bytes | None) -> _DecideLogic:
        decider = resume_decider(resume) if resume else None
        if decider is not None:
            decider.board = board
        else:
            decider = Decider(spec.policy, replay=spec.replay, flow=spec.name,
                              freshness=spec.freshness, variants=spec.variants,
                              drift=spec.drift, slow=spec.slow, canaries=spec.canaries,
                              board=board)
        decider.model.fault = spec.model_fault
        return _DecideLogic(decider, telemetry, spec.snapshots, controls, sampler, tracer)

    flow = Dataflow(spec.name)
    raw = op.input("ingest", flow, source)
    decoded = op.map("decode", raw, decode)
    contract_rows = op.flat_map("contract_rows", decoded, lambda d: d.side_rows)
    shards = op.flat_map("shard", decoded, split)
    decided = op.stateful_batch("decide", shards, build_decider)  # type: ignore[arg-type]
    rows = op.merge("rows", contract_rows, op.key_rm("unkey", decided))

    def store_health(status: StoreStatus) -> None:
        if status.writing_since is None:  # a write's outcome, not its start
            board.sink_result(status.ok, slow_s=status.slow_s)
        telemetry.store_status(status)

    def last_rows() -> list[Rows]:
        # a store stall or outage that ended after the last batch was decided: no shard
        # is left to raise its alarm (each raises the ones that ended before its batch)
        alarms = outage_alarms(board.take_outages(), board.now)
        return [alarm_rows(alarms, spec.name)] if alarms else []

    settings = {"on_write": telemetry.on_write, "on_health": store_health,
                "on_stored": on_stored, "give_up_after_s": spec.store_give_up_s,
                "stop": STOP, "wrap": None if spec.store_fault is None else spec.store_fault.wrap,
                "last_rows": last_rows}
    if spec.store.startswith("chdb://"):
        keyed = op.map("to_store_owner", rows, lambda r: ("store", r))
        op.output("store", keyed, EmbeddedStoreSink(spec.store, durable_snapshots=spec.snapshots,
                                                     buffer_batches=spec.store_buffer,
                                                     linger_s=spec.store_linger_ms / 1000,
                                                     engine_nice=spec.engine_nice,
                                                     live=not spec.replay,
                                                     **settings))
    else:
        op.output("store", rows, ClickHouseSink(spec.store, **settings))
    for i, sink in enumerate(extra_sinks):
        op.output(f"emit_{i}", rows, sink)
    return flow




def _arrival(ev: SensorEvent) -> int:
    """When ``ev`` reached the pipeline, on the replay clock."""
    return ev.event_ms if ev.arrival_ms is None else ev.arrival_ms


def _replay_stamps(decoded: Decoded, before: int, fallback: int) -> list[int]:
    """Each dead letter's place on the replay clock: the arrival of the event read just
    before it (the clock before the batch when none was, ``fallback`` before any)."""
    events = decoded.events
    return [max(_arrival(events[n - 1]), before) if n else before or fallback
            for n in decoded.dead_after]


def make_source(config: RunConfig, make_generator: Callable[[RunConfig], TickGenerator],
                telemetry: Telemetry | None = None) -> Source[RawBatch]:
    """The flow's input: Kafka, a JSONL file, or its simulator (live or replay clock)."""
    if config.input == "kafka":
        from flows.kafka_input import KafkaSource
        from flows.kafka_replay import KafkaReplaySource

        topics = [config.topic] + ([config.outcomes_topic] if config.outcomes_topic else [])
        settings = {"batch_size": config.batch_size, "stop_at_end": config.stop_at_end,
                    "telemetry": telemetry, "group_id": f"lucidstream-{config.flow}",
                    "optional_topics": (config.outcomes_topic,),
                    "max_events": config.events}
        if config.replay:
            return KafkaReplaySource(config.kafka_settings, topics,
                                     idle_ms=config.partition_idle_ms, **settings)
        return KafkaSource(config.kafka_settings, topics, **settings)
    if not config.simulated:
        return JSONLSource(config.input, config.batch_size)
    per_tick = config.sources  # a simulator tick is one report per source
    return SimulatorSource(lambda: make_generator(config), live=config.live,
                           events=config.events, duration_s=config.duration_s,
                           max_ticks_per_batch=max(1, config.batch_size // per_tick))


def make_outputs(config: RunConfig) -> list[Sink[Rows]]:
    """Extra sinks the config asks for: decisions and dead letters to Kafka."""
    if not config.emit_kafka:
        return []
    from sinks.kafka import KafkaRowsSink, ensure_topic

    topics = {"decisions": config.decisions_topic, "dead_letters": config.dead_letters_topic}
    for topic in topics.values():
        ensure_topic(config.kafka_settings, topic)
    return [KafkaRowsSink(config.kafka_settings, topics)]


def flow_from_config(config: RunConfig, spec: FlowSpec,
                     make_generator: Callable[[RunConfig], TickGenerator],
                     telemetry: Telemetry | None = None) -> Dataflow:
    """A flow module's ``get_flow`` in one call: input, decisions, store, outputs."""
    telemetry = telemetry or Telemetry()
    spec.snapshots = config.recovery_dir is not None
    spec.control = str(control_dir_for(str(config.store), config.control))
    spec.process_id = config.process_id
    spec.trace_ratio, spec.trace_budget = config.trace_ratio, config.trace_budget
    if config.model_fault:
        spec.model_fault = ModelFault.parse(config.model_fault)
    if config.store_fault:
        spec.store_fault = StoreFault.parse(config.store_fault)
    spec.store_give_up_s, spec.store_buffer = config.store_give_up_s, config.store_buffer
    spec.store_linger_ms, spec.engine_nice = config.store_linger_ms, config.engine_nice
    flow = build_flow(spec, make_source(config, make_generator, telemetry), telemetry,
                      make_outputs(config))
    tune_gc(parse_gc(config.gc))  # what is alive now lives as long as the flow
    return flow
