"""A regime applied to one sample: which (query, key) pairs each layer allows, and how many.

Rules are evaluated once per distinct rule set on pairs of *segments* (block level), never per
position: that gives exact edge counts from group sizes and is the form every attention
backend consumes. Dense position masks are expanded from the blocks only when asked for,
lazily, once per distinct rule set. Which pairs a layer allows is the regime's mask draw
(``mask_draw.py``: the rules' own pairs, or ``random``'s hashed ones); which layers run with
video dropped from the sequence is its video strategy (``video_exit.py``). The plan asks both
and holds the sample's caches.
"""

from __future__ import annotations

from functools import cached_property

import torch

from lmms_eval_flow.engine.layout import TokenLayout, causal_edges
from lmms_eval_flow.engine.regimes import Regime, Rule


class SamplePlan:
    def __init__(self, regime: Regime, layout: TokenLayout):
        self.regime = regime
        self.layout = layout
        self._blocks: dict[tuple[Rule, ...], torch.Tensor] = {}
        self._block_edges: dict[tuple[Rule, ...], int] = {}
        self._dense: dict[tuple[Rule, ...], torch.Tensor] = {}
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
        """Whether this layer needs a mask at all (else the stock causal path runs); a layer whose
        video has left the sequence needs none: the rules' blocked pairs are gone with it."""
        return not self.regime.video.dropped(layer) and self.regime.draw.masks(self, layer)

    def mask_key(self, layer: int) -> object:
        """Layers with equal keys share one mask: a rule set, or each layer alone under ``random``."""
        return self.regime.draw.key(self, layer)

    def layer_edges(self, layer: int) -> int:
        return self.regime.draw.edges(self, layer)

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
        mask = self.regime.draw.allowed(self, layer, device)
        self._last_rows[layer] = mask[-1].clone()  # a view would hold the whole N x N mask
        return mask

    def dense(self, rules: tuple[Rule, ...]) -> torch.Tensor:
        """[N, N] bool: the position mask of ``rules`` (causal included), on the CPU; expanded
        from the blocks once per rule set, as layers share a few."""
        if rules not in self._dense:
            ids = self.layout.segment_ids
            causal = torch.ones(self.layout.length, self.layout.length, dtype=torch.bool).tril()
            self._dense[rules] = self.blocks(rules)[ids[:, None], ids[None, :]] & causal
        return self._dense[rules]

    def last_row(self, layer: int, device: torch.device | None = None) -> torch.Tensor:
        """What the last position reads in this layer; generated tokens read the prompt the same way."""
        if layer not in self._last_rows:
            self.allowed(layer, device)
        return self._last_rows[layer].to(device)
