"""The lucidstream exception hierarchy.

Errors at the edges of the pipeline (bad input) are *data*: they become dead
letters with a reason (see :mod:`operators.events`). Exceptions are for
configuration mistakes, unreachable systems and bugs::

    LucidstreamError                 every error the product raises on purpose
    ├── ConfigError                  a bad flag, setting or DSN; fix the config
    ├── InputError                   an input that cannot be opened at all
    └── StoreError                   ClickHouse could not be reached or refused
        └── StoreUnavailable         the store is down or locked; retry later

The CLI prints ``str(error)`` on one line and exits non-zero; every message
says what was wrong and what to do.
"""

from __future__ import annotations

__all__ = ["ConfigError", "InputError", "LucidstreamError", "StoreError", "StoreUnavailable"]


class LucidstreamError(Exception):
    """Base class of every error lucidstream raises on purpose."""


class ConfigError(LucidstreamError):
    """A flag, environment variable or DSN is invalid."""


class InputError(LucidstreamError):
    """An input (file, topic) cannot be opened."""


class StoreError(LucidstreamError):
    """ClickHouse rejected a statement or could not be reached."""


class StoreUnavailable(StoreError):
    """The store is down, unreachable or locked by another process."""


class StoreBusy(StoreUnavailable):
    """The embedded store is held by another process (a running flow)."""
