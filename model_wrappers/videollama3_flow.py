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

from lmms_eval_flow.engine.families import apply_regime
from lmms_eval_flow.engine.session import RegimeSession
from lmms_eval_flow.harness.lmms_eval_compat import HuggingfaceChatFlow


class VideoLLaMA3Flow(HuggingfaceChatFlow):
    """VideoLLaMA3 with ``regime=full|effective|random|staged|temporal_exit`` and its parameters."""

    model_name = "videollama3_flow"  # its --model name: model_wrappers registers it from this line
    checkpoint_type = "video_llama_3"

    def regime_session(self, backend: str) -> RegimeSession:
        return apply_regime(self.model, self.tokenizer, self.regime, backend, instructions=self.instructions)
