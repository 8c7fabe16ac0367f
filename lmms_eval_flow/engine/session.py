"""Applying a regime to a loaded model: plans built at each prefill, edge records kept.

A ``RegimeSession`` puts our attention function on the text decoder, and hooks the model's
forward so that each prefill computes the batch's token layouts (with the family's layout
function) and makes that batch's plan the active one while the forward runs. Each sample's
plan is kept in ``records`` so callers can report its edges.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from lmms_eval_flow.engine.attention import ACTIVE_BATCH, FLOW_ATTENTION, BatchPlan
from lmms_eval_flow.engine.layout import TokenLayout
from lmms_eval_flow.engine.plan import SamplePlan
from lmms_eval_flow.engine.regimes import Regime

# How masked prefills run: "blocks" group-decomposed (blocks.py), "dense" one masked SDPA call,
# "flex" compiled FlexAttention over the dense mask's blocks (flex.py), "auto" blocks on CPU and
# dense elsewhere (flex is slower on CPU and untested on CUDA).
BACKENDS = ("auto", "blocks", "dense", "flex")

# Given the model's forward kwargs and one row index, the layout of that row's unpadded input.
LayoutFunction = Callable[[dict, int], TokenLayout]


class RegimeSession:
    def __init__(self, model: torch.nn.Module, decoder_layers, regime: Regime, layout_of: LayoutFunction,
                 backend: str = "auto"):
        if len(decoder_layers) != regime.depth:
            raise ValueError(f"regime built for {regime.depth} layers, model has {len(decoder_layers)}")
        if backend not in BACKENDS:
            raise ValueError(f"attention_backend={backend!r} is not valid; valid: {', '.join(BACKENDS)}")
        self.regime = regime
        self.layout_of = layout_of
        self.backend = backend
        self.batch: BatchPlan | None = None
        # Training under per-row masks (toy.planting) sets one regime per row of the next batches;
        # they must share the session's strategies (a mask draw by rules, video kept).
        self.row_regimes: list[Regime] | None = None
        self.records: list[SamplePlan] = []
        self._tokens = []
        self._model = model
        self._decoder_layers = decoder_layers
        self._previous_attention = model.config.text_config._attn_implementation
        model.set_attn_implementation({"text_config": FLOW_ATTENTION})
        self._handles = [
            model.register_forward_pre_hook(self._before_forward, with_kwargs=True),
            model.register_forward_hook(self._after_forward, always_call=True),
            # temporal exit by drop: hooks that cut video from the late layers' input (video_exit.py)
            *regime.video.hooks(list(decoder_layers), lambda: self.batch),
        ]

    def _before_forward(self, module, args, kwargs):
        cache = kwargs.get("past_key_values")
        if cache is None or cache.get_seq_length() == 0:
            self.batch = self._plan_batch(kwargs)
            self.records.extend(self.batch.plans)
        else:
            self.batch.prefill = False
        self._tokens.append(ACTIVE_BATCH.set(self.batch))

    def _after_forward(self, module, args, output):
        if self._tokens:  # none when planning the batch raised
            ACTIVE_BATCH.reset(self._tokens.pop())

    def _plan_batch(self, kwargs: dict) -> BatchPlan:
        input_ids = kwargs["input_ids"]
        mask = kwargs.get("attention_mask")
        present = torch.ones_like(input_ids, dtype=torch.bool) if mask is None else mask.bool()
        pads = []
        for row in present:
            pad = int((~row).sum())
            if not row[pad:].all():
                raise ValueError("attention regimes need left padding (or none); this batch is padded on the right")
            pads.append(pad)
        regimes = self.row_regimes or [self.regime] * len(input_ids)
        if len(regimes) != len(input_ids):
            raise ValueError(f"row_regimes holds {len(regimes)} regimes for a batch of {len(input_ids)} rows")
        for regime in regimes:
            if (regime.draw, regime.video, regime.depth) != (self.regime.draw, self.regime.video, self.regime.depth):
                raise ValueError(f"row regime {regime.describe()} does not share the session's mask draw, "
                                 f"video strategy and depth ({self.regime.describe()})")
        plans = [SamplePlan(regime, self.layout_of(kwargs, b)) for b, regime in enumerate(regimes)]
        return BatchPlan(plans, pads, input_ids.shape[1], self.backend)

    def take_records(self) -> list[SamplePlan]:
        """The plans of every sample run since the last call, in run order."""
        records, self.records = self.records, []
        return records

    def remove(self) -> None:
        """Give the model back as it was: hooks off, the text decoder's own attention restored."""
        for handle in self._handles:
            handle.remove()
        self._model.set_attn_implementation({"text_config": self._previous_attention})

    def switch(self, regime: Regime) -> "RegimeSession":
        """Remove this session and put ``regime`` on the same model, with the same layout function
        (the analysis tools run one loaded model under many regimes)."""
        self.remove()
        return RegimeSession(self._model, self._decoder_layers, regime, self.layout_of, self.backend)

    def __enter__(self) -> "RegimeSession":
        return self

    def __exit__(self, *exc) -> None:
        self.remove()
