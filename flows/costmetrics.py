"""The pipeline's own costs, written to ``pipeline_metrics`` while a flow runs.

Every ``every_s`` of wall time (``LUCIDSTREAM_METRICS_S``, 10 by default) and once
at the end, one row per process: events and decisions, rows inserted and the state
store's insert latency (mean and longest), the model path's inference latency per
batch and per event, CPU seconds and RSS. The cost panels read them beside the
store's own ``system.parts``.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from typing import Any

from flows.cost import process_usage
from flows.telemetry import Telemetry
from operators.errors import StoreError
from operators.records import Rows

__all__ = ["COLUMNS", "CostRecorder"]

log = logging.getLogger("lucidstream.metrics")

COLUMNS = ("metric_id", "at", "flow", "process", "interval_s", "events", "decisions",
           "rows_inserted", "inserts", "insert_ms_mean", "insert_ms_max", "inference_batches",
           "inference_ms_mean", "inference_us_per_event", "cpu_seconds", "rss_mb")


def _rss_mb() -> float:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class CostRecorder(threading.Thread):
    """Writes a ``pipeline_metrics`` row per interval; :meth:`stop` writes the last."""

    def __init__(self, store: Any, telemetry: Telemetry, flow: str,
                 every_s: float | None = None) -> None:
        super().__init__(name="lucidstream-metrics", daemon=True)
        self.store, self.telemetry, self.flow = store, telemetry, flow
        self.every_s = every_s or float(os.environ.get("LUCIDSTREAM_METRICS_S", "10"))
        self.process = f"{socket.gethostname()}:{os.getpid()}"
        self._stopping = threading.Event()
        self._last = telemetry.costs()
        self._last_cpu = process_usage()[0]
        self._last_at = time.monotonic()

    def run(self) -> None:
        while not self._stopping.wait(self.every_s):
            self.record()

    def stop(self) -> None:
        self._stopping.set()
        if self.is_alive():
            self.join()
        self.record()

    def record(self) -> None:
        now, totals, cpu = time.monotonic(), self.telemetry.costs(), process_usage()[0]
        d = {k: totals[k] - self._last[k] for k in totals if k != "insert_max_s"}
        interval, cpu_used = now - self._last_at, cpu - self._last_cpu
        self._last, self._last_cpu, self._last_at = totals, cpu, now
        if interval <= 0 or not (d["events"] or d["inserts"]):
            return
        row = (str(uuid.uuid4()), int(time.time() * 1000), self.flow, self.process, interval,
               d["events"], d["decisions"], d["rows"], d["inserts"],
               1000 * d["insert_s"] / d["inserts"] if d["inserts"] else 0.0,
               1000 * totals["insert_max_s"],
               d["inference_batches"],
               d["inference_ns"] / 1e6 / d["inference_batches"] if d["inference_batches"]
               else 0.0,
               d["inference_ns"] / 1e3 / d["scored"] if d["scored"] else 0.0,
               cpu_used, _rss_mb())
        try:
            self.store.insert(Rows("pipeline_metrics", COLUMNS, [row]), dedup=False)
        except StoreError as exc:  # a store outage is reported by the sink already
            log.warning("event=metrics_not_written error=%s", exc)
