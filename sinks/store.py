"""The store: one narrow seam to ClickHouse through clickhouse-connect.

A DSN is either ``chdb:///abs/path`` (embedded ClickHouse, the default, one
process per path) or ``http(s)://user:pass@host:8123/db`` (a server or
cluster). :func:`open_store` returns a shared, reference-counted
:class:`Store` per DSN, because the embedded engine admits one path per
process and every Bytewax worker thread in the process must share it.
Driver exceptions are translated into :mod:`operators.errors`.

Schema: every ``*.sql`` file in ``infra/clickhouse/`` is applied in name order
at open; the statements are ``CREATE ... IF NOT EXISTS``, so this is idempotent.
A store records the fingerprint of the files it was migrated with
(``lucidstream_schema``); opened again by the same files, with every table they
create still there, it is not migrated again (every command opens the store).
"""

from __future__ import annotations

import atexit
import ctypes
import fcntl
import hashlib
import logging
import os
import re
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from operators.errors import ConfigError, StoreBusy, StoreError, StoreUnavailable
from operators.records import Rows
from sinks.retention import Retention, format_duration

__all__ = ["DDL_DIR", "DEFAULT_STORE", "Store", "check_openable", "close_all", "normalize_dsn",
           "open_store", "redact"]

log = logging.getLogger("lucidstream.store")

DEFAULT_STORE = "./lucidstream-data"
DDL_DIR = Path(os.environ.get("LUCIDSTREAM_DDL_DIR",
                              Path(__file__).resolve().parents[1] / "infra" / "clickhouse"))
# the fingerprints of the schema files each migration applied
SCHEMA_TABLE = "lucidstream_schema"
_CREATES = re.compile(r"\bCREATE\s+(?:MATERIALIZED\s+VIEW|TABLE)\s+IF\s+NOT\s+EXISTS\s+"
                      r"`?(\w+)`?", re.I)
# leading comments (a panel's file starts with them) and parentheses, then the verb
_READ_ONLY = re.compile(r"^(\s*--[^\n]*\n|\s*/\*(?:(?!\*/).)*\*/)*\s*(\(\s*)*"
                        r"(SELECT|WITH|SHOW|DESCRIBE|DESC|EXPLAIN|EXISTS)\b", re.I | re.S)


def normalize_dsn(dsn: str | None) -> str:
    """A canonical DSN: ``chdb://`` + absolute path, or the server URL unchanged.

    >>> normalize_dsn("chdb:///tmp/x/")
    'chdb:///tmp/x'
    >>> normalize_dsn("http://default:@localhost:8123/default")
    'http://default:@localhost:8123/default'
    """
    dsn = (dsn or os.environ.get("LUCIDSTREAM_STORE") or _secret_file() or DEFAULT_STORE).strip()
    scheme = dsn.split("://", 1)[0].lower() if "://" in dsn else ""
    if scheme in ("http", "https", "clickhouse", "clickhouses"):
        parts = urlsplit(dsn)
        if not parts.hostname:
            raise ConfigError(f"store DSN {redact(dsn)!r} has no host; use http://user:pass@host:8123/db")
        return dsn
    if scheme == "chdb":
        path = dsn[len("chdb://"):]
    elif scheme:
        raise ConfigError(f"store DSN {redact(dsn)!r}: unknown scheme {scheme!r}; "
                          "use chdb:///abs/path or http(s)://user:pass@host:8123/db")
    else:
        path = dsn
    if scheme == "chdb" and ("?" in path or "@" in path.split("/", 1)[0]):
        # the embedded store has no users and takes no options: a password or a query
        # here would otherwise become part of a directory name, and be printed as one
        raise ConfigError(f"store DSN {redact(dsn)!r}: the embedded store takes no "
                          "credentials or options; use chdb:///abs/path")
    if not path or path == "/":
        raise ConfigError(f"store DSN {dsn!r} has no path; use chdb:///abs/path")
    return "chdb://" + os.path.realpath(os.path.expanduser(path))


