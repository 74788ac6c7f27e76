"""Run a flow in this process with a live progress line and a closing summary."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from types import FrameType

from bytewax.dataflow import Dataflow
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.run import cli_main
from bytewax.testing import run_main

from flows.alert_loop import AlertLoop
from flows.costmetrics import CostRecorder
from flows.sources import STOP
from flows.telemetry import Telemetry, TelemetrySnapshot
from flows.tracing import shutdown_all as shutdown_tracing
from operators.errors import ConfigError, LucidstreamError
from sinks.store import Store

__all__ = ["RunReport", "execute", "finish_run", "progress_line", "recovery_config"]


def progress_line(s: TelemetrySnapshot) -> str:
    """One line of what the pipeline is doing right now."""
    line = (f"events {s.events:,} ({s.events_per_s:,.0f}/s) | decisions {s.decisions:,} | "
            f"stale {s.stale_pct:.1f}% | dead letters {s.dead_letters:,} | "
            f"lag {s.lag_ms:,} ms | mode {s.mode}")
    if s.store_down_s is not None:
        wait = "" if s.store_next_try_s is None else f", next try in {s.store_next_try_s:.0f} s"
        line += (f" | STORE DOWN for {s.store_down_s:.0f} s ({s.store_attempts} failed "
                 f"writes{wait}; input held)")
    elif s.store_writing_s is not None and s.store_writing_s >= 5:
        line += f" | STORE SLOW: a write has waited {s.store_writing_s:.0f} s (input held)"
    if s.kafka_down_s is not None:
        line += f" | KAFKA UNREACHABLE for {s.kafka_down_s:.0f} s"
    elif s.kafka_lag is not None:
        line += f" | kafka lag {s.kafka_lag:,} msgs"
    return line


class _Progress(threading.Thread):
    def __init__(self, telemetry: Telemetry, write: Callable[[str], None], tty: bool,
                 prefix: str = "") -> None:
        super().__init__(name="lucidstream-progress", daemon=True)
        self._telemetry, self._write, self._tty = telemetry, write, tty
        self._prefix = prefix
        self._stop_event = threading.Event()

    def run(self) -> None:
        interval = float(os.environ.get("LUCIDSTREAM_PROGRESS_S") or (0.5 if self._tty else 2.0))
        while not self._stop_event.wait(interval):
            line = self._prefix + progress_line(self._telemetry.snapshot())
            self._write(f"\r\x1b[2K{line}" if self._tty else line + "\n")

    def stop(self) -> None:
        self._stop_event.set()
        self.join()
        if self._tty:
            self._write("\n")


@dataclass
class RunReport:
    run_id: str
    snapshot: TelemetrySnapshot
    totals: dict[str, int]


def _root_error(exc: BaseException) -> LucidstreamError | None:
    seen = exc
    while seen is not None:
        if isinstance(seen, LucidstreamError):
            return seen
        seen = seen.__cause__ or seen.__context__  # type: ignore[assignment]
    return None


def recovery_config(directory: str | None) -> RecoveryConfig | None:
    """Bytewax recovery in ``directory``, initialised when it holds no partitions yet."""
    if not directory:
        return None
    path = Path(directory)
    try:
        path.mkdir(parents=True, exist_ok=True)
        if not any(path.glob("part-*.sqlite3")):
            init_db_dir(path, 1)
    except OSError as exc:
        raise ConfigError(f"cannot use recovery directory {directory!r}: {exc.strerror}; "
                          "pass a writable --recovery-dir") from None
    return RecoveryConfig(path)


def execute(
    flow: Dataflow, telemetry: Telemetry, store: Store | None, flow_name: str, source: str,
    workers: int = 1, progress: bool = True, recovery_dir: str | None = None,
    epoch_s: float = 2.0, process_id: int | None = None, addresses: list[str] | None = None,
    alerts: AlertLoop | None = None,
) -> RunReport | None:
    """Run ``flow`` to completion (Ctrl-C drains it), record the run, report totals.

    With ``addresses`` this process is ``process_id`` of a cluster; it neither
    records the run nor reads totals (the parent does, once all have finished).
    """
    started_ms = int(time.time() * 1000)
    recovery = recovery_config(recovery_dir)
    epoch = timedelta(seconds=epoch_s)
    prefix = f"[process {process_id}] " if process_id is not None else ""
    tty = sys.stderr.isatty() and process_id is None
    bar = _Progress(telemetry, sys.stderr.write, tty, prefix) if progress else None
    stop_signals = (signal.SIGINT, signal.SIGTERM)  # Ctrl-C, a service manager's stop
    previous = {signum: signal.getsignal(signum) for signum in stop_signals}

    def on_interrupt(signum: int, frame: FrameType | None) -> None:
        if STOP.is_set():  # a second Ctrl-C stops at once
            raise KeyboardInterrupt
        STOP.set()

    STOP.clear()
    if threading.current_thread() is threading.main_thread():
        for signum in stop_signals:
            signal.signal(signum, on_interrupt)
    if bar:
        bar.start()
    if alerts is not None:
        alerts.start()
    costs = CostRecorder(store, telemetry, flow_name) if store is not None else None
    if costs is not None:
        costs.start()
    flush_s = float(os.environ.get("LUCIDSTREAM_ALERT_FLUSH_S", "30"))
    done = False
    try:
        if workers == 1 and addresses is None:
            run_main(flow, epoch_interval=epoch, recovery_config=recovery)
        else:
            cli_main(flow, workers_per_process=workers, process_id=process_id,
                     addresses=addresses, epoch_interval=epoch, recovery_config=recovery)
        done = True
    except Exception as exc:
        root = _root_error(exc)
        if root is not None:
            raise root from exc
        raise
    finally:
        shutdown_tracing()  # export the queued spans while the store is still open
        if costs is not None:
            costs.stop()
        if alerts is not None and not done:
            alerts.finish(flush_s)
        if bar:
            bar.stop()
        if threading.current_thread() is threading.main_thread():
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        STOP.clear()
    snap = telemetry.snapshot()  # the run's own time: not the wait for webhooks below
    if alerts is not None:  # what the run ended in, delivered while the store is open
        alerts.finish(flush_s)
    if store is None:
        return None
    return finish_run(store, flow_name, source, started_ms, snap)


def finish_run(store: Store, flow_name: str, source: str, started_ms: int,
               snap: TelemetrySnapshot, usage: tuple[float, float] | None = None) -> RunReport:
    """Record the run in ``runs`` and read the store's totals. ``usage`` is the run's
    CPU seconds and peak memory (MiB), if not this process's (and its children's)."""
    run_id = str(uuid.uuid4())
    _record_run(store, run_id, flow_name, source, started_ms, snap, usage)
    totals = {
        "decisions": int(store.scalar("SELECT count() FROM decisions FINAL") or 0),
        "dead_letters": int(store.scalar("SELECT count() FROM dead_letters FINAL") or 0),
        "alarms": int(store.scalar("SELECT count() FROM drift_events FINAL") or 0),
    }
    return RunReport(run_id, snap, totals)


def _record_run(store: Store, run_id: str, flow: str, source: str, started_ms: int,
                snap: TelemetrySnapshot, usage: tuple[float, float] | None) -> None:
    from flows.cost import process_usage
    from operators.records import Rows

    columns = ("run_id", "flow", "started_at", "finished_at", "source", "events", "decisions",
               "stale", "dead_letters", "alarms", "final_mode", "max_lag_ms", "wall_seconds",
               "traced", "traces_dropped", "cpu_seconds", "peak_rss_mb")
    cpu_seconds, peak_rss_mb = usage or process_usage()
    store.insert(Rows("runs", columns, [(
        run_id, flow, started_ms, int(time.time() * 1000), source, snap.events, snap.decisions,
        snap.stale, snap.dead_letters, snap.alarms, snap.mode, snap.max_lag_ms,
        snap.elapsed_s, snap.traced, snap.traces_dropped, cpu_seconds, peak_rss_mb)]),
        dedup=False)
