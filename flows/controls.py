"""The controls of one process: its mode board and the control files that steer it.

The dataflow is built once per process and its workers are threads, so every
shard of every worker shares the one :class:`ProcessControls` that
:func:`flows.pipeline.build_flow` creates, and with it one
:class:`~operators.modeboard.ModeBoard`: one mode, one set of feature flags,
one rollout. ``poll()`` is called by each shard before it decides a batch; the
files are read at most twice a second and a change is applied (and recorded)
once, by whichever shard saw it first.
"""

from __future__ import annotations

import logging
import threading
import time

from operators.modeboard import ModeBoard
from operators.modes import ModeChange, ModeConfig
from operators.records import Rows, flag_rows, mode_change_rows
from operators.rollout import RolloutConfig
from sinks.control import Answer, AnswersDir, ControlFile, FlagsFile, HealthExchange

__all__ = ["ProcessControls"]

log = logging.getLogger("lucidstream.controls")


class ProcessControls:
    """A process's board plus the files that steer it (override, flags, peers)."""

    def __init__(self, flow: str, directory: str | None, modes: ModeConfig,
                 rollout: RolloutConfig | None = None, process_id: int | None = None
                 ) -> None:
        cluster = process_id is not None
        scope = "global" if process_id is None else f"process-{process_id}"
        self.flow = flow
        self.scope = scope
        exchange = HealthExchange(directory, scope) if cluster and directory else None
        self.board = ModeBoard(modes, exchange.swap if exchange else None, rollout)
        self._mode_file = ControlFile(directory) if directory else None
        self._flags_file = FlagsFile(directory) if directory else None
        self._answers_dir = AnswersDir(directory) if directory else None
        self._answers: dict[Answer, float] = {}  # waiting for the shard that owns each
        self._lock = threading.Lock()
        self.answer_wait_s = 30.0

    def poll(self) -> list[Rows]:
        """Apply what changed in the control files; rows recording the changes."""
        if self._mode_file is None or self._flags_file is None:
            return []
        with self._lock:  # one shard applies (and records) each change
            changed, override = self._mode_file.poll()
            mode_changes: list[ModeChange] = self.board.control(
                changed, override, self._mode_file.cleared_by)
            flags_changed, flags, meta = self._flags_file.poll()
            if self._answers_dir is not None:
                for answer in self._answers_dir.poll():
                    self._answers[answer] = time.monotonic()
        rows = []
        if mode_changes:
            rows.append(mode_change_rows(mode_changes, self.scope, self.flow))
        if flags_changed and self.board.set_flags(flags):
            rows.append(flag_rows(flags, meta, self.scope, self.flow))
        return rows

    def answers(self) -> list[Answer]:
        """Escalation answers not yet recorded; one unknown to every shard for
        ``answer_wait_s`` is dropped (its file stays, for the CLI once the flow stops)."""
        if not self._answers:
            return []
        with self._lock:
            old = time.monotonic() - self.answer_wait_s
            for answer, since in list(self._answers.items()):
                if since < old:
                    del self._answers[answer]
                    log.warning("escalation %s: no shard of this process opened it; the "
                                "answer stays in %s: repeat it once the flow stops",
                                answer.escalation_id,
                                self._answers_dir and self._answers_dir.path)
            return list(self._answers)

    def answered(self, answer: Answer) -> None:
        """A shard recorded ``answer`` (or found it already answered)."""
        with self._lock:
            self._answers.pop(answer, None)
        if self._answers_dir is not None:
            self._answers_dir.done(answer)
