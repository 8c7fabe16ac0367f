"""Qwen3-VL's token groups: a frame is one temporal patch with its timestamp and vision start/end.
Why the groups are drawn so: ``model_wrappers/qwen3_vl_flow.py``.
"""

from __future__ import annotations

import re
from collections.abc import Collection

from lmms_eval_flow.engine.family_layout import PromptText, first_after, layout_after_video, row_ids, runs_of, text_only_layout
from lmms_eval_flow.engine.layout import TokenLayout
from lmms_eval_flow.engine.regimes import Regime
from lmms_eval_flow.engine.session import LayoutFunction

MODEL_TYPE = "qwen3_vl"  # config.model_type of its checkpoints: engine.families.FAMILIES finds the module by it

TIMESTAMP = re.compile(r"<\d+(\.\d+)? seconds>")


def check_regime(config, regime: Regime) -> None:
    """Refuse a temporal exit that would drop video positions deepstack still adds features to."""
    injected = len(config.vision_config.deepstack_visual_indexes)
    if regime.video.dropped(injected - 1):
        raise ValueError(
            f"exit_layer={regime.video.exit_layer + 1} is too early for Qwen3-VL with exit_by=drop: its layers 1-{injected} "
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


def layout_for(model, tokenizer, instructions: Collection[str] = ()) -> LayoutFunction:
    """The layout function of a loaded model: its token ids, and the texts of the tasks' instructions
    (``PromptText``), bound in."""
    config = model.config
    layout_args = dict(video_token_id=config.video_token_id, vision_start_id=config.vision_start_token_id,
                       vision_end_id=config.vision_end_token_id,
                       end_of_turn_id=tokenizer.convert_tokens_to_ids("<|im_end|>"), text=PromptText.of(tokenizer, instructions))
    return lambda forward_kwargs, row: qwen3_vl_layout(forward_kwargs, row, **layout_args)
