"""A local cluster: the same ``lucidstream run`` command as N Bytewax processes.

The parent picks free loopback ports, starts ``python -m flows.cli`` once per
process with ``--process-id I --addresses A;B``, waits for all of them, and
forwards Ctrl-C. Each child builds the same flow; Bytewax connects them.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys

from operators.errors import LucidstreamError

__all__ = ["free_port", "run_cluster"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def run_cluster(processes: int) -> None:
    """Start ``processes`` copies of this command as one Bytewax cluster and wait."""
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
                                  "--process-id", str(i), "--addresses", addresses])
                for i in range(processes)]
    try:
        codes = [child.wait() for child in children]
    except KeyboardInterrupt:
        for child in children:
            child.send_signal(signal.SIGINT)
        codes = [child.wait() for child in children]
    failed = [i for i, code in enumerate(codes) if code != 0]
    if failed:
        raise LucidstreamError(f"process {failed[0]} of the cluster exited with code "
                               f"{codes[failed[0]]}; see its error above")
