"""Run configuration: CLI flags or ``LUCIDSTREAM_*`` environment variables.

The same settings drive ``lucidstream run`` and
``python -m bytewax.run "flows.fleet:get_flow()"``:

=========================  ==========================================  ==================
variable                   meaning                                     default
=========================  ==========================================  ==================
LUCIDSTREAM_STORE          store DSN (chdb:///path or http(s)://...)   ./lucidstream-data
LUCIDSTREAM_INPUT          ``sim`` or a JSONL file path                sim
LUCIDSTREAM_REPLAY         1: replay clock; 0: wall clock              1 for files, else 0
LUCIDSTREAM_EVENTS         stop after this many events                 unbounded
LUCIDSTREAM_DURATION       stop after this many seconds                unbounded
LUCIDSTREAM_SOURCES        simulated sources (robots, sensors)         50
LUCIDSTREAM_RATE           simulated events per second in total        5000
LUCIDSTREAM_SEED           simulator seed                              7
LUCIDSTREAM_SHARDS         decider shards (spread over workers)        4
LUCIDSTREAM_BATCH          events per input batch                      5000
LUCIDSTREAM_KAFKA          Kafka bootstrap (with INPUT=kafka)          (none)
LUCIDSTREAM_TOPIC          sensor topic                                sensor-events
LUCIDSTREAM_OUTCOMES_TOPIC outcome topic (read when it exists)         decision-outcomes
LUCIDSTREAM_KAFKA_OPTS     librdkafka settings, ``k=v;k=v``            (none)
LUCIDSTREAM_STOP_AT_END    1: stop when every partition is read        0
LUCIDSTREAM_EMIT_KAFKA     1: also produce decisions and dead letters  0
LUCIDSTREAM_RECOVERY_DIR   Bytewax recovery directory                  (off)
LUCIDSTREAM_CONTROL        control directory (override, flags)         <store>-control
LUCIDSTREAM_TRACE_RATIO    share of unremarkable decisions traced      0.01
LUCIDSTREAM_TRACE_BUDGET   spans per second per process (0: no traces) 500
LUCIDSTREAM_GC             garbage collector: tuned, default or A,B,C  tuned (see gctune)
LUCIDSTREAM_STORE_GIVE_UP  end the run after the store failed S s      (wait for it)
LUCIDSTREAM_STORE_BUFFER   batches waiting for the store writer        2
=========================  ==========================================  ==================

``LUCIDSTREAM_PARTITION_IDLE_MS`` (Kafka replay: how long a quiet partition holds the
others back; 2000) too, ``LUCIDSTREAM_MODEL_FAULT`` (``broken:FROM_MS-TO_MS`` or
``stalled:...``: a model fault injected on purpose, as the fault scenarios do) and
``LUCIDSTREAM_STORE_FAULT`` (``errors:SECONDS[@AFTER_S]`` or ``hang:...``: store inserts
that fail or hang for a while, see :mod:`sinks.storefault`).
"""

from __future__ import annotations

import os
from dataclasses import MISSING, dataclass, field, fields

from flows.gctune import parse_gc
from operators.errors import ConfigError
from sinks.enginethreads import checked_nice
from sinks.kafka import parse_opts
from sinks.store import normalize_dsn


def _env_number(name: str, default: float) -> float:
    raw = os.environ.get(f"LUCIDSTREAM_{name}")
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"LUCIDSTREAM_{name}={raw!r}: expected a number") from None

__all__ = ["RunConfig", "default"]


