"""A regime applied to one sample: which (query, key) pairs each layer allows, and how many.

Rules are evaluated once per distinct rule set on pairs of *segments* (block level), never per
position: that gives exact edge counts from group sizes and is the form every attention
backend consumes. Dense position masks are expanded from the blocks only when asked for,
lazily, once per distinct rule set. ``random`` is the one regime that is not block-structured:
its masks are drawn per layer from a stateless hash of (seed, layer, query, key).
"""

from __future__ import annotations

from functools import cached_property

import torch

from lmms_eval_flow.engine.layout import TokenLayout
from lmms_eval_flow.engine.regimes import Regime, Rule


def causal_edges(length: int) -> int:
    """Edges of full causal attention over ``length`` positions in one layer."""
    return length * (length + 1) // 2


class SamplePlan:
    def __init__(self, regime: Regime, layout: TokenLayout):
        self.regime = regime
        self.layout = layout
        self._blocks: dict[tuple[Rule, ...], torch.Tensor] = {}
        self._block_edges: dict[tuple[Rule, ...], int] = {}
        self._dense: dict[object, torch.Tensor] = {}
        self._last_rows: dict[int, torch.Tensor] = {}

    # -- block level -------------------------------------------------------------------------
    def blocks(self, rules: tuple[Rule, ...]) -> torch.Tensor:
        """[S, S] bool: may segment i read segment j (j <= i) under ``rules``."""
        if rules not in self._blocks:
            segments = self.layout.segments
            last_frame = self.layout.num_frames - 1
            allowed = torch.ones(len(segments), len(segments), dtype=torch.bool).tril()
            for i, reader in enumerate(segments):
                for j in range(i + 1):
                    if any(rule.blocks(reader, segments[j], last_frame) for rule in rules):
                        allowed[i, j] = False
            self._blocks[rules] = allowed
        return self._blocks[rules]

    def block_edges(self, rules: tuple[Rule, ...]) -> int:
        """Allowed pairs in one layer under ``rules``, from segment sizes alone; once per rule set,
        since layers share a few (a deep model on a long video would count them layer by layer)."""
        if rules not in self._block_edges:
            allowed = self.blocks(rules)
            sizes = torch.tensor([s.size for s in self.layout.segments], dtype=torch.long)
            across = (sizes[:, None] * sizes[None, :] * allowed).tril(-1).sum()
            within = (sizes * (sizes + 1) // 2 * allowed.diagonal()).sum()
            self._block_edges[rules] = int(across + within)
        return self._block_edges[rules]

    # -- per layer ---------------------------------------------------------------------------
    def masked(self, layer: int) -> bool:
        """Whether this layer needs a mask at all (else the stock causal path runs)."""
        regime = self.regime
        if regime.video_exit is not None and layer >= regime.video_exit:
            return False  # realised by dropping video from the sequence, not by a mask
        if regime.random_seed is not None:
            return self.random_blocked(layer) > 0
        return bool(regime.rules_at(layer))

    def mask_key(self, layer: int) -> object:
        """Layers with equal keys share one mask: a rule set, or each layer alone under ``random``."""
        if self.regime.random_seed is not None:
            return ("random", layer)
        return self.regime.rules_at(layer)

    def layer_edges(self, layer: int) -> int:
        if self.regime.random_seed is not None:
            return self.full_layer_edges - self.random_blocked(layer)
        return self.block_edges(self.regime.rules_at(layer))

    @cached_property
    def full_layer_edges(self) -> int:
        return causal_edges(self.layout.length)

    @cached_property
    def edges_per_layer(self) -> list[int]:
        return [self.layer_edges(layer) for layer in range(self.regime.depth)]

    @property
    def edges(self) -> int:
        return sum(self.edges_per_layer)

    @property
    def full_edges(self) -> int:
        return self.full_layer_edges * self.regime.depth

    # -- dense masks -------------------------------------------------------------------------
    def allowed(self, layer: int, device: torch.device | None = None) -> torch.Tensor:
        """[N, N] bool mask of the pairs this layer allows (causal included), on ``device`` (CPU by
        default); ``random`` builds it there, so no N x N mask crosses from the host."""
        if self.regime.random_seed is not None:
            mask = self._random_mask(layer, device)  # distinct per layer: not kept
        else:
            rules = self.regime.rules_at(layer)
            if rules not in self._dense:
                ids = self.layout.segment_ids
                causal = torch.ones(self.layout.length, self.layout.length, dtype=torch.bool).tril()
                self._dense[rules] = self.blocks(rules)[ids[:, None], ids[None, :]] & causal
            mask = self._dense[rules].to(device)
        self._last_rows[layer] = mask[-1].clone()  # a view would hold the whole N x N mask
        return mask

    def last_row(self, layer: int, device: torch.device | None = None) -> torch.Tensor:
        """What the last position reads in this layer; generated tokens read the prompt the same way."""
        if layer not in self._last_rows:
            self.allowed(layer, device)
        return self._last_rows[layer].to(device)

    # -- random ------------------------------------------------------------------------------
    def random_blocked(self, layer: int) -> int:
        """How many pairs ``random`` blocks in a layer: as many as the rules do, 1 - keep of all
        (rounded), or int(block_ratio x all) as Map the Flow's scripts count them."""
        regime, full = self.regime, self.full_layer_edges
        if regime.random_keep is not None:
            blocked, asked = full - round(regime.random_keep * full), f"keep={regime.random_keep}"
        elif regime.random_block_ratio is not None:
            blocked, asked = int(full * regime.random_block_ratio), f"block_ratio={regime.random_block_ratio}"
        else:
            return full - self.block_edges(regime.rules_at(layer))
        size = self.layout.length - self.layout.video_start
        region = causal_edges(size)
        if blocked > region:
            reachable = (f"the lowest keep reachable here is {1 - region / full:.4f}" if regime.random_keep is not None
                         else f"the highest block_ratio reachable here is {region / full:.4f}")
            raise ValueError(
                f"{asked} needs {blocked} blocked pairs per layer, but this sample ({self.layout.describe()}) "
                f"has only {region} pairs at or after its first video position; {reachable}"
            )
        return blocked

    def _random_mask(self, layer: int, device: torch.device | None) -> torch.Tensor:
        """The layer's mask, built on ``device``: the ``random_blocked`` candidate pairs with the
        smallest ``pair_hash`` (ties: the first in row-major order) are blocked, so the count is exact
        and the mask depends on nothing but the layout, the seed and the layer."""
        length, start = self.layout.length, self.layout.video_start
        mask = torch.ones(length, length, dtype=torch.bool, device=device).tril()
        blocked = self.random_blocked(layer)
        if blocked:
            scores = _region_scores(self.regime.random_seed, layer, start, length, mask.device)
            threshold = kth_smallest_uniform(scores, blocked)
            chosen = scores < threshold
            ties = (scores == threshold).nonzero().squeeze(1)
            chosen[ties[: blocked - int(chosen.sum())]] = True
            region = mask[start:, start:].clone()  # the candidates: causal pairs from the first video position
            mask[start:, start:][region] = ~chosen
        return mask


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


def _region_scores(seed: int, layer: int, start: int, length: int, device: torch.device) -> torch.Tensor:
    """``pair_hash`` of each causal pair with query and key in ``start..length-1``, in row-major
    order, as exact float64 in [0, 1) (what ``kth_smallest_uniform`` selects over).

    Hashed a few rows at a time: on the CPU chunks that fit the cache run the mixing several
    times faster; on an accelerator large chunks keep kernel launches few.
    """
    chunk = 1 << 16 if device.type == "cpu" else 1 << 24
    rows_per_chunk = max(1, chunk // (length - start))
    scores = []
    for first in range(start, length, rows_per_chunk):
        stop = min(first + rows_per_chunk, length)
        queries = torch.arange(first, stop, device=device)[:, None]
        keys = torch.arange(start, stop, device=device)[None, :]
        hashes = pair_hash(seed, layer, queries, keys)[keys <= queries]
        scores.append(hashes.double() * 2.0**-31)
    return torch.cat(scores)


def kth_smallest_uniform(scores: torch.Tensor, k: int) -> torch.Tensor:
    """The k-th smallest (1-based) of ``scores`` drawn uniformly from [0, 1), exactly.

    A selection over every candidate pair dominates ``random``'s mask at long prompts. For uniform
    scores the k-th smallest lies near k/m, so count the scores below a band of 6 standard
    deviations around it and select within the band; if the band misses (practically never),
    select over all.
    """
    m = scores.numel()
    share = k / m
    spread = 6 * (share * (1 - share) / m) ** 0.5 + 1e-7
    low, high = share - spread, share + spread
    below = int((scores < low).sum())
    band = scores[(scores >= low) & (scores < high)]
    if below < k <= below + band.numel():
        return band.kthvalue(k - below).values
    return scores.kthvalue(k).values
