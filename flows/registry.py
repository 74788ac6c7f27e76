"""Which flow ``--flow`` means: a built-in name, an installed entry point or a module.

A flow is a module with ``get_flow(config, telemetry)`` and ``make_spec(config)``
(and ``make_generator(config)`` if it can simulate its own input). Users get the
whole CLI for their own flow without editing lucidstream, by naming its module
(``--flow mypkg.myflow``, importable from the working directory or the
environment) or by installing it under the ``lucidstream.flows`` entry-point
group::

    [project.entry-points."lucidstream.flows"]
    plant = "mypkg.plant"

>>> resolve_flow("fleet").__name__
'flows.fleet'
>>> resolve_flow("flows.traffic").__name__
'flows.traffic'
"""

from __future__ import annotations

import importlib
import os
import sys
from importlib.metadata import entry_points
from types import ModuleType

from operators.errors import ConfigError

__all__ = ["BUILT_IN", "resolve_flow"]

BUILT_IN = {"fleet": "flows.fleet", "traffic": "flows.traffic"}
GROUP = "lucidstream.flows"
REQUIRED = ("get_flow", "make_spec")


def _installed() -> dict[str, str]:
    return {ep.name: ep.value for ep in entry_points(group=GROUP)}


def resolve_flow(ref: str) -> ModuleType:
    """The flow module ``ref`` names; a :class:`ConfigError` saying what to give if none."""
    installed = _installed()
    target = BUILT_IN.get(ref) or installed.get(ref) or ref
    target = target.split(":", 1)[0]  # an entry point may name module:attr
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.append(os.getcwd())  # a user's module beside them, as `python -m` finds it
    known = ", ".join(sorted({*BUILT_IN, *installed}))
    try:
        module = importlib.import_module(target)
    except ModuleNotFoundError as exc:
        if exc.name is None or not target.startswith(exc.name):
            raise ConfigError(f"flow module {target!r} was found but could not be imported: "
                              f"{exc}; install what it needs") from None
        raise ConfigError(
            f"flow {ref!r} is not a built-in or installed flow ({known}) nor an importable "
            f"module; give a module path (mypkg.myflow, importable from here or installed) "
            f"or register it under the {GROUP!r} entry-point group") from None
    except Exception as exc:  # a user's module that fails as it loads: one clear line
        raise ConfigError(f"flow module {target!r} failed to import: "
                          f"{type(exc).__name__}: {exc}") from None
    missing = [name for name in REQUIRED if not callable(getattr(module, name, None))]
    if missing:
        raise ConfigError(f"flow module {target!r} has no {' or '.join(missing)}(config, ...); "
                          "a flow defines get_flow and make_spec (see flows/traffic.py)")
    return module
