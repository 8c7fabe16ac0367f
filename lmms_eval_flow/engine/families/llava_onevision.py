"""LLaVA-OneVision's token groups: a frame is one sampled frame's pooled tokens; the newline after the video is template.
Why the groups are drawn so: ``model_wrappers/llava_onevision_flow.py``.
"""

from __future__ import annotations

import math
from collections.abc import Collection

from lmms_eval_flow.engine.family_layout import PromptText, first_after, layout_after_video, row_ids, text_only_layout, video_span
from lmms_eval_flow.engine.layout import TokenLayout
from lmms_eval_flow.engine.session import LayoutFunction

MODEL_TYPE = "llava_onevision"  # config.model_type of its checkpoints: engine.families.FAMILIES finds the module by it


def tokens_per_frame(config) -> int:
    """The pooled tokens of one frame: the tower's patch grid halved per side, rounded up."""
    side = config.vision_config.image_size // config.vision_config.patch_size
    return math.ceil(side / 2) ** 2


def llava_onevision_layout(forward_kwargs: dict, row: int, *, video_token_id: int, frame_tokens: int,
                           end_of_turn_id: int, text: PromptText) -> TokenLayout:
    """Token groups of one row: ``<video>`` positions are the frames, ``frame_tokens`` each, then
    the newline embedding (template); the question is the user's text up to ``<|im_end|>``."""
    ids = row_ids(forward_kwargs, row)
    span = video_span(ids, video_token_id)
    if span is None:
        return text_only_layout(len(ids))
    start, stop = span
    frames, extra = divmod(stop - start - 1, frame_tokens)
    if extra or frames == 0:
        raise ValueError(f"{stop - start} video tokens are not frames of {frame_tokens} tokens plus one newline")
    return layout_after_video(ids, start, [frame_tokens] * frames, first_after(ids, end_of_turn_id, stop), text)


def layout_for(model, tokenizer, instructions: Collection[str] = ()) -> LayoutFunction:
    """The layout function of a loaded model: its token ids, and the texts of the tasks' instructions
    (``PromptText``), bound in."""
    layout_args = dict(
        video_token_id=model.config.video_token_index,
        frame_tokens=tokens_per_frame(model.config),
        end_of_turn_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
        text=PromptText.of(tokenizer, instructions),
    )
    return lambda forward_kwargs, row: llava_onevision_layout(forward_kwargs, row, **layout_args)
