"""LLaVA-NeXT-Video's token groups: a frame is one sampled frame's pooled tokens.
Why the groups are drawn so: ``model_wrappers/llava_next_video_flow.py``.
"""

from __future__ import annotations

from collections.abc import Collection

from lmms_eval_flow.engine.family_layout import PromptText, layout_after_video, row_ids, text_only_layout, video_span
from lmms_eval_flow.engine.layout import TokenLayout
from lmms_eval_flow.engine.session import LayoutFunction

MODEL_TYPE = "llava_next_video"  # config.model_type of its checkpoints: engine.families.FAMILIES finds the module by it

ASSISTANT_PROMPT = "ASSISTANT:"


def tokens_per_frame(config) -> int:
    """The pooled tokens of one frame: the tower's patch grid divided by the pooling stride per side."""
    side = config.vision_config.image_size // config.vision_config.patch_size
    return (side // config.spatial_pool_stride) ** 2


def assistant_prompt_start(ids: list[int], after: int, text: PromptText) -> int:
    """Where the closing `` ASSISTANT:`` starts: the shortest tail of the prompt that reads so, or so
    followed by a task's answer primer (a template text the tasks name, ``harness.primer``)."""
    primers = {t.strip() for t in text.instructions}
    for start in range(len(ids) - 1, after - 1, -1):
        tail = text.decode(ids[start:]).strip()
        if tail.startswith(ASSISTANT_PROMPT) and tail[len(ASSISTANT_PROMPT):].strip() in {"", *primers}:
            return start
    raise ValueError(f"the prompt does not end with {ASSISTANT_PROMPT!r} (LLaVA-NeXT-Video's generation prompt) or "
                     "it and a named answer primer, so its question cannot be found")


def llava_next_video_layout(forward_kwargs: dict, row: int, *, video_token_id: int, frame_tokens: int,
                            text: PromptText) -> TokenLayout:
    """Token groups of one row: ``<video>`` positions are the frames, ``frame_tokens`` each."""
    ids = row_ids(forward_kwargs, row)
    span = video_span(ids, video_token_id)
    if span is None:
        return text_only_layout(len(ids))
    start, stop = span
    frames, extra = divmod(stop - start, frame_tokens)
    if extra:
        raise ValueError(f"{stop - start} video tokens are not frames of {frame_tokens} tokens")
    return layout_after_video(ids, start, [frame_tokens] * frames, assistant_prompt_start(ids, stop, text), text)


def layout_for(model, tokenizer, instructions: Collection[str] = ()) -> LayoutFunction:
    """The layout function of a loaded model: its token ids, and the texts of the tasks' instructions
    (``PromptText``), bound in."""
    layout_args = dict(video_token_id=model.config.video_token_index, frame_tokens=tokens_per_frame(model.config),
                       text=PromptText.of(tokenizer, instructions))
    return lambda forward_kwargs, row: llava_next_video_layout(forward_kwargs, row, **layout_args)
