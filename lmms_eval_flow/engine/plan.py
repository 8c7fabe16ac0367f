"""A regime applied to one sample: which (query, key) pairs each layer allows, and how many.

Rules are evaluated once per distinct rule set on pairs of *segments* (block level), never per
position: that gives exact edge counts from group sizes and is the form every attention
backend consumes. Dense position masks are expanded from the blocks only when asked for,
lazily, once per distinct rule set. ``random`` is the one regime that is not block-structured:
its masks are drawn per layer from a seeded generator.
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
    def allowed(self, layer: int) -> torch.Tensor:
        """[N, N] bool mask of the pairs this layer allows (causal included)."""
        if self.regime.random_seed is not None:
            mask = self._random_mask(layer)  # distinct per layer: not kept
        else:
            rules = self.regime.rules_at(layer)
            if rules not in self._dense:
                ids = self.layout.segment_ids
                causal = torch.ones(self.layout.length, self.layout.length, dtype=torch.bool).tril()
                self._dense[rules] = self.blocks(rules)[ids[:, None], ids[None, :]] & causal
            mask = self._dense[rules]
        self._last_rows[layer] = mask[-1]
        return mask

    def last_row(self, layer: int) -> torch.Tensor:
        """What the last position reads in this layer; generated tokens read the prompt the same way."""
        if layer not in self._last_rows:
            self.allowed(layer)
        return self._last_rows[layer]

    # -- random ------------------------------------------------------------------------------
    @cached_property
    def _random_region(self) -> torch.Tensor:
        """[M, M] bool: the causal pairs among the M positions from the first video position on,
        the pairs ``random`` draws from (row-major order is the order of their scores)."""
        size = self.layout.length - self.layout.video_start
        return torch.ones(size, size, dtype=torch.bool).tril()

    def random_blocked(self, layer: int) -> int:
        """How many pairs ``random`` blocks in a layer: as many as the rules do, or 1 - keep of all."""
        regime, full = self.regime, self.full_layer_edges
        if regime.random_keep is None:
            return full - self.block_edges(regime.rules_at(layer))
        blocked = full - round(regime.random_keep * full)
        size = self.layout.length - self.layout.video_start
        region = size * (size + 1) // 2
        if blocked > region:
            raise ValueError(
                f"keep={regime.random_keep} needs {blocked} blocked pairs per layer, but this sample "
                f"({self.layout.describe()}) has only {region} pairs at or after its first video position; "
                f"the lowest keep reachable here is {1 - region / full:.4f}"
            )
        return blocked

    def _random_mask(self, layer: int) -> torch.Tensor:
        mask = torch.ones(self.layout.length, self.layout.length, dtype=torch.bool).tril()
        blocked = self.random_blocked(layer)
        if blocked:
            region = self._random_region
            generator = torch.Generator().manual_seed(self.regime.random_seed * 1_000_003 + layer)
            pairs = len(region) * (len(region) + 1) // 2
            scores = torch.rand(pairs, generator=generator)  # one per pair, in row-major order
            # the `blocked` lowest scores; of the scores equal to the threshold, the first ones
            threshold = kth_smallest_uniform(scores, blocked)
            chosen = scores < threshold
            ties = (scores == threshold).nonzero().squeeze(1)
            chosen[ties[: blocked - int(chosen.sum())]] = True
            drawn = torch.zeros_like(region)
            drawn[region] = chosen
            start = self.layout.video_start
            mask[start:, start:] &= ~drawn
        return mask


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
