"""The control directory: how people and other processes reach running flows.

Small JSON files, each written atomically (temp file + rename):

* ``mode.json``: the manual mode override (``lucidstream mode set|clear``);
* ``flags.json``: capabilities switched off (``lucidstream flag set``);
* ``health-<scope>.json``: each process's combined health, so the processes of
  a cluster feed their mode machines the same inputs;
* ``answers/<id>.json``: answers to escalations given while a flow holds the
  embedded store (``lucidstream escalations approve|reject``); the flow records
  them and removes the file.

A process polls them at most every ``poll_s`` of wall time (so a change is in
force within about half a second), and the embedded store needs no second
process to open it. Default location: ``<store path>-control/`` for a
``chdb://`` store, else ``./lucidstream-control/``; ``LUCIDSTREAM_CONTROL`` or
``--control`` moves it. Processes on other hosts need the same directory (a
shared mount).

Who may steer a flow is who may write this directory: it is created owner-only
(0700, files 0600), and a flow ignores (and logs, once) a file that others could
have written: in a directory writable by group or others, or owned by a user
other than the flow's (or root).
"""

from __future__ import annotations

import contextlib
import getpass
import json
import logging
import os
import stat as stat_bits
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from operators.errors import ConfigError
from operators.flags import Flags
from operators.modes import Health, Override

__all__ = ["Answer", "AnswersDir", "ControlFile", "FlagsFile", "HealthExchange",
           "control_dir_for", "untrusted"]

log = logging.getLogger("lucidstream.control")
_WARNED: set[str] = set()


def untrusted(path: Path) -> str | None:
    """Why a control file at ``path`` might not come from someone allowed to steer the
    flow, or ``None`` when it is fine (or does not exist)."""
    try:
        file, folder = path.stat(), path.parent.stat()
    except OSError:
        return None
    others = stat_bits.S_IWGRP | stat_bits.S_IWOTH
    if folder.st_mode & others:
        return (f"{path.parent} is writable by others (mode {folder.st_mode & 0o777:o}); "
                f"chmod 700 {path.parent}")
    if file.st_mode & others:
        return f"{path} is writable by others (mode {file.st_mode & 0o777:o}); chmod 600 {path}"
    if file.st_uid not in (os.getuid(), 0):
        return f"{path} belongs to user {file.st_uid}, not to this flow's user {os.getuid()}"
    return None


def _trusted(path: Path) -> bool:
    """Whether to read ``path``; the first refusal of each file is logged."""
    problem = untrusted(path)
    if problem is None:
        return True
    if str(path) not in _WARNED:
        _WARNED.add(str(path))
        log.error("step=control event=ignored file=%s reason=%s", path, problem)
    return False


def control_dir_for(store_dsn: str, explicit: str | None = None) -> Path:
    """Where the control files live for ``store_dsn``."""
    chosen = explicit or os.environ.get("LUCIDSTREAM_CONTROL")
    if chosen:
        return Path(chosen)
    if store_dsn.startswith("chdb://"):
        return Path(store_dsn[len("chdb://"):] + "-control")
    return Path("lucidstream-control")


