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

Qwen clip windows: lmms-eval's Qwen wrappers ask qwen-vl-utils for one frame count per batch,
capped by the whole file, which qwen-vl-utils refuses for a window holding fewer frames;
``sampling_inside_windows`` caps each video's count at its window's while a Qwen flow wrapper
generates (the reach-in: the wrapper module's name ``process_vision_info``).

One more reach-in serves multi-process CPU runs (accelerate's MULTI_CPU, as in CI): lmms-eval's
Qwen2.5-VL wrapper sends every process of a run with several to ``cuda:<rank>``, so it cannot
start there. ``loading_as_one_process`` lets that wrapper's own single-process loading run in each
CPU process, which then takes its shard of the docs from accelerate (``take_shard``).

``LmmsEvalProcessor`` wraps the loaded processor so those calls work: video paths are decoded
with transformers' own ``load_video`` on PyAV, with the file's metadata, and empty media lists are
left out. A video gives at most the wrapper's own frame argument's count of frames (``llava_hf``'s
``max_frames_num``, ``huggingface``'s ``max_num_frames``, 32 by default), spread evenly over the
clip as lmms-eval's Qwen wrappers and its simple ``llava_hf`` sample: lmms-eval's chat wrappers
take that argument but hand the processor the whole file, whose every frame (thousands in a real
benchmark video) would be the prompt. Every other attribute
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
from types import ModuleType

import numpy as np
from accelerate import Accelerator
from lmms_eval.models.chat import huggingface
from qwen_vl_utils.vision_process import calculate_video_frame_range
from transformers import AutoModelForImageTextToText
from transformers.video_utils import VideoMetadata, load_video

from lmms_eval_flow.harness.flow_model import FlowModel, lmms_eval_arguments
from lmms_eval_flow.harness.primer import as_batch
from lmms_eval_flow.harness.sample_checks import frame_count, frames_to_sample


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


def load_clip(video: str, start: float | None = None, end: float | None = None,
              max_frames: int | None = None) -> tuple:
    """The frames and metadata of a video file, decoded with transformers' ``load_video`` on PyAV:
    every frame, or with a window every frame inside it, the frames qwen-vl-utils'
    ``calculate_video_frame_range`` gives (from ``ceil(start x fps)`` to ``floor(end x fps)``,
    clamped to the file; a window with no frame in it raises its ``ValueError``). With
    ``max_frames``, a clip holding more frames gives that many, spread evenly from its first to its
    last (qwen-vl-utils' ``linspace`` rounded), as lmms-eval's Qwen wrappers and its simple
    ``llava_hf`` sample.

    A clip's metadata is the clip's, as qwen-vl-utils describes one: ``total_num_frames`` is the
    frames kept and ``duration`` the clip's seconds (so a processor that samples frames itself,
    ``do_sample_frames``, samples inside the window), ``frames_indices`` their places in the
    file, so ``timestamps`` (VideoLLaMA3's ``Time 1.5s:``) are times in the video."""
    if start is None and end is None and max_frames is None:
        return load_video(video, backend="pyav")
    span = {}

    def inside_window(metadata: VideoMetadata, **kwargs):
        first, last = 0, metadata.total_num_frames - 1
        if start is not None or end is not None:
            first, last, _ = calculate_video_frame_range({"video_start": start, "video_end": end},
                                                         metadata.total_num_frames, metadata.fps)
        span["seconds"] = (last - first + 1) / metadata.fps
        if max_frames is None or last - first + 1 <= max_frames:
            return range(first, last + 1)
        return np.linspace(first, last, max_frames).round().astype(int)

    frames, metadata = load_video(video, backend="pyav", sample_indices_fn=inside_window)
    metadata.frames_indices = [int(i) for i in metadata.frames_indices]
    metadata.total_num_frames = len(frames)
    metadata.duration = span["seconds"]
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


@contextmanager
def sampling_inside_windows(module: ModuleType):
    """While a Qwen chat wrapper defined in ``module`` generates: the name it samples frames through,
    ``module.process_vision_info`` (qwen-vl-utils'), caps each video's ``nframes`` at what its window
    holds (``frames_to_sample`` of the frames inside ``video_start``..``video_end``). lmms-eval sets
    one ``nframes`` for a batch, from ``max_num_frames`` and the whole file's frames, and qwen-vl-utils
    refuses a count above the window's: without the cap a TVBench window shorter than
    ``max_num_frames`` frames (2 s at 8 fps under the default 32) fails. Restored after, however it
    ends; tests/harness/test_lmms_eval_contract.py fails if lmms-eval stops sampling through that name."""
    sample = module.process_vision_info

    def capped(item):
        if not isinstance(item, dict) or item.get("type") != "video" or "nframes" not in item:
            return item
        window = (item.get("video_start"), item.get("video_end"))
        return {**item, "nframes": frames_to_sample(item["nframes"], frame_count(item["video"], window))}

    def sampling(conversations, *args, **kwargs):
        def message(m):
            return {**m, "content": [capped(c) for c in m["content"]]} if isinstance(m.get("content"), list) else m

        given, batched = as_batch(conversations)
        capped_conversations = [[message(m) for m in turns] for turns in given]
        return sample(capped_conversations if batched else capped_conversations[0], *args, **kwargs)

    module.process_vision_info = sampling
    try:
        yield
    finally:
        module.process_vision_info = sample


def take_shard(model, accelerator: Accelerator) -> None:
    """After ``loading_as_one_process``: the wrapper is one of ``accelerator``'s processes, and
    answers that process's share of the docs (lmms-eval shards them by ``rank`` and ``world_size``)."""
    model.accelerator = accelerator
    model._rank, model._world_size = accelerator.process_index, accelerator.num_processes


class LmmsEvalProcessor:
    """The loaded processor, called as lmms-eval's ``llava_hf`` and ``huggingface`` chat wrappers
    call it (the module's docstring says what changes); every other attribute is the processor's.
    ``max_frames``: the most frames a video gives (the wrapper's own frame argument); None, every one."""

    def __init__(self, processor, max_frames: int | None = None):
        self.processor = processor
        self.max_frames = max_frames
        self.templated: list[Clip] = []  # the videos of the prompts templated since the last call

    def __getattr__(self, name):
        return getattr(self.processor, name)

    def apply_chat_template(self, conversation, *args, **kwargs):
        """The processor's own; a prompt templated as text notes its videos' windows for the next call
        (one tokenized here is processed by the processor itself, and notes nothing)."""
        if not kwargs.get("tokenize", False):
            conversations, _ = as_batch(conversation)
            self.templated += [clip for turns in conversations for clip in clips_in(turns)]
        return self.processor.apply_chat_template(conversation, *args, **kwargs)

    def __call__(self, *args, images=None, videos=None, audios=None, **kwargs):
        templated, self.templated = self.templated, []
        if videos:
            clips = self.clips_of(videos, templated)
            decoded = [load_clip(clip.video, clip.start, clip.end, self.max_frames) if isinstance(clip.video, str)
                       else (clip.video, None)
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
        self.processor = LmmsEvalProcessor(self.processor, max_frames=self.max_num_frames)
