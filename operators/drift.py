"""Online drift detection with river: every value, the model's output, its errors.

Every numeric field of ``values`` is watched per source, whatever its name, so
a stream of ``{"v": ...}`` events is covered with no tuning. Each stream first
learns its scale over ``warmup`` samples, then feeds its standardised value to
a mean detector (``value:<name>``) and its absolute deviation from the current
mean to a second detector (``variance:<name>``). A value repeated
``freeze_run`` times after having varied is a frozen sensor
(``frozen:<name>``). Per shard, the model's score and confidence go to their
own detectors (``score``, ``confidence``; ``source_id`` empty = fleet-wide),
and prediction errors, once outcomes arrive, to a binary detector (``error``).

Detectors are river's, chosen by name: ``adwin`` (default: 0.2 us per update
and no false alarm on 200,000 stationary samples here), ``page_hinkley``,
``kswin`` (costly: fed every ``kswin_every``-th sample) for real-valued
streams; ``hddm_a`` (default), ``hddm_w``, ``ddm``, ``eddm`` for errors.
Alarms are debounced per source and signal (``debounce_ms`` of pipeline
clock) and their IDs count samples, so a replay writes the same alarms.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from river import drift
from river.drift import binary

from operators.alarms import Alarm

__all__ = ["DriftConfig", "DriftMonitor"]

REAL = ("adwin", "page_hinkley", "kswin")
BINARY = ("hddm_a", "hddm_w", "ddm", "eddm")


@dataclass(frozen=True)
class DriftConfig:
    """Which detector watches what; every default holds for unseen streams."""

    values: str | None = "adwin"
    variance: bool = True
    scores: str | None = "adwin"
    errors: str | None = "hddm_a"
    warmup: int = 100
    block: int = 8
    freeze_run: int = 50
    debounce_ms: int = 30_000
    adwin_delta: float = 1e-4
    adwin_clock: int = 4  # ADWIN looks for a cut every 4 updates (32 samples of blocks)
    kswin_every: int = 10
    ignore: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name, kind, allowed in (("values", self.values, REAL), ("scores", self.scores, REAL),
                                    ("errors", self.errors, BINARY)):
            if kind is not None and kind not in allowed:
                raise ValueError(f"drift {name}={kind!r}: use one of {allowed} or None")


def _detector(kind: str, config: DriftConfig) -> Any:
    if kind == "adwin":
        return drift.ADWIN(delta=config.adwin_delta, clock=config.adwin_clock)
    if kind == "page_hinkley":
        return drift.PageHinkley(mode="both", threshold=50.0, delta=0.1, min_instances=100)
    if kind == "kswin":
        return drift.KSWIN(alpha=0.0001, window_size=200, stat_size=60, seed=0)
    return {"hddm_a": binary.HDDMA, "hddm_w": binary.HDDMW, "ddm": binary.DDM,
            "eddm": binary.EDDM}[kind]()


class _Stream:
    """One watched real-valued stream: warm-up scale, detectors, frozen run."""

    __slots__ = ("acc_dev", "acc_z", "last", "mean", "mean_det", "n", "prev_mean", "prev_z",
                 "rho", "run", "sd", "values", "var_det", "varied")

    def __init__(self) -> None:
        self.values: list[float] | None = []
        self.acc_z = 0.0
        self.acc_dev = 0.0
        self.prev_mean = 0.0
        self.rho = 0.0
        self.prev_z = 0.0
        self.n = 0
        self.mean = 0.0
        self.sd = 1.0
        self.last: float | None = None
        self.run = 0
        self.varied = False
        self.mean_det: Any = None
        self.var_det: Any = None


class DriftMonitor:
    """Feeds values, scores and errors to river detectors; returns alarms.

    >>> import random
    >>> rng = random.Random(0)
    >>> monitor = DriftMonitor()
    >>> for i in range(2_000):
    ...     level = 0.0 if i < 1_000 else 3.0          # a sudden shift at sample 1,000
    ...     monitor.observe("s1", {"v": rng.gauss(level, 1)}, event_ms=i, now=i * 100)
    >>> [(a.signal, a.source_id, a.details["sample"] >= 1_000) for a in monitor.drain_alarms()][:1]
    [('value:v', 's1', True)]
    """

    def __init__(self, config: DriftConfig | None = None) -> None:
        self.config = config or DriftConfig()
        self._reset()

    def _reset(self) -> None:
        self._streams: dict[str, dict[str, _Stream]] = {}  # source -> value name -> stream
        self._fleet: dict[str, Any] = {}
        self._fleet_n: dict[str, int] = {}
        self._last_alarm: dict[tuple[str, str], int] = {}
        self._alarms: list[Alarm] = []

    @property
    def streams(self) -> int:
        return sum(len(named) for named in self._streams.values())

    def observe(self, source_id: str, values: Mapping[str, float], event_ms: int,
                now: int) -> None:
        """Watch every value of one event.

        The per-sample work is inlined here (it runs for every value of every
        event); a block boundary, a frozen run and the end of warm-up call out.
        """
        cfg = self.config
        if cfg.values is None:
            return
        streams = self._streams.get(source_id)
        if streams is None:
            streams = self._streams[source_id] = {}
        ignore, warmup, block, variance = cfg.ignore, cfg.warmup, cfg.block, cfg.variance
        for name, x in values.items():
            if name in ignore:
                continue
            s = streams.get(name)
            if s is None:
                s = streams[name] = _Stream()
            x = float(x)
            if not -1e12 <= x <= 1e12:  # as the model does: absurd magnitudes are clipped
                x = 1e12 if x > 0 else -1e12
            n = s.n = s.n + 1
            last = s.last
            if last is not None and x == last:
                s.run += 1
                if s.run == cfg.freeze_run and s.varied:
                    self._alarm(now, event_ms, source_id, f"frozen:{name}", "run_length",
                                s.run, cfg.freeze_run, {"value": x, "sample": n})
            else:
                if last is not None:
                    s.varied = True
                s.run = 1
            s.last = x
            if n <= warmup:
                assert s.values is not None
                s.values.append(x)
                if n == warmup:
                    self._learn_scale(s)
                continue
            z = (x - s.mean) / s.sd
            if s.rho:  # prewhiten: detect on AR(1) innovations, which are close to iid
                z, s.prev_z = (z - s.rho * s.prev_z) / math.sqrt(1 - s.rho * s.rho), z
            # Detectors see block means of ``block`` samples: a tenth of the updates, and
            # each mean is less noisy, so a shift takes fewer (but larger) steps to find.
            s.acc_z += z
            if variance:
                s.acc_dev += min(abs(z - s.prev_mean), 8.0)
            if not (n - warmup) % block:
                self._block(s, source_id, name, event_ms, now)

    def _block(self, s: _Stream, source_id: str, name: str, event_ms: int, now: int) -> None:
        """A block of samples is complete: its mean (and deviation) go to the detectors."""
        cfg = self.config
        block_z, s.acc_z = s.acc_z / cfg.block, 0.0
        block_dev, s.acc_dev = s.acc_dev / cfg.block, 0.0
        every = cfg.kswin_every if cfg.values == "kswin" else 1
        if (s.n // cfg.block) % every:
            return
        det = s.mean_det
        det.update(block_z)
        if det.drift_detected:
            self._alarm(now, event_ms, source_id, f"value:{name}", cfg.values or "", block_z,
                        0.0, {"sample": s.n, "baseline_mean": s.mean, "baseline_sd": s.sd,
                              "autocorrelation": round(s.rho, 3), "z": round(block_z, 3)})
        s.prev_mean = det.estimation if cfg.values == "adwin" else 0.0
        if s.var_det is not None:
            # Absolute, clipped deviation: squared deviations of skewed data are so
            # heavy-tailed that a detector on them alarms on stationary streams.
            s.var_det.update(block_dev)
            if s.var_det.drift_detected:
                self._alarm(now, event_ms, source_id, f"variance:{name}", cfg.values or "",
                            block_dev, 1.0, {"sample": s.n, "baseline_sd": s.sd})

    def _learn_scale(self, s: _Stream) -> None:
        """Mean, spread and lag-1 autocorrelation from the warm-up samples.

        Sensor readings are autocorrelated; a detector that assumes independent
        samples alarms on every slow wander. With a lag-1 autocorrelation above
        ``0.3`` the detectors see the prewhitened innovations instead (a
        residual chart): a shift of the level shows up, smaller, in them.
        """
        cfg = self.config
        values = s.values or []
        n = len(values)
        s.mean = sum(values) / n
        centred = [v - s.mean for v in values]
        var = sum(c * c for c in centred) / max(1, n - 1)
        sd = math.sqrt(var)
        s.sd = sd if sd > 1e-12 else max(abs(s.mean) * 1e-3, 1e-9)
        if var > 1e-24:
            rho = sum(a * b for a, b in itertools.pairwise(centred)) / (var * (n - 1))
            s.rho = min(rho, 0.98) if rho > 0.3 else 0.0
        s.prev_z = centred[-1] / s.sd
        s.values = None
        s.mean_det = _detector(cfg.values, cfg)  # type: ignore[arg-type]
        s.var_det = _detector(cfg.values, cfg) if cfg.variance else None  # type: ignore[arg-type]

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
        update = det.update
        for value in values:
            n += 1
            if every > 1 and n % every:
                continue
            update(value)
            if det.drift_detected:
                estimate = getattr(det, "estimation", value)
                self._alarm(now, event_ms, "", signal, kind, float(estimate), 0.0,
                            {"sample": n})
        self._fleet_n[signal] = n

    def forget(self, source_id: str) -> None:
        """Drop a retired source's streams (bounds memory)."""
        self._streams.pop(source_id, None)

    def drain_alarms(self) -> list[Alarm]:
        alarms, self._alarms = self._alarms, []
        return alarms

    def _alarm(self, now: int, event_ms: int, source_id: str, signal: str, detector: str,
               value: float, threshold: float, details: dict) -> None:
        key = (source_id, signal)
        last = self._last_alarm.get(key)
        if last is not None and now - last < self.config.debounce_ms:
            return
        self._last_alarm[key] = now
        self._alarms.append(Alarm(now, event_ms, source_id, signal, detector, float(value),
                                  float(threshold), details, key=f"sample={details['sample']}"))
