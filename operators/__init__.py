"""Domain logic of lucidstream: plain Python, no Bytewax.

Each module holds one idea (the event contract, the clock, freshness, decision
IDs, rules, the online model, modes, the decider that composes them) and can be
used and tested on its own. Flows in ``flows/`` wire these into Bytewax.

The per-event modules may also be compiled (``make native``: mypyc, see
``infra/native.py``). The extensions are used only while every source they were
built from is unchanged (``_native.json``), and not with ``LUCIDSTREAM_NATIVE=0``;
otherwise every module runs from its source. ``NATIVE`` says which, ``COMPILED``
names the modules that have an extension.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import json
import os
import sys
import warnings
from pathlib import Path

_HERE = Path(__file__).resolve().parent
_MANIFEST = _HERE / "_native.json"
# this package's extension modules (``make native``), by module name; the one whose name
# ends in ``__mypyc`` is their shared library
_EXTENSIONS = {p.name.split(".")[0]: p for p in _HERE.iterdir()
               if p.name.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))}
COMPILED = frozenset(name for name in _EXTENSIONS if not name.endswith("__mypyc"))


class _Sources:
    """Finds the compiled modules' sources first, so their extensions stay unused."""

    def __init__(self, modules: set[str]) -> None:
        self.modules = modules

    def find_spec(self, fullname: str, path: object = None,
                  target: object = None) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self.modules:
            return None
        return importlib.util.spec_from_file_location(
            fullname, _HERE / f"{fullname.rpartition('.')[2]}.py")


def _use_native() -> bool:
    if not _EXTENSIONS:
        return False
    try:
        built: dict[str, str] = json.loads(_MANIFEST.read_text())
    except (OSError, ValueError):
        built = {}
    stale = [m for m, sha in built.items() if not (_HERE / f"{m}.py").is_file()
             or hashlib.sha256((_HERE / f"{m}.py").read_bytes()).hexdigest() != sha]
    if os.environ.get("LUCIDSTREAM_NATIVE", "1") != "0" and built and not stale:
        # the modules' shared library, loaded under its own (top-level) name
        for name, path in _EXTENSIONS.items():
            if name.endswith("__mypyc") and name not in sys.modules:
                spec = importlib.util.spec_from_file_location(name, path)
                assert spec is not None and spec.loader is not None
                module = importlib.util.module_from_spec(spec)
                sys.modules[name] = module
                spec.loader.exec_module(module)
        return True
    if stale or not built:
        warnings.warn(f"operators: compiled modules out of date with their sources "
                      f"({', '.join(stale) or 'no manifest'}); running from the sources. "
                      "Run `make native` to rebuild, or `python infra/native.py --clean`.",
                      stacklevel=2)
    sys.meta_path.insert(0, _Sources({f"{__name__}.{name}" for name in COMPILED}))
    return False


NATIVE = _use_native()
