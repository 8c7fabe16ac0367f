"""``qwen3_vl_flow``: lmms-eval's Qwen3-VL chat model under an attention regime.

Loading, prompting and generation are lmms-eval's own (``lmms_eval.models.chat.qwen3_vl``, which
loads ``Qwen3VLForConditionalGeneration`` natively); this wrapper adds the regime.

Frames: one temporal patch (two sampled frames) is one frame group, as on Qwen2.5-VL. Qwen3-VL
writes each as ``<1.5 seconds><|vision_start|>`` + its visual tokens + ``<|vision_end|>``, all
inside the video's own ``<|vision_start|> ... <|vision_end|>``. A frame's group is that whole unit
(timestamp, its vision start/end and its visual tokens): were the timestamps template, they
would read every earlier frame in every layer and pass it on to the next frame, around any
cross-frame rule; and temporal exit removes them with their frames. The video's outer
``<|vision_start|>`` is prefix and its outer ``<|vision_end|>`` template, as on Qwen2.5-VL.

Qwen3-VL adds vision features to the video positions of the hidden states after each of its
first layers ("deepstack", as many layers as ``vision_config.deepstack_visual_indexes``), so the
video cannot leave the sequence (``temporal_exit`` with ``exit_by=drop``) before the layer after
them; such an ``exit_layer`` is refused. Masks are unaffected.

Sampling: ``min(max_num_frames, frames in the video or its window)`` frames, as the Qwen2.5-VL
flow wrapper samples (``sampling_inside_windows``); lmms-eval's Qwen3-VL wrapper asks qwen-vl-utils
for ``max_num_frames`` (default 32) whatever the video has, which fails every shorter clip.
"""

from __future__ import annotations

from lmms_eval.models.chat import qwen3_vl as lmms_eval_chat_qwen3_vl
from lmms_eval.models.chat.qwen3_vl import Qwen3_VL
from lmms_eval.models.simple.qwen3_vl import Qwen3_VL as Qwen3_VLSimple

from lmms_eval_flow.engine.families import apply_regime
from lmms_eval_flow.engine.session import RegimeSession
from lmms_eval_flow.harness.flow_model import FlowModel, lmms_eval_arguments
from lmms_eval_flow.harness.lmms_eval_compat import sampling_inside_windows


class Qwen3_VLFlow(FlowModel, Qwen3_VL):
    """Qwen3-VL with ``regime=full|effective|random|staged|temporal_exit`` and its parameters."""

    is_simple = False
    model_name = "qwen3_vl_flow"  # its --model name: model_wrappers registers it from this line
    checkpoint_type = "qwen3_vl"
    upstream_arguments = lmms_eval_arguments(Qwen3_VLSimple.__init__)

    def regime_session(self, backend: str) -> RegimeSession:
        return apply_regime(self.model, self.processor.tokenizer, self.regime, backend, instructions=self.instructions)

    def generating(self):
        return sampling_inside_windows(lmms_eval_chat_qwen3_vl)
