"""``videollama3_flow``: a transformers-native VideoLLaMA3 checkpoint through lmms-eval's generic
``huggingface`` chat model, under an attention regime.

lmms-eval 0.7.3's own ``videollama3`` wrapper loads DAMO's remote code (``trust_remote_code``,
CUDA only); transformers 5.23 has VideoLLaMA3 natively (``VideoLlama3ForConditionalGeneration``,
checkpoints converted to it such as ``lkhl/VideoLLaMA3-2B-Image-HF``). This wrapper subclasses the
generic chat wrapper, which prompts with the checkpoint's chat template; ``lmms_eval_compat``
makes that path load the model with its LM head and call the processor as transformers 5.23
accepts.

Frames: one sampled frame is one frame group. VideoLLaMA3 writes each frame as
``Time 0.5s:`` followed by its visual tokens, frames joined by ``,``, and drops the visual tokens
of a frame that barely differ from the previous frame's (at least one is kept), so frames have
different sizes. A frame's group is its header text (``,Time 0.5s:``) and its visual tokens: were
the headers template, they would read every earlier frame in every layer and pass it on to the
next frame, around any cross-frame rule; and temporal exit removes them with their frames.
"""

from __future__ import annotations

import re

from transformers import VideoLlama3ForConditionalGeneration

from lmms_eval_flow.engine.family_layout import PromptText, first_after, layout_after_video, row_ids, runs_of, text_only_layout
from lmms_eval_flow.engine.layout import TokenLayout
from lmms_eval_flow.harness.lmms_eval_compat import HuggingfaceChatFlow
from lmms_eval_flow.engine.regimes import Regime
from lmms_eval_flow.engine.session import RegimeSession

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


def apply_regime(model: VideoLlama3ForConditionalGeneration, tokenizer, regime: Regime,
                 backend: str = "auto") -> RegimeSession:
    """Put ``regime`` on a loaded VideoLLaMA3 model."""
    layout_args = dict(video_token_id=model.config.video_token_id,
                       end_of_turn_id=tokenizer.convert_tokens_to_ids("<|im_end|>"), text=PromptText.of(tokenizer))
    return RegimeSession(model, model.model.language_model.layers, regime,
                         lambda forward_kwargs, row: videollama3_layout(forward_kwargs, row, **layout_args), backend)


class VideoLLaMA3Flow(HuggingfaceChatFlow):
    """VideoLLaMA3 with ``regime=full|effective|random|staged|temporal_exit`` and its parameters."""

    model_name, checkpoint_type = "videollama3_flow", "video_llama_3"

    def regime_session(self, backend: str) -> RegimeSession:
        return apply_regime(self.model, self.tokenizer, self.regime, backend)
