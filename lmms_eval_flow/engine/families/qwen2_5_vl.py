"""Qwen2.5-VL's token groups: a frame is one temporal patch (two sampled frames).
Why the groups are drawn so: ``model_wrappers/qwen2_5_vl_flow.py``.
"""

from __future__ import annotations

import torch

from lmms_eval_flow.engine.layout import TokenLayout, option_spans
from lmms_eval_flow.engine.session import LayoutFunction


def qwen2_5_vl_layout(kwargs: dict, row: int, *, video_token_id: int, end_of_turn_id: int,
                      special_ids: set[int], merge_size: int, token_texts=None) -> TokenLayout:
    """Token groups of one row of a Qwen2.5-VL forward batch.

    A frame group is one temporal patch (two sampled frames): the video tokens that share one
    temporal rotary position. ``generate`` passes those positions (``position_ids``, whose
    third-last row is time) and drops ``video_grid_thw``; a direct forward passes the grid, whose
    patches hold ``h * w / merge_size**2`` tokens each. The question is the text after the video
    up to the end of that user turn (``<|im_end|>``); ``<|vision_end|>`` and the assistant prompt
    are template. ``token_texts`` (ids -> their texts) finds the question's option spans.
    """
    input_ids, mask = kwargs["input_ids"], kwargs.get("attention_mask")
    present = slice(None) if mask is None else mask[row].bool()
    ids = input_ids[row][present]
    length = len(ids)
    video = (ids == video_token_id).nonzero().squeeze(1)
    if len(video) == 0:
        return TokenLayout.from_spans(length, length - 1, [], (length - 1, length - 1))
    start, stop = int(video[0]), int(video[-1]) + 1
    if stop - start != len(video):
        raise ValueError("attention regimes need at most one video per sample; this sample has several")
    if kwargs.get("position_ids") is not None:
        time = kwargs["position_ids"][-3, row][present]
        frame_sizes = torch.unique_consecutive(time[video], return_counts=True)[1].tolist()
    else:
        # video_grid_thw lists the batch's videos in order, one per row that has one.
        index = sum(bool((input_ids[r] == video_token_id).any()) for r in range(row))
        t, h, w = (int(x) for x in kwargs["video_grid_thw"][index])
        frame_sizes = [h * w // merge_size**2] * t
    if sum(frame_sizes) != len(video):
        raise ValueError(f"frame sizes {frame_sizes} do not add up to the {len(video)} video tokens of the sample")
    tokens = ids.tolist()
    end = next((i for i in range(stop, length - 1) if tokens[i] == end_of_turn_id), length - 1)
    question = next((i for i in range(stop, end) if tokens[i] not in special_ids), end)
    options = option_spans(token_texts(tokens[question:end])) if token_texts else []
    return TokenLayout.from_spans(length, start, frame_sizes, (question, end),
                                  [(question + first, question + last) for first, last in options])


def layout_for(model, tokenizer) -> LayoutFunction:
    """The layout function of a loaded model: its token ids bound in."""
    config = model.config
    layout_args = dict(
        video_token_id=config.video_token_id,
        end_of_turn_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
        special_ids=set(tokenizer.all_special_ids) | set(tokenizer.added_tokens_decoder),
        merge_size=config.vision_config.spatial_merge_size,
        token_texts=lambda ids: tokenizer.batch_decode([[i] for i in ids]),
    )
    return lambda forward_kwargs, row: qwen2_5_vl_layout(forward_kwargs, row, **layout_args)
