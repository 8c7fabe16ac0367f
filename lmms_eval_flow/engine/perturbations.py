"""Position and order perturbations of the language model's input, combinable with any regime.

They ask where a model takes temporal order from: the content order of the frames, their
position ids, or the rotary encoding of one layer. Each is a forward pre-hook on the text
model or on one decoder layer; it reads the token layout of the batch being run from the
regime session (``ACTIVE_BATCH``), so it needs a session on the model (the flow wrappers
always have one, ``regime=full`` included) and acts only on the prompt (prefill).

- ``reverse_frames``: the video's frames (SPEC frames: Qwen2.5-VL's temporal patches) come in
  reverse order, each taking the position ids of the slot it lands in: content moves, ids stay.
- ``reverse_positions``: frames keep their order, their position ids are reversed by frame
  (frame i takes the ids of frame F-1-i): the positional signal tells the reverse order.
- ``shuffle_video_positions@L`` / ``shuffle_question_positions@L``: in layer(s) L only, the
  rotary embeddings of the video (question) positions are permuted among those positions, with
  a permutation drawn from ``perturb_seed``.
- ``no_rope@L``: in layer(s) L, no rotary position encoding (cos 1, sin 0): that layer's
  attention sees no positions, for the prompt and generated tokens alike.

Qwen2.5-VL's position ids are 3-D (rows t, h, w; ``generate`` puts a text row first, used only
for masks): a video token's whole (t, h, w) vector moves with its frame, the text row stays. A
1-D position model (``[B, N]`` ids) is handled the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lmms_eval_flow.engine.attention import ACTIVE_BATCH, BatchPlan
from lmms_eval_flow.engine.layers import format_layer_range, parse_layer_range
from lmms_eval_flow.engine.layout import TokenLayout
from lmms_eval_flow.engine.regimes import Regime

# Perturbations of the whole input (no layer), and those of one layer with the group they move.
INPUT_PERTURBATIONS = ("reverse_frames", "reverse_positions")
LAYER_PERTURBATIONS = {"shuffle_video_positions": "video", "shuffle_question_positions": "question", "no_rope": None}
PERTURBATIONS = INPUT_PERTURBATIONS + tuple(LAYER_PERTURBATIONS)


@dataclass(frozen=True)
class Perturbation:
    kind: str
    layers: range | None = None  # 0-based; only for LAYER_PERTURBATIONS

    def describe(self) -> str:
        if self.layers is None:
            return self.kind
        return f"{self.kind}@{self.layers.stop if len(self.layers) == 1 else format_layer_range(self.layers)}"


def parse_perturbations(text: str, depth: int, regime: Regime | None = None) -> tuple[Perturbation, ...]:
    """Parse ``perturb=`` (several joined by ``+``: ``reverse_frames+no_rope@12``).

    Layers are 1-based as everywhere (``@12``, ``@10-12``). Raises ``ValueError`` naming a bad
    value and the valid ones, before any model loads.
    """
    perturbations = []
    for part in str(text).split("+"):
        kind, at, layers = part.strip().partition("@")
        if kind not in PERTURBATIONS:
            raise ValueError(f"perturb={text!r}: {kind!r} is not a perturbation; valid: {', '.join(INPUT_PERTURBATIONS)}, "
                             f"{', '.join(k + '@LAYER' for k in LAYER_PERTURBATIONS)} (joined by '+')")
        if kind in INPUT_PERTURBATIONS:
            if at:
                raise ValueError(f"perturb={text!r}: {kind} acts on the input, not at a layer; drop '@{layers}'")
            perturbations.append(Perturbation(kind))
            continue
        if not at:
            raise ValueError(f"perturb={text!r}: {kind} acts at a layer; write {kind}@LAYER, e.g. {kind}@12")
        perturbations.append(Perturbation(kind, parse_layer_range(layers, depth, f"perturb {kind} layer")))
    names = [p.kind for p in perturbations]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"perturb={text!r} names {', '.join(repeated)} more than once; give each once "
                         f"(a layer range such as no_rope@10-12 covers several layers)")
    if regime is not None:
        for p in perturbations:
            if p.kind.startswith("shuffle") and regime.video.dropped(p.layers.stop - 1):
                raise ValueError(
                    f"perturb={p.describe()} reaches layer {regime.video.exit_layer + 1} or later, where "
                    f"regime={regime.name} has dropped the video from the sequence; shuffle before it, or use exit_by=mask"
                )
    return tuple(perturbations)


def frame_reversal(layout: TokenLayout) -> torch.Tensor:
    """[N] index of the position each position takes its value from: frames reversed, the rest in place."""
    frames = [s for s in layout.segments if s.group == "video"]
    if len({s.size for s in frames}) > 1:
        raise ValueError(f"reversing frames needs frames of equal size; this sample's are {[s.size for s in frames]}")
    order = torch.arange(layout.length)
    for segment, mirror in zip(frames, reversed(frames)):
        order[segment.start:segment.stop] = torch.arange(mirror.start, mirror.stop)
    return order


def group_shuffle(layout: TokenLayout, group: str, generator: torch.Generator) -> torch.Tensor:
    """[N] index: the positions of ``group`` permuted at random among themselves, the rest in place."""
    order = torch.arange(layout.length)
    positions = layout.positions(group)
    order[positions] = positions[torch.randperm(len(positions), generator=generator)]
    return order


def permute_position_ids(position_ids: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """Position ids ([B, N], [3, B, N] or [4, B, N] with the text row first) with the (t, h, w)
    vector of position ``order[b, n]`` moved to position n."""
    order = order.to(position_ids.device)
    if position_ids.ndim == 2:
        return position_ids.gather(1, order)
    rotary = position_ids[-3:].gather(2, order.expand(3, -1, -1))
    return torch.cat([position_ids[:-3], rotary])


class Perturbed:
    """Hooks that apply ``perturbations`` to a loaded model; ``remove()`` (or ``with``) takes them off."""

    def __init__(self, text_model: torch.nn.Module, decoder_layers, perturbations: tuple[Perturbation, ...], seed: int = 0):
        self.perturbations = perturbations
        self.seed = seed
        self._input_kinds = {p.kind for p in perturbations if p.kind in INPUT_PERTURBATIONS}
        self._handles = []
        if self._input_kinds:
            self._handles.append(text_model.register_forward_pre_hook(self._before_text_model, with_kwargs=True))
        for p in perturbations:
            if p.layers is not None:
                for layer in p.layers:
                    self._handles.append(decoder_layers[layer].register_forward_pre_hook(
                        lambda module, args, kwargs, p=p: self._before_layer(p, args, kwargs), with_kwargs=True))

    def _orders(self, batch: BatchPlan, of_layout) -> torch.Tensor:
        """[B, N] per-row index in padded coordinates (padding stays in place)."""
        rows = [torch.cat([torch.arange(pad), of_layout(plan.layout) + pad]) for plan, pad in zip(batch.plans, batch.pads)]
        return torch.stack(rows)

    def _before_text_model(self, module, args, kwargs):
        batch = _active_batch()
        if not batch.prefill:
            return None
        order = self._orders(batch, frame_reversal)
        if "reverse_frames" in self._input_kinds:
            embeds = kwargs["inputs_embeds"]
            kwargs["inputs_embeds"] = embeds.gather(1, order.to(embeds.device)[..., None].expand_as(embeds))
        if "reverse_positions" in self._input_kinds:
            if kwargs.get("position_ids") is None:
                raise RuntimeError("reverse_positions needs the position ids the model passes its text decoder")
            kwargs["position_ids"] = permute_position_ids(kwargs["position_ids"], order)
        return args, kwargs

    def _before_layer(self, perturbation: Perturbation, args: tuple, kwargs: dict):
        cos, sin = kwargs["position_embeddings"]
        group = LAYER_PERTURBATIONS[perturbation.kind]
        if group is None:  # no_rope: the identity rotation
            kwargs["position_embeddings"] = (torch.ones_like(cos), torch.zeros_like(sin))
            return args, kwargs
        batch = _active_batch()
        if not batch.prefill:
            return None
        order = self._orders(batch, lambda layout: group_shuffle(layout, group, torch.Generator().manual_seed(self.seed)))
        index = order.to(cos.device)[..., None].expand_as(cos)
        kwargs["position_embeddings"] = (cos.gather(1, index), sin.gather(1, index))
        return args, kwargs

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()

    def __enter__(self) -> "Perturbed":
        return self

    def __exit__(self, *exc) -> None:
        self.remove()


def _active_batch() -> BatchPlan:
    batch = ACTIVE_BATCH.get()
    if batch is None:
        raise RuntimeError("perturbations read the token layout from a regime session: put one on the model "
                           "(the flow wrappers always do; apply_regime(model, tokenizer, build_regime('full', depth)))")
    return batch
