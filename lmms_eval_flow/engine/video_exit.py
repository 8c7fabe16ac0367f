"""Whether video stays in the sequence: every regime keeps it, except temporal exit by drop.

A regime holds one of these strategies (``Regime.video``), and the plans, the attention function
and the session ask it instead of testing the regime's settings. ``KeepVideo`` changes nothing:
regimes are masks on the full sequence (temporal exit with ``exit_by=mask`` among them).

``DropVideo`` realises temporal exit as a real saving: from the exit layer on, video positions
leave the sequence. A forward pre-hook on each late decoder layer cuts the prefill to the positions
that remain: the first such layer cuts the hidden states (the residual stream stays short from
there on), every such layer cuts its rotary embeddings. Attention then writes only the remaining
keys and values into the KV cache, so late layers run on a shorter sequence and the cache stays
smaller while decoding. The attention function cuts the stock padding mask to match
(``stock_mask``); the rules still count the video's pairs as blocked there, so edges are those
of the masked form.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class KeepVideo:
    """Video stays in the sequence in every layer; masks realise the regime."""

    applies_rules = True

    def dropped(self, layer: int) -> bool:
        return False

    def kept_positions(self, plans, pads: list[int], prompt_length: int) -> None:
        return None

    def hooks(self, layers: list[torch.nn.Module], current_batch: Callable) -> list:
        return []


@dataclass(frozen=True)
class DropVideo:
    """From ``exit_layer`` (0-based) on, video positions leave the sequence and the KV cache."""

    exit_layer: int

    applies_rules = False  # late layers run on the shortened sequence with no mask: an added rule there is lost

    def dropped(self, layer: int) -> bool:
        return layer >= self.exit_layer

    def kept_positions(self, plans, pads: list[int], prompt_length: int) -> torch.Tensor:
        """[B, M] padded positions that stay after video leaves the sequence, for a batch of
        ``plans`` (its ``SamplePlan``s) left-padded by ``pads``."""
        video = [plan.layout.size("video") for plan in plans]
        if len(set(video)) > 1:
            raise ValueError(
                f"temporal_exit drops video positions from the batch tensor, so every sample of a batch needs "
                f"the same number of video tokens; this batch has {video}. Use batch_size=1."
            )
        rows = []
        for plan, pad in zip(plans, pads):
            keep = torch.ones(prompt_length, dtype=torch.bool)
            keep[plan.layout.positions("video") + pad] = False
            rows.append(keep.nonzero().squeeze(1))
        return torch.stack(rows)

    def stock_mask(self, batch, stock: torch.Tensor | None) -> torch.Tensor | None:
        """The stock mask of ``batch`` (a ``BatchPlan``) cut to the positions left after temporal
        exit (None stays None)."""
        if stock is None:
            return None
        kept = batch.kept.to(stock.device)
        generated = torch.arange(batch.prompt_length, stock.shape[-1], device=stock.device).expand(len(kept), -1)
        columns = torch.cat([kept, generated], dim=1)
        stock = stock.expand(len(kept), -1, -1, -1)
        if batch.prefill:
            stock = stock.gather(2, kept[:, None, :, None].expand(-1, stock.shape[1], -1, stock.shape[-1]))
        return stock.gather(3, columns[:, None, None, :].expand(-1, stock.shape[1], stock.shape[2], -1))

    def hooks(self, layers: list[torch.nn.Module], current_batch: Callable) -> list:
        """Install the hooks on the decoder ``layers`` from the exit layer on; returns their handles.
        ``current_batch()`` gives the ``BatchPlan`` being run (None outside a forward)."""

        def shorten(module, args, kwargs, first: bool):
            batch = current_batch()
            if batch is None or not batch.prefill:
                return None  # decoding: the new tokens are no video
            if first:
                args = (_take(args[0], batch.kept), *args[1:])
            cos, sin = kwargs["position_embeddings"]
            kwargs["position_embeddings"] = (_take(cos, batch.kept), _take(sin, batch.kept))
            if kwargs.get("position_ids") is not None:
                kwargs["position_ids"] = _take(kwargs["position_ids"], batch.kept)
            return args, kwargs

        return [
            layer.register_forward_pre_hook(
                lambda module, args, kwargs, first=(i == 0): shorten(module, args, kwargs, first), with_kwargs=True
            )
            for i, layer in enumerate(layers[self.exit_layer:])
        ]


def _take(tensor: torch.Tensor, kept: torch.Tensor) -> torch.Tensor:
    """Positions ``kept`` [B, M] of a [B, N, ...] tensor (or of a [1, N, ...] one shared by the batch)."""
    tensor = tensor.expand(len(kept), *tensor.shape[1:])
    index = kept.to(tensor.device).view(*kept.shape, *([1] * (tensor.dim() - 2)))
    return tensor.gather(1, index.expand(-1, -1, *tensor.shape[2:]))
