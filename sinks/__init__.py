"""Adapters for the outside world: the ClickHouse store and the sinks that write to it.

``store`` owns DSNs, clients and schema migrations; ``clickhouse`` is the
batched, idempotent Bytewax sink. Nothing here knows about any one flow.
"""
