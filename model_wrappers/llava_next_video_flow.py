"""``llava_next_video_flow``: a LLaVA-NeXT-Video checkpoint through lmms-eval's generic
``huggingface`` chat model, under an attention regime.

lmms-eval 0.7.3 ships no wrapper that loads ``LlavaNextVideoForConditionalGeneration`` (its
``llava_hf`` knows llava, llava_next and llava_onevision only), so this one subclasses the
generic chat wrapper, which prompts with the checkpoint's chat template; ``lmms_eval_compat``
makes that path load the model with its LM head and call the processor as transformers 5.23
accepts.

Frames: one sampled frame is one frame group, average-pooled to a fixed number of tokens (the
vision tower's patch grid divided by ``spatial_pool_stride`` per side). The question is the
user's text up to the `` ASSISTANT:`` that closes the prompt (Vicuna's template has no
end-of-turn token).
"""

from __future__ import annotations

from transformers import LlavaNextVideoForConditionalGeneration

from lmms_eval_flow.engine.family_layout import PromptText, layout_after_video, row_ids, text_only_layout, video_span
from lmms_eval_flow.engine.layout import TokenLayout
from lmms_eval_flow.harness.lmms_eval_compat import HuggingfaceChatFlow
from lmms_eval_flow.engine.regimes import Regime
from lmms_eval_flow.engine.session import RegimeSession

ASSISTANT_PROMPT = "ASSISTANT:"


def tokens_per_frame(config) -> int:
    """The pooled tokens of one frame: the tower's patch grid divided by the pooling stride per side."""
    side = config.vision_config.image_size // config.vision_config.patch_size
    return (side // config.spatial_pool_stride) ** 2


def assistant_prompt_start(ids: list[int], after: int, text: PromptText) -> int:
    """Where the closing `` ASSISTANT:`` starts: the shortest tail of the prompt that reads so."""
    for start in range(len(ids) - 1, after - 1, -1):
        if text.decode(ids[start:]).strip() == ASSISTANT_PROMPT:
            return start
    raise ValueError(f"the prompt does not end with {ASSISTANT_PROMPT!r} (LLaVA-NeXT-Video's generation prompt), "
                     "so its question cannot be found")


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


def apply_regime(model: LlavaNextVideoForConditionalGeneration, tokenizer, regime: Regime,
                 backend: str = "auto") -> RegimeSession:
    """Put ``regime`` on a loaded LLaVA-NeXT-Video model."""
    layout_args = dict(video_token_id=model.config.video_token_index, frame_tokens=tokens_per_frame(model.config),
                       text=PromptText.of(tokenizer))
    return RegimeSession(model, model.model.language_model.layers, regime,
                         lambda forward_kwargs, row: llava_next_video_layout(forward_kwargs, row, **layout_args), backend)


class LlavaNextVideoFlow(HuggingfaceChatFlow):
    """LLaVA-NeXT-Video with ``regime=full|effective|random|staged|temporal_exit`` and its parameters."""

    model_name, checkpoint_type = "llava_next_video_flow", "llava_next_video"

    def regime_session(self, backend: str) -> RegimeSession:
        return apply_regime(self.model, self.tokenizer, self.regime, backend)