def _secret_file() -> str | None:
    """The DSN in the file ``LUCIDSTREAM_STORE_FILE`` names (a mounted secret), if set."""
    path = os.environ.get("LUCIDSTREAM_STORE_FILE")
    if not path:
        return None
    try:
        return Path(path).read_text().strip() or None
    except OSError as exc:
        raise ConfigError(f"LUCIDSTREAM_STORE_FILE={path!r}: cannot read it ({exc.strerror}); "
                          "point it at a readable file holding the store DSN") from None


def redact(dsn: str) -> str:
    """``dsn`` with its password (and any ``password=`` parameter) hidden: what may be
    printed, logged or stored.

    >>> redact("https://ingest:s3cr%40t@ch.example:8443/prod?password=x&secure=1")
    'https://ingest:***@ch.example:8443/prod?password=***&secure=1'
    >>> redact("chdb:///var/lib/lucidstream")
    'chdb:///var/lib/lucidstream'
    """
    hidden = re.sub(r"^([a-z][a-z0-9+.-]*://[^:/@]*):[^@/]*@", r"\1:***@", dsn, flags=re.I)
    return re.sub(r"([?&](?:password|pass|pwd|access_token)=)[^&]*", r"\1***", hidden,
                  flags=re.I)


_OUTFILE = re.compile(r"\bINTO\s+OUTFILE\b", re.I)


