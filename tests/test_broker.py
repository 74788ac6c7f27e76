"""The development broker stops with whoever started it: no tansu is left listening
after its parent ends, however it ends. Make ``_die_with_parent`` in ``flows/broker.py``
a no-op and every case here fails: the child then stops only on a signal sent to its
whole process group (Ctrl-C in a terminal), never on one sent to its parent."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

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
        parent.wait(10)
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
