"""Shard keys spread evenly over Bytewax workers (checked against Bytewax itself)."""

from __future__ import annotations

import threading
from collections import defaultdict

import bytewax.operators as op
import pytest
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink, TestingSource, cluster_main

from flows.routing import SPREAD, bytewax_route, shard_key


def _workers_of(keys: list[str], workers: int) -> list[set[str]]:
    """Run ``keys`` through a keyed Bytewax step on ``workers`` workers in this
    process; the groups of keys that one worker handled."""
    flow = Dataflow("routing")
    keyed = op.key_on("key", op.input("in", flow, TestingSource(keys)), lambda k: k)
    handled = op.stateful_map("owner", keyed,
                              lambda state, key: (state, threading.get_ident()))
    out: list = []
    op.output("out", handled, TestingSink(out))
    cluster_main(flow, [], 0, worker_count_per_proc=workers)
    groups: dict[int, set[str]] = defaultdict(set)
    for key, ident in out:
        groups[ident].add(key)
    return sorted(groups.values(), key=min)


@pytest.mark.parametrize("workers", [2, 3, 4])
def test_shards_spread_evenly_over_workers(workers: int) -> None:
    shards = 2 * workers
    keys = [shard_key(i) for i in range(shards)]
    groups = _workers_of(keys, workers)
    expected = [{shard_key(i) for i in range(shards) if i % workers == w}
                for w in range(workers)]
    assert sorted(groups, key=min) == sorted(expected, key=min)


def test_route_matches_bytewax_for_plain_names() -> None:
    """The reason for the suffixes: Bytewax puts shard-0..3 on one worker of two."""
    plain = [f"shard-{i}" for i in range(4)]
    assert len({bytewax_route(k) % 2 for k in plain}) == 1
    assert _workers_of(plain, 2) == [set(plain)]


def test_key_does_not_depend_on_worker_count_and_routes_by_index() -> None:
    for i in range(3 * SPREAD // 2):
        assert bytewax_route(shard_key(i)) % SPREAD == i % SPREAD
        assert shard_key(i).split(".")[0] == f"shard-{i}"
    with pytest.raises(ValueError, match="must be >= 0"):
        shard_key(-1)