class Store:
    """A ClickHouse client behind a lock, with the calls lucidstream needs.

    Use :func:`open_store` rather than the constructor; it shares one store per
    DSN in the process::

        with open_store("chdb:///tmp/lucidstream-demo") as store:
            store.query("SELECT 1 + 1 AS two")     # (['two'], [(2,)])
    """

    def __init__(self, dsn: str, client: Any) -> None:
        self.dsn = dsn
        self.safe_dsn = redact(dsn)  # what messages, logs and pages show
        self.embedded = dsn.startswith("chdb://")
        self._client = client
        self._lock = threading.RLock()
        self._refs = 1
        # One reusable insert context per table and column list (guarded by the lock).
        # A fresh context per insert cost a DESCRIBE round trip each time, and each
        # one is a reference cycle (it keeps a bound method of itself) holding its
        # batch's columns until the garbage collector's next full pass: with a
        # collector tuned for throughput, hundreds of batches' worth of memory. A
        # reused context keeps at most its last batch.
        self._contexts: dict[tuple[str, tuple[str, ...]], Any] = {}
        self._arrow: dict[tuple[str, tuple[str, ...]], Any] = {}

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        try:
            with self._lock:
                yield
        except Exception as exc:  # the driver raises many types; translate them all
            text = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else repr(exc)
            if _is_connection_error(exc):
                raise StoreUnavailable(f"store {self.safe_dsn} unavailable during {what}: {text}; "
                                       "check that ClickHouse is running and reachable") from exc
            raise StoreError(f"store {self.safe_dsn} rejected {what}: {text}") from exc

    def command(self, sql: str) -> Any:
        with self._errors(sql.split("(")[0].strip()[:60]):
            return self._client.command(sql)

    def query(
        self, sql: str, parameters: dict | None = None, read_only: bool = False
    ) -> tuple[list[str], list[tuple]]:
        """Run a query; ``read_only`` refuses anything but SELECT-like statements."""
        if read_only and not _READ_ONLY.match(sql):
            raise ConfigError("only read-only queries are allowed here (SELECT, WITH, SHOW, "
                              f"DESCRIBE, EXPLAIN, EXISTS); got: {sql.strip()[:60]!r}")
        if read_only and _OUTFILE.search(sql):  # the embedded engine writes it even read-only
            raise ConfigError("INTO OUTFILE writes a file; read-only queries cannot. Use "
                              "--format csv and redirect the output instead")
        # No writes, no DDL: readonly=1 in the embedded store (it also refuses table
        # functions such as file()), 2 on a server, where the driver sends session
        # settings with each query and 1 would refuse those too.
        settings = {"readonly": 1 if self.embedded else 2} if read_only else None
        with self._errors("query"):
            result = self._client.query(sql, parameters=parameters, settings=settings)
            return list(result.column_names), [tuple(r) for r in result.result_rows]

    def scalar(self, sql: str, parameters: dict | None = None) -> Any:
        rows = self.query(sql, parameters)[1]
        return rows[0][0] if rows else None

    def insert(self, rows: Rows, dedup: bool = True) -> None:
        """One insert of ``rows``. With ``dedup``, a block retried or replayed with the
        same content carries the same token and is written once."""
        if not rows.rows:
            return
        settings = {"insert_deduplication_token": _token(rows)} if dedup else {}
        schema = self._arrow_schema(rows)
        if schema is not None:
            # Arrow, where every column is a plain scalar: pyarrow converts the rows in
            # C++ and the store parses Arrow natively, where the driver's Native format
            # is built value by value in Python.
            with self._errors(f"insert into {rows.table}"):
                self._client.insert_arrow(rows.table, _arrow_table(rows, schema),
                                          settings=settings)
            return
        # Column-oriented: the driver builds Native columns anyway, and transposing in C
        # is cheaper than its row walk. numpy object columns, not zip's tuples: the
        # collector does not track them, while zip(*rows) made a tracked tuple per
        # column plus an iterator per row for every young collection to traverse.
        columns = _columns(rows.rows)
        with self._errors(f"insert into {rows.table}"):
            key = (rows.table, tuple(rows.columns))
            context = self._contexts.get(key)
            if context is None:
                context = self._contexts[key] = self._client.create_insert_context(
                    rows.table, column_names=list(rows.columns), column_oriented=True)
            context.settings = settings
            try:
                self._client.insert(data=columns, context=context)
            finally:
                context.data = None  # as the driver does, also when it raised first

    def _arrow_schema(self, rows: Rows) -> Any:
        """``rows``' columns as the fields of an Arrow struct, or ``None`` when one is
        not a plain scalar (arrays, maps) or unknown: those go the driver's way."""
        key = (rows.table, tuple(rows.columns))
        if key not in self._arrow:
            with self._errors(f"describe {rows.table}"):
                found = dict(self._client.query(
                    "SELECT name, type FROM system.columns WHERE database = "
                    "currentDatabase() AND table = {t:String}",
                    parameters={"t": rows.table}).result_rows)
            types = [_arrow_type(found.get(name, "")) for name in rows.columns]
            self._arrow[key] = None if any(t is None for t in types) else _struct(
                rows.columns, types)
        return self._arrow[key]

    def client_insert(self, table: str, rows: list[tuple]) -> None:
        """A plain insert without column names or dedup (benchmarks, ad-hoc tables)."""
        if rows:
            with self._errors(f"insert into {table}"):
                self._client.insert(table, rows)

    def migrate(self, ddl_dir: Path = DDL_DIR, retention: Retention | None = None) -> list[str]:
        """Apply every statement of ``ddl_dir/*.sql`` in order, then the TTLs of
        ``retention`` (by default ``LUCIDSTREAM_RETENTION``'s); returns the files."""
        files = sorted(Path(ddl_dir).glob("*.sql"))
        if not files:
            raise ConfigError(f"no schema files in {ddl_dir}; set LUCIDSTREAM_DDL_DIR to "
                              "the infra/clickhouse directory of lucidstream")
        texts = [(path.name, path.read_text()) for path in files]
        fingerprint = hashlib.sha256("\0".join(
            f"{name}\0{text}" for name, text in texts).encode()).hexdigest()
        catalog = self._catalog()
        if not self._migrated_with(fingerprint, {t for _, text in texts
                                                 for t in _CREATES.findall(text)}, catalog):
            for _, text in texts:
                for statement in _statements(text):
                    self.command(statement)
            self.command(f"CREATE TABLE IF NOT EXISTS {SCHEMA_TABLE} (fingerprint String, "
                         "files Array(String), applied_at DateTime64(3) DEFAULT now64(3)) "
                         "ENGINE = MergeTree ORDER BY applied_at")
            self.insert(Rows(SCHEMA_TABLE, ("fingerprint", "files"),
                             [(fingerprint, [p.name for p in files])]), dedup=False)
            catalog = self._catalog()
        engines = _merge_trees(catalog)
        self.apply_retention(retention or Retention.from_env(), engines,
                             {name: comment for name, (_, _, comment) in catalog.items()})
        if self.embedded:
            self._tune_embedded_tables(engines)
        return [p.name for p in files]

    def _catalog(self) -> dict[str, tuple[str, str, str]]:
        """Each table's engine, full engine clause and comment, in one query."""
        return {name: (engine, full, comment) for name, engine, full, comment in self.query(
            "SELECT name, engine, engine_full, comment FROM system.tables "
            "WHERE database = currentDatabase()")[1]}

    def _migrated_with(self, fingerprint: str, tables: set[str],
                       catalog: dict[str, tuple[str, str, str]]) -> bool:
        """Whether a migration recorded ``fingerprint`` and ``tables`` all exist (in
        ``catalog``, :meth:`_catalog`)."""
        present = set(catalog)
        if SCHEMA_TABLE not in present or not tables <= present:
            return False
        return bool(self.scalar(f"SELECT count() FROM {SCHEMA_TABLE} WHERE fingerprint = "
                                "{f:String}", {"f": fingerprint}))

    def apply_retention(self, retention: Retention, engines: dict[str, str] | None = None,
                        comments: dict[str, str] | None = None) -> None:
        """Give each table its group's TTL (see :mod:`sinks.retention`); ``engines``
        (:meth:`engines`) and ``comments`` (each table's) when the caller has just read
        them."""
        if comments is None:
            comments = {name: comment for name, (_, _, comment) in self._catalog().items()}
        for table, engine in (self.engines() if engines is None else engines).items():
            statements = retention.statements(table, engine, comments.get(table, ""))
            for statement in statements:
                self.command(statement)
            if statements:
                log.info("event=retention table=%s ttl=%s", table,
                         format_duration(retention.seconds_for(table)))

    def engines(self) -> dict[str, str]:
        """Each MergeTree table's full engine clause (with its TTL and settings)."""
        return _merge_trees(self._catalog())

    def _tune_embedded_tables(self, engines: dict[str, str]) -> None:
        """Bound what the embedded engine's merges cost the flow's own process.

        The engine runs in this process, so its threads and merge buffers are the
        flow's memory. By default a MergeTree table with 100 or more merged-away parts
        removes them on up to 128 threads of the engine's global pool, which keeps
        those threads (and their native arenas) for the life of the process; and one
        merge may take up to 100 parts, each with a read buffer per column. Our tables
        get a part per insert: one removal thread and merges of at most 10 parts keep
        up with them at a fraction of the peak memory. A table that has them already
        is left alone (every process that opens the store migrates it).
        """
        for table, engine in engines.items():
            if not all(setting in engine for setting in _EMBEDDED_SETTINGS):
                self.command(f"ALTER TABLE {_quote_identifier(table)} MODIFY SETTING "
                             f"{', '.join(_EMBEDDED_SETTINGS)}")

    def tables(self) -> list[str]:
        return [r[0] for r in self.query("SELECT name FROM system.tables "
                                         "WHERE database = currentDatabase() ORDER BY name")[1]]

    def close(self) -> None:
        """Release this handle; the last one closes the client."""
        with _REGISTRY_LOCK:
            self._refs -= 1
            if self._refs > 0:
                return
            if self.embedded and threading.current_thread() is not threading.main_thread():
                # chdb's close blocks when called from a thread other than the one that
                # opened the engine (a Bytewax worker); the main thread closes it later.
                return
            _REGISTRY.pop(self.dsn, None)
        try:
            self._client.close()
        except Exception as exc:
            log.warning("store=%s event=close_failed error=%s", self.safe_dsn, exc)

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_REGISTRY: dict[str, Store] = {}
_REGISTRY_LOCK = threading.Lock()


