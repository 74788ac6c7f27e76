"""A CLI run in the background whose progress lines a test reads as they come."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time

from tests.conftest import ROOT


class Watched:
    """A CLI run in the background whose progress lines we read as they come."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.args = args
        env = {**os.environ, "LUCIDSTREAM_PROGRESS_S": "0.2", **(env or {})}
        self.proc = subprocess.Popen([sys.executable, "-m", "flows.cli", *args], cwd=ROOT,
                                     env=env, stderr=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True)
        self.lines: list[tuple[float, str]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append((time.monotonic(), line.rstrip()))

    def events(self) -> int:
        for _, line in reversed(self.lines):
            m = re.match(r"events ([\d,]+)", line)
            if m:
                return int(m.group(1).replace(",", ""))
        return 0

    def wait_for(self, predicate, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            assert self.proc.poll() is None, "\n".join(line for _, line in self.lines[-20:])
            assert time.monotonic() < deadline, "timed out"
            time.sleep(0.05)

    def finish(self, timeout: float = 240) -> int:
        code = self.proc.wait(timeout)
        self._reader.join(5)
        return code
