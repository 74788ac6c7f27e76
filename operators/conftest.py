"""Doctests of compiled modules run from their sources (``LUCIDSTREAM_NATIVE=0``):
pytest collects a doctest from the file it imports, and a compiled module's is not
its ``.py``."""

from pathlib import Path

from operators import NATIVE

collect_ignore = sorted({f"{p.name.split('.')[0]}.py" for p in Path(__file__).parent.glob("*.so")}
                        ) if NATIVE else []
