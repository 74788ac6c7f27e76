"""Run a flow in this process with a live progress line and a closing summary."""

from __future__ import annotations

import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType

from bytewax.dataflow import Dataflow
from bytewax.run import cli_main
from bytewax.testing import run_main

from flows.sources import STOP
from flows.telemetry import Telemetry, TelemetrySnapshot
from operators.errors import LucidstreamError
from sinks.store import Store

__all__ = ["RunReport", "execute", "progress_line"]


def progress_line(s: TelemetrySnapshot) -> str:
    """One line of what the pipeline is doing right now."""
    return (f"events {s.events:,} ({s.events_per_s:,.0f}/s) | decisions {s.decisions:,} | "
            f"stale {s.stale_pct:.1f}% | dead letters {s.dead_letters:,} | "
            f"lag {s.lag_ms:,} ms | mode {s.mode}")


class _Progress(threading.Thread):
    def __init__(self, telemetry: Telemetry, write: Callable[[str], None], tty: bool) -> None:
        super().__init__(name="lucidstream-progress", daemon=True)
        self._telemetry, self._write, self._tty = telemetry, write, tty
        self._stop_event = threading.Event()

    def run(self) -> None:
        interval = 0.5 if self._tty else 2.0
        while not self._stop_event.wait(interval):
            line = progress_line(self._telemetry.snapshot())
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


def execute(
    flow: Dataflow, telemetry: Telemetry, store: Store, flow_name: str, source: str,
    workers: int = 1, progress: bool = True,
) -> RunReport:
    """Run ``flow`` to completion (Ctrl-C drains it), record the run, report totals."""
    started_ms = int(time.time() * 1000)
    bar = _Progress(telemetry, sys.stderr.write, sys.stderr.isatty()) if progress else None
    previous = signal.getsignal(signal.SIGINT)

    def on_interrupt(signum: int, frame: FrameType | None) -> None:
        if STOP.is_set():  # a second Ctrl-C stops at once
            raise KeyboardInterrupt
        STOP.set()

    STOP.clear()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, on_interrupt)
    if bar:
        bar.start()
    try:
        if workers == 1:
            run_main(flow)
        else:
            cli_main(flow, workers_per_process=workers)
    except Exception as exc:
        root = _root_error(exc)
        if root is not None:
            raise root from exc
        raise
    finally:
        if bar:
            bar.stop()
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, previous)
        STOP.clear()
    snap = telemetry.snapshot()
    run_id = str(uuid.uuid4())
    _record_run(store, run_id, flow_name, source, started_ms, snap)
    totals = {
        "decisions": int(store.scalar("SELECT count() FROM decisions FINAL") or 0),
        "dead_letters": int(store.scalar("SELECT count() FROM dead_letters FINAL") or 0),
        "alarms": int(store.scalar("SELECT count() FROM drift_events FINAL") or 0),
    }
    return RunReport(run_id, snap, totals)


def _record_run(store: Store, run_id: str, flow: str, source: str, started_ms: int,
                snap: TelemetrySnapshot) -> None:
    from operators.records import Rows

    columns = ("run_id", "flow", "started_at", "finished_at", "source", "events", "decisions",
               "stale", "dead_letters", "alarms", "final_mode", "max_lag_ms", "wall_seconds")
    store.insert(Rows("runs", columns, [(
        run_id, flow, started_ms, int(time.time() * 1000), source, snap.events, snap.decisions,
        snap.stale, snap.dead_letters, snap.alarms, snap.mode, snap.max_lag_ms,
        snap.elapsed_s)]), dedup=False)
