"""A local cluster: the same ``lucidstream run`` command as N Bytewax processes.

The parent picks free loopback ports, starts ``python -m flows.cli`` once per
process with ``--process-id I --addresses A;B``, waits for all of them, and
forwards Ctrl-C and SIGTERM (each child then drains and stops). Each child builds
the same flow; Bytewax connects them. A child also stops when the parent dies
without forwarding anything (SIGKILL): the kernel sends it SIGTERM. Each child
writes its run counters to a file the parent names (``--snapshot-to``), and the
parent returns them, so the run is recorded with the whole cluster's counts.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from types import FrameType

from flows.broker import die_with_parent, free_port
from flows.telemetry import TelemetrySnapshot
from operators.errors import LucidstreamError

__all__ = ["run_cluster"]


def run_cluster(processes: int) -> list[TelemetrySnapshot]:
    """Start ``processes`` copies of this command as one Bytewax cluster, wait, and
    return each process's run counters."""
    with tempfile.TemporaryDirectory(prefix="lucidstream-cluster-") as reports:
        paths = [Path(reports, f"process-{i}.json") for i in range(processes)]
        _run_children(paths)
        return [TelemetrySnapshot.from_json(path.read_text()) for path in paths]


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
                                  "--snapshot-to", str(snapshots[i])],
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
