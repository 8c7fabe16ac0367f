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

from lmms_eval_flow.engine.families import apply_regime
from lmms_eval_flow.engine.session import RegimeSession
from lmms_eval_flow.harness.lmms_eval_compat import HuggingfaceChatFlow


class LlavaNextVideoFlow(HuggingfaceChatFlow):
    """LLaVA-NeXT-Video with ``regime=full|effective|random|staged|temporal_exit`` and its parameters."""

    model_name = "llava_next_video_flow"  # its --model name: model_wrappers registers it from this line
    checkpoint_type = "llava_next_video"

    def regime_session(self, backend: str) -> RegimeSession:
        return apply_regime(self.model, self.tokenizer, self.regime, backend, instructions=self.instructions)
