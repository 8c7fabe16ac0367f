"""The stateless hash that ``random``'s masks are drawn from (``mask_draw.RandomDraw``).

A pair's score depends on (seed, layer, query, key) alone, never on a generator's state, so a
mask is the same in any batch order, on any number of processes and on any device, and it is
computed where the attention runs: no N x N mask crosses from the host.
"""

from __future__ import annotations

import torch

# Hash values are 31-bit: a 31-bit value times a 32-bit constant stays below 2^63.
MASK31 = (1 << 31) - 1


def _mix31(value):
    """MurmurHash3's finaliser cut to 31 bits, on an int or an int64 tensor: a bijection of
    [0, 2^31) whose every product stays below 2^63, so int64 never overflows."""
    value = value ^ (value >> 16)
    value = (value * 0x85EBCA6B) & MASK31
    value = value ^ (value >> 13)
    value = (value * 0xC2B2AE35) & MASK31
    return value ^ (value >> 16)


def _stream_key(seed: int, layer: int, stream: int) -> int:
    """A 31-bit key of (seed, layer) for one of three independent streams, folded on the host."""
    key = _mix31(stream * 0x9E3779B9 & MASK31)
    words = [seed & MASK31] + [seed >> shift & MASK31 for shift in range(31, seed.bit_length(), 31)]
    for word in (*words, layer):
        key = _mix31(key ^ word)
    return key


def pair_hash(seed: int, layer: int, queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """A stateless 31-bit hash of (seed, layer, query, key) as int64, broadcast over ``queries``
    and ``keys`` (positions below 2^31) and computed on their device.

    Why it is the same on every device: every value stays in [0, 2^31) and every product below
    2^63, so no operation (xor, shift, and, multiply) overflows; each is exact, defined and
    identical on CPU and CUDA. A pair mixes its query's and key's hashes and then its query's
    second one, so the xor of the first step leaves no structure across rows.
    """
    rows = _mix31(_stream_key(seed, layer, 1) ^ queries.long())
    columns = _mix31(_stream_key(seed, layer, 2) ^ keys.long())
    second = _mix31(_stream_key(seed, layer, 3) ^ queries.long())
    return _mix31(_mix31(rows ^ columns) ^ second)
