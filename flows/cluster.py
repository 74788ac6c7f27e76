"""A local cluster: the same ``lucidstream run`` command as N Bytewax processes.

The parent picks free loopback ports, starts ``python -m flows.cli`` once per
process with ``--process-id I --addresses A;B``, waits for all of them, and
forwards Ctrl-C and SIGTERM (each child then drains and stops). Each child builds
the same flow; Bytewax connects them. A child also stops when the parent dies
without forwarding anything (SIGKILL): the kernel sends it SIGTERM. Each child
writes its run counters, CPU and memory to a file the parent names
(``--report-to``), so the run is recorded with the whole cluster's counts: by
the process that owns an embedded store (it has the store open; the parent
would load the engine again to open it), else by the parent.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType

from flows.broker import die_with_parent, free_port
from flows.telemetry import TelemetrySnapshot, combined
from operators.errors import LucidstreamError

__all__ = ["ProcessReport", "gather_reports", "run_cluster", "summed"]


@dataclass(frozen=True)
class ProcessReport:
    """What one process of a cluster did: its run counters, its CPU seconds and its
    peak memory (MiB)."""

    snapshot: TelemetrySnapshot
    cpu_s: float
    peak_rss_mb: float

    def write(self, path: Path) -> None:
        """Write it for another process to read (whole or not at all)."""
        partial = path.with_suffix(".partial")
        partial.write_text(json.dumps({"snapshot": asdict(self.snapshot), "cpu_s": self.cpu_s,
                                       "peak_rss_mb": self.peak_rss_mb}))
        partial.replace(path)

    @classmethod
    def read(cls, path: Path) -> ProcessReport:
        data = json.loads(path.read_text())
        return cls(TelemetrySnapshot(**data["snapshot"]), data["cpu_s"], data["peak_rss_mb"])

    @classmethod
    def of_this_process(cls, snapshot: TelemetrySnapshot) -> ProcessReport:
        from flows.cost import process_usage

        return cls(snapshot, *process_usage())


def summed(reports: list[ProcessReport]) -> tuple[TelemetrySnapshot, tuple[float, float]]:
    """A cluster's counters (see :func:`~flows.telemetry.combined`), and its CPU seconds
    and largest peak memory."""
    return (combined([r.snapshot for r in reports]),
            (sum(r.cpu_s for r in reports), max(r.peak_rss_mb for r in reports)))


REPORTS_PREFIX = "lucidstream-cluster-"


def sweep_stale_reports(directory: Path | None = None) -> int:
    """Remove the report directories of clusters whose parent is gone (a parent killed
    with SIGKILL cannot remove its own); each is named after its parent's PID. How
    many were removed."""
    removed = 0
    for path in Path(directory or tempfile.gettempdir()).glob(f"{REPORTS_PREFIX}*-*"):
        pid = path.name[len(REPORTS_PREFIX):].split("-", 1)[0]
        if not pid.isdigit() or not path.is_dir():
            continue
        try:
            os.kill(int(pid), 0)
            continue  # its parent still runs (or the PID is another process's now)
        except ProcessLookupError:
            pass
        except OSError:  # not ours to signal: a live process
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed += 1
    return removed


def run_cluster(processes: int) -> list[ProcessReport]:
    """Start ``processes`` copies of this command as one Bytewax cluster, wait, and
    return what each process reported."""
    sweep_stale_reports()
    with tempfile.TemporaryDirectory(prefix=f"{REPORTS_PREFIX}{os.getpid()}-") as reports:
        paths = [Path(reports, f"process-{i}.json") for i in range(processes)]
        _run_children(paths)
        return [ProcessReport.read(path) for path in paths]


def gather_reports(own: Path, processes: int, timeout_s: float = 60.0) -> list[ProcessReport]:
    """Every process's report, from the files beside ``own`` (process ``i``'s is
    ``process-<i>.json``), waiting up to ``timeout_s`` for them: the processes of a
    cluster finish together, each once the whole dataflow has. A process whose file
    is still missing then is left out, with a warning."""
    paths = [own.with_name(f"process-{i}.json") for i in range(processes)]
    deadline = time.monotonic() + timeout_s
    while not all(p.exists() for p in paths) and time.monotonic() < deadline:
        time.sleep(0.02)
    missing = [i for i, p in enumerate(paths) if not p.exists()]
    if missing:
        print(f"lucidstream: warning: process {missing[0]} of the cluster reported no "
              f"counters within {timeout_s:.0f} s; the run is recorded without "
              f"{len(missing)} process(es)", file=sys.stderr)
    return [ProcessReport.read(p) for p in paths if p.exists()]


def _run_children(snapshots: list[Path]) -> None:
    processes = len(snapshots)
    addresses = ";".join(f"127.0.0.1:{free_port()}" for _ in range(processes))
    argv, skip = [], False
    for arg in sys.argv[1:]:
        if skip:
            skip = False
            continue
        if arg in ("--processes", "-p"):
            skip = True
            continue
        if arg.startswith("--processes="):
            continue
        argv.append(arg)
    children = [subprocess.Popen([sys.executable, "-m", "flows.cli", *argv,
                                  "--process-id", str(i), "--addresses", addresses,
                                  "--report-to", str(snapshots[i])],
                                 preexec_fn=die_with_parent)
                for i in range(processes)]

    def forward(signum: int, frame: FrameType | None) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    main = threading.current_thread() is threading.main_thread()
    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)} \
        if main else {}
    try:
        codes = [child.wait() for child in children]
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    failed = [i for i, code in enumerate(codes) if code != 0]
    if failed:
        raise LucidstreamError(f"process {failed[0]} of the cluster exited with code "
                               f"{codes[failed[0]]}; see its error above")
