"""``lucidstream retention``: how long each table keeps its rows, and what it holds."""

from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table

from sinks.retention import GROUPS, Retention, describe
from sinks.store import open_store

out = Console(soft_wrap=True)


@click.command()
@click.option("--store", default=None, help="chdb:///abs/path or http(s)://user:pass@host:8123/db "
              "[env LUCIDSTREAM_STORE; default ./lucidstream-data]")
@click.option("--set", "spec", metavar="GROUP=DURATION,...",
              help=f"change TTLs ({', '.join(GROUPS)}; 30d, 12h or off), kept until changed")
def retention(store: str | None, spec: str | None) -> None:
    """Show each table's TTL, rows and bytes on disk; --set changes the TTLs.

    A row is kept for its group's TTL after it was stored. A longer TTL loses
    nothing; a shorter one deletes what lies beyond it when ClickHouse next merges.
    The same list in LUCIDSTREAM_RETENTION applies when a flow opens the store.
    """
    wanted = Retention.parse(spec) if spec else None  # a bad spec fails before any store opens
    with open_store(store) as handle:
        if wanted is not None:
            handle.apply_retention(wanted)
        sizes = {name: (rows, on_disk, raw) for name, rows, on_disk, raw in handle.query(
            "SELECT table, sum(rows), sum(bytes_on_disk), sum(data_uncompressed_bytes) "
            "FROM system.parts WHERE active AND database = currentDatabase() "
            "GROUP BY table")[1]}
        table = Table("group", "table", "TTL", "rows", "on disk", "uncompressed")
        for group, name, ttl in describe(handle.engines()):
            rows, on_disk, raw = sizes.get(name, (0, 0, 0))
            table.add_row(group, name, ttl, f"{rows:,}", _size(on_disk), _size(raw))
        out.print(table)


def _size(count: int) -> str:
    """Bytes for people.

    >>> _size(0), _size(2_048), _size(5 * 1024 ** 3)
    ('0 B', '2.0 KiB', '5.0 GiB')
    """
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"
