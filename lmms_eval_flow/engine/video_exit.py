"""Temporal exit as a real saving: from the exit layer on, video positions leave the sequence.

A forward pre-hook on each late decoder layer cuts the prefill to the positions that remain:
the first such layer cuts the hidden states (the residual stream stays short from there on),
every such layer cuts its rotary embeddings. Attention then writes only the remaining keys
and values into the KV cache, so late layers run on a shorter sequence and the cache stays
smaller while decoding. The attention function cuts the stock padding mask to match.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from lmms_eval_flow.engine.attention import BatchPlan


def _take(tensor: torch.Tensor, kept: torch.Tensor) -> torch.Tensor:
    """Positions ``kept`` [B, M] of a [B, N, ...] tensor (or of a [1, N, ...] one shared by the batch)."""
    tensor = tensor.expand(len(kept), *tensor.shape[1:])
    index = kept.to(tensor.device).view(*kept.shape, *([1] * (tensor.dim() - 2)))
    return tensor.gather(1, index.expand(-1, -1, *tensor.shape[2:]))


def drop_video_hooks(layers: list[torch.nn.Module], current_batch: Callable[[], BatchPlan | None]) -> list:
    """Install the hooks on ``layers`` (the exit layer first); returns their handles."""

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
        for i, layer in enumerate(layers)
    ]
