"""The ``flex`` backend: a masked prefill layer through compiled FlexAttention.

There is one mask source: the boolean mask the dense backend hands to SDPA for this layer
(``BatchPlan.attention_mask``: the regime's rows, the stock padding mask, temporal exit's masked
video rows, ``random``'s hashed pairs). This module only re-expresses it as a FlexAttention
``BlockMask``: per 128 x 128 block of (query, key) positions, whether it is empty (skipped), full
(no mask evaluated) or partial (``mask_mod`` looks the pair up in that same mask). No regime is
defined here, so flex equals dense by construction, up to float summation order.

Which layers: only a batch's masked prefill layers (``q_len == kv_len == prompt_length`` and some
row masked in the layer), as the blocks backend does. Layers the regime leaves alone, temporal
exit's dropped-video layers and every decoding step (one query row against a short mask) keep the
stock / dense path. Rows with no allowed key: the dense mask lets them read their own position
(SDPA would give NaN), and the caller zeroes them, as under dense; so they are zeros, never NaN.
GQA runs through ``enable_gqa``; ``return_lse`` is never asked for (compiled flex on CPU refuses it).
On CPU flex is inference only: with gradients enabled torch raises "FlexAttention does not support
backward on CPU" (run under ``torch.no_grad()``, as lmms-eval and the analysis tools do).

Compilation (torch 2.14, measured on this project's 2-core CPU, float32): ``torch.compile
(flex_attention, dynamic=True)``, with queries, keys and values at their true length and only the
BlockMask's block tables rounded up to 128. The first call compiles in 10-25 s (inductor's
start-up included; more under load); dynamic shapes then compile once more when a sequence first
spans more than one 128-block (size-1 specialisation), 8-16 s, and not again for new lengths or
captured masks: 2 compilations for 100 mixed lengths in 9 length buckets (``benchmarks/
attention_cost.py`` part 3b). ``dynamic=False`` with lengths padded to the next multiple of 128
was measured too: one compilation per bucket, 7-9 s each, and no faster per call; so dynamic
shapes it is. A new dtype (and possibly head layout) is a new compilation either way, and so is
the first call after a new model class is imported (transformers registers its output classes as
pytree nodes, and dynamo guards on their number): once per family in a process that loads several,
as the tests do. Inductor keeps compiled kernels on disk, so a later process compiles faster.

Speed per device (``attention_backend=auto`` picks by device, see ``BatchPlan.decomposes``):
on CPU, compiled flex at 4k positions, 4 heads of 128, GQA 4:1, 75% of pairs kept, took 0.35 s
against 0.26 s for causal SDPA (all pairs) and 0.55 s for SDPA with the dense mask, so per kept
edge it is ~1.8x causal SDPA; through the regimes of ``benchmarks/attention_cost.py`` part 3
(4k positions, a loaded machine) 1.5-4.7x per kept edge where blocks gave 0.9-2.3x and dense
1.5-6.5x: partial blocks (frame edges off the 128 grid) pay a mask read per pair. Slower than
the blocks backend, so ``auto`` keeps blocks on CPU.
On CUDA flex is the natural fast path (skipped blocks cost nothing) but it is untested: no GPU
was available to this project, so ``auto`` does not pick it there yet and keeps the dense mask.
"""

from __future__ import annotations

from functools import cache

import torch
from torch.nn.attention.flex_attention import BlockMask, flex_attention

# FlexAttention's block edge (its default): the granularity at which blocks are skipped.
BLOCK = 128


@cache
def compiled_flex():
    """The compiled FlexAttention, one per process: every layer, model and length shares it."""
    return torch.compile(flex_attention, dynamic=True)


def runs_flex(batch, layer: int, q_len: int, kv_len: int) -> bool:
    """Whether this layer of ``batch`` (a ``BatchPlan``) runs through FlexAttention: under the
    ``flex`` backend, a prefill layer that some row's regime masks."""
    return batch.backend == "flex" and batch.masks_prefill(layer, q_len, kv_len)


def _ordered(blocks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A [B, H, Qb, Kb] bool block table as FlexAttention's (count per query block, indices of
    the set key blocks first)."""
    counts = blocks.sum(-1, dtype=torch.int32)
    indices = blocks.to(torch.int8).argsort(dim=-1, descending=True, stable=True).to(torch.int32)
    return counts, indices


def block_mask(mask: torch.Tensor) -> BlockMask:
    """The BlockMask of a [B, 1, Q, K] bool mask (True: may attend); partial blocks read ``mask``,
    padded with False to whole blocks (a mask_mod that clamps its indices instead trips an
    inductor CPU code-generation bug in torch 2.14: "cur_qSplitSize7 was not declared")."""
    batch, _, q_len, kv_len = mask.shape
    q_blocks, kv_blocks = -(-q_len // BLOCK), -(-kv_len // BLOCK)
    padded = torch.nn.functional.pad(mask, (0, kv_blocks * BLOCK - kv_len, 0, q_blocks * BLOCK - q_len))
    tiles = padded.view(batch, 1, q_blocks, BLOCK, kv_blocks, BLOCK)
    some = tiles.any(5).any(3)
    full = tiles.all(5).all(3)

    def mask_mod(b, h, q_idx, kv_idx):
        return padded[b, 0, q_idx, kv_idx]

    partial_counts, partial_indices = _ordered(some & ~full)
    full_counts, full_indices = _ordered(full)
    return BlockMask.from_kv_blocks(partial_counts, partial_indices, full_counts, full_indices, BLOCK, mask_mod,
                                    seq_lengths=(q_len, kv_len))


def flex_attention_forward(module, query, key, value, mask: torch.Tensor, batch, scale: float | None) -> torch.Tensor:
    """One masked prefill layer: [B, H, N, D] queries, [B, H_kv, N, D] keys and values, the dense
    backend's [B, 1, N, N] mask; returns [B, N, H, D] like transformers' SDPA function.

    Row by row: with a batch dimension above 1, the recompilation after a multi-block length hit
    another inductor CPU code-generation bug in torch 2.14 ("cur_kvSplitSize5 was not declared"),
    and a row at a time costs nothing that matters (the kernel loops over rows and heads anyway).
    The BlockMasks of the last mask seen are kept on ``batch`` (layers sharing a rule set share a mask).
    """
    cached = batch.flex_mask
    if cached is None or cached[0] is not mask:
        rows = [block_mask(mask[b:b + 1]) for b in range(mask.shape[0])]
        cached = batch.flex_mask = (mask, rows)
    flex, gqa = compiled_flex(), query.shape[1] != key.shape[1]
    outputs = [flex(query[b:b + 1], key[b:b + 1], value[b:b + 1], block_mask=row, scale=scale, enable_gqa=gqa)
               for b, row in enumerate(cached[1])]
    return torch.cat(outputs).transpose(1, 2).contiguous()
