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
=========================  ==========================================  ==================
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from flows.gctune import parse_gc
from operators.errors import ConfigError
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

__all__ = ["RunConfig"]


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
    epoch_s: float = 2.0
    control: str | None = None
    process_id: int | None = None  # set by the cluster launcher, not by users
    trace_ratio: float = field(default_factory=lambda: _env_number("TRACE_RATIO", 0.01))
    trace_budget: int = field(default_factory=lambda: int(_env_number("TRACE_BUDGET", 500)))
    gc: str = field(default_factory=lambda: os.environ.get("LUCIDSTREAM_GC", "tuned"))

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
        if self.shards < 1 or self.batch_size < 1:
            raise ConfigError("shards and batch size must be at least 1")
        if self.rate < 0:
            raise ConfigError(f"rate={self.rate}: use a positive rate, or 0 for as fast as "
                              "possible on the replay clock")
        if not 0 <= self.trace_ratio <= 1 or self.trace_budget < 0:
            raise ConfigError(f"trace ratio {self.trace_ratio} / budget {self.trace_budget}: "
                              "use a ratio in [0, 1] and a budget of spans per second >= 0")
        parse_gc(self.gc)  # a malformed setting fails here, before anything starts

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
        """Read ``LUCIDSTREAM_*`` variables; a malformed value is a ConfigError."""
        env = dict(os.environ if env is None else env)

        def get(name: str, kind: type, default: object) -> object:
            raw = env.get(f"LUCIDSTREAM_{name}")
            if raw is None or raw == "":
                return default
            try:
                if kind is bool:
                    if raw.lower() not in ("1", "0", "true", "false", "yes", "no"):
                        raise ValueError(raw)
                    return raw.lower() in ("1", "true", "yes")
                return kind(raw)
            except ValueError:
                raise ConfigError(f"LUCIDSTREAM_{name}={raw!r} is not a valid "
                                  f"{kind.__name__}") from None

        return cls(
            store=env.get("LUCIDSTREAM_STORE") or None,
            input=str(get("INPUT", str, "sim")),
            replay=get("REPLAY", bool, None),  # type: ignore[arg-type]
            events=get("EVENTS", int, None),  # type: ignore[arg-type]
            duration_s=get("DURATION", float, None),  # type: ignore[arg-type]
            sources=get("SOURCES", int, 50),  # type: ignore[arg-type]
            rate=get("RATE", float, 5_000.0),  # type: ignore[arg-type]
            seed=get("SEED", int, 7),  # type: ignore[arg-type]
            shards=get("SHARDS", int, 4),  # type: ignore[arg-type]
            batch_size=get("BATCH", int, 5_000),  # type: ignore[arg-type]
            kafka=env.get("LUCIDSTREAM_KAFKA") or None,
            topic=str(get("TOPIC", str, "sensor-events")),
            outcomes_topic=str(get("OUTCOMES_TOPIC", str, "decision-outcomes")) or None,
            kafka_opts=parse_opts(env.get("LUCIDSTREAM_KAFKA_OPTS")),
            stop_at_end=bool(get("STOP_AT_END", bool, False)),
            emit_kafka=bool(get("EMIT_KAFKA", bool, False)),
            recovery_dir=env.get("LUCIDSTREAM_RECOVERY_DIR") or None,
        )
