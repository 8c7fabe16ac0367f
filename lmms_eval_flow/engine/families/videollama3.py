"""VideoLLaMA3's token groups: a frame is its ``Time t:`` header and its (pruned) visual tokens.
Why the groups are drawn so: ``model_wrappers/videollama3_flow.py``.
"""

from __future__ import annotations

import re
from collections.abc import Collection

from lmms_eval_flow.engine.family_layout import PromptText, first_after, layout_after_video, row_ids, runs_of, text_only_layout
from lmms_eval_flow.engine.layout import TokenLayout
from lmms_eval_flow.engine.session import LayoutFunction

MODEL_TYPE = "video_llama_3"  # config.model_type of its checkpoints: engine.families.FAMILIES finds the module by it

# The text before a frame's visual tokens; every frame but the first starts with the separator.
FRAME_HEADER = re.compile(r",?Time \d+(\.\d+)?s:")
_LONGEST_HEADER = 24  # tokens; a header is about ten


def videollama3_layout(forward_kwargs: dict, row: int, *, video_token_id: int, end_of_turn_id: int,
                       text: PromptText) -> TokenLayout:
    """Token groups of one row: frame k is its ``Time t s:`` header and its run of visual tokens;
    the question is the user's text after the video up to ``<|im_end|>``."""
    ids = row_ids(forward_kwargs, row)
    runs = runs_of(ids, video_token_id)
    if not runs:
        return text_only_layout(len(ids))
    first = runs[0][0]
    start = next((j for j in range(first - 1, max(first - _LONGEST_HEADER, 0) - 1, -1)
                  if FRAME_HEADER.fullmatch(text.decode(ids[j:first]))), None)
    if start is None:
        raise ValueError(f"no 'Time t s:' header before the first video token: {text.decode(ids[:first])[-40:]!r}")
    for (_, previous_stop), (next_start, _) in zip(runs, runs[1:]):
        between = text.decode(ids[previous_stop:next_start])
        if not FRAME_HEADER.fullmatch(between):
            raise ValueError("attention regimes need at most one video per sample, its frames joined by "
                             f"',Time t s:' headers only; found {between[:60]!r} between two runs of video tokens")
    boundaries = [start] + [stop for _, stop in runs]
    frame_sizes = [b - a for a, b in zip(boundaries, boundaries[1:])]
    return layout_after_video(ids, start, frame_sizes, first_after(ids, end_of_turn_id, runs[-1][1]), text)


def layout_for(model, tokenizer, instructions: Collection[str] = ()) -> LayoutFunction:
    """The layout function of a loaded model: its token ids, and the texts of the tasks' instructions
    (``PromptText``), bound in."""
    layout_args = dict(video_token_id=model.config.video_token_id,
                       end_of_turn_id=tokenizer.convert_tokens_to_ids("<|im_end|>"), text=PromptText.of(tokenizer, instructions))
    return lambda forward_kwargs, row: videollama3_layout(forward_kwargs, row, **layout_args)
