"""What lmms-eval 0.7.3's generic chat wrappers need to run a video model on transformers 5.23.

The flow wrappers of LLaVA-OneVision (on lmms-eval's ``llava_hf``), LLaVA-NeXT-Video and
VideoLLaMA3 (on its generic ``huggingface``) reuse those wrappers' loading and prompting, which
trip over transformers 5.23 in three places:

- ``huggingface`` picks the model's auto class by testing ``config.model_type in
  AutoModelForCausalLM._model_mapping.keys()``; those keys are config classes now, so it always
  falls back to ``AutoModel``, the model without its LM head, which cannot generate. The
  wrapper's ``__init__`` loads and sets up everything in one go, with no hook for the class, so
  ``loading_with_lm_head`` points the module's name ``AutoModel`` at ``AutoModelForImageTextToText``
  while the wrapper loads: the one reach-in into that module.
- Both hand the processor video files by path, which transformers decodes only with torchcodec
  (a system FFmpeg library behind it), not with the PyAV this project installs.
- Both pass ``images=[]`` for a doc without images (LLaVA-OneVision's image processor reads
  ``images[0]``), and ``huggingface`` passes ``audios=[]`` (renamed ``audio``: an error now).

``LmmsEvalProcessor`` wraps the loaded processor so those calls work: video paths are decoded
with transformers' own ``load_video`` on PyAV (every frame, with the file's metadata, as the
processor's own decoding would give), and empty media lists are left out. Every other attribute
is the processor's own, so the wrapper's prompting is untouched. ``HuggingfaceChatFlow`` is the
flow model on ``huggingface`` with those fixes, for the families lmms-eval has no wrapper for.
"""

from __future__ import annotations

from contextlib import contextmanager

from lmms_eval.models.chat import huggingface
from transformers import AutoModelForImageTextToText
from transformers.video_utils import load_video

from lmms_eval_flow.harness.flow_model import FlowModel, lmms_eval_arguments


@contextmanager
def loading_with_lm_head():
    """While ``huggingface.Huggingface.__init__`` runs: the name its fallback loads through,
    ``huggingface.AutoModel``, holds the class with the LM head (restored after, however it ends).
    tests/harness/test_lmms_eval_contract.py fails if lmms-eval stops loading through that name."""
    fallback = huggingface.AutoModel
    huggingface.AutoModel = AutoModelForImageTextToText
    try:
        yield
    finally:
        huggingface.AutoModel = fallback


class LmmsEvalProcessor:
    def __init__(self, processor):
        self.processor = processor

    def __getattr__(self, name):
        return getattr(self.processor, name)

    def __call__(self, *args, images=None, videos=None, audios=None, **kwargs):
        if videos:
            decoded = [load_video(video, backend="pyav") if isinstance(video, str) else (video, None) for video in videos]
            videos = [frames for frames, _ in decoded]
            if all(metadata is not None for _, metadata in decoded):
                kwargs["video_metadata"] = [metadata for _, metadata in decoded]
        if audios:
            kwargs["audio"] = audios
        return self.processor(*args, images=images or None, videos=videos or None, **kwargs)


class HuggingfaceChatFlow(FlowModel, huggingface.Huggingface):
    """A flow model on lmms-eval's generic ``huggingface`` chat wrapper, loaded with its LM head
    and a processor it can call; a family sets its names and ``regime_session``."""

    is_simple = False
    upstream_arguments = lmms_eval_arguments(huggingface.Huggingface.__init__)

    def load_model(self, pretrained: str, **kwargs) -> None:
        if int(kwargs.get("batch_size", 1)) != 1:
            raise ValueError(f"{self.model_name} runs batch_size=1 only (got {kwargs['batch_size']}): lmms-eval's "
                             "huggingface chat path builds every prompt of a batch from its first request")
        with loading_with_lm_head():
            super().load_model(pretrained, **kwargs)
        self.processor = LmmsEvalProcessor(self.processor)
