"""The control file: how ``lucidstream mode set`` reaches running flows.

A small JSON file, written atomically (temp file + rename), holds the manual
mode override. Every shard of every worker on the host polls it (at most
every ``poll_s`` of wall time, so a change is in force within about half a
second), and the embedded store needs no second process to open it. Default
location: ``<store path>-control/`` for a ``chdb://`` store, else
``./lucidstream-control/``; ``LUCIDSTREAM_CONTROL`` or ``--control`` moves it.
Processes on other hosts need the same directory (a shared mount).
"""

from __future__ import annotations

import getpass
import json
import os
import time
from pathlib import Path

from operators.errors import ConfigError
from operators.modes import Override

__all__ = ["ControlFile", "control_dir_for"]


def control_dir_for(store_dsn: str, explicit: str | None = None) -> Path:
    """Where the control file lives for ``store_dsn``."""
    chosen = explicit or os.environ.get("LUCIDSTREAM_CONTROL")
    if chosen:
        return Path(chosen)
    if store_dsn.startswith("chdb://"):
        return Path(store_dsn[len("chdb://"):] + "-control")
    return Path("lucidstream-control")


class ControlFile:
    """Reads and writes the override; ``poll()`` reports a change once.

    >>> import tempfile
    >>> control = ControlFile(tempfile.mkdtemp())
    >>> control.set(Override("CONSERVATIVE", "drill", "ops"))
    >>> control.poll(force=True)[1].mode
    'CONSERVATIVE'
    >>> control.poll(force=True)          # no change since
    (False, None)
    """

    NAME = "mode.json"

    def __init__(self, directory: str | Path, poll_s: float = 0.5) -> None:
        self.path = Path(directory) / self.NAME
        self.poll_s = poll_s
        self._seen: tuple[int, int] | None = None
        self._next = 0.0
        self.cleared_by = ""

    def read(self) -> tuple[Override | None, dict]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return None, {}
        except (OSError, ValueError) as exc:
            raise ConfigError(f"control file {self.path} is unreadable ({exc}); "
                              "run lucidstream mode clear to rewrite it") from None
        raw = data.get("override")
        if not raw:
            return None, data
        return Override(raw["mode"], raw.get("reason", ""), raw.get("who", ""),
                        raw.get("until_ms")), data

    def set(self, override: Override) -> None:
        self._write({"override": {"mode": override.mode, "reason": override.reason,
                                  "who": override.who, "until_ms": override.until_ms}})

    def clear(self, who: str = "") -> None:
        self._write({"override": None, "cleared_by": who or getpass.getuser()})

    def _write(self, data: dict) -> None:
        data["updated_at_ms"] = time.time_ns() // 1_000_000
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temp = self.path.with_suffix(f".tmp{os.getpid()}")
            temp.write_text(json.dumps(data))
            os.replace(temp, self.path)
        except OSError as exc:
            raise ConfigError(f"cannot write control file {self.path}: {exc.strerror}; "
                              "pass a writable --control directory") from None

    def poll(self, force: bool = False) -> tuple[bool, Override | None]:
        """``(changed, override)``: ``changed`` is true once per new write."""
        now = time.monotonic()
        if not force and now < self._next:
            return False, None
        self._next = now + self.poll_s
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return False, None
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp == self._seen:
            return False, None
        self._seen = stamp
        try:
            override, data = self.read()
        except ConfigError:
            return False, None
        self.cleared_by = str(data.get("cleared_by", ""))
        return True, override
