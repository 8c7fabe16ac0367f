"""Every family, as the tests drive them: tiny checkpoint, model class, and
processor inputs built the way each flow wrapper's lmms-eval path builds them (the regime goes on
through ``lmms_eval_flow.engine.families.apply_regime``). The families are the declared tiny
builders (``lmms_eval_flow.tiny.FAMILIES``); each needs its expectations in ``EXPECTED``, which
tests/test_family_declarations.py checks."""

from __future__ import annotations

from dataclasses import dataclass

from qwen_vl_utils import process_vision_info
from transformers import (
    AutoProcessor,
    LlavaNextVideoForConditionalGeneration,
    LlavaOnevisionForConditionalGeneration,
    Qwen2_5_VLForConditionalGeneration,
    Qwen3VLForConditionalGeneration,
    VideoLlama3ForConditionalGeneration,
)

from lmms_eval_flow.harness.lmms_eval_compat import LmmsEvalProcessor
from lmms_eval_flow.tiny import FAMILIES as TINY_FAMILIES
from lmms_eval_flow.toy.clips import clip_path

# The clip and question the families' tests ask about, and Qwen2.5-VL's inputs of them.
CLIP = {"frames": 8, "size": 56, "fps": 4, "objects": [
    {"shape": "square", "color": "red", "start": [10, 28], "velocity": [4, 0], "size": 12},
    {"shape": "circle", "color": "blue", "start": [40, 10], "velocity": [0, 4], "size": 10, "appear": 3},
]}
QUESTION = "In which direction does the red square move? A. left B. right C. up D. down"


# Qwen2.5-VL frames of 56x56 pixels (its patches are 14 px, merged 2x2): 2x2 tokens per temporal patch.
QWEN2_5_VL_PIXELS = 56 * 56


def make_inputs(processor, questions: list[str], video: str | None = None):
    """Processor output for one clip (``CLIP`` unless given) per question, built as lmms-eval's
    Qwen2.5-VL wrapper builds it; its processor needs ``QWEN2_5_VL_PIXELS`` as min and max pixels."""
    video = {"type": "video", "video": video or str(clip_path(CLIP)), "max_pixels": QWEN2_5_VL_PIXELS,
             "min_pixels": QWEN2_5_VL_PIXELS, "nframes": 8}
    messages = [[{"role": "user", "content": [video, {"type": "text", "text": q}]}] for q in questions]
    texts = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    _, videos, _ = process_vision_info(messages, return_video_kwargs=True, return_video_metadata=True)
    videos, metadata = zip(*videos)
    return processor(text=texts, videos=list(videos), video_metadata=list(metadata), padding=True,
                     padding_side="left", return_tensors="pt")


# Qwen3-VL frames of 64x64 pixels (its patches are 16 px): 2x2 tokens per temporal patch.
QWEN3_VL_PIXELS = 64 * 64


@dataclass(frozen=True)
class Family:
    name: str  # the make-tiny-model family
    model_class: type
    depth: int
    frames: int  # frame groups of an 8-frame clip
    model_args: str  # small, CPU lmms-eval model args

    @property
    def model(self) -> str:
        """The lmms-eval model name: a family's wrapper is ``<family>_flow``."""
        return f"{self.name}_flow"

    def processor(self, model_dir):
        """The checkpoint's processor, as the wrapper's lmms-eval path loads it with ``model_args``."""
        if self.name == "qwen2_5_vl":
            return AutoProcessor.from_pretrained(model_dir, max_pixels=QWEN2_5_VL_PIXELS, min_pixels=QWEN2_5_VL_PIXELS)
        return AutoProcessor.from_pretrained(model_dir)

    def inputs(self, processor, video: str, questions: list[str]):
        """Processor output for one clip per question, as the wrapper's lmms-eval path makes it."""
        if self.name == "qwen2_5_vl":
            return make_inputs(processor, questions, video)
        if self.name == "qwen3_vl":
            return _qwen3_vl_inputs(processor, video, questions)
        messages = [[{"role": "user", "content": [{"type": "video", "video": video}, {"type": "text", "text": q}]}]
                    for q in questions]
        texts = [processor.apply_chat_template(m, tokenize=False, add_generation_prompt=True) for m in messages]
        return LmmsEvalProcessor(processor)(text=texts, videos=[video] * len(questions), images=[], audios=[],
                                            padding=True, padding_side="left", return_tensors="pt")


def _qwen3_vl_inputs(processor, video: str, questions: list[str]):
    """As lmms-eval's qwen3_vl chat model: system prompt, qwen_vl_utils frames, no resize."""
    clip = {"type": "video", "video": video, "min_pixels": QWEN3_VL_PIXELS, "max_pixels": QWEN3_VL_PIXELS, "nframes": 8}
    messages = [[{"role": "system", "content": [{"type": "text", "text": "You are a helpful assistant."}]},
                 {"role": "user", "content": [clip, {"type": "text", "text": q}]}] for q in questions]
    texts = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    _, videos, video_kwargs = process_vision_info(messages, return_video_kwargs=True, image_patch_size=16,
                                                  return_video_metadata=True)
    videos, metadata = zip(*videos)
    return processor(text=texts, videos=list(videos), video_metadata=list(metadata), **video_kwargs, do_resize=False,
                     padding=True, padding_side="left", return_tensors="pt")


CPU = "device=cpu,device_map=cpu"
# What each family's tiny checkpoint is expected to be and run with: model class, depth, frame
# groups of an 8-frame clip, lmms-eval model args.
EXPECTED = {
    "qwen2_5_vl": (Qwen2_5_VLForConditionalGeneration, 28, 4,
                   f"{CPU},max_pixels={QWEN2_5_VL_PIXELS},min_pixels={QWEN2_5_VL_PIXELS},max_num_frames=8"),
    "llava_onevision": (LlavaOnevisionForConditionalGeneration, 28, 8, CPU),
    "llava_next_video": (LlavaNextVideoForConditionalGeneration, 32, 8, CPU),
    "videollama3": (VideoLlama3ForConditionalGeneration, 28, 8, CPU),
    "qwen3_vl": (Qwen3VLForConditionalGeneration, 36, 4,
                 f"{CPU},max_pixels={QWEN3_VL_PIXELS},min_pixels={QWEN3_VL_PIXELS},max_num_frames=8"),
}
FAMILIES = [Family(name, *EXPECTED[name]) for name in TINY_FAMILIES if name in EXPECTED]
FAMILY = {family.name: family for family in FAMILIES}
