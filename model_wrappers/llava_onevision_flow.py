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

from lmms_eval.models.chat.llava_hf import LlavaHf
from lmms_eval.models.simple.llava_hf import LlavaHf as LlavaHfSimple

from lmms_eval_flow.engine.families import apply_regime
from lmms_eval_flow.engine.session import RegimeSession
from lmms_eval_flow.harness.flow_model import FlowModel, lmms_eval_arguments
from lmms_eval_flow.harness.lmms_eval_compat import LmmsEvalProcessor


class LlavaOnevisionFlow(FlowModel, LlavaHf):
    """LLaVA-OneVision with ``regime=full|effective|random|staged|temporal_exit`` and its parameters."""

    is_simple = False
    model_name = "llava_onevision_flow"  # its --model name: model_wrappers registers it from this line
    checkpoint_type = "llava_onevision"
    upstream_arguments = lmms_eval_arguments(LlavaHfSimple.__init__)
    processor_attribute = "_image_processor"
    frames_attribute = "max_frames_num"

    def load_model(self, pretrained: str, **kwargs) -> None:
        super().load_model(pretrained, **kwargs)
        self._image_processor = LmmsEvalProcessor(self._image_processor, max_frames=self.max_frames_num)

    def regime_session(self, backend: str) -> RegimeSession:
        return apply_regime(self.model, self.tokenizer, self.regime, backend, instructions=self.instructions)
