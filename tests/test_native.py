"""The compiled modules (``make native``) run only while they match their sources."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROBE = "import operators, operators.changes as c; print(operators.NATIVE, c.__file__)"


def _imported(where: Path, **env: str) -> tuple[bool, str, str]:
    """(NATIVE, the file operators.changes came from, warnings) in a fresh interpreter
    importing the ``operators`` package under ``where``."""
    run = subprocess.run([sys.executable, "-W", "always", "-c", PROBE], cwd=where,
                         env={**os.environ, **env}, capture_output=True, text=True,
                         check=True)
    native, path = run.stdout.split()
    return native == "True", path, run.stderr


def test_compiled_modules_run_only_while_every_source_matches(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "operators", tmp_path / "operators",
                    ignore=shutil.ignore_patterns("__pycache__"))
    built = any((tmp_path / "operators").glob("*.so"))
    native, path, warned = _imported(tmp_path)
    assert native is built and path.startswith(str(tmp_path))
    assert path.endswith(".so") is built and "out of date" not in warned
    # switched off: every module from its source, without a warning
    native, path, warned = _imported(tmp_path, LUCIDSTREAM_NATIVE="0")
    assert not native and path.endswith("changes.py") and "out of date" not in warned
    # one source edited after the build: all from the sources, and the user is told
    source = tmp_path / "operators" / "changes.py"
    source.write_text(source.read_text() + "\n# edited\n")
    native, path, warned = _imported(tmp_path)
    assert not native and path.endswith("changes.py")
    assert ("out of date" in warned and "changes" in warned and "make native" in warned) \
        is built
