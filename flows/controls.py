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

import threading

from operators.modeboard import ModeBoard
from operators.modes import ModeChange, ModeConfig
from operators.records import Rows, flag_rows, mode_change_rows
from operators.rollout import RolloutConfig
from sinks.control import ControlFile, FlagsFile, HealthExchange

__all__ = ["ProcessControls"]


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
        self.board = ModeBoard(modes, scope, exchange.swap if exchange else None, rollout)
        self._mode_file = ControlFile(directory) if directory else None
        self._flags_file = FlagsFile(directory) if directory else None
        self._lock = threading.Lock()

    def poll(self) -> list[Rows]:
        """Apply what changed in the control files; rows recording the changes."""
        if self._mode_file is None or self._flags_file is None:
            return []
        with self._lock:  # one shard applies (and records) each change
            changed, override = self._mode_file.poll()
            mode_changes: list[ModeChange] = self.board.control(
                changed, override, self._mode_file.cleared_by)
            flags_changed, flags, meta = self._flags_file.poll()
        rows = []
        if mode_changes:
            rows.append(mode_change_rows(mode_changes, self.scope, self.flow))
        if flags_changed and self.board.set_flags(flags):
            rows.append(flag_rows(flags, meta, self.scope, self.flow))
        return rows
