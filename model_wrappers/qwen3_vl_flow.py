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

Sampling: ``min(max_num_frames, frames in the file)`` frames, as lmms-eval's Qwen2.5-VL wrapper
samples (``Qwen3_VLFlow._build_video_kwargs``); lmms-eval's Qwen3-VL wrapper asks qwen-vl-utils for
``max_num_frames`` (default 32) whatever the video has, which fails every shorter clip.
"""

from __future__ import annotations

from lmms_eval.models.chat.qwen3_vl import Qwen3_VL
from lmms_eval.models.simple.qwen3_vl import Qwen3_VL as Qwen3_VLSimple

from lmms_eval_flow.engine.families import apply_regime
from lmms_eval_flow.engine.session import RegimeSession
from lmms_eval_flow.harness.flow_model import FlowModel, lmms_eval_arguments
from lmms_eval_flow.harness.sample_checks import frame_count, frames_to_sample


class Qwen3_VLFlow(FlowModel, Qwen3_VL):
    """Qwen3-VL with ``regime=full|effective|random|staged|temporal_exit`` and its parameters."""

    is_simple = False
    model_name = "qwen3_vl_flow"  # its --model name: model_wrappers registers it from this line
    checkpoint_type = "qwen3_vl"
    upstream_arguments = lmms_eval_arguments(Qwen3_VLSimple.__init__)

    def regime_session(self, backend: str) -> RegimeSession:
        return apply_regime(self.model, self.processor.tokenizer, self.regime, backend, instructions=self.instructions)

    def _build_video_kwargs(self) -> dict:
        """lmms-eval's video arguments of the batch being prepared, with ``nframes`` capped at the
        frames its videos have (``frames_to_sample``). The batch's videos share these arguments, so
        a batch whose videos would sample different counts is refused: the flow model then runs its
        prompts one at a time, each at its own count, as a batch of one would."""
        kwargs = super()._build_video_kwargs()
        if "nframes" not in kwargs:
            return kwargs  # sampled by fps: qwen-vl-utils caps that at the video's frames itself
        counts = {frames_to_sample(kwargs["nframes"], frame_count(video)) for video in self.videos_being_built()}
        if len(counts) > 1:
            raise ValueError(f"the videos of this batch would sample {sorted(counts)} frames; one count per batch")
        return {**kwargs, "nframes": counts.pop()} if counts else kwargs