def open_store(dsn: str | None = None, migrate: bool = True) -> Store:
    """The process's shared store for ``dsn`` (opened and migrated on first use)."""
    canonical = normalize_dsn(dsn)
    _close_idle(except_dsn=canonical)
    with _REGISTRY_LOCK:
        store = _REGISTRY.get(canonical)
        if store is not None:
            store._refs += 1
            return store
        store = Store(canonical, _connect(canonical))
        _REGISTRY[canonical] = store
    if migrate:
        try:
            store.migrate()
        except Exception:
            store.close()
            raise
    return store


def _close_idle(except_dsn: str) -> None:
    """Close stores no one holds any more (left open by worker threads)."""
    if threading.current_thread() is not threading.main_thread():
        return
    with _REGISTRY_LOCK:
        idle = [s for d, s in _REGISTRY.items() if s._refs <= 0 and d != except_dsn]
        for store in idle:
            _REGISTRY.pop(store.dsn, None)
    for store in idle:
        with suppress(Exception):
            store._client.close()


def close_all() -> None:
    """Close every store this process opened (tests, shutdown)."""
    with _REGISTRY_LOCK:
        stores = list(_REGISTRY.values())
        _REGISTRY.clear()
    for store in stores:
        store._refs = 0
        with suppress(Exception):  # best effort at shutdown
            store._client.close()


