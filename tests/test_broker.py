"""The development broker stops with whoever started it: no tansu is left listening
after its parent ends, however it ends. Make ``die_with_parent`` in ``flows/broker.py``
a no-op and every case here fails: the child then stops only on a signal sent to its
whole process group (Ctrl-C in a terminal), never on one sent to its parent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from flows.broker import _listening, free_port
from tests.conftest import ROOT


def gone_within(port: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not _listening("127.0.0.1", port):
            return True
        time.sleep(0.1)
    return False


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_the_broker_command_takes_its_broker_with_it(how):
    port = free_port()
    parent = subprocess.Popen([sys.executable, "-m", "flows.cli", "broker", "--port",
                               str(port)], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True)
    try:
        assert parent.stdout is not None
        assert parent.stdout.readline().strip() == f"127.0.0.1:{port}"
        assert _listening("127.0.0.1", port)
        parent.send_signal(how)
        parent.wait(30)  # a loaded machine takes seconds to tear a process down
        assert gone_within(port, 5), f"tansu still listens after {how.name} to its parent"
    finally:
        parent.kill()


def test_a_program_that_exits_without_stopping_its_broker_leaves_none():
    port = free_port()
    code = ("from flows.broker import start_broker; "
            f"print(start_broker(port={port}).bootstrap, flush=True)")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=30)
    assert done.stdout.strip() == f"127.0.0.1:{port}", done.stderr
    assert gone_within(port, 5)


def processes_mentioning(marker: str) -> list[int]:
    """Live processes whose command line contains ``marker``."""
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if marker in (proc / "cmdline").read_bytes().decode(errors="replace"):
                    pids.append(int(proc.name))
            except OSError:
                continue  # gone meanwhile
    return pids


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL])
def test_a_cluster_stops_with_its_parent(tmp_path, how):
    """SIGTERM is forwarded (each process drains); after SIGKILL the kernel tells them."""
    store = f"chdb://{tmp_path}/cluster-store"
    parent = subprocess.Popen([sys.executable, "-m", "flows.cli", "run", "--processes", "2",
                               "--store", store, "--rate", "500", "--sources", "10"],
                              cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True)
    try:
        assert parent.stderr is not None
        for line in parent.stderr:  # both processes are deciding
            if line.startswith("[process 1] events") and "decisions 0 " not in line:
                break
        # The children share the parent's stderr pipe: keep reading it, or a child
        # that writes its closing summary into a full pipe blocks and never exits.
        tail: list[str] = []
        reader = threading.Thread(target=lambda: tail.extend(parent.stderr or ()), daemon=True)
        reader.start()
        assert len(processes_mentioning(store)) == 3
        parent.send_signal(how)
        parent.wait(30)
        deadline = time.monotonic() + 60  # each child drains to the store first
        while processes_mentioning(store) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not processes_mentioning(store), \
            f"cluster processes outlived {how.name}; their last output: {''.join(tail[-20:])}"
    finally:
        parent.kill()
        for pid in processes_mentioning(store):
            os.kill(pid, signal.SIGKILL)


def test_sigterm_drains_a_run_like_ctrl_c(tmp_path):
    store = f"chdb://{tmp_path}/store"
    run = subprocess.Popen([sys.executable, "-m", "flows.cli", "run", "--store", store,
                            "--rate", "2000", "--sources", "20"], cwd=ROOT,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(8)
    run.send_signal(signal.SIGTERM)
    out, err = run.communicate(timeout=60)
    assert run.returncode == 0, err[-2000:]
    assert "decisions" in out + err  # the closing summary: it stopped as Ctrl-C stops it
