"""``llava_onevision_flow``: lmms-eval's ``llava_hf`` chat model on a LLaVA-OneVision checkpoint,
under an attention regime.

Loading, prompting and generation are lmms-eval's (``lmms_eval.models.chat.llava_hf``, which
loads ``LlavaOnevisionForConditionalGeneration`` natively); ``lmms_eval_compat`` makes its
processor calls ones transformers 5.23 accepts.

Frames: one sampled frame is one frame group, pooled to a fixed number of tokens (a quarter of
the vision tower's patches, rounded up per side). After the last frame LLaVA-OneVision appends
one learnt "newline" embedding at a ``<video>`` position; it belongs to no frame and counts as
template, like Qwen2.5-VL's ``<|vision_end|>``.
"""

from __future__ import annotations

import math

from lmms_eval.models.chat.llava_hf import LlavaHf
from lmms_eval.models.simple.llava_hf import LlavaHf as LlavaHfSimple
from transformers import LlavaOnevisionForConditionalGeneration

from lmms_eval_flow.engine.family_layout import PromptText, first_after, layout_after_video, row_ids, text_only_layout, video_span
from lmms_eval_flow.harness.flow_model import FlowModel, lmms_eval_arguments
from lmms_eval_flow.engine.layout import TokenLayout
from lmms_eval_flow.harness.lmms_eval_compat import LmmsEvalProcessor
from lmms_eval_flow.engine.regimes import Regime
from lmms_eval_flow.engine.session import RegimeSession

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


def apply_regime(model: LlavaOnevisionForConditionalGeneration, tokenizer, regime: Regime,
                 backend: str = "auto") -> RegimeSession:
    """Put ``regime`` on a loaded LLaVA-OneVision model."""
    layout_args = dict(
        video_token_id=model.config.video_token_index,
        frame_tokens=tokens_per_frame(model.config),
        end_of_turn_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
        text=PromptText.of(tokenizer),
    )
    return RegimeSession(model, model.model.language_model.layers, regime,
                         lambda forward_kwargs, row: llava_onevision_layout(forward_kwargs, row, **layout_args), backend)


class LlavaOnevisionFlow(FlowModel, LlavaHf):
    """LLaVA-OneVision with ``regime=full|effective|random|staged|temporal_exit`` and its parameters."""

    is_simple = False
    model_name, checkpoint_type = "llava_onevision_flow", "llava_onevision"
    upstream_arguments = lmms_eval_arguments(LlavaHfSimple.__init__)

    def load_model(self, pretrained: str, **kwargs) -> None:
        super().load_model(pretrained, **kwargs)
        self._image_processor = LmmsEvalProcessor(self._image_processor)

    def regime_session(self, backend: str) -> RegimeSession:
        return apply_regime(self.model, self.tokenizer, self.regime, backend)