atexit.register(close_all)


def _connect(dsn: str) -> Any:
    import clickhouse_connect

    started = time.perf_counter()
    if dsn.startswith("chdb://"):
        path = dsn[len("chdb://"):]
        other = next((d for d in _REGISTRY if d.startswith("chdb://")), None)
        if other is not None:
            raise StoreUnavailable(
                f"cannot open {dsn}: this process already has the embedded store {other} "
                "open, and chdb allows one path per process; close it or use one --store")
        try:
            os.makedirs(path, exist_ok=True)
            client = clickhouse_connect.get_client(dsn=dsn)
            _let_aborts_end_the_process()
        except OSError as exc:
            raise StoreUnavailable(f"cannot create store directory {path}: {exc.strerror}") from exc
        except Exception as exc:
            raise StoreBusy(
                f"cannot open embedded store {path}: another process probably has it open "
                "(chdb allows one process per path); stop that process, or use a different "
                "--store path or a ClickHouse server DSN") from exc
    else:
        try:
            client = clickhouse_connect.get_client(dsn=dsn, connect_timeout=5,
                                                   send_receive_timeout=60)
        except Exception as exc:
            raise StoreUnavailable(f"cannot reach ClickHouse at {redact(dsn)} ({_short(exc)}); "
                                   "check the host, port and credentials, and that the server "
                                   "is running") from exc
    log.info("event=store_open store=%s elapsed_ms=%.0f", redact(dsn),
             (time.perf_counter() - started) * 1000)
    return client


