"""Qwen2.5-VL's token groups: a frame is one temporal patch (two sampled frames).
Why the groups are drawn so: ``model_wrappers/qwen2_5_vl_flow.py``.
"""

from __future__ import annotations

from collections.abc import Collection

import torch

from lmms_eval_flow.engine.family_layout import PromptText, first_after, layout_after_video, row_ids, text_only_layout, video_span
from lmms_eval_flow.engine.layout import TokenLayout
from lmms_eval_flow.engine.session import LayoutFunction

MODEL_TYPE = "qwen2_5_vl"  # config.model_type of its checkpoints: engine.families.FAMILIES finds the module by it


def qwen2_5_vl_layout(forward_kwargs: dict, row: int, *, video_token_id: int, end_of_turn_id: int, merge_size: int,
                      text: PromptText) -> TokenLayout:
    """Token groups of one row of a Qwen2.5-VL forward batch.

    A frame group is one temporal patch (two sampled frames): the video tokens that share one
    temporal rotary position. ``generate`` passes those positions (``position_ids``, whose
    third-last row is time) and drops ``video_grid_thw``; a direct forward passes the grid, whose
    patches hold ``h * w / merge_size**2`` tokens each. The question is the user's text after the
    video up to the end of that turn (``<|im_end|>``); ``<|vision_end|>`` and the assistant prompt
    are template.
    """
    ids = row_ids(forward_kwargs, row)
    span = video_span(ids, video_token_id)
    if span is None:
        return text_only_layout(len(ids))
    start, stop = span
    if forward_kwargs.get("position_ids") is not None:
        mask = forward_kwargs.get("attention_mask")
        time = forward_kwargs["position_ids"][-3, row]
        time = time if mask is None else time[mask[row].bool()]
        frame_sizes = torch.unique_consecutive(time[start:stop], return_counts=True)[1].tolist()
    else:
        # video_grid_thw lists the batch's videos in order, one per row that has one.
        input_ids = forward_kwargs["input_ids"]
        index = sum(bool((input_ids[r] == video_token_id).any()) for r in range(row))
        t, h, w = (int(x) for x in forward_kwargs["video_grid_thw"][index])
        frame_sizes = [h * w // merge_size**2] * t
    if sum(frame_sizes) != stop - start:
        raise ValueError(f"frame sizes {frame_sizes} do not add up to the {stop - start} video tokens of the sample")
    return layout_after_video(ids, start, frame_sizes, first_after(ids, end_of_turn_id, stop), text)


def layout_for(model, tokenizer, instructions: Collection[str] = ()) -> LayoutFunction:
    """The layout function of a loaded model: its token ids, and the texts of the tasks' instructions
    (``PromptText``), bound in."""
    config = model.config
    layout_args = dict(video_token_id=config.video_token_id, end_of_turn_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
                       merge_size=config.vision_config.spatial_merge_size, text=PromptText.of(tokenizer, instructions))
    return lambda forward_kwargs, row: qwen2_5_vl_layout(forward_kwargs, row, **layout_args)
