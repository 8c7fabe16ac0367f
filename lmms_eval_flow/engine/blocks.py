"""Group-decomposed attention: a layer's prefill computed only over the key blocks its rules allow.

A dense masked SDPA call pays for every (query, key) pair, blocked or not, and a mask even
costs more per pair than SDPA's causal path. Rules are block-structured, so a layer's allowed
region is a union of rectangles and causal triangles over token groups: consecutive query
segments that read the same keys form a *run*; each run attends its earlier allowed keys
(one non-causal call over the gathered key ranges) and itself (one causal call), and the two
partial results are merged with their log-sum-exp. Blocked pairs cost nothing; a row with no
allowed key stays zero.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers.integrations.sdpa_attention import repeat_kv

from lmms_eval_flow.engine.plan import SamplePlan


@dataclass(frozen=True)
class Run:
    """Query positions ``start..stop-1`` read ``keys`` (earlier position ranges) and, if
    ``causal``, themselves causally."""

    start: int
    stop: int
    keys: tuple[tuple[int, int], ...]
    causal: bool


def runs_of(plan: SamplePlan, layer: int) -> tuple[Run, ...]:
    """The runs of one layer, from its segment-level rules."""
    allowed = plan.blocks(plan.regime.rules_at(layer))
    segments = plan.layout.segments
    runs, i = [], 0
    while i < len(segments):
        j, causal = i, bool(allowed[i, i])
        # Grow the run while the next segment reads the same earlier keys and, within the run,
        # either everything (a causal run) or nothing (segments that only read earlier keys).
        while j + 1 < len(segments) and torch.equal(allowed[j + 1, :i], allowed[i, :i]):
            within = allowed[j + 1, i:j + 2]
            if not (within.all() if causal else not within.any()):
                break
            j += 1
        keys, start = [], None
        for k in range(i + 1):
            inside = k < i and bool(allowed[i, k])
            if inside and start is None:
                start = segments[k].start
            if not inside and start is not None:
                keys.append((start, segments[k].start))
                start = None
        runs.append(Run(segments[i].start, segments[j].stop, tuple(keys), causal))
        i = j + 1
    return tuple(runs)


def attend_with_lse(query, key, value, causal: bool, scale: float | None):
    """SDPA that also returns each row's log-sum-exp ([B, H, L] float32), to merge partial results."""
    if query.device.type == "cpu":
        output, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(query, key, value, 0.0, causal, scale=scale)
    else:
        output, lse, *_ = torch.ops.aten._scaled_dot_product_efficient_attention(
            query, key, value, None, True, 0.0, causal, scale=scale)
        lse = lse[..., : query.shape[2]]  # the kernel may pad its lse
    return output, lse.float()


def attend_runs(query, key, value, runs: tuple[Run, ...], offset: int, scale: float | None) -> torch.Tensor:
    """[1, H, N, D] attention output of one sample whose positions start at ``offset``."""
    output = torch.zeros_like(query)
    for run in runs:
        start, stop = run.start + offset, run.stop + offset
        q = query[:, :, start:stop]
        parts = []
        if run.keys:
            index = torch.cat([torch.arange(a + offset, b + offset) for a, b in run.keys]).to(key.device)
            parts.append(attend_with_lse(q, key.index_select(2, index), value.index_select(2, index), False, scale))
        if run.causal:
            parts.append(attend_with_lse(q, key[:, :, start:stop], value[:, :, start:stop], True, scale))
        if not parts:
            continue  # reads nothing: zeros
        if len(parts) == 1:
            output[:, :, start:stop] = parts[0][0]
            continue
        (first, first_lse), (second, second_lse) = parts
        total = torch.logaddexp(first_lse, second_lse)
        merged = first.float() * (first_lse - total).exp()[..., None] + second.float() * (second_lse - total).exp()[..., None]
        output[:, :, start:stop] = merged.to(output.dtype)
    return output


def decomposed_attention(module, query, key, value, runs: list[tuple[Run, ...]], pads: list[int], scale) -> torch.Tensor:
    """A prefill layer of the batch, sample by sample (``runs`` per row); returns [B, N, H, D]
    like transformers' SDPA function."""
    groups = getattr(module, "num_key_value_groups", 1)
    key, value = repeat_kv(key, groups), repeat_kv(value, groups)
    rows = [attend_runs(query[b:b + 1], key[b:b + 1], value[b:b + 1], runs[b], pads[b], scale) for b in range(len(pads))]
    return torch.cat(rows).transpose(1, 2).contiguous()
