"""What can be wrong with one sample before or while it runs, said in words.

A benchmark run lasts hours; a missing, empty or corrupt video, a clip too short to sample, a doc
without a video or a video over the token budget must cost that sample, not the run. The checks
here open each video the way lmms-eval's Qwen wrappers probe it (decord) and turn every problem
into a ``SampleFailure`` whose message names the task, the doc and the file.

A doc's own fields are checked earlier, when its task loads (``scoring.task_utils``): the reason
a doc is invalid travels with it in its ``PROBLEM`` column, where the flow model reads it too.
"""

from __future__ import annotations

from pathlib import Path

from lmms_eval.protocol import ChatMessages

# The fewest frames a video may have by default: lmms-eval samples min(max_num_frames, frames)
# frames, floored to an even number and at least 2 (one temporal patch on Qwen), and a video needs
# two frames for any cross-frame rule to mean something.
MIN_FRAMES = 2
PROBLEM = "flow_problem"  # the column a task adds to its docs when it loads: why a doc is invalid, or None


class DocProblem(ValueError):
    """What is wrong with one doc: a field missing, null, of the wrong type or out of range."""


def problem_of(doc: dict | None) -> str | None:
    """Why the doc was found invalid when its task loaded, or None."""
    return (doc or {}).get(PROBLEM)


class SampleFailure(Exception):
    """A sample that cannot be answered; the message names the task, doc id and file."""

    def __init__(self, message: str, index: int | None = None):
        super().__init__(message)
        self.index = index  # the request's position in the batch being run, where known


def failure_message(task: str, doc_id: int, videos: list | None, reason: str) -> str:
    """``flow_tomato doc 17 (/data/tomato/x.mp4): the file is empty (0 bytes)``; ``videos`` is
    None where the doc's videos are not known (its prompt could not be built)."""
    if videos is None:
        return f"{task} doc {doc_id}: {reason}"
    return f"{task} doc {doc_id} ({', '.join(map(str, videos)) or 'no video'}): {reason}"


def describe(error: BaseException) -> str:
    """An exception in one line: its type and the first line of its message."""
    text = str(error).strip().split("\n")[0][:300]
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def videos_in(messages: list[dict]) -> list:
    """The videos of a doc's chat messages, found as lmms-eval's chat wrappers find them."""
    _, videos, _ = ChatMessages(messages=messages).extract_media()
    return videos


def windows_in(messages: list[dict]) -> list[tuple[float | None, float | None]]:
    """The window (start, end in seconds; None: from the start, to the end) each video of a doc's
    chat messages is cut to, in the order of ``videos_in``."""
    return [(content.start_time, content.end_time) for message in ChatMessages(messages=messages).messages
            for content in message.content if content.type == "video"]


def video_reader(path):
    """A video file opened as lmms-eval's Qwen wrappers probe it (decord)."""
    import decord

    return decord.VideoReader(str(path), num_threads=1)


def frame_count(path, window: tuple[float | None, float | None] = (None, None)) -> int:
    """The frames of a video file, counted as lmms-eval's Qwen wrappers count them; with a window,
    the frames inside it (``frames_in_window``)."""
    reader = video_reader(path)
    return frames_in_window(len(reader), reader.get_avg_fps(), window)


def frames_in_window(frames: int, fps: float, window: tuple[float | None, float | None]) -> int:
    """Of a video's ``frames``, those inside ``window``, as qwen-vl-utils cuts it
    (``calculate_video_frame_range``), which raises ``ValueError`` for a window with no frame."""
    from qwen_vl_utils.vision_process import calculate_video_frame_range

    if window == (None, None):
        return frames
    return calculate_video_frame_range({"video_start": window[0], "video_end": window[1]}, frames, fps)[2]


def frames_to_sample(max_num_frames: int, frames: int) -> int:
    """How many frames lmms-eval's Qwen2.5-VL chat wrapper samples from a video of ``frames``:
    ``min(max_num_frames, frames)`` floored to an even number (qwen-vl-utils takes frames in
    pairs), and at least 2."""
    return max(2, min(max_num_frames, frames) // 2 * 2)


def video_problem(video, min_frames: int = MIN_FRAMES, window: tuple[float | None, float | None] = (None, None)) -> str | None:
    """What is wrong with one video of a sample (cut to ``window``), or None when it can be read and sampled."""
    if not isinstance(video, (str, Path)):
        return f"the video is a {type(video).__name__}, not a file path"
    path = Path(video)
    if not path.exists():
        return "no such file"
    if not path.is_file():
        return "not a file"
    if path.stat().st_size == 0:
        return "the file is empty (0 bytes)"
    try:
        reader = video_reader(path)
    except Exception as error:  # decord raises its own error types for every kind of bad file
        return f"the file cannot be read as a video ({describe(error)})"
    clip = "" if window == (None, None) else f" between {window[0] or 0:g} s and " + (
        "its end" if window[1] is None else f"{window[1]:g} s")
    try:
        frames = frames_in_window(len(reader), reader.get_avg_fps(), window)
    except ValueError as error:  # the window holds no frame of the video
        return f"the video has no frames{clip} ({describe(error)})"
    if frames < min_frames:
        return f"the video has {frames} frame{'s' * (frames != 1)}{clip}, fewer than min_frames={min_frames}"
    return None


def check_sample(messages: list[dict], min_frames: int = MIN_FRAMES) -> tuple[list, str | None]:
    """A sample's videos and what is wrong with it (None when nothing is); a video cut to a window
    (TVBench's ``start``/``end``) needs its frames inside it."""
    videos = videos_in(messages)
    if not videos:
        return videos, "the doc has no video"
    for video, window in zip(videos, windows_in(messages)):
        problem = video_problem(video, min_frames, window)
        if problem:
            return videos, f"{video}: {problem}" if len(videos) > 1 else problem
    return videos, None
