"""Shard keys that Bytewax spreads evenly over its workers.

Bytewax sends a keyed item to worker ``route(key) % workers``, where
``route`` is Rust's default hasher (SipHash-1-3 with zero keys) over the key's
UTF-8 bytes and a ``0xff`` terminator. Keys named ``shard-0`` ... ``shard-3``
happen to land on one worker of two, so ``--processes 2`` used to decide
everything in one process. :func:`shard_key` names shard ``i`` so that its
route is ``i`` modulo :data:`SPREAD`: shard ``i`` goes to worker ``i % W``
for every worker count ``W`` that divides 240 (1-6, 8, 10, 12, 15, 16, 20,
24, ...). The name does not depend on ``W``, so Bytewax recovery finds a
shard's state again after a restart with another worker count.

This mirrors Bytewax's internals (checked by a test that runs Bytewax); if
they change, shards are still routed consistently, only less evenly.
"""

from __future__ import annotations

from functools import lru_cache

__all__ = ["SPREAD", "bytewax_route", "shard_key"]

SPREAD = 240
_MASK = (1 << 64) - 1


def _rotl(x: int, b: int) -> int:
    return ((x << b) | (x >> (64 - b))) & _MASK


def _sipround(v0: int, v1: int, v2: int, v3: int) -> tuple[int, int, int, int]:
    v0 = (v0 + v1) & _MASK
    v1 = _rotl(v1, 13) ^ v0
    v0 = _rotl(v0, 32)
    v2 = (v2 + v3) & _MASK
    v3 = _rotl(v3, 16) ^ v2
    v0 = (v0 + v3) & _MASK
    v3 = _rotl(v3, 21) ^ v0
    v2 = (v2 + v1) & _MASK
    v1 = _rotl(v1, 17) ^ v2
    v2 = _rotl(v2, 32)
    return v0, v1, v2, v3


def _siphash13(data: bytes) -> int:
    """SipHash-1-3 with the zero key, as Rust's ``DefaultHasher::new()``."""
    v0, v1 = 0x736F6D6570736575, 0x646F72616E646F6D
    v2, v3 = 0x6C7967656E657261, 0x7465646279746573
    n = len(data)
    end = n - n % 8
    for i in range(0, end, 8):
        m = int.from_bytes(data[i:i + 8], "little")
        v3 ^= m
        v0, v1, v2, v3 = _sipround(v0, v1, v2, v3)
        v0 ^= m
    last = ((n & 0xFF) << 56) | int.from_bytes(data[end:], "little")
    v3 ^= last
    v0, v1, v2, v3 = _sipround(v0, v1, v2, v3)
    v0 ^= last
    v2 ^= 0xFF
    for _ in range(3):
        v0, v1, v2, v3 = _sipround(v0, v1, v2, v3)
    return v0 ^ v1 ^ v2 ^ v3


def bytewax_route(key: str) -> int:
    """The 64-bit route Bytewax computes for a string state key.

    >>> bytewax_route("shard-0") % 2, bytewax_route("shard-4") % 2
    (1, 0)
    """
    return _siphash13(key.encode() + b"\xff")  # Rust hashes a str as its bytes, then 0xff


@lru_cache(maxsize=4096)
def shard_key(index: int) -> str:
    """The Bytewax key of shard ``index``: ``shard-<index>``, with a suffix when
    needed so that its route is ``index`` modulo :data:`SPREAD`.

    >>> [shard_key(i) for i in range(2)]
    ['shard-0.423', 'shard-1.438']
    >>> [bytewax_route(shard_key(i)) % 4 for i in range(8)]
    [0, 1, 2, 3, 0, 1, 2, 3]
    """
    if index < 0:
        raise ValueError(f"shard index {index} must be >= 0")
    want, base = index % SPREAD, f"shard-{index}"
    if bytewax_route(base) % SPREAD == want:
        return base
    suffix = 1
    while bytewax_route(f"{base}.{suffix}") % SPREAD != want:
        suffix += 1
    return f"{base}.{suffix}"
