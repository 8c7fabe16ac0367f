"""The attention function registered with transformers: stock SDPA plus the regime's mask.

It is installed on the text decoder only (``set_attn_implementation({"text_config": ...})``)
and looks up, for ``module.layer_idx``, the mask of the batch being run. Layers a regime does
not touch get the stock call unchanged (``full`` is bit-identical and keeps SDPA's fast causal
path). Rows whose every key is blocked give zeros, never NaN.
"""

from __future__ import annotations

from contextvars import ContextVar

import torch
from transformers import AttentionInterface, AttentionMaskInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import sdpa_mask

from lmms_eval_flow.engine.blocks import Run, decomposed_attention, runs_of
from lmms_eval_flow.engine.flex import flex_attention_forward, runs_flex
from lmms_eval_flow.engine.plan import SamplePlan

FLOW_ATTENTION = "lmms_eval_flow"

# The batch whose forward is running; set by the model's forward hooks (see session.py).
ACTIVE_BATCH: ContextVar["BatchPlan | None"] = ContextVar("lmms_eval_flow_batch", default=None)


class BatchPlan:
    """One forward batch under a regime: a plan per row, its left padding, and the masks built so far.

    Positions are in padded coordinates: row ``b``'s prompt occupies ``pads[b]..prompt_length-1``,
    generated tokens follow. Generated tokens read the prompt as the last position does and read
    each other causally (as Map the Flow's generation does).
    """

    def __init__(self, plans: list[SamplePlan], pads: list[int], prompt_length: int, backend: str = "auto"):
        self.plans = plans
        self.pads = pads
        self.prompt_length = prompt_length
        self.backend = backend
        self.prefill = True
        # Where masks are built: the attention sets it to its queries' device, so that no N x N mask
        # is copied from the host (a stock mask, when there is one, is already there).
        self.device = torch.device("cpu")
        self._masks: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}
        self._runs: dict[tuple, tuple[Run, ...]] = {}
        self._shape: tuple[int, int] | None = None
        self.flex_mask = None  # the flex backend's (mask, BlockMask) of the last mask it ran (flex.py)
        self.regime = plans[0].regime  # every row shares its strategies (draw, video), if not its rules
        # temporal exit by drop: [B, M] padded positions that stay once video leaves (video_exit.py)
        self.kept = self.regime.video.kept_positions(plans, pads, prompt_length)

    def decomposes(self, layer: int, q_len: int, kv_len: int, device: torch.device) -> bool:
        """Whether this layer runs group-decomposed (blocks.py) rather than as one masked call.

        Only block-structured prefills decompose; ``auto`` does so on CPU, where it is tested,
        and keeps the dense mask on other devices.
        """
        wanted = self.backend == "blocks" or (self.backend == "auto" and device.type == "cpu")
        return wanted and self.regime.draw.decomposes and self.masks_prefill(layer, q_len, kv_len)

    def masks_prefill(self, layer: int, q_len: int, kv_len: int) -> bool:
        """Whether this call is a prefill layer that some row's regime masks: the calls the blocks
        and flex backends take over."""
        return q_len == kv_len == self.prompt_length and any(plan.masked(layer) for plan in self.plans)

    def runs(self, layer: int) -> list[tuple[Run, ...]]:
        """Each row's runs for this layer, computed once per distinct rule set."""
        rows = []
        for b, plan in enumerate(self.plans):
            key = (b, plan.regime.rules_at(layer))
            if key not in self._runs:
                self._runs[key] = runs_of(plan, layer)
            rows.append(self._runs[key])
        return rows

    def attention_mask(self, layer: int, q_len: int, kv_len: int, stock: torch.Tensor | None):
        """The mask for this layer (stock mask and regime combined), and the rows left with no key,
        built on the stock mask's device, else on ``self.device``."""
        if self.regime.video.dropped(layer):
            return self.regime.video.stock_mask(self, stock), None
        if not any(plan.masked(layer) for plan in self.plans):
            return stock, None
        if self._shape != (q_len, kv_len):
            self._masks.clear()
            self._shape = (q_len, kv_len)
        key = tuple(plan.mask_key(layer) for plan in self.plans)
        if key not in self._masks:
            if not self.regime.draw.caches_masks:
                self._masks.clear()  # each layer its own mask (random), never reused: hold one
            self._masks[key] = self._build(layer, q_len, kv_len, stock)
        return self._masks[key]

    def _build(self, layer: int, q_len: int, kv_len: int, stock: torch.Tensor | None):
        device = stock.device if stock is not None else self.device
        rows = [self._rows(plan, pad, layer, q_len, kv_len, device) for plan, pad in zip(self.plans, self.pads)]
        mask = torch.stack(rows)[:, None]
        if stock is not None:
            mask = mask & stock
        empty = ~mask.any(-1)  # [B, 1, Q]
        if empty.any():
            # SDPA turns a row with no key into NaN: let it read its own position, then zero it.
            keys, queries = torch.arange(kv_len, device=device), torch.arange(kv_len - q_len, kv_len, device=device)
            mask = mask | (empty[..., None] & (keys[None, :] == queries[:, None]))
        return mask, empty

    def _rows(self, plan: SamplePlan, pad: int, layer: int, q_len: int, kv_len: int,
              device: torch.device | None) -> torch.Tensor:
        prompt = self.prompt_length
        q_start = kv_len - q_len
        rows = torch.zeros(q_len, kv_len, dtype=torch.bool, device=device)
        prompt_rows = max(0, min(prompt, kv_len) - q_start)
        if prompt_rows:
            first = max(q_start, pad)  # rows of padding positions read nothing
            allowed = plan.allowed(layer, device)
            rows[first - q_start:prompt_rows, pad:prompt] = allowed[first - pad:q_start + prompt_rows - pad]
        if prompt_rows < q_len:
            generated = kv_len - prompt
            rows[prompt_rows:, pad:prompt] = plan.last_row(layer, device)
            causal = torch.ones(generated, generated, dtype=torch.bool, device=device).tril()
            rows[prompt_rows:, prompt:] = causal[-(q_len - prompt_rows):]
        return rows


