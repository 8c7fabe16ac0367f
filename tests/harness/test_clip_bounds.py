"""Clip windows (TVBench's ``start``/``end``, handed to lmms-eval's chat protocol by
``task_utils.video_messages``) on every family: the frames the model is given all come from
inside the window, and without one from the whole video, as before.

The clip is a ramp: frame ``i`` of 24 (4 fps, 6 s) is a flat grey of level ``16 + 10 i``, so the
pixel values a wrapper hands ``generate`` say which frames of the file it was given. The window
2-4 s holds frames 8..16 (from ``ceil(2 x 4)`` to ``floor(4 x 4)``, qwen-vl-utils' rule). The
LLaVA and VideoLLaMA3 wrappers give every frame up to their frame argument (default 32), and that
many spread over a longer clip; the Qwen wrappers give ``max_num_frames=8`` spread over the clip by
qwen-vl-utils.
"""

from __future__ import annotations

import av
import numpy as np
import pytest
from conftest import SMALL_VIDEO_ARGS, TASKS_DIR
from family_cases import FAMILIES
from wrapper_calls import generate_inputs
from lmms_eval.utils import load_yaml_config
from lmms_eval_flow.model_wrappers.llava_next_video_flow import LlavaNextVideoFlow
from lmms_eval_flow.model_wrappers.llava_onevision_flow import LlavaOnevisionFlow
from lmms_eval_flow.model_wrappers.qwen2_5_vl_flow import Qwen2_5_VLFlow
from lmms_eval_flow.model_wrappers.qwen3_vl_flow import Qwen3_VLFlow
from lmms_eval_flow.model_wrappers.videollama3_flow import VideoLLaMA3Flow
from transformers import AutoProcessor

from lmms_eval_flow.harness.lmms_eval_compat import Clip, LmmsEvalProcessor, clips_in
from lmms_eval_flow.scoring.task_utils import video_messages

FRAMES, FPS, FIRST_LEVEL, STEP = 24, 4, 16, 10
WINDOW = (2.0, 4.0)
INSIDE = list(range(8, 17))
WRAPPERS = {"llava_onevision": LlavaOnevisionFlow, "llava_next_video": LlavaNextVideoFlow,
            "videollama3": VideoLLaMA3Flow, "qwen2_5_vl": Qwen2_5_VLFlow, "qwen3_vl": Qwen3_VLFlow}
EVERY_FRAME = ("llava_onevision", "llava_next_video", "videollama3")  # processors that sample no frames
ARGS = {"qwen2_5_vl": SMALL_VIDEO_ARGS, **{family.name: family.model_args for family in FAMILIES}}


