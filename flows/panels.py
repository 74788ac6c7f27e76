"""Dashboard panels: named SQL files in ``infra/dashboards/``.

Each file is one panel: a header of ``-- key: value`` lines (``title``,
``chart`` = line, bar or table, ``unit``), a comment saying what it shows, and
one read-only SELECT. The first column of a line or bar chart is its x axis,
the other columns its series. The same files feed ``lucidstream query PANEL``,
the HTML dashboard and the Grafana dashboard in ``infra/grafana/``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from operators.errors import ConfigError

__all__ = ["PANEL_DIR", "Panel", "load_panels", "panel"]

PANEL_DIR = Path(os.environ.get("LUCIDSTREAM_PANEL_DIR",
                                Path(__file__).resolve().parents[1] / "infra" / "dashboards"))
CHARTS = ("line", "bar", "table")


@dataclass(frozen=True)
class Panel:
    name: str
    title: str
    chart: str
    unit: str
    description: str
    sql: str


def _parse(path: Path) -> Panel:
    meta: dict[str, str] = {}
    about: list[str] = []
    body: list[str] = []
    for line in path.read_text().splitlines():
        if line.startswith("--") and not body:
            text = line[2:].strip()
            key, sep, value = text.partition(":")
            if sep and key in ("title", "chart", "unit"):
                meta[key] = value.strip()
            elif text:
                about.append(text)
        elif line.strip():
            body.append(line)
    chart = meta.get("chart", "table")
    if chart not in CHARTS:
        raise ConfigError(f"panel {path}: chart {chart!r}, use one of {CHARTS}")
    return Panel(path.stem, meta.get("title", path.stem), chart, meta.get("unit", ""),
                 " ".join(about), "\n".join(body))


def load_panels(directory: Path = PANEL_DIR) -> list[Panel]:
    """Every panel, in name order."""
    panels = [_parse(p) for p in sorted(Path(directory).glob("*.sql"))]
    if not panels:
        raise ConfigError(f"no panel SQL in {directory}; set LUCIDSTREAM_PANEL_DIR to the "
                          "infra/dashboards directory of lucidstream")
    return panels


def panel(name: str, directory: Path = PANEL_DIR) -> Panel | None:
    """The panel called ``name`` (its file name without ``.sql``), if there is one.

    >>> panel("stale_rate").chart, panel("no such panel")
    ('line', None)
    """
    path = Path(directory) / f"{name}.sql"
    return _parse(path) if name.isidentifier() and path.is_file() else None
