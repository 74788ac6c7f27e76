"""Data invariants: versioned per-source state with optimistic concurrency.

The decider keeps, per source, the action in force, the decision that set it
and a version that increases each time the action changes. A decision is made
*against* a version. Committing checks that version: if the state has moved
on since (another decision changed the action in between) and the new
decision would change the action again, it conflicts: it was decided on a
world that no longer exists, so it is rejected and the caller falls back
(keeps the newer state) and records the violation. A decision that agrees
with the state in force commits whatever its version: nothing contradicts.

The fast path decides against the newest state and never conflicts; the slow
path decides a window against the state its last event saw, so a slow
revision that arrives after the fast path changed the source's action is
rejected rather than flipping the source back.
"""

from __future__ import annotations

from dataclasses import dataclass

from mypy_extensions import mypyc_attr

from operators.ids import row_id

__all__ = ["VIOLATION_COLUMNS", "Conflict", "SourceVersion", "StateStore"]

VIOLATION_COLUMNS = ("violation_id", "at", "source_id", "decision_id", "decision_type",
                     "path", "based_on_version", "current_version", "attempted_action",
                     "current_action", "current_decision_id", "resolution", "flow")


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)
@dataclass(slots=True)
class SourceVersion:
    version: int
    action: str
    decision_id: str
    at: int


@mypyc_attr(native_class=False)
@dataclass(frozen=True, slots=True)
class Conflict:
    """A rejected commit: what was tried, against which version, and what holds now."""

    source_id: str
    decision_id: str
    based_on: int
    current: SourceVersion

    def row(self, at: int, decision_type: str, path: str, attempted: str, resolution: str,
            flow: str) -> tuple:
        return (row_id(flow, "violation", self.decision_id), at, self.source_id,
                self.decision_id, decision_type, path, self.based_on, self.current.version,
                attempted, self.current.action, self.current.decision_id, resolution, flow)


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)
class StateStore:
    """The action in force per source, versioned.

    >>> store = StateStore()
    >>> seen = store.version("r1")                       # 0: nothing decided yet
    >>> store.commit("r1", seen, "go", "d1", at=10) is None
    True
    >>> store.commit("r1", store.version("r1"), "stop", "d2", at=20) is None   # version 2
    True
    >>> conflict = store.commit("r1", seen + 1, "inspect", "d3", at=30)   # decided on v1
    >>> conflict.based_on, conflict.current.version, conflict.current.action
    (1, 2, 'stop')
    >>> store.commit("r1", seen + 1, "stop", "d4", at=40) is None   # agrees: no conflict
    True
    """

    def __init__(self) -> None:
        self._state: dict[str, SourceVersion] = {}
        self.conflicts = 0

    def __len__(self) -> int:
        return len(self._state)

    def version(self, source_id: str) -> int:
        state = self._state.get(source_id)
        return 0 if state is None else state.version

    def current(self, source_id: str) -> SourceVersion | None:
        return self._state.get(source_id)

    def commit(self, source_id: str, based_on: int, action: str, decision_id: str,
               at: int) -> Conflict | None:
        """Make ``action`` the state of ``source_id`` unless that contradicts a newer state."""
        state = self._state.get(source_id)
        if state is None:
            self._state[source_id] = SourceVersion(1, action, decision_id, at)
            return None
        if state.action == action:
            return None
        if state.version != based_on:
            self.conflicts += 1
            return Conflict(source_id, decision_id, based_on,
                            SourceVersion(state.version, state.action, state.decision_id,
                                          state.at))
        state.version += 1
        state.action, state.decision_id, state.at = action, decision_id, at
        return None

    def apply(self, source_id: str, action: str, decision_id: str, at: int) -> int:
        """Commit a decision made against the newest state (it cannot conflict);
        returns the state's version after it."""
        state = self._state.get(source_id)
        if state is None:
            self._state[source_id] = SourceVersion(1, action, decision_id, at)
            return 1
        if state.action != action:
            state.version += 1
            state.action, state.decision_id, state.at = action, decision_id, at
        return state.version

    def forget(self, source_id: str) -> None:
        self._state.pop(source_id, None)