def _write_json(path: Path, data: dict) -> None:
    """Write ``data`` to ``path`` atomically (temp file + rename): readers never see half."""
    try:
        root = path.parent.parent if path.parent.name == "answers" else path.parent
        root.parent.mkdir(parents=True, exist_ok=True)
        for folder in (root, path.parent):  # owner-only: see the module's note
            folder.mkdir(mode=0o700, exist_ok=True)
        temp = path.with_suffix(f".tmp{os.getpid()}")
        with open(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as out:
            out.write(json.dumps(data))
        os.replace(temp, path)
    except OSError as exc:
        raise ConfigError(f"cannot write control file {path}: {exc.strerror}; "
                          "pass a writable --control directory") from None


def _override(raw: dict | None) -> Override | None:
    """The override a control file's ``override`` entry describes (None: none)."""
    if not raw:
        return None
    return Override(raw["mode"], raw.get("reason", ""), raw.get("who", ""), raw.get("until_ms"))


class _JsonFile:
    """One atomically replaced JSON file, polled for changes by (mtime, size)."""

    NAME = ""
    FIX = "rewrite it"

    def __init__(self, directory: str | Path, poll_s: float = 0.5) -> None:
        self.path = Path(directory) / self.NAME
        self.poll_s = poll_s
        self._seen: tuple[int, int] | None = None
        self._next = 0.0

    def load(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise ConfigError(f"control file {self.path} is unreadable ({exc}); "
                              f"{self.FIX}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"control file {self.path} holds no JSON object; {self.FIX}")
        return data

    def _write(self, data: dict) -> None:
        data["updated_at_ms"] = time.time_ns() // 1_000_000
        _write_json(self.path, data)

    def _changed(self, force: bool) -> dict[str, Any] | None:
        """The file's content when it changed since the last poll, else ``None``."""
        now = time.monotonic()
        if not force and now < self._next:
            return None
        self._next = now + self.poll_s
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return None
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp == self._seen:
            return None
        self._seen = stamp
        if not _trusted(self.path):
            return None
        try:
            return self.load()
        except ConfigError:
            return None  # half-written by a foreign tool: try again at the next poll


class ControlFile(_JsonFile):
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
    FIX = "run lucidstream mode clear to rewrite it"

    def __init__(self, directory: str | Path, poll_s: float = 0.5) -> None:
        super().__init__(directory, poll_s)
        self.cleared_by = ""

    def read(self) -> tuple[Override | None, dict]:
        data = self.load()
        return _override(data.get("override")), data

    def set(self, override: Override) -> None:
        self._write({"override": {"mode": override.mode, "reason": override.reason,
                                  "who": override.who, "until_ms": override.until_ms}})

    def clear(self, who: str = "") -> None:
        self._write({"override": None, "cleared_by": who or getpass.getuser()})

    def poll(self, force: bool = False) -> tuple[bool, Override | None]:
        """``(changed, override)``: ``changed`` is true once per new write."""
        data = self._changed(force)
        if data is None:
            return False, None
        self.cleared_by = str(data.get("cleared_by", ""))
        try:
            override = _override(data.get("override"))
        except (KeyError, TypeError, ValueError):
            return False, None
        return True, override


class FlagsFile(_JsonFile):
    """The capabilities switched off, with who changed them last and why.

    >>> import tempfile
    >>> flags = FlagsFile(tempfile.mkdtemp())
    >>> flags.switch("model", on=False, sources=("r7",), who="ops", reason="bad lidar")
    >>> changed, now, meta = flags.poll(force=True)
    >>> changed, now.enabled("model", "r7"), meta["reason"]
    (True, False, 'bad lidar')
    """

    NAME = "flags.json"
    FIX = "run lucidstream flag reset to rewrite it"

    def read(self) -> tuple[Flags, dict]:
        data = self.load()
        try:
            return Flags.parse(data.get("flags", {})), data
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"control file {self.path}: {exc}; {self.FIX}") from None

    def switch(self, capability: str, on: bool, sources: tuple[str, ...] = (),
               who: str = "", reason: str = "") -> None:
        current, _ = self.read()
        try:
            flags = current.switched(capability, on, sources)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        self._write({"flags": flags.to_json(), "who": who or getpass.getuser(),
                     "reason": reason, "change": {"capability": capability, "on": on,
                                                  "sources": list(sources)}})

    def reset(self, who: str = "", reason: str = "") -> None:
        self._write({"flags": Flags().to_json(), "who": who or getpass.getuser(),
                     "reason": reason or "reset", "change": {"reset": True}})

    def poll(self, force: bool = False) -> tuple[bool, Flags, dict]:
        """``(changed, flags, file content)``; ``changed`` is true once per new write."""
        data = self._changed(force)
        if data is None:
            return False, Flags(), {}
        try:
            return True, Flags.parse(data.get("flags", {})), data
        except (TypeError, ValueError):
            return False, Flags(), {}


class HealthExchange:
    """Shares this process's health with the other processes of a cluster.

    ``swap(own)`` writes ``own`` (at most every ``poll_s``) and returns the
    peers' latest health, ignoring any peer silent for ``stale_s`` (a process
    that stopped must not hold the mode down forever).
    """

    def __init__(self, directory: str | Path, scope: str, poll_s: float = 0.5,
                 stale_s: float = 10.0) -> None:
        self.directory = Path(directory)
        self.scope = scope
        self.poll_s = poll_s
        self.stale_s = stale_s
        self._next = 0.0
        self._peers: list[Health] = []

    def swap(self, own: Health) -> list[Health]:
        now = time.monotonic()
        if now < self._next:
            return self._peers
        self._next = now + self.poll_s
        wall = time.time()
        # unwritable: the peers see this process as stale; it decides on its own view
        with contextlib.suppress(ConfigError):
            _write_json(self.directory / f"health-{self.scope}.json",
                        {"at": wall, "health": asdict(own)})
        peers = []
        for path in self.directory.glob("health-*.json"):
            if path.name == f"health-{self.scope}.json" or not _trusted(path):
                continue
            try:
                data = json.loads(path.read_text())
                if wall - float(data["at"]) <= self.stale_s:
                    peers.append(Health(**data["health"]))
            except (OSError, ValueError, KeyError, TypeError):
                continue
        self._peers = peers
        return peers


@dataclass(frozen=True)
class Answer:
    """A person's answer to an escalation (by escalation or decision ID), wall-clock ms."""

    escalation_id: str
    status: str
    responder: str
    at_ms: int


class AnswersDir:
    """Escalation answers waiting for the flow that holds the embedded store.

    >>> import tempfile
    >>> answers = AnswersDir(tempfile.mkdtemp())
    >>> answers.put(Answer("e1", "approved", "alice", 1_000))
    >>> [a.status for a in answers.poll(force=True)], answers.poll(force=True)
    (['approved'], [])
    >>> answers.done(Answer("e1", "approved", "alice", 1_000)); answers.waiting()
    []
    """

    def __init__(self, directory: str | Path, poll_s: float = 0.5) -> None:
        self.path = Path(directory) / "answers"
        self.poll_s = poll_s
        self._next = 0.0
        self._seen: set[str] = set()

    def _file(self, answer: Answer) -> Path:
        safe = "".join(c for c in answer.escalation_id if c.isalnum() or c in "-_")
        return self.path / f"{safe}.json"

    def put(self, answer: Answer) -> None:
        _write_json(self._file(answer), asdict(answer))

    def waiting(self) -> list[str]:
        return sorted(p.stem for p in self.path.glob("*.json"))

    def poll(self, force: bool = False) -> list[Answer]:
        """Answers not returned before (at most every ``poll_s``)."""
        now = time.monotonic()
        if not force and now < self._next:
            return []
        self._next = now + self.poll_s
        found = []
        for path in sorted(self.path.glob("*.json")):
            if path.name in self._seen or not _trusted(path):
                continue
            try:
                found.append(Answer(**json.loads(path.read_text())))
            except (OSError, ValueError, TypeError):
                continue  # half-written: the next poll reads it
            self._seen.add(path.name)
        return found

    def done(self, answer: Answer) -> None:
        """The answer is recorded in the store: remove its file."""
        self._file(answer).unlink(missing_ok=True)
