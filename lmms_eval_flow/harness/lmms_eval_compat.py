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

One more reach-in serves multi-process CPU runs (accelerate's MULTI_CPU, as in CI): lmms-eval's
Qwen2.5-VL wrapper sends every process of a run with several to ``cuda:<rank>``, so it cannot
start there. ``loading_as_one_process`` lets that wrapper's own single-process loading run in each
CPU process, which then takes its shard of the docs from accelerate (``take_shard``).

``LmmsEvalProcessor`` wraps the loaded processor so those calls work: video paths are decoded
with transformers' own ``load_video`` on PyAV (every frame, with the file's metadata, as the
processor's own decoding would give), and empty media lists are left out. Every other attribute
is the processor's own, so the wrapper's prompting is untouched. ``HuggingfaceChatFlow`` is the
flow model on ``huggingface`` with those fixes, for the families lmms-eval has no wrapper for.

Clip windows. A doc's chat turn may cut its video to a window (lmms-eval's protocol's
``start_time``/``end_time``, TVBench's ``start``/``end``); lmms-eval's Qwen wrappers hand it to
qwen-vl-utils, but these two chat wrappers hand the processor the bare path. Both template each
prompt through the processor right before calling it on that prompt's videos, from messages that
still carry the window (``llava_hf`` its protocol's own fields, ``huggingface`` the Hugging Face
form ``video_start``/``video_end`` of ``ChatMessages.to_hf_messages``). So ``LmmsEvalProcessor``
notes the windows of the videos it templates and decodes each video of its next call inside its
own (``load_clip``): the frames qwen-vl-utils would cut for the Qwen families.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

from lmms_eval.models.chat import huggingface
from qwen_vl_utils.vision_process import calculate_video_frame_range
from transformers import AutoModelForImageTextToText
from transformers.video_utils import VideoMetadata, load_video

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


@dataclass(frozen=True)
class Clip:
    """A video of a chat turn and the window it is cut to (seconds; None: from the start, to the end)."""

    video: object  # a path, or frames already decoded
    start: float | None = None
    end: float | None = None


def clips_in(conversation) -> list[Clip]:
    """The videos of one conversation (a list of messages), in order, with their windows, in either
    form lmms-eval templates them: its protocol's (``url``, ``start_time``, ``end_time``; what
    ``llava_hf`` dumps) or the Hugging Face one (``video``, ``video_start``, ``video_end``)."""
    clips = []
    for message in conversation:
        content = message.get("content") if isinstance(message, dict) else None
        for block in content if isinstance(content, list) else ():
            if isinstance(block, dict) and block.get("type") == "video":
                video = next((block[key] for key in ("video", "url", "path") if block.get(key) is not None), None)
                start = block.get("video_start", block.get("start_time"))
                end = block.get("video_end", block.get("end_time"))
                clips.append(Clip(video, start, end))
    return clips


def load_clip(video: str, start: float | None = None, end: float | None = None) -> tuple:
    """The frames and metadata of a video file, decoded with transformers' ``load_video`` on PyAV:
    every frame, or with a window every frame inside it, the frames qwen-vl-utils'
    ``calculate_video_frame_range`` gives (from ``ceil(start x fps)`` to ``floor(end x fps)``,
    clamped to the file; a window with no frame in it raises its ``ValueError``).

    A clip's metadata is the clip's, as qwen-vl-utils describes one: ``total_num_frames`` and
    ``duration`` are those of the frames kept (so a processor that samples frames itself,
    ``do_sample_frames``, samples inside the window), ``frames_indices`` their places in the
    file, so ``timestamps`` (VideoLLaMA3's ``Time 1.5s:``) are times in the video."""
    if start is None and end is None:
        return load_video(video, backend="pyav")

    def inside_window(metadata: VideoMetadata, **kwargs) -> range:
        first, last, _ = calculate_video_frame_range({"video_start": start, "video_end": end},
                                                     metadata.total_num_frames, metadata.fps)
        return range(first, last + 1)

    frames, metadata = load_video(video, backend="pyav", sample_indices_fn=inside_window)
    metadata.frames_indices = list(metadata.frames_indices)
    metadata.total_num_frames = len(frames)
    metadata.duration = len(frames) / metadata.fps
    return frames, metadata


class _OneProcessView:
    """This process's ``Accelerator``, reporting one process: what lmms-eval's loading sees."""

    num_processes = 1

    def __init__(self, accelerator: Accelerator):
        self._accelerator = accelerator

    def __getattr__(self, name):
        return getattr(self._accelerator, name)


@contextmanager
def loading_as_one_process(module: ModuleType):
    """While a wrapper defined in ``module`` (an lmms-eval model module) loads: the name it builds
    its ``Accelerator`` through, ``module.Accelerator``, gives this process's accelerator as if the
    run had one process (restored after, however it ends), so the wrapper loads where its arguments
    say (``device=cpu``). tests/harness/test_lmms_eval_contract.py fails if lmms-eval stops building
    it through that name or deciding on ``num_processes``."""
    accelerator = module.Accelerator
    module.Accelerator = lambda *args, **kwargs: _OneProcessView(accelerator(*args, **kwargs))
    try:
        yield
    finally:
        module.Accelerator = accelerator


def take_shard(model, accelerator: Accelerator) -> None:
    """After ``loading_as_one_process``: the wrapper is one of ``accelerator``'s processes, and
    answers that process's share of the docs (lmms-eval shards them by ``rank`` and ``world_size``)."""
    model.accelerator = accelerator
    model._rank, model._world_size = accelerator.process_index, accelerator.num_processes


class LmmsEvalProcessor:
    """The loaded processor, called as lmms-eval's ``llava_hf`` and ``huggingface`` chat wrappers
    call it (the module's docstring says what changes); every other attribute is the processor's."""

    def __init__(self, processor):
        self.processor = processor
        self.templated: list[Clip] = []  # the videos of the prompts templated since the last call

    def __getattr__(self, name):
        return getattr(self.processor, name)

    def apply_chat_template(self, conversation, *args, **kwargs):
        """The processor's own; a prompt templated as text notes its videos' windows for the next call
        (one tokenized here is processed by the processor itself, and notes nothing)."""
        if not kwargs.get("tokenize", False):
            conversations = conversation if conversation and isinstance(conversation[0], (list, tuple)) else [conversation]
            self.templated += [clip for turns in conversations for clip in clips_in(turns)]
        return self.processor.apply_chat_template(conversation, *args, **kwargs)

    def __call__(self, *args, images=None, videos=None, audios=None, **kwargs):
        templated, self.templated = self.templated, []
        if videos:
            clips = self.clips_of(videos, templated)
            decoded = [load_clip(clip.video, clip.start, clip.end) if isinstance(clip.video, str) else (clip.video, None)
                       for clip in clips]
            videos = [frames for frames, _ in decoded]
            if all(metadata is not None for _, metadata in decoded):
                kwargs["video_metadata"] = [metadata for _, metadata in decoded]
        if audios:
            kwargs["audio"] = audios
        return self.processor(*args, images=images or None, videos=videos or None, **kwargs)

    @staticmethod
    def clips_of(videos: list, templated: list[Clip]) -> list[Clip]:
        """Each video of a call with its window: that of the same video in the prompts templated for
        it, in order; none when no prompt was templated (a direct call: the whole videos). Prompts
        whose videos are not the call's are a caller's mistake that would cut the wrong clips."""
        if not templated:
            return [Clip(video) for video in videos]
        paths = [clip.video for clip in templated]
        if len(paths) != len(videos) or any(isinstance(v, str) and v != p for v, p in zip(videos, paths)):
            raise ValueError(f"the processor was called on the videos {list(map(str, videos))} after templating "
                             f"prompts with the videos {list(map(str, paths))}: cannot tell which clip window is whose")
        return [Clip(video, clip.start, clip.end) for video, clip in zip(videos, templated)]


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