def check_openable(dsn: str | None) -> None:
    """Fail now, with the reason, if another process holds the embedded store at ``dsn``
    or its directory cannot be made; without loading the engine (a server DSN is not
    checked: open it to know).

    The engine holds a lock on the ``status`` file in the store's directory while it
    has the store open, and writes its process ID there. A cluster's parent checks the
    store this way before starting its processes: one of them opens and migrates it.

    >>> import tempfile
    >>> check_openable(f"chdb://{tempfile.mkdtemp()}/store")  # free: returns
    """
    canonical = normalize_dsn(dsn)
    if not canonical.startswith("chdb://"):
        return
    path = canonical[len("chdb://"):]
    try:
        os.makedirs(path, exist_ok=True)
        status = open(os.path.join(path, "status"), "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        return  # never opened: nobody holds it
    except OSError as exc:
        raise StoreUnavailable(f"cannot create store directory {path}: {exc.strerror}; "
                               "pass a --store path this user may write") from exc
    with status:
        try:
            fcntl.flock(status, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = status.read(200).decode(errors="replace").split("\n", 1)[0]
            raise StoreBusy(f"cannot open embedded store {path}: another process has it open "
                            f"({holder.strip() or 'its PID is not recorded'}); stop that "
                            "process, or use a different --store path or a ClickHouse server "
                            "DSN") from None
        fcntl.flock(status, fcntl.LOCK_UN)


def _let_aborts_end_the_process() -> None:
    """Give SIGABRT back its default action, which ends the process.

    Opening the embedded store installs ClickHouse's fatal-signal handler, which in
    an embedded process waits forever: a process that aborts (a Rust panic in a
    destructor, a failed assertion in any library) would hang, holding the store's
    path, instead of ending so that a supervisor can restart it. ``signal.signal``
    works on the main thread only; the store may be opened on a worker's.
    """
    libc = ctypes.CDLL(None)
    libc.signal.restype = ctypes.c_void_p
    libc.signal(signal.SIGABRT, ctypes.c_void_p(0))  # 0: SIG_DFL


# As system.tables spells them: outdated parts a table must have before it removes
# them on many threads (never), and parts one merge may take.
_EMBEDDED_SETTINGS = ("concurrent_part_removal_threshold = 1000000000",
                      "max_parts_to_merge_at_once = 10")


def _quote_identifier(name: str) -> str:
    """A table name as a backquoted ClickHouse identifier.

    >>> _quote_identifier("odd`name")
    '`odd\\\\`name`'
    """
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def _short(exc: Exception) -> str:
    text = str(exc)
    for marker in ("Connection refused", "Name or service not known", "timed out",
                   "Authentication failed"):
        if marker.lower() in text.lower():
            return marker.lower()
    return text.splitlines()[0][:120] if text else type(exc).__name__


# ClickHouse errors that say "not now" rather than "not this": an overloaded, read-only
# or restarting server, a lost connection. A write that meets them is retried.
_TRANSIENT_CODES = frozenset({
    3,    # UNEXPECTED_END_OF_FILE (a connection cut mid-answer)
    159,  # TIMEOUT_EXCEEDED
    202,  # TOO_MANY_SIMULTANEOUS_QUERIES
    203,  # NO_FREE_CONNECTION
    209,  # SOCKET_TIMEOUT
    210,  # NETWORK_ERROR
    236,  # ABORTED
    241,  # MEMORY_LIMIT_EXCEEDED
    242,  # TABLE_IS_READ_ONLY (a replica lost its coordination service)
    252,  # TOO_MANY_PARTS (merges are behind)
    319,  # UNKNOWN_STATUS_OF_INSERT
    394,  # QUERY_WAS_CANCELLED
    425,  # SYSTEM_ERROR
    999,  # KEEPER_EXCEPTION
})
_CODE = re.compile(r"\bCode:\s*(\d+)")


def _is_connection_error(exc: Exception) -> bool:
    """Whether ``exc`` means the store cannot take the statement now (retry later).

    >>> _is_connection_error(Exception("Code: 252. DB::Exception: Too many parts"))
    True
    >>> _is_connection_error(Exception("Code: 62. DB::Exception: Syntax error"))
    False
    """
    from clickhouse_connect.driver.exceptions import OperationalError

    if isinstance(exc, (OperationalError, ConnectionError, TimeoutError)):
        return True
    code = _CODE.search(str(exc))
    return code is not None and int(code.group(1)) in _TRANSIENT_CODES


def _columns(rows: Sequence[tuple]) -> Sequence[Sequence]:
    """``rows`` transposed to columns; numpy object columns when every value is a
    scalar (no arrays or tuples inside a row), else zip's tuples.

    >>> [list(c) for c in _columns([("a", 1, None), ("b", 2, 0.5)])]
    [['a', 'b'], [1, 2], [None, 0.5]]
    >>> [list(c) for c in _columns([("a", None), ("b", [1, 2])])]  # a list kept whole
    [['a', 'b'], [None, [1, 2]]]
    """
    if not any(isinstance(v, (list, tuple, np.ndarray)) for v in rows[0]):
        try:
            return list(np.array(rows, dtype=object).T)
        except ValueError:  # ragged rows: zip's strict check below raises for them
            pass
    return list(zip(*rows, strict=True))


_ARROW_SCALARS = {
    "String": "string", "Bool": "bool_", "Float64": "float64", "Float32": "float32",
    "Int64": "int64", "Int32": "int32", "Int16": "int16", "Int8": "int8",
    "UInt64": "uint64", "UInt32": "uint32", "UInt16": "uint16", "UInt8": "uint8",
}


def _arrow_type(clickhouse: str) -> Any:
    """The Arrow type for a ClickHouse column type, or ``None`` when there is none here
    (the row goes the driver's way then).

    >>> _arrow_type("LowCardinality(String)"), _arrow_type("Nullable(Float64)")
    (DataType(string), DataType(double))
    >>> _arrow_type("DateTime64(3, 'UTC')"), _arrow_type("Array(UInt64)")
    (TimestampType(timestamp[ms, tz=UTC]), ListType(list<item: uint64>))
    >>> _arrow_type("Map(LowCardinality(String), String)"), _arrow_type("UUID")
    (MapType(map<string, string>), None)
    """
    import pyarrow as pa

    inner = clickhouse.strip()
    for wrapper in ("Nullable(", "LowCardinality("):
        if inner.startswith(wrapper):
            inner = inner[len(wrapper):-1]
    # epoch milliseconds and nanoseconds, as rows carry them
    if inner.startswith("DateTime64(3"):
        return pa.timestamp("ms", tz="UTC")
    if inner.startswith("DateTime64(9"):
        return pa.timestamp("ns", tz="UTC")
    if inner.startswith("Array(") and inner.endswith(")"):
        item = _arrow_type(inner[len("Array("):-1])
        return None if item is None else pa.list_(item)
    if inner.startswith("Map(") and inner.endswith(")"):
        args = _type_arguments(inner[len("Map("):-1])
        key, value = (_arrow_type(a) for a in args) if len(args) == 2 else (None, None)
        return None if key is None or value is None else pa.map_(key, value)
    name = _ARROW_SCALARS.get(inner)
    return None if name is None else getattr(pa, name)()


def _type_arguments(text: str) -> list[str]:
    """A type's arguments, split at its own commas (not those of nested types).

    >>> _type_arguments("LowCardinality(String), Map(String, UInt8)")
    ['LowCardinality(String)', 'Map(String, UInt8)']
    """
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        depth += (char == "(") - (char == ")")
        if char == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    return [*parts, text[start:].strip()]


def _merge_trees(catalog: dict[str, tuple[str, str, str]]) -> dict[str, str]:
    """The full engine clause of each MergeTree table of a :meth:`Store._catalog`."""
    return {name: full for name, (engine, full, _) in catalog.items()
            if engine.endswith("MergeTree")}


def _struct(names: Sequence[str], types: list) -> Any:
    import pyarrow as pa

    return pa.struct([pa.field(name, t) for name, t in zip(names, types, strict=True)])


def _arrow_table(rows: Rows, schema: Any) -> Any:
    """``rows`` (tuples) as an Arrow table of ``schema``'s fields: read as one struct
    array, a third cheaper than a column at a time after transposing them (which the
    writer does while holding the interpreter's lock).

    >>> import pyarrow as pa
    >>> schema = _struct(("id", "v"), [pa.string(), pa.float64()])
    >>> _arrow_table(Rows("t", ("id", "v"), [("a", 1.0), ("b", None)]), schema).to_pylist()
    [{'id': 'a', 'v': 1.0}, {'id': 'b', 'v': None}]
    """
    import pyarrow as pa

    struct = pa.array(rows.rows, type=schema)
    return pa.Table.from_batches([pa.RecordBatch.from_struct_array(struct)])


def _token(rows: Rows) -> str:
    digest = hashlib.blake2b(digest_size=16)
    digest.update(rows.table.encode())
    for row in rows.rows:
        digest.update(str(row[0]).encode())
    digest.update(str(len(rows.rows)).encode())
    return digest.hexdigest()


def _statements(sql: str) -> Sequence[str]:
    text = "\n".join(line for line in sql.splitlines() if not line.strip().startswith("--"))
    return [s.strip() for s in text.split(";") if s.strip()]
