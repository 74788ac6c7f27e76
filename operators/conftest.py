"""Doctests of compiled modules run from their sources (``LUCIDSTREAM_NATIVE=0``):
pytest collects a doctest from the file it imports, and a compiled module's is not
its ``.py``."""

from operators import COMPILED, NATIVE

collect_ignore = sorted(f"{name}.py" for name in COMPILED) if NATIVE else []
