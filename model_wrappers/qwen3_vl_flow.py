"""``qwen3_vl_flow``: lmms-eval's Qwen3-VL chat model under an attention regime.

Loading, prompting and generation are lmms-eval's own (``lmms_eval.models.chat.qwen3_vl``, which
loads ``Qwen3VLForConditionalGeneration`` natively); this wrapper adds the regime.

Frames: one temporal patch (two sampled frames) is one frame group, as on Qwen2.5-VL. Qwen3-VL
writes each as ``<1.5 seconds><|vision_start|>`` + its visual tokens + ``<|vision_end|>``, all
inside the video's own ``<|vision_start|> ... <|vision_end|>``. A frame's group is that whole unit
(timestamp, its vision start/end and its visual tokens): were the timestamps template, they
would read every earlier frame in every layer and pass it on to the next frame, around any
cross-frame rule; and temporal exit removes them with their frames. The video's outer
``<|vision_start|>`` is prefix and its outer ``<|vision_end|>`` template, as on Qwen2.5-VL.

Qwen3-VL adds vision features to the video positions of the hidden states after each of its
first layers ("deepstack", as many layers as ``vision_config.deepstack_visual_indexes``), so the
video cannot leave the sequence (``temporal_exit`` with ``exit_by=drop``) before the layer after
them; such an ``exit_layer`` is refused. Masks are unaffected.

Sampling: ``min(max_num_frames, frames in the file)`` frames, as lmms-eval's Qwen2.5-VL wrapper
samples (``Qwen3_VLFlow._build_video_kwargs``); lmms-eval's Qwen3-VL wrapper asks qwen-vl-utils for
``max_num_frames`` (default 32) whatever the video has, which fails every shorter clip.
"""

from __future__ import annotations

import re

from lmms_eval.models.chat.qwen3_vl import Qwen3_VL
from lmms_eval.models.simple.qwen3_vl import Qwen3_VL as Qwen3_VLSimple
from transformers import Qwen3VLForConditionalGeneration

from lmms_eval_flow.engine.family_layout import PromptText, first_after, layout_after_video, row_ids, runs_of, text_only_layout
from lmms_eval_flow.harness.flow_model import FlowModel, lmms_eval_arguments
from lmms_eval_flow.engine.layout import TokenLayout
from lmms_eval_flow.engine.regimes import Regime
from lmms_eval_flow.harness.sample_checks import frame_count, frames_to_sample
from lmms_eval_flow.engine.session import RegimeSession

TIMESTAMP = re.compile(r"<\d+(\.\d+)? seconds>")


def check_deepstack(config, regime: Regime) -> None:
    """Refuse a temporal exit that would drop video positions deepstack still adds features to."""
    injected = len(config.vision_config.deepstack_visual_indexes)
    if regime.video_exit is not None and regime.video_exit < injected:
        raise ValueError(
            f"exit_layer={regime.video_exit + 1} is too early for Qwen3-VL with exit_by=drop: its layers 1-{injected} "
            f"add vision features to the video positions (deepstack), so video can leave the sequence from layer "
            f"{injected + 1} on; give exit_layer>={injected + 1}, or exit_by=mask"
        )


def qwen3_vl_layout(forward_kwargs: dict, row: int, *, video_token_id: int, vision_start_id: int,
                    vision_end_id: int, end_of_turn_id: int, text: PromptText) -> TokenLayout:
    """Token groups of one row: frame k is ``<t seconds><|vision_start|>``, its run of visual
    tokens and ``<|vision_end|>``; the question is the user's text up to ``<|im_end|>``."""
    ids = row_ids(forward_kwargs, row)
    runs = runs_of(ids, video_token_id)
    if not runs:
        return text_only_layout(len(ids))
    opens = [i for i in range(runs[0][0]) if ids[i] == vision_start_id]
    if len(opens) < 2 or opens[-1] != runs[0][0] - 1:
        raise ValueError("the first video frame is not '<|vision_start|><t seconds><|vision_start|>' as Qwen3-VL writes it")
    start = opens[-2] + 1  # after the video's outer <|vision_start|>
    frame_starts = [start] + [stop + 1 for _, stop in runs[:-1]]
    for frame_start, (run_start, run_stop) in zip(frame_starts, runs):
        header = ids[frame_start:run_start]
        if (header[-1:] != [vision_start_id] or not TIMESTAMP.fullmatch(text.decode(header[:-1]))
                or run_stop >= len(ids) or ids[run_stop] != vision_end_id):
            raise ValueError("attention regimes need at most one video per sample, written as "
                             f"'<t seconds><|vision_start|>...<|vision_end|>' per frame; found {text.decode(header)[:60]!r}")
    video_stop = runs[-1][1] + 1  # the last frame's <|vision_end|>
    frame_sizes = [b - a for a, b in zip(frame_starts, frame_starts[1:] + [video_stop])]
    return layout_after_video(ids, start, frame_sizes, first_after(ids, end_of_turn_id, video_stop), text)


def apply_regime(model: Qwen3VLForConditionalGeneration, tokenizer, regime: Regime, backend: str = "auto") -> RegimeSession:
    """Put ``regime`` on a loaded Qwen3-VL model."""
    config = model.config
    check_deepstack(config, regime)
    layout_args = dict(video_token_id=config.video_token_id, vision_start_id=config.vision_start_token_id,
                       vision_end_id=config.vision_end_token_id,
                       end_of_turn_id=tokenizer.convert_tokens_to_ids("<|im_end|>"), text=PromptText.of(tokenizer))
    return RegimeSession(model, model.model.language_model.layers, regime,
                         lambda forward_kwargs, row: qwen3_vl_layout(forward_kwargs, row, **layout_args), backend)


class Qwen3_VLFlow(FlowModel, Qwen3_VL):
    """Qwen3-VL with ``regime=full|effective|random|staged|temporal_exit`` and its parameters."""

    is_simple = False
    model_name, checkpoint_type = "qwen3_vl_flow", "qwen3_vl"
    upstream_arguments = lmms_eval_arguments(Qwen3_VLSimple.__init__)

    def check_regime(self, config, regime: Regime) -> None:
        check_deepstack(config, regime)

    def regime_session(self, backend: str) -> RegimeSession:
        return apply_regime(self.model, self.processor.tokenizer, self.regime, backend)

    def _build_video_kwargs(self) -> dict:
        """lmms-eval's video arguments of the batch being prepared, with ``nframes`` capped at the
        frames its videos have (``frames_to_sample``). The batch's videos share these arguments, so
        a batch whose videos would sample different counts is refused: the flow model then runs its
        prompts one at a time, each at its own count, as a batch of one would."""
        kwargs = super()._build_video_kwargs()
        if "nframes" not in kwargs:
            return kwargs  # sampled by fps: qwen-vl-utils caps that at the video's frames itself
        counts = {frames_to_sample(kwargs["nframes"], frame_count(video)) for video in self.videos_being_built()}
        if len(counts) > 1:
            raise ValueError(f"the videos of this batch would sample {sorted(counts)} frames; one count per batch")
        return {**kwargs, "nframes": counts.pop()} if counts else kwargs