def write_ramp(path) -> str:
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width = stream.height = 56
        stream.pix_fmt = "yuv420p"
        for i in range(FRAMES):
            frame = np.full((56, 56, 3), FIRST_LEVEL + STEP * i, dtype=np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return str(path)


@pytest.fixture(scope="module")
def ramp(tmp_path_factory) -> str:
    return write_ramp(tmp_path_factory.mktemp("clips") / "ramp.mp4")


def frames_given(inputs: dict, video_processor) -> list[int]:
    """Which frames of the ramp the pixel values are, in order, read from their first channel.

    LLaVA's videos are (batch, frames, channels, height, width); Qwen's and VideoLLaMA3's are rows
    of patches, ``video_grid_thw`` of them per video, each row ``channels x temporal x patch x patch``
    (Qwen's temporal patch holds two frames, VideoLLaMA3's one)."""
    pixels = inputs["pixel_values_videos"].float()
    if pixels.dim() == 5:
        values = pixels[0, :, 0].mean(dim=(1, 2))
    else:
        t, h, w = inputs["video_grid_thw"][0].tolist()
        temporal = pixels.shape[1] // (3 * video_processor.patch_size ** 2)
        values = pixels.view(t, h * w, 3, temporal, -1)[:, :, 0].mean(dim=(1, 3)).flatten()
    levels = (values * video_processor.image_std[0] + video_processor.image_mean[0]) / video_processor.rescale_factor
    found = [(level - FIRST_LEVEL) / STEP for level in levels.tolist()]
    assert all(abs(f - round(f)) < 0.3 for f in found), f"pixel levels {levels.tolist()} are no ramp frame's"
    return [round(f) for f in found]


def ask(model, video: str, window: tuple | None) -> dict:
    """The inputs the wrapper generates from for one question on ``video`` cut to ``window``, asked
    as lmms-eval asks a chat model with the messages a TVBench doc builds."""
    start, end = window or (None, None)
    return generate_inputs(model, video_messages(video, "Which frame?", start, end))


@pytest.fixture(scope="module")
def runs(family_model_dir, tiny_model_dir, ramp) -> dict:
    """family -> (frames given with the window, frames given without, the window's prompt text)."""
    found = {}
    for family, wrapper in WRAPPERS.items():
        model_dir = tiny_model_dir if family == "qwen2_5_vl" else family_model_dir(family)
        model = wrapper.create_from_arg_string(f"pretrained={model_dir},regime=full,{ARGS[family]}")
        video_processor = AutoProcessor.from_pretrained(model_dir).video_processor
        inside, whole = ask(model, ramp, WINDOW), ask(model, ramp, None)
        found[family] = (frames_given(inside, video_processor), frames_given(whole, video_processor),
                         model.tokenizer.decode(inside["input_ids"][0]))
    return found


@pytest.mark.parametrize("family", WRAPPERS)
def test_every_frame_given_comes_from_inside_the_window(runs, family):
    inside, _, _ = runs[family]
    if family in EVERY_FRAME:
        assert inside == INSIDE
    else:  # qwen-vl-utils: 8 frames from the first to the last of the window
        assert len(inside) == 8 and inside[0] == INSIDE[0] and inside[-1] == INSIDE[-1] and set(inside) <= set(INSIDE)


@pytest.mark.parametrize("family", WRAPPERS)
def test_without_a_window_the_whole_video_is_sampled_as_before(runs, family):
    _, whole, _ = runs[family]
    if family in EVERY_FRAME:
        assert whole == list(range(FRAMES))
    else:
        assert len(whole) == 8 and whole[0] == 0 and whole[-1] == FRAMES - 1


def test_videollama3_stamps_the_frames_of_a_window_with_their_times_in_the_video(runs):
    """VideoLLaMA3's prompt writes each frame's time (``Time 2.0s:``) from the metadata of the clip."""
    *_, prompt = runs["videollama3"]
    assert [f"Time {i / FPS:.1f}s:" in prompt for i in INSIDE] == [True] * len(INSIDE)
    assert "Time 1.8s:" not in prompt and "Time 4.2s:" not in prompt


QWEN = [family for family in WRAPPERS if family not in EVERY_FRAME]


@pytest.mark.parametrize("family", EVERY_FRAME)
def test_a_clip_with_more_frames_than_the_wrappers_frame_argument_gives_that_many_spread_over_it(
        family, family_model_dir, ramp):
    """lmms-eval's own frame argument of the wrapper (``llava_hf``'s ``max_frames_num``,
    ``huggingface``'s ``max_num_frames``) at 4: the 2-4 s window's frames 8..16 give 8, 11, 13, 16,
    the whole 24 give 0, 8, 15, 23 (qwen-vl-utils' rounded ``linspace``)."""
    argument = "max_frames_num" if family == "llava_onevision" else "max_num_frames"
    model = WRAPPERS[family].create_from_arg_string(
        f"pretrained={family_model_dir(family)},regime=full,{ARGS[family]},{argument}=4")
    video_processor = AutoProcessor.from_pretrained(family_model_dir(family)).video_processor
    assert frames_given(ask(model, ramp, WINDOW), video_processor) == [8, 11, 13, 16]
    assert frames_given(ask(model, ramp, None), video_processor) == [0, 8, 15, 23]


@pytest.mark.parametrize("family", QWEN)
def test_a_qwen_window_holding_fewer_frames_than_max_num_frames_is_sampled_at_the_frames_it_holds(
        family, family_model_dir, tiny_model_dir, ramp):
    """With ``max_num_frames=16`` the 2-4 s window holds 9 frames: qwen-vl-utils is asked for 8 of
    them, not lmms-eval's batch count of 16 (the whole file has 24), which it would refuse; without
    a window the video gives its 16. The name it samples through is restored after each call."""
    from lmms_eval.models.chat import qwen2_5_vl, qwen3_vl

    module = {"qwen2_5_vl": qwen2_5_vl, "qwen3_vl": qwen3_vl}[family]
    sample = module.process_vision_info
    model_dir = tiny_model_dir if family == "qwen2_5_vl" else family_model_dir(family)
    args = ARGS[family].replace("max_num_frames=8", "max_num_frames=16")
    model = WRAPPERS[family].create_from_arg_string(f"pretrained={model_dir},regime=full,{args}")
    assert model.max_num_frames == 16
    video_processor = AutoProcessor.from_pretrained(model_dir).video_processor
    inside, whole = frames_given(ask(model, ramp, WINDOW), video_processor), frames_given(ask(model, ramp, None), video_processor)
    assert len(inside) == 8 and inside[0] == INSIDE[0] and inside[-1] == INSIDE[-1] and set(inside) <= set(INSIDE)
    assert len(whole) == 16 and whole[0] == 0 and whole[-1] == FRAMES - 1
    assert module.process_vision_info is sample


def test_a_prompt_stating_another_frame_count_than_the_model_samples_is_warned_about_once(tiny_model_dir, ramp):
    """TOMATO's prompt says "16 separate frames" (``stated_frames: 16``); a model sampling up to 8 says
    so once, naming the argument to pass; one sampling 16 says nothing."""
    from loguru import logger

    from lmms_eval_flow.tasks.flow_tomato import utils as tomato

    config = load_yaml_config(str(TASKS_DIR / "flow_tomato" / "flow_tomato.yaml"), mode="simple")
    assert tomato.TASK.doc_to_prompt({"question": "Q", "options": ["a", "b"], "answer": 0, "video_path": "v"},
                                     config["lmms_eval_specific_kwargs"]["default"]).frames == 16
    messages = video_messages(ramp, "You will be provided with 16 separate frames ... Q", stated_frames=16)
    told = []
    sink = logger.add(lambda message: told.append(str(message)), level="WARNING")
    try:
        for frames in (8, 16):
            model = Qwen2_5_VLFlow.create_from_arg_string(
                f"pretrained={tiny_model_dir},regime=full,{SMALL_VIDEO_ARGS.replace('max_num_frames=8', f'max_num_frames={frames}')}")
            for _ in range(2):
                generate_inputs(model, messages)
    finally:
        logger.remove(sink)
    about_frames = [t for t in told if "frames" in t and "shown" in t]
    assert len(about_frames) == 1
    assert "flow_x's prompt tells the model it is shown 16 frames" in about_frames[0]
    assert "samples up to 8" in about_frames[0] and "pass max_num_frames=16" in about_frames[0]


# -- the processor wrapper on its own -------------------------------------------------------------
@pytest.fixture(scope="module")
def onevision_processor(family_model_dir):
    return AutoProcessor.from_pretrained(family_model_dir("llava_onevision"))


def templated_call(processor: LmmsEvalProcessor, video: str, window: tuple, **kwargs):
    content = {"type": "video", "url": video, "start_time": window[0], "end_time": window[1]}
    text = processor.apply_chat_template([{"role": "user", "content": [content, {"type": "text", "text": "Q?"}]}],
                                         tokenize=False, add_generation_prompt=True)
    return processor(text=text, videos=[video], images=[], return_tensors="pt", **kwargs)


def test_a_processor_that_samples_frames_itself_samples_inside_the_window(onevision_processor, ramp):
    """``do_sample_frames``: the clip's metadata is the window's, so the processor's own sampling
    (3 frames, evenly) stays inside it."""
    inputs = templated_call(LmmsEvalProcessor(onevision_processor), ramp, WINDOW, do_sample_frames=True, num_frames=3)
    assert frames_given(inputs, onevision_processor.video_processor) == [8, 11, 14]


def test_a_window_with_no_frame_in_the_video_is_refused(onevision_processor, ramp):
    with pytest.raises(ValueError, match="Invalid time range"):
        templated_call(LmmsEvalProcessor(onevision_processor), ramp, (7.0, 9.0))


def test_a_call_on_videos_other_than_those_templated_is_refused(onevision_processor, ramp, tmp_path):
    processor = LmmsEvalProcessor(onevision_processor)
    processor.apply_chat_template([{"role": "user", "content": [{"type": "video", "url": "other.mp4"}]}], tokenize=False)
    with pytest.raises(ValueError, match="cannot tell which clip window is whose"):
        processor(text="<video>", videos=[ramp], return_tensors="pt")
    direct = processor(text="<video>", videos=[ramp], return_tensors="pt")  # nothing templated: the whole video
    assert frames_given(direct, onevision_processor.video_processor) == list(range(FRAMES))


def test_windows_are_read_from_both_forms_lmms_eval_templates():
    protocol = [{"role": "user", "content": [{"type": "video", "url": "a.mp4", "start_time": 1.0, "end_time": None},
                                             {"type": "text", "text": "Q"}]}]
    hugging_face = [{"role": "system", "content": "Be brief."},
                    {"role": "user", "content": [{"type": "video", "video": "b.mp4", "video_start": 2.5, "video_end": 3.0},
                                                 {"type": "video", "video": "c.mp4"}]}]
    assert clips_in(protocol) == [Clip("a.mp4", 1.0, None)]
    assert clips_in(hugging_face) == [Clip("b.mp4", 2.5, 3.0), Clip("c.mp4")]