@dataclass
class RunConfig:
    store: str | None = None
    input: str = "sim"
    replay: bool | None = None
    events: int | None = None
    duration_s: float | None = None
    sources: int = 50
    rate: float = 5_000.0
    seed: int = 7
    shards: int = 4
    batch_size: int = 5_000
    flow: str = "fleet"
    kafka: str | None = None
    topic: str = "sensor-events"
    outcomes_topic: str | None = "decision-outcomes"
    kafka_opts: dict[str, str] = field(default_factory=dict)
    stop_at_end: bool = False
    emit_kafka: bool = False
    decisions_topic: str = "decisions"
    dead_letters_topic: str = "dead-letters"
    recovery_dir: str | None = None
    partition_idle_ms: int = 2_000  # Kafka replay: a partition this quiet stops holding back
    epoch_s: float = 2.0
    control: str | None = None
    process_id: int | None = None  # set by the cluster launcher, not by users
    trace_ratio: float = field(default_factory=lambda: _env_number("TRACE_RATIO", 0.01))
    trace_budget: int = field(default_factory=lambda: int(_env_number("TRACE_BUDGET", 500)))
    gc: str = field(default_factory=lambda: os.environ.get("LUCIDSTREAM_GC", "tuned"))
    # a model fault injected on purpose (fault scenarios): KIND:FROM_MS-TO_MS
    model_fault: str | None = field(
        default_factory=lambda: os.environ.get("LUCIDSTREAM_MODEL_FAULT") or None)
    # a store fault injected on purpose (fault scenarios): KIND:SECONDS[@AFTER_S]
    store_fault: str | None = field(
        default_factory=lambda: os.environ.get("LUCIDSTREAM_STORE_FAULT") or None)
    # end the run once the store has failed every write for this long (None: wait)
    store_give_up_s: float | None = field(
        default_factory=lambda: _env_number("STORE_GIVE_UP", 0.0) or None)
    # batches that may wait for the embedded store's writer (then the input is held)
    store_buffer: int = 2
    # how long the embedded store's writer gathers rows into one insert: an insert
    # costs milliseconds of the engine's CPU whatever its size, and each one is a part
    # its merges rewrite
    store_linger_ms: int = 500
    # how much lower the embedded store's threads run than the flow's (a nice value
    # added to theirs; 0: the same): decisions wait for the flow, rows for the engine
    engine_nice: int = 10

    def __post_init__(self) -> None:
        self.store = normalize_dsn(self.store)
        if self.input == "kafka" and not self.kafka:
            raise ConfigError("the Kafka source needs a broker: pass --kafka HOST:PORT "
                              "(or set LUCIDSTREAM_KAFKA)")
        if self.emit_kafka and not self.kafka:
            raise ConfigError("--emit-kafka needs a broker: pass --kafka HOST:PORT")
        if self.replay is None:  # files replay; Kafka is live; the simulator replays at rate 0
            self.replay = self.rate <= 0 if self.input == "sim" else self.input != "kafka"
        for name in ("events", "duration_s"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ConfigError(f"{name}={value}: must be positive (or unset for no limit)")
        if self.sources < 1:
            raise ConfigError(f"sources={self.sources}: need at least one source")
        if self.partition_idle_ms < 1:
            raise ConfigError(f"partition idle {self.partition_idle_ms} ms: use at least 1 "
                              "(how long a quiet partition holds a replay back)")
        if self.shards < 1 or self.batch_size < 1:
            raise ConfigError("shards and batch size must be at least 1")
        if self.rate < 0:
            raise ConfigError(f"rate={self.rate}: use a positive rate, or 0 for as fast as "
                              "possible on the replay clock")
        if not 0 <= self.trace_ratio <= 1 or self.trace_budget < 0:
            raise ConfigError(f"trace ratio {self.trace_ratio} / budget {self.trace_budget}: "
                              "use a ratio in [0, 1] and a budget of spans per second >= 0")
        parse_gc(self.gc)  # a malformed setting fails here, before anything starts
        if self.store_give_up_s is not None and self.store_give_up_s <= 0:
            raise ConfigError(f"store give-up {self.store_give_up_s} s: use a positive "
                              "number of seconds, or leave it unset to wait for the store")
        if self.store_buffer < 1:
            raise ConfigError(f"store buffer {self.store_buffer}: use at least 1 batch")
        if not 0 <= self.store_linger_ms <= 60_000:
            raise ConfigError(f"store linger {self.store_linger_ms} ms: use 0 (insert at "
                              "once) to 60000 ms")
        checked_nice(self.engine_nice)
        if self.store_fault:
            from sinks.storefault import StoreFault

            StoreFault.parse(self.store_fault)

    @property
    def kafka_settings(self) -> dict[str, str]:
        """librdkafka settings: the bootstrap address plus any pass-through options."""
        return {"bootstrap.servers": self.kafka or "", **self.kafka_opts}

    @property
    def simulated(self) -> bool:
        return self.input == "sim"

    @property
    def live(self) -> bool:
        return self.simulated and not self.replay

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> RunConfig:
        """Read ``LUCIDSTREAM_*`` variables; a malformed value is a ConfigError. A
        variable unset (or empty) leaves the field's default."""
        env = dict(os.environ if env is None else env)
        settings: dict[str, object] = {}
        for variable, (name, kind) in _ENV.items():
            raw = env.get(f"LUCIDSTREAM_{variable}")
            if raw is None or raw == "":
                continue
            try:
                if kind is bool:
                    if raw.lower() not in ("1", "0", "true", "false", "yes", "no"):
                        raise ValueError(raw)
                    settings[name] = raw.lower() in ("1", "true", "yes")
                else:
                    settings[name] = kind(raw)
            except ValueError:
                raise ConfigError(f"LUCIDSTREAM_{variable}={raw!r} is not a valid "
                                  f"{kind.__name__}") from None
        settings["kafka_opts"] = parse_opts(env.get("LUCIDSTREAM_KAFKA_OPTS"))
        return cls(**settings)  # type: ignore[arg-type]


# LUCIDSTREAM_<variable> -> (field, type)
_ENV: dict[str, tuple[str, type]] = {
    "STORE": ("store", str), "INPUT": ("input", str), "REPLAY": ("replay", bool),
    "EVENTS": ("events", int), "DURATION": ("duration_s", float),
    "SOURCES": ("sources", int), "RATE": ("rate", float), "SEED": ("seed", int),
    "SHARDS": ("shards", int), "BATCH": ("batch_size", int), "KAFKA": ("kafka", str),
    "TOPIC": ("topic", str), "OUTCOMES_TOPIC": ("outcomes_topic", str),
    "STOP_AT_END": ("stop_at_end", bool), "EMIT_KAFKA": ("emit_kafka", bool),
    "RECOVERY_DIR": ("recovery_dir", str), "PARTITION_IDLE_MS": ("partition_idle_ms", int),
    "STORE_BUFFER": ("store_buffer", int), "STORE_LINGER_MS": ("store_linger_ms", int),
    "ENGINE_NICE": ("engine_nice", int),
}


def default(name: str) -> object:
    """The default of :class:`RunConfig`'s field ``name``: the one place it is written
    (the CLI's options show it from here).

    >>> default("sources"), default("topic")
    (50, 'sensor-events')
    """
    for item in fields(RunConfig):
        if item.name == name:
            if item.default is MISSING:
                raise KeyError(f"RunConfig.{name} has no plain default")
            return item.default
    raise KeyError(f"RunConfig has no field {name!r}")