# Query rows per masked SDPA call in a long prefill.
PREFILL_CHUNK = 1024


def _row_chunked_sdpa(module, query, key, value, attention_mask, **kwargs):
    """A masked prefill in chunks of query rows, each against the keys up to its last row: a
    dense mask makes SDPA compute every pair it is given, so the causal upper half is left out."""
    outputs = []
    for start in range(0, query.shape[2], PREFILL_CHUNK):
        stop = min(start + PREFILL_CHUNK, query.shape[2])
        part, _ = sdpa_attention_forward(module, query[:, :, start:stop], key[:, :, :stop], value[:, :, :stop],
                                         attention_mask[..., start:stop, :stop], **kwargs)
        outputs.append(part)
    return torch.cat(outputs, dim=1), None


def flow_attention(module, query, key, value, attention_mask, **kwargs):
    batch = ACTIVE_BATCH.get()
    empty = None
    if batch is not None and batch.decomposes(module.layer_idx, query.shape[2], key.shape[2], query.device):
        runs = batch.runs(module.layer_idx)
        return decomposed_attention(module, query, key, value, runs, batch.pads, kwargs.get("scaling")), None
    if batch is not None:
        batch.device = query.device
        attention_mask, empty = batch.attention_mask(module.layer_idx, query.shape[2], key.shape[2], attention_mask)
        if attention_mask is not None:
            attention_mask = attention_mask.to(query.device)
    if attention_mask is not None and batch is not None and runs_flex(batch, module.layer_idx, query.shape[2],
                                                                      key.shape[2]):
        output = flex_attention_forward(module, query, key, value, attention_mask, batch, kwargs.get("scaling"))
        weights = None
    elif attention_mask is not None and query.shape[2] == key.shape[2] > 2 * PREFILL_CHUNK:
        output, weights = _row_chunked_sdpa(module, query, key, value, attention_mask, **kwargs)
    else:
        output, weights = sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    if empty is not None:
        output = output.masked_fill(empty[:, 0, :, None, None].to(output.device), 0.0)
    return output, weights


AttentionInterface.register(FLOW_ATTENTION, flow_attention)
# Same mask preparation as SDPA, or padding masks would be dropped for our key.
AttentionMaskInterface.register(FLOW_ATTENTION, sdpa_mask)
