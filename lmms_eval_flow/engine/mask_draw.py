"""How a regime's blocked pairs are drawn in a layer: the rules' own pairs, or as many random ones.

A regime holds one of these strategies (``Regime.draw``), and ``SamplePlan`` / ``BatchPlan`` ask
it rather than the regime's name, so that what differs between the two lives in one place: the
pairs a layer allows and their count, which layers share a mask (and so whether masks are worth
keeping), and whether the allowed region is block-structured enough to run group-decomposed.
A strategy holds settings only; a sample's cached blocks and masks stay on its ``SamplePlan``
(the ``plan`` argument of every method).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lmms_eval_flow.engine.layout import causal_edges
from lmms_eval_flow.engine.pair_hash import pair_hash


@dataclass(frozen=True)
class RuleDraw:
    """Exactly the pairs the layer's rules block: block-structured, so layers with the same rule set
    share one mask and the layer can run group-decomposed (blocks.py)."""

    decomposes = True
    caches_masks = True
    applies_rules = True  # a rule added to the regime (a knockout) is applied as it is

    def key(self, plan, layer: int) -> object:
        return plan.regime.rules_at(layer)

    def masks(self, plan, layer: int) -> bool:
        return bool(plan.regime.rules_at(layer))

    def edges(self, plan, layer: int) -> int:
        return plan.block_edges(plan.regime.rules_at(layer))

    def allowed(self, plan, layer: int, device: torch.device | None) -> torch.Tensor:
        return plan.dense(plan.regime.rules_at(layer)).to(device)


@dataclass(frozen=True)
class RandomDraw:
    """``random``: per layer, as many uniformly drawn pairs blocked as the rules would block, or
    1 - ``keep`` of all edges (rounded), or int(``block_ratio`` x all edges) as Map the Flow's
    scripts do. The pairs have no group structure, so no layer decomposes, and every layer has its
    own mask, so none is worth keeping for the next."""

    seed: int
    keep: float | None = None
    block_ratio: float | None = None

    decomposes = False
    caches_masks = False
    applies_rules = False  # the rules only set how many pairs are blocked, not which

    def key(self, plan, layer: int) -> object:
        return ("random", layer)

    def masks(self, plan, layer: int) -> bool:
        return self.blocked(plan, layer) > 0

    def edges(self, plan, layer: int) -> int:
        return plan.full_layer_edges - self.blocked(plan, layer)

    def blocked(self, plan, layer: int) -> int:
        """How many pairs are blocked in a layer: as many as the rules do, 1 - keep of all
        (rounded), or int(block_ratio x all) as Map the Flow's scripts count them."""
        full = plan.full_layer_edges
        if self.keep is not None:
            blocked, asked = full - round(self.keep * full), f"keep={self.keep}"
        elif self.block_ratio is not None:
            blocked, asked = int(full * self.block_ratio), f"block_ratio={self.block_ratio}"
        else:
            return full - plan.block_edges(plan.regime.rules_at(layer))
        size = plan.layout.length - plan.layout.video_start
        region = causal_edges(size)
        if blocked > region:
            reachable = (f"the lowest keep reachable here is {1 - region / full:.4f}" if self.keep is not None
                         else f"the highest block_ratio reachable here is {region / full:.4f}")
            raise ValueError(
                f"{asked} needs {blocked} blocked pairs per layer, but this sample ({plan.layout.describe()}) "
                f"has only {region} pairs at or after its first video position; {reachable}"
            )
        return blocked

    def allowed(self, plan, layer: int, device: torch.device | None) -> torch.Tensor:
        """The layer's mask, built on ``device``: the ``blocked`` candidate pairs with the smallest
        ``pair_hash`` (ties: the first in row-major order) are blocked, so the count is exact and
        the mask depends on nothing but the layout, the seed and the layer."""
        length, start = plan.layout.length, plan.layout.video_start
        mask = torch.ones(length, length, dtype=torch.bool, device=device).tril()
        blocked = self.blocked(plan, layer)
        if blocked:
            scores = _region_scores(self.seed, layer, start, length, mask.device)
            threshold = kth_smallest_uniform(scores, blocked)
            chosen = scores < threshold
            ties = (scores == threshold).nonzero().squeeze(1)
            chosen[ties[: blocked - int(chosen.sum())]] = True
            region = mask[start:, start:].clone()  # the candidates: causal pairs from the first video position
            mask[start:, start:][region] = ~chosen
        return mask


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
